"""The writes of verdicts: proposals that only ever improve, and copies kept in their match's story.

The story fields of an article document are a "best so far" register, written with
``if_seq_no``/``if_primary_term``; on a conflict the document is re-read and written only if the
proposal still ranks higher. See ``pipeline.store.stories`` for why this converges.

A move outlives its worker. The write that moves an article to another story also records the
story it left (``story_moved_from``); the flag is cleared, at the version that set it, only once
the article's copies and reports have followed. A worker killed between the two, or a batch
failed by a lost node, leaves the flag, and the next batch of any worker finishes the move.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any, Final

from pipeline.store.story_state import (
    MAX_ATTEMPTS,
    STATE_FIELDS,
    Batch,
    Verdict,
    better,
    chunks,
    stored_of,
)

__all__ = ["propose", "settle"]

log = logging.getLogger(__name__)

# Copies looked up per moved article when a story changes; more would need paging.
_MAX_CHILDREN: Final = 10_000
# Unfinished moves one batch takes over; the next batch takes the rest.
_MAX_UNFINISHED: Final = 1000


def propose(batch: Batch, proposals: Mapping[str, Verdict]) -> None:
    """Write each proposal that outranks the stored verdict, re-reading on conflicts."""
    pending = {i: p for i, p in proposals.items() if better(p, batch.known[i].verdict)}
    _write_verdicts(batch, pending, lambda i, p: better(p, batch.known[i].verdict))


def _write_verdicts(
    batch: Batch, pending: dict[str, Verdict], still_wanted: Callable[[str, Verdict], bool]
) -> None:
    for _ in range(MAX_ATTEMPTS):
        if not pending:
            return
        operations: list[Mapping[str, Any]] = []
        left: dict[str, tuple[str, ...]] = {}
        for ident, verdict in pending.items():
            stored = batch.known[ident]
            doc = verdict.fields()
            if stored.verdict is not None and stored.verdict.story_id != verdict.story_id:
                # Kept with the move itself: whoever finishes it needs to know it is owed.
                left[ident] = tuple(sorted({*stored.moved_from, stored.verdict.story_id}))
                doc["story_moved_from"] = list(left[ident])
            operations += [
                {
                    "update": {
                        "_index": stored.index,
                        "_id": ident,
                        "if_seq_no": stored.seq_no,
                        "if_primary_term": stored.primary_term,
                    }
                },
                {"doc": doc},
            ]
        response = batch.es.bulk(operations=operations)
        conflicts: list[str] = []
        for (ident, verdict), item in zip(pending.items(), response["items"], strict=True):
            result = item["update"]
            if result["status"] == 409:
                conflicts.append(ident)
                batch.counts["conflicts"] += 1
                continue
            if result["status"] >= 300:
                raise batch.refused(result["_index"], ident, result)
            old = batch.known[ident]
            new = batch.known[ident] = replace(
                old,
                seq_no=int(result["_seq_no"]),
                primary_term=int(result["_primary_term"]),
                verdict=verdict,
                moved_from=left.get(ident, old.moved_from),
            )
            if ident in left or ident in batch.flagged:
                batch.flagged[ident] = (new.seq_no, new.primary_term)
            _changed(batch, ident, old.verdict, verdict)
        batch.reread(conflicts)
        pending = {i: pending[i] for i in conflicts if still_wanted(i, pending[i])}
    log.warning("gave up on %d story writes after %d conflicts", len(pending), MAX_ATTEMPTS)


def _changed(batch: Batch, ident: str, old: Verdict | None, new: Verdict) -> None:
    batch.stories.add(new.story_id)
    if old is not None:
        batch.stories.add(old.story_id)
        if old.story_id != new.story_id:
            batch.moved.add(ident)
            batch.counts["moved"] += 1


def settle(batch: Batch, check: set[str]) -> None:
    """Make every copy's (and same-event report's) story its match's, following moves.

    Moves other workers left unfinished are taken over first; the flags of the moves finished
    here are cleared at the end.
    """
    _take_over_unfinished(batch)
    if _follow(batch, check):
        _clear_flags(batch)


def _follow(batch: Batch, check: set[str]) -> bool:
    """Settle ``check`` and the copies of ``batch.moved``; False if it gave up."""
    for _ in range(MAX_ATTEMPTS * 2):
        if batch.moved:
            # The copies of a moved article: found after the move, so none is missed
            # by both this query and its own writer's re-check.
            batch.refresh()
            check |= _copies_of(batch, sorted(batch.moved))
            batch.moved = set()
        if not check:
            return True
        # One realtime read of the copies and their matches as known; a second only for
        # matches that changed meanwhile.
        parents = _matches_of(batch, check)
        batch.reread(check | parents)
        batch.reread(_matches_of(batch, check) - parents)
        fixes: dict[str, Verdict] = {}
        for ident in check:
            verdict = batch.known[ident].verdict
            if verdict is None or verdict.match is None:
                continue
            parent = batch.known.get(verdict.match)
            if parent is None or parent.verdict is None:
                continue
            if parent.verdict.story_id != verdict.story_id:
                fixes[ident] = replace(verdict, story_id=parent.verdict.story_id)
        if not fixes and not batch.moved:
            return True
        # A fix whose document changed meanwhile is dropped here and checked again below.
        batch.counts["story fixes"] += len(fixes)
        _write_verdicts(batch, fixes, lambda i, p: False)
        check = set(fixes)
    log.warning("stories did not settle for %d articles", len(check))
    return False


def _take_over_unfinished(batch: Batch) -> None:
    """Moves whose copies may not have followed yet (flagged, found by search), as if made here.

    Most are another live worker's, in hand right now: finishing them twice is harmless.
    """
    response = batch.es.search(
        index=batch.names.articles,
        allow_partial_search_results=False,
        query={"exists": {"field": "story_moved_from"}},
        size=_MAX_UNFINISHED,
        seq_no_primary_term=True,
        source_includes=STATE_FIELDS,
    )
    for hit in response["hits"]["hits"]:
        stored = batch.learn(stored_of(hit))
        if not stored.moved_from or stored.verdict is None:
            continue
        batch.counts["unfinished moves"] += 1
        batch.moved.add(stored.id)
        batch.flagged.setdefault(stored.id, (stored.seq_no, stored.primary_term))
        # The stories it left may still list it: their documents are rebuilt with this batch's.
        batch.stories.update((*stored.moved_from, stored.verdict.story_id))


def _clear_flags(batch: Batch) -> None:
    """Clear the moved-from flags this batch answered for, unless the article changed since."""
    if not batch.flagged:
        return
    operations: list[Mapping[str, Any]] = []
    flagged = sorted(batch.flagged.items())
    for ident, (seq_no, primary_term) in flagged:
        operations += [
            {
                "update": {
                    "_index": batch.known[ident].index,
                    "_id": ident,
                    "if_seq_no": seq_no,
                    "if_primary_term": primary_term,
                }
            },
            {"doc": {"story_moved_from": None}},
        ]
    response = batch.es.bulk(operations=operations)
    for (ident, _), item in zip(flagged, response["items"], strict=True):
        result = item["update"]
        # A conflict: written since, perhaps moved again; whoever wrote it, or a later batch,
        # clears it.
        if result["status"] == 409:
            continue
        if result["status"] >= 300:
            raise batch.refused(result["_index"], ident, result)
        batch.known[ident] = replace(
            batch.known[ident],
            seq_no=int(result["_seq_no"]),
            primary_term=int(result["_primary_term"]),
            moved_from=(),
        )
    batch.flagged = {}


def _matches_of(batch: Batch, ids: Iterable[str]) -> set[str]:
    return {
        v.match for i in ids if (v := batch.known[i].verdict) is not None and v.match is not None
    }


def _copies_of(batch: Batch, parents: Sequence[str]) -> set[str]:
    found: set[str] = set()
    for part in chunks(parents, 1000):
        response = batch.es.search(
            index=batch.names.articles,
            allow_partial_search_results=False,
            query={
                "bool": {
                    "should": [
                        {"terms": {"duplicate_of": list(part)}},
                        {"terms": {"related_to": list(part)}},
                    ]
                }
            },
            size=_MAX_CHILDREN,
            seq_no_primary_term=True,
            source_includes=STATE_FIELDS,
        )
        for hit in response["hits"]["hits"]:
            found.add(batch.learn(stored_of(hit)).id)
    return found
