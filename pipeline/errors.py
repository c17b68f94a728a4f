"""The project's errors: permanent ones are recorded and skipped, transient ones retried."""

from __future__ import annotations


class NewsradarError(Exception):
    """Root of every error newsradar raises on purpose."""


class PermanentError(NewsradarError):
    """Retrying will not help: record the reason and move on."""


class TransientError(NewsradarError):
    """A retry later may succeed: re-raise so the scheduler retries."""


class ConfigError(PermanentError):
    """A configuration file or variable is wrong; carries the file, the entry and the problem."""

    def __init__(self, source: str, entry: str, problem: str) -> None:
        super().__init__(source, entry, problem)
        self.source = source
        self.entry = entry
        self.problem = problem

    def __str__(self) -> str:
        where = f"{self.source}: {self.entry}" if self.entry else self.source
        return f"{where}: {self.problem}"


class UrlFailure(PermanentError):
    """A URL that cannot be used; ``reason`` is the outcome recorded for it."""

    def __init__(self, url: str, reason: str, detail: str = "") -> None:
        super().__init__(url, reason, detail)
        self.url = url
        self.reason = reason
        self.detail = detail

    def __str__(self) -> str:
        tail = f" ({self.detail})" if self.detail else ""
        return f"{self.url}: {self.reason}{tail}"


class ExtractionError(UrlFailure):
    """A page yielded no usable article: ``not_html``, ``no_text``, ``extract_failed``."""
