"""Scrapy's and Twisted's download failures translated to the outcome names of pipeline.net.fetch.

Those names (``timeout``, ``dns``, ``connect``, ``protocol``, ``oversize``, ``tls``,
``blocked_scheme``, ``blocked_address``, ``bad_redirect``, ``http_4xx``, ``http_5xx``,
``http_429``) and the reason of any ``Ignored``; beyond them only ``ignored`` (an
IgnoreRequest that named no reason), ``http_other`` (a status no other name covers) and
``error`` (nothing translated the exception).
"""

from __future__ import annotations

from collections.abc import Iterator

from OpenSSL import SSL
from scrapy.exceptions import (
    CannotResolveHostError,
    DownloadCancelledError,
    DownloadConnectionRefusedError,
    DownloadFailedError,
    DownloadTimeoutError,
    IgnoreRequest,
    NotSupported,
    ResponseDataLossError,
    UnsupportedURLSchemeError,
)
from twisted.internet.error import (
    ConnectError,
    ConnectionDone,
    ConnectionLost,
    DNSLookupError,
    TCPTimedOutError,
)
from twisted.internet.error import TimeoutError as TwistedTimeoutError
from twisted.python.failure import Failure
from twisted.web.client import ResponseFailed

from spiders.exceptions import Ignored
from spiders.resolver import BlockedAddress

# Looked for anywhere in the chain of causes: they explain a failure, whatever wraps them.
_ROOT_CAUSES: tuple[tuple[type[BaseException], str], ...] = (
    (BlockedAddress, "blocked_address"),
    (SSL.Error, "tls"),
)
# Otherwise the outermost exception that matches decides. Within it, the first match wins,
# so the more specific classes come first (TCPTimedOutError is a ConnectError).
_REASONS: tuple[tuple[tuple[type[BaseException], ...], str], ...] = (
    ((DownloadTimeoutError, TwistedTimeoutError, TCPTimedOutError), "timeout"),
    ((CannotResolveHostError, DNSLookupError), "dns"),
    ((DownloadConnectionRefusedError, ConnectError, ConnectionLost, ConnectionDone), "connect"),
    # http11 cancels a download only when the body passes DOWNLOAD_MAXSIZE (a timeout
    # is raised as DownloadTimeoutError instead).
    ((DownloadCancelledError,), "oversize"),
    ((ResponseDataLossError, DownloadFailedError, ResponseFailed), "protocol"),
    ((NotSupported, UnsupportedURLSchemeError), "blocked_scheme"),
)


def failure_reason(exc: BaseException) -> tuple[str, str]:
    """The outcome (and a detail) for an exception that ended a request.

    ``error`` means nobody translated it: a gap to close here, not a fact about the URL.
    """
    if isinstance(exc, Ignored):
        return exc.reason, exc.detail
    causes = list(_causes(exc))
    for root, reason in _ROOT_CAUSES:
        for cause in causes:
            if isinstance(cause, root):
                return reason, _detail(cause)
    for cause in causes:
        for classes, reason in _REASONS:
            if isinstance(cause, classes):
                return reason, _detail(cause)
    if isinstance(exc, IgnoreRequest):
        return "ignored", _detail(exc)
    return "error", _detail(exc)


def _causes(exc: BaseException, depth: int = 0) -> Iterator[BaseException]:
    """The exception, what caused it, and the reasons a Twisted ResponseFailed carries."""
    if depth > 8:
        return
    yield exc
    reasons = getattr(exc, "reasons", None)
    if isinstance(reasons, list):
        for reason in reasons:
            if isinstance(reason, Failure) and isinstance(reason.value, BaseException):
                yield from _causes(reason.value, depth + 1)
    nested = exc.__cause__ or exc.__context__
    if nested is not None:
        yield from _causes(nested, depth + 1)


def _detail(exc: BaseException) -> str:
    text = str(exc).strip()
    name = type(exc).__name__
    return f"{name}: {text}"[:500] if text else name
