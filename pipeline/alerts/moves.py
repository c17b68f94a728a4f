"""Alerts whose matched reports the story stage has moved to another story since.

An alert stands for the reports its rule matched (``matched`` on the alert; an alert written
before that field stands for its ``first_article``). Stories change as reports arrive: a late
report published earlier leads its story, so the story's id changes; a report first joined to
a story on weak evidence moves to its own once its original arrives. The alert follows the
reports it matched:

- it keeps its story while that story still holds one of them; else it goes to the story now
  holding the earliest of them (a story renamed by a late earlier report keeps its alert, and
  no second alert or mail follows);
- its ``first_article`` is always one of them inside that story, since the digest shows an
  alert as the story its first article is in;
- every other story now holding one of them gets an alert of its own, as if the report had
  been matched there, so which stories are alerted does not depend on arrival order.

A report only moves into a story that a newly indexed article joined, so looking at the
batch's stories finds every move when it happens.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from elasticsearch import Elasticsearch

from pipeline.alerts.batch import BatchArticle, read_batch
from pipeline.alerts.reads import Hit, scan
from pipeline.store.client import IndexNames, call

__all__ = ["Moved", "matched_of", "moved_alerts"]

# Articles of the batch's stories read to find the alerts that matched one of them.
_MAX_MEMBERS: Final = 10_000
_TERMS: Final = 1000


@dataclass(frozen=True, slots=True)
class Moved:
    """An alert some of whose matched reports are in another story now.

    ``keeps``: the story it stands for from now on; ``first``: its first article there (the
    one it has while that is still there, else the earliest); ``others``: each other story
    holding some of its matched reports, with them.
    """

    alert: Hit
    rule_id: str
    keeps: str
    first: BatchArticle
    others: dict[str, list[BatchArticle]]

    def reports(self) -> list[BatchArticle]:
        """The matched reports its stories now count as matched: its first and the moved ones."""
        return [self.first, *(article for found in self.others.values() for article in found)]


def matched_of(alert: Mapping[str, object]) -> list[str]:
    """The reports an alert's rule matched (its first article, for an alert without the list)."""
    matched = alert.get("matched")
    if isinstance(matched, list) and matched:
        return [str(a) for a in matched]
    return [str(alert["first_article"])] if alert.get("first_article") else []


def moved_alerts(
    es: Elasticsearch, names: IndexNames, rules: Collection[str], stories: Sequence[str]
) -> list[Moved]:
    """The ``rules``' alerts with a matched report now in one of ``stories`` but not in theirs.

    Three reads: the stories' articles, the alerts that matched any of them, and where each
    of those alerts' matched reports is now. The caller refreshes the outbox first.
    """
    members = _members(es, names, stories)
    if not members or not rules:
        return []
    alerts: dict[str, Hit] = {}
    for start in range(0, len(members), _TERMS):
        chunk = members[start : start + _TERMS]
        query = {
            "bool": {
                "filter": [{"term": {"kind": "alert"}}, {"terms": {"rule_id": sorted(rules)}}],
                "should": [{"terms": {"matched": chunk}}, {"terms": {"first_article": chunk}}],
                "minimum_should_match": 1,
            }
        }
        for hit in scan(es, names.alert_outbox, query, limit=100_000):
            alerts.setdefault(hit.id, hit)
    wanted = sorted({a for hit in alerts.values() for a in matched_of(hit.source)})
    where = read_batch(es, names, wanted)
    moved = []
    # Oldest first: of two alerts a story could keep, the earlier one does.
    for hit in sorted(alerts.values(), key=lambda h: (str(h.source.get("matched_at")), h.id)):
        groups: dict[str, list[BatchArticle]] = defaultdict(list)
        for article in sorted(
            (where[a] for a in matched_of(hit.source) if a in where),
            key=lambda a: (a.order, a.id),
        ):
            groups[article.story].append(article)
        if not groups:
            continue
        own = str(hit.source["story_id"])
        earliest = min(groups.values(), key=lambda found: (found[0].order, found[0].id))
        keeps = own if own in groups else earliest[0].story
        # Its first article stays while it is in the story kept: the alert was mailed with it.
        lead = where.get(str(hit.source.get("first_article")))
        first = lead if lead is not None and lead.story == keeps else groups[keeps][0]
        if keeps == own and len(groups) == 1 and first is lead:
            continue
        others = {story: found for story, found in groups.items() if story != keeps}
        moved.append(Moved(hit, str(hit.source["rule_id"]), keeps, first, others))
    return moved


def _members(es: Elasticsearch, names: IndexNames, stories: Sequence[str]) -> list[str]:
    """The ids of the articles now in ``stories`` (searches see refreshed documents)."""
    found: set[str] = set()
    wanted = sorted(set(stories))
    for start in range(0, len(wanted), _TERMS):
        response = call(
            es,
            es.search,
            index=names.articles,
            query={"terms": {"story_id": wanted[start : start + _TERMS]}},
            size=_MAX_MEMBERS,
            source=False,
            track_total_hits=False,
        )
        found.update(h["_id"] for h in response["hits"]["hits"])
    return sorted(found)
