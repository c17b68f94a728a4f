"""Breaking stories: when a story has reached N distinct sources within a window of time.

A source counts from the moment newsradar fetched its first article of the story. The story
breaks at the first arrival that makes N sources within ``within`` of each other (any window,
not only the story's first hours: a story that simmers and then takes off breaks too). The
verdict is a function of the stored articles alone, never of the clock, so every worker, retry
and re-run reaches the same one; the outbox's create-once ids make it one alert.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

__all__ = ["broke_at"]


def broke_at(
    arrivals: Mapping[str, datetime | None], sources: int, within: timedelta
) -> tuple[datetime, datetime] | None:
    """The first ``sources`` arrivals within ``within`` of each other: (first, last), or None.

    ``arrivals`` maps each source to when it first carried the story (None: unknown, not
    counted). The story broke at ``last``, the arrival of the ``sources``-th source.
    """
    times = sorted(moment for moment in arrivals.values() if moment is not None)
    for first in range(len(times) - sources + 1):
        last = times[first + sources - 1]
        if last - times[first] <= within:
            return times[first], last
    return None
