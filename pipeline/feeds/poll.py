"""One poll of one feed: conditional GET, parse only what changed, new entries, next state."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from pipeline.feeds.parse import (
    FeedEntry,
    FeedState,
    ParsedFeed,
    PollBounds,
    PollOutcome,
    is_unchanged,
    next_poll,
    parse_feed,
)
from pipeline.net.fetch import FetchFailed, FetchPolicy, FetchUnavailable, fetch

__all__ = ["FeedPoll", "poll_feed"]


@dataclass(frozen=True)
class FeedPoll:
    """The result of polling one feed; ``state`` is what to store for the next poll."""

    url: str
    state: FeedState
    feed: ParsedFeed | None  # None when unchanged (304 or same body) or when the fetch failed
    error: FetchFailed | FetchUnavailable | None
    new_entries: tuple[FeedEntry, ...]


def _always_new(entry: FeedEntry) -> bool:
    return True


def poll_feed(
    url: str,
    state: FeedState,
    *,
    policy: FetchPolicy,
    now: datetime,
    is_new: Callable[[FeedEntry], bool] = _always_new,
    bounds: PollBounds | None = None,
) -> FeedPoll:
    """Poll ``url`` with the validators in ``state``; ``is_new`` asks the frontier about entries.

    A failed fetch is returned in ``error`` (with the backed-off state), never raised, so one
    broken feed cannot stop a pull of many.
    """
    try:
        result = fetch(url, policy=policy, etag=state.etag, last_modified=state.last_modified)
    except (FetchFailed, FetchUnavailable) as exc:
        return FeedPoll(
            url, next_poll(state, PollOutcome.from_error(exc), now, bounds), None, exc, ()
        )
    if is_unchanged(state, result):
        # A 304, or a server without validators sending the same bytes: nothing to parse.
        outcome = PollOutcome.from_result(result)
        return FeedPoll(url, next_poll(state, outcome, now, bounds), None, None, ())
    feed = parse_feed(result.body, feed_url=result.url, content_type=result.content_type, now=now)
    new = tuple(entry for entry in feed.entries if is_new(entry))
    outcome = PollOutcome.from_result(result, feed, new_items=len(new))
    return FeedPoll(url, next_poll(state, outcome, now, bounds), feed, None, new)
