"""IgnoreRequest with the outcome to record: why a request will not be fetched (further)."""

from __future__ import annotations

from scrapy.exceptions import IgnoreRequest


class Ignored(IgnoreRequest):
    """A request stopped on purpose; ``reason`` is the URL's outcome (``robots``, ``dns``...)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(reason, detail)
        self.reason = reason
        self.detail = detail

    def __str__(self) -> str:
        return f"{self.reason} ({self.detail})" if self.detail else self.reason
