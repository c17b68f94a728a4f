"""Redirects followed as Scrapy does, but a loop, a cap or a non-http(s) target is an outcome."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urldefrag, urljoin, urlsplit

from scrapy.downloadermiddlewares.redirect import RedirectMiddleware as ScrapyRedirectMiddleware
from scrapy.exceptions import IgnoreRequest
from scrapy.http import Request
from w3lib.url import safe_url_string

from spiders.exceptions import Ignored

if TYPE_CHECKING:
    from scrapy import Spider
    from scrapy.http import Response

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_SCHEMES = frozenset({"http", "https"})


class RedirectMiddleware(ScrapyRedirectMiddleware):
    """Scrapy's RedirectMiddleware with every way of stopping turned into a recorded outcome.

    Scrapy hands a redirect back to the scheduler, whose dupe filter drops a loop without
    a word (scrapy #1225). Here a hop to a URL already in the chain ends as
    ``redirect_loop`` before that; passing REDIRECT_MAX_TIMES ends as ``too_many_redirects``;
    a Location that is not http(s) (``file:``, ``data:``...) ends as ``blocked_scheme``;
    one that is not a URL at all (``http://[x/a``) ends as ``bad_redirect``, as in
    pipeline.net.fetch.
    """

    def process_response(
        self, request: Request, response: Response, spider: Spider | None = None
    ) -> Request | Response:
        """Follow a redirect as Scrapy does, or end the request with a recorded outcome."""
        try:
            result = super().process_response(request, response)
        except IgnoreRequest as exc:  # the only one Scrapy raises here: the cap was reached
            raise Ignored("too_many_redirects", f"more than {self.max_redirect_times}") from exc
        except ValueError as exc:  # urljoin on a malformed Location ("http://[x/a")
            raw = response.headers.get("Location") or b""
            raise Ignored("bad_redirect", f"Location {raw[:200]!r}: {exc}") from exc
        if isinstance(result, Request):
            chain = [urldefrag(url).url for url in result.meta.get("redirect_urls", ())]
            if urldefrag(result.url).url in chain:
                raise Ignored("redirect_loop", f"{request.url} -> {result.url}")
            return result
        location = response.headers.get("Location")
        if response.status in _REDIRECTS and location:
            target = urljoin(request.url, safe_url_string(location))
            scheme = urlsplit(target).scheme.lower()
            if scheme not in _SCHEMES:
                raise Ignored("blocked_scheme", f"redirect to {scheme or '(none)'}: {target[:200]}")
        return result
