"""The article spider: fetch each candidate URL once; each one ends in exactly one item."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from scrapy import Request, Spider
from scrapy.http import Response
from scrapy.spidermiddlewares.httperror import HttpError
from twisted.python.failure import Failure

from pipeline.crawl.process import CrawlOutcome
from pipeline.discover.listings import Candidate
from pipeline.net.fetch import FetchResult, parse_retry_after, status_reason
from spiders.failures import failure_reason
from spiders.items import CANDIDATE_META, FetchedPage

logger = logging.getLogger(__name__)


class ArticleSpider(Spider):
    """Requests every candidate's link; follows nothing but redirects.

    A 2xx response becomes a FetchedPage for the item pipelines; every failure becomes
    a CrawlOutcome naming why. The frontier (later) feeds the candidates and receives the
    outcomes; here they come from and go to pipeline.crawl.process's job files.
    """

    name = "article"

    def __init__(
        self,
        candidates: Sequence[Candidate] = (),
        languages: Mapping[str, str | None] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.candidates = tuple(candidates)
        self.languages = dict(languages or {})

    async def start(self) -> AsyncIterator[Request | CrawlOutcome]:
        """One request per candidate; a URL no request can be made for is an outcome at once."""
        limit = self.settings.getint("URLLENGTH_LIMIT")
        for candidate in self.candidates:
            yield self._request(candidate, limit)

    def _request(self, candidate: Candidate, limit: int) -> Request | CrawlOutcome:
        try:
            request = Request(
                candidate.link,
                callback=self.fetched,
                errback=self.failed,
                meta={CANDIDATE_META: candidate},
            )
        except ValueError as exc:  # Request refuses a URL without a scheme
            return _outcome(candidate, "bad_url", detail=str(exc))
        if limit and len(request.url) > limit:
            # Scrapy's UrlLengthMiddleware would drop it with a log line and no outcome.
            return _outcome(candidate, "bad_url", detail=f"longer than {limit} characters")
        return request

    def fetched(self, response: Response) -> Iterator[FetchedPage]:
        """A 2xx response (HttpErrorMiddleware sends the others to ``failed``)."""
        candidate: Candidate = response.meta[CANDIDATE_META]
        request = response.request
        chain = tuple(request.meta.get("redirect_urls", ())) if request is not None else ()
        result = FetchResult(
            url=response.url,
            requested_url=candidate.link,
            status=response.status,
            headers=_headers(response),
            body=response.body,
            not_modified=False,
            redirect_chain=chain,
            elapsed=float(response.meta.get("download_latency", 0.0)),
        )
        yield FetchedPage(
            candidate=candidate,
            result=result,
            fetched_at=datetime.now(UTC),
            language_hint=self.languages.get(candidate.source),
        )

    def failed(self, failure: Failure) -> Iterator[CrawlOutcome]:
        """The request ended without a 2xx: name why."""
        request: Request = failure.request  # type: ignore[attr-defined]
        candidate: Candidate = request.meta[CANDIDATE_META]
        exc = failure.value
        assert exc is not None  # a Failure always holds its exception
        if isinstance(exc, HttpError):
            response = exc.response
            header = response.headers.get("Retry-After")
            wait = parse_retry_after(
                header.decode("latin-1") if header else None, now=datetime.now(UTC)
            )
            yield _outcome(
                candidate,
                status_reason(response.status),
                status=response.status,
                final_url=response.url,
                retry_after=wait if response.status == 429 or response.status >= 500 else None,
            )
            return
        reason, detail = failure_reason(exc)
        if reason == "error":
            logger.warning("Unclassified failure for %s: %s", request.url, detail)
        yield _outcome(candidate, reason, final_url=request.url, detail=detail)


def _outcome(
    candidate: Candidate,
    outcome: str,
    *,
    status: int | None = None,
    final_url: str | None = None,
    detail: str = "",
    retry_after: float | None = None,
) -> CrawlOutcome:
    return CrawlOutcome(
        url=candidate.url,
        source=candidate.source,
        outcome=outcome,
        status=status,
        final_url=final_url,
        detail=detail,
        retry_after=retry_after,
    )


def _headers(response: Response) -> dict[str, str]:
    """Names lower-cased, repeated headers joined with ", ", as pipeline.net.fetch gives them."""
    return {
        name.decode("latin-1").lower(): ", ".join(v.decode("latin-1") for v in values)
        for name, values in response.headers.items()
    }
