"""Index names: the indices newsradar keeps and their aliases under one prefix.

Imports nothing from pipeline but the language table: pipeline.settings hands one IndexNames to
every stage (``Settings.names``), so this module sits below the settings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from pipeline.languages import LANGUAGE_CODES

__all__ = ["INDICES", "LANGUAGE_FIELDS", "IndexNames"]

# Every index newsradar keeps; each has mappings/<name>.json and lives behind the alias
# <prefix>-<name>, whose write index is <prefix>-<name>-000001 until a rollover.
INDICES: Final = (
    "articles",
    "stories",
    "frontier",
    "feeds",
    "runs",
    "dead-letters",
    "alert-rules",
    "alert-outbox",
    "pages",
)

# Languages with their own analysed title_xx / text_xx fields in the articles mapping; rules
# may have queries in these (checked with the settings). pipeline/languages.py is the table.
LANGUAGE_FIELDS: Final = LANGUAGE_CODES


@dataclass(frozen=True, slots=True)
class IndexNames:
    """Aliases and template names under one index prefix."""

    prefix: str

    def alias(self, name: str) -> str:
        """The alias that reads (and writes) index ``name``, e.g. ``newsradar-articles``."""
        if name not in INDICES:
            raise KeyError(name)
        return f"{self.prefix}-{name}"

    def first_index(self, name: str) -> str:
        """The concrete index created behind the alias on first install."""
        return f"{self.alias(name)}-000001"

    def template(self, name: str) -> str:
        """The index template name for index ``name`` (the same as its alias)."""
        return self.alias(name)

    @property
    def articles(self) -> str:
        """The articles alias."""
        return self.alias("articles")

    @property
    def stories(self) -> str:
        """The stories alias."""
        return self.alias("stories")

    @property
    def frontier(self) -> str:
        """The frontier alias."""
        return self.alias("frontier")

    @property
    def feeds(self) -> str:
        """The feed states alias."""
        return self.alias("feeds")

    @property
    def runs(self) -> str:
        """The run statistics alias."""
        return self.alias("runs")

    @property
    def dead_letters(self) -> str:
        """The dead-letter alias."""
        return self.alias("dead-letters")

    @property
    def alert_rules(self) -> str:
        """The alert rules alias."""
        return self.alias("alert-rules")

    @property
    def alert_outbox(self) -> str:
        """The alert outbox alias."""
        return self.alias("alert-outbox")

    @property
    def pages(self) -> str:
        """The pages alias."""
        return self.alias("pages")

    @property
    def pattern(self) -> str:
        """Every index of this install, for clean-up and status."""
        return f"{self.prefix}-*"
