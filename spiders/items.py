"""What flows through the crawl: a fetched page, a normalised page to index, or a CrawlOutcome."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pipeline.crawl.process import CrawlOutcome
from pipeline.discover.listings import Candidate
from pipeline.net.fetch import FetchResult
from pipeline.normalise.page import NormalisedArticle

# The request meta key holding the Candidate; redirects and retries copy it along.
CANDIDATE_META = "newsradar_candidate"


@dataclass(frozen=True, repr=False)
class FetchedPage:
    """A 2xx response for a candidate, as pipeline.normalise.page wants it."""

    candidate: Candidate
    result: FetchResult
    fetched_at: datetime
    language_hint: str | None = None

    @property
    def url(self) -> str:
        """The candidate's canonical URL: the key of its outcome."""
        return self.candidate.url

    @property
    def source(self) -> str:
        """The candidate's source id."""
        return self.candidate.source

    def __repr__(self) -> str:
        # Scrapy logs items on errors; the body would drown the message.
        return (
            f"FetchedPage({self.result.url!r}, status={self.result.status}, "
            f"{len(self.result.body)} bytes)"
        )


@dataclass(frozen=True, repr=False)
class NormalisedPage:
    """A fetched page that normalised into an article, on its way to the index."""

    page: FetchedPage
    article: NormalisedArticle
    outcome: CrawlOutcome  # "normalised"; the index pipeline turns it into indexed/duplicate

    @property
    def url(self) -> str:
        """The fetched page's candidate URL: the key of its outcome."""
        return self.page.url

    @property
    def source(self) -> str:
        """The fetched page's source id."""
        return self.page.source

    def __repr__(self) -> str:
        return f"NormalisedPage({self.page.result.url!r}, article={self.article.id})"
