"""Kibana saved objects: checked against the mappings, run on the real node, and imported.

The panels are checked mechanically: every field a panel names exists in mappings/*.json with a
type its aggregation accepts, and the request each panel makes (``panel_request``) runs on the
local Elasticsearch node over demo documents built from demo/site/catalog.json.

The importer is tested against a stand-in for Kibana's saved-objects import endpoint, the one
place this suite does not use the real service: Kibana needs a Node.js runtime and a Kibana
distribution that no package registry reachable here serves, so no Kibana can run. The
stand-in implements that endpoint's contract as Kibana documents it (multipart upload of an
``.ndjson`` file, the ``kbn-xsrf`` guard, authentication, ``overwrite``, reference checks,
per-object ``successResults``/``errors``) and records what it received.
"""

from __future__ import annotations

import base64
import email.parser
import email.policy
import hashlib
import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

import pytest
from elasticsearch import Elasticsearch
from elasticsearch.helpers import bulk

from pipeline.ops.kibana import (
    PLACEHOLDER,
    SAVED_OBJECTS_DIR,
    load_saved_objects,
    panel_request,
)
from pipeline.store.client import MAPPINGS_DIR, IndexNames, install

REPO = Path(__file__).resolve().parents[1]
CATALOG = REPO / "demo" / "site" / "catalog.json"

NUMERIC = {"long", "integer", "short", "byte", "double", "float", "half_float", "scaled_float"}
# Field types each aggregation accepts, as Kibana's aggregation editor offers them.
ACCEPTS: dict[str, set[str]] = {
    "terms": {"keyword", "boolean", "date", "ip", *NUMERIC},
    "date_histogram": {"date", "date_nanos"},
    "date_range": {"date", "date_nanos"},
    "histogram": NUMERIC,
    "range": NUMERIC,
    "avg": NUMERIC,
    "sum": NUMERIC,
    "median": NUMERIC,
    "min": NUMERIC | {"date"},
    "max": NUMERIC | {"date"},
    "cardinality": {"keyword", "boolean", "date", "ip", *NUMERIC},
    "value_count": {"keyword", "boolean", "date", "ip", *NUMERIC},
}
SORTABLE = {"keyword", "date", "boolean", *NUMERIC}
VIS_TYPES = {"histogram", "horizontal_bar", "line", "area", "pie", "table", "metric"}
# What a Lucene query names: ``field:value`` and ``_exists_:field``.
_QUERY_FIELD = re.compile(r"(?<![\w.\\])([A-Za-z_][\w.]*):")
_EXISTS = re.compile(r"_exists_:([\w.]+)")


# --- the saved objects and the mappings ------------------------------------------------------


@dataclass(frozen=True)
class Field:
    type: str
    aggregatable: bool
    searchable: bool


def _flatten(properties: dict[str, Any], into: dict[str, Field], path: str = "") -> None:
    for name, spec in properties.items():
        full = f"{path}{name}"
        if "properties" in spec:
            _flatten(spec["properties"], into, f"{full}.")
            continue
        kind = spec.get("type", "object")
        if kind == "object":  # enabled: false or dynamic: nothing Kibana can aggregate
            into[full] = Field("object", False, False)
            continue
        doc_values = spec.get("doc_values", kind not in ("text", "binary"))
        into[full] = Field(kind, bool(doc_values), spec.get("index", True) is not False)
        for sub, sub_spec in spec.get("fields", {}).items():
            sub_kind = sub_spec["type"]
            into[f"{full}.{sub}"] = Field(
                sub_kind, sub_spec.get("doc_values", sub_kind != "text"), True
            )


def mapping_fields(index_title: str) -> dict[str, Field]:
    """The fields of the index a data view title names, from mappings/<name>.json."""
    name = index_title.removeprefix(f"{PLACEHOLDER}-")
    template = json.loads((MAPPINGS_DIR / f"{name}.json").read_text(encoding="utf-8"))
    fields: dict[str, Field] = {}
    _flatten(template["template"]["mappings"]["properties"], fields)
    return fields


@pytest.fixture(scope="module")
def objects() -> list[dict[str, Any]]:
    return load_saved_objects()


def _by_id(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {o["id"]: o for o in objects}


def _data_view(obj: dict[str, Any], objects: list[dict[str, Any]]) -> dict[str, Any]:
    ref = next(
        r for r in obj["references"] if r["name"] == "kibanaSavedObjectMeta.searchSourceJSON.index"
    )
    return _by_id(objects)[ref["id"]]


def _query_fields(query: str) -> set[str]:
    named = set(_QUERY_FIELD.findall(query)) | set(_EXISTS.findall(query))
    return named - {"_exists_"}


def test_every_line_of_every_file_is_a_saved_object() -> None:
    assert SAVED_OBJECTS_DIR == MAPPINGS_DIR / "kibana"
    files = sorted(SAVED_OBJECTS_DIR.glob("*.ndjson"))
    assert {f.name for f in files} >= {
        "data-views.ndjson",
        "news-overview.ndjson",
        "topic-alerts.ndjson",
        "source-health.ndjson",
    }
    for path in files:
        for line in path.read_text(encoding="utf-8").splitlines():
            obj = json.loads(line)
            assert {"id", "type", "attributes", "references"} <= obj.keys(), path
            assert obj["id"].startswith(f"{PLACEHOLDER}-"), obj["id"]
            assert obj["coreMigrationVersion"].startswith("8."), obj["id"]
            if obj["type"] == "visualization":
                json.loads(obj["attributes"]["visState"])
                json.loads(obj["attributes"]["uiStateJSON"])
            if obj["type"] == "dashboard":
                json.loads(obj["attributes"]["panelsJSON"])
                json.loads(obj["attributes"]["optionsJSON"])
            if "kibanaSavedObjectMeta" in obj["attributes"]:
                json.loads(obj["attributes"]["kibanaSavedObjectMeta"]["searchSourceJSON"])


def test_ids_are_unique_and_every_reference_resolves(objects: list[dict[str, Any]]) -> None:
    ids = [(o["type"], o["id"]) for o in objects]
    assert len(ids) == len(set(ids))
    known = set(ids)
    for obj in objects:
        for ref in obj["references"]:
            assert (ref["type"], ref["id"]) in known, f"{obj['id']} -> {ref}"


def test_the_three_dashboards_and_their_panels(objects: list[dict[str, Any]]) -> None:
    dashboards = {o["attributes"]["title"]: o for o in objects if o["type"] == "dashboard"}
    assert set(dashboards) == {"News overview", "Topic alerts", "Source health"}
    for title, dashboard in dashboards.items():
        panels = json.loads(dashboard["attributes"]["panelsJSON"])
        refs = {r["name"]: r for r in dashboard["references"]}
        cells: set[tuple[int, int]] = set()
        for panel in panels:
            ref = refs[f"{panel['panelIndex']}:{panel['panelRefName']}"]
            assert ref["type"] == panel["type"], (title, panel)
            grid = panel["gridData"]
            assert grid["i"] == panel["panelIndex"]
            assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 48, (title, grid)
            mine = {
                (x, y)
                for x in range(grid["x"], grid["x"] + grid["w"])
                for y in range(grid["y"], grid["y"] + grid["h"])
            }
            assert not mine & cells, f"{title}: panel {panel['panelIndex']} overlaps another"
            cells |= mine
        assert len(refs) == len(panels)
    panel_titles = {
        o["attributes"]["title"] for o in objects if o["type"] in ("visualization", "search")
    }
    # What the issue asks each dashboard to show.
    assert {
        "Articles over time by language",
        "Articles over time by source",
        "Top sources",
        "Duplicate ratio",
        "Latest articles",
        "Top stories",
        "Alert matches over time by rule",
        "Latest alert matches",
        "Sources per story",
        "Last successful pull per feed",
        "Crawl failures by reason over time",
        "Stale feeds",
        "Dead letters",
    } <= panel_titles


def test_data_views_name_existing_indices_and_date_time_fields(
    objects: list[dict[str, Any]],
) -> None:
    views = [o for o in objects if o["type"] == "index-pattern"]
    titles = {v["attributes"]["title"] for v in views}
    assert {
        "newsradar-articles",
        "newsradar-stories",
        "newsradar-alert-outbox",
        "newsradar-runs",
    } <= titles
    for view in views:
        attributes = view["attributes"]
        fields = mapping_fields(attributes["title"])
        if "timeFieldName" in attributes:
            assert fields[attributes["timeFieldName"]].type == "date", view["id"]
        for name in json.loads(attributes["fieldFormatMap"]):
            assert name in fields, (view["id"], name)


def test_every_field_a_panel_uses_exists_with_a_type_its_aggregation_accepts(
    objects: list[dict[str, Any]],
) -> None:
    checked = 0
    for obj in (o for o in objects if o["type"] in ("visualization", "search")):
        fields = mapping_fields(_data_view(obj, objects)["attributes"]["title"])
        attributes = obj["attributes"]
        source = json.loads(attributes["kibanaSavedObjectMeta"]["searchSourceJSON"])
        queries = [source["query"]["query"]]
        if obj["type"] == "search":
            for column in attributes["columns"]:
                assert column in fields, (obj["id"], column)
            for sort_field, _ in attributes["sort"]:
                assert fields[sort_field].type in SORTABLE, (obj["id"], sort_field)
                assert fields[sort_field].aggregatable, (obj["id"], sort_field)
        else:
            state = json.loads(attributes["visState"])
            assert state["type"] in VIS_TYPES, obj["id"]
            for agg in state["aggs"]:
                params = agg["params"]
                if agg["type"] == "filters":
                    queries += [f["input"]["query"] for f in params["filters"]]
                if "field" not in params:
                    assert agg["type"] in ("count", "filters"), (obj["id"], agg)
                    continue
                name = params["field"]
                assert name in fields, f"{obj['id']}: {name} is not in the mapping"
                found = fields[name]
                if agg["type"] == "top_hits":
                    assert found.type != "object", (obj["id"], name)
                    assert fields[params["sortField"]].type in SORTABLE, (obj["id"], agg)
                else:
                    accepted = ACCEPTS[agg["type"]]
                    assert found.type in accepted, f"{obj['id']}: {agg['type']} on {found.type}"
                    assert found.aggregatable, f"{obj['id']}: {name} has no doc values"
                checked += 1
        for query in queries:
            for name in _query_fields(query):
                assert name in fields and fields[name].searchable, f"{obj['id']}: {name}"
    assert checked >= 30


def test_a_prefix_rebases_ids_titles_and_references() -> None:
    first = load_saved_objects("acme")
    second = load_saved_objects("beta")
    assert not {o["id"] for o in first} & {o["id"] for o in second}
    for obj in first:
        assert obj["id"].startswith("acme-")
        assert all(r["id"].startswith("acme-") for r in obj["references"])
        if obj["type"] == "index-pattern":
            assert obj["attributes"]["title"].startswith("acme-")
        else:
            assert obj["attributes"]["title"].endswith(" [acme]")
    assert "newsradar-" not in json.dumps(
        [o["id"] for o in first] + [o["references"] for o in first]
    )


# --- the panels on the real node --------------------------------------------------------------


def _sha(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:20]


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def demo_documents(now: datetime) -> dict[str, list[dict[str, Any]]]:
    """Documents for every index, built from the demo site's catalog and shaped by the mappings."""
    catalog = json.loads(CATALOG.read_text(encoding="utf-8"))
    site = "http://127.0.0.1:8765"
    articles: list[dict[str, Any]] = []
    first_of_story: dict[str, dict[str, Any]] = {}
    for entry in sorted(catalog["articles"], key=lambda a: a["published"]):
        published = datetime.fromisoformat(entry["published"])
        url = site + entry["path"]
        doc: dict[str, Any] = {
            "url": url,
            "canonical_url": site + entry["canonical"],
            "source": entry["source"],
            "title": entry["title"],
            "text": entry["title"],
            f"title_{entry['language']}": entry["title"],
            "language": entry["language"],
            "published": _iso(published),
            "fetched": _iso(published + timedelta(minutes=20)),
            "indexed": _iso(published + timedelta(minutes=21)),
            "word_count": len(entry["title"].split()),
            "content_hash": _sha("text", entry["title"]),
            "story_id": _sha("story", entry["story"]),
            "run_id": "demo-run",
        }
        original = first_of_story.setdefault(entry["story"], doc)
        if entry["kind"] in ("exact_copy", "edited_copy") and original is not doc:
            doc["duplicate_of"] = _sha(original["url"])
            doc["duplicate_kind"] = "exact" if entry["kind"] == "exact_copy" else "near"
            doc["similarity"] = 1.0 if entry["kind"] == "exact_copy" else 0.86
        articles.append(doc)

    stories: dict[str, list[dict[str, Any]]] = {}
    for entry, doc in zip(
        sorted(catalog["articles"], key=lambda a: a["published"]), articles, strict=True
    ):
        if entry["topic"] == "nato-enlargement":
            stories.setdefault(doc["story_id"], []).append(doc)
    outbox = [
        {
            "kind": "alert",
            "rule_id": "nato-enlargement",
            "story_id": story_id,
            "status": "sent" if len({d["source"] for d in docs}) > 1 else "pending",
            "first_article": _sha(docs[0]["url"]),
            "articles": [_sha(d["url"]) for d in docs],
            "sources": sorted({d["source"] for d in docs}),
            "source_count": len({d["source"] for d in docs}),
            "min_sources": 1,
            "matched_at": docs[0]["indexed"],
            "ready_at": docs[0]["indexed"],
        }
        for story_id, docs in stories.items()
    ]
    outbox.append(
        {
            "kind": "digest",
            "rule_id": "nato-enlargement",
            "recipient": "analyst@example.org",
            "window_start": _iso(now - timedelta(minutes=15)),
            "window_end": _iso(now),
            "alert_ids": ["a1", "a2"],
            "state": "sent",
            "runs": 1,
            "message_id": "<digest-1@newsradar>",
            "sent_at": _iso(now),
        }
    )

    feeds, runs, frontier = [], [], []
    for n, source in enumerate(catalog["sources"]):
        url = f"{site}{source['feed'] or source['sitemap']}"
        stale = n % 3 == 2
        feeds.append(
            {
                "url": url,
                "source": source["id"],
                "kind": "feed" if source["feed"] else "sitemap",
                "last_status": "200" if not stale else "503",
                "last_attempt": _iso(now - timedelta(minutes=10)),
                "last_success": _iso(now - (timedelta(days=4) if stale else timedelta(minutes=10))),
                "consecutive_failures": 3 if stale else 0,
                "healthy": not stale,
                "health": "error" if stale else "ok",
                "reason": "http_5xx" if stale else None,
                "last_outcome": "failed" if stale else "fetched",
            }
        )
        for run in range(3):
            started = now - timedelta(hours=6 * run)
            runs.append(
                {
                    "run_id": f"run-{run}",
                    "stage": "crawl",
                    "source": source["id"],
                    "started": _iso(started),
                    "finished": _iso(started + timedelta(seconds=40)),
                    "duration_seconds": 40.0,
                    "fetched": 6,
                    "new": 4,
                    "duplicate": 1,
                    "failed": 1 + n % 2,
                    "indexed": 4,
                    "dead_lettered": 0,
                    "failed_by_reason": {"http_4xx": 1},
                }
            )
    outcomes = ["indexed", "duplicate", "http_4xx", "robots", "timeout", "no_text"]
    for n, doc in enumerate(articles):
        frontier.append(
            {
                "url": doc["url"],
                "canonical_url": doc["canonical_url"],
                "source": doc["source"],
                "via": "feed",
                "discovered": doc["fetched"],
                "state": "done",
                "outcome": outcomes[n % len(outcomes)],
                "attempts": 1,
                "updated": doc["fetched"],
            }
        )
    dead_letters = [
        {
            "target": "articles",
            "doc_id": _sha("dead", str(n)),
            "stage": "index",
            "status": 400,
            "error_type": kind,
            "error_reason": f"failed to parse field [published] ({kind})",
            "document": {"url": f"{site}/broken/{n}"},
            "recorded": _iso(now - timedelta(hours=n)),
            "run_id": "run-0",
        }
        for n, kind in enumerate(["document_parsing_exception", "illegal_argument_exception"])
    ]
    return {
        "articles": [{k: v for k, v in d.items() if v is not None} for d in articles],
        "stories": story_documents(articles),
        "alert-outbox": outbox,
        "feeds": [{k: v for k, v in d.items() if v is not None} for d in feeds],
        "runs": runs,
        "frontier": frontier,
        "dead-letters": dead_letters,
        "alert-rules": [
            {
                "rule_id": rule_id,
                "name": rule_id.replace("-", " "),
                "languages": ["en"],
                "fingerprint": _sha("rule", rule_id),
                "stored": _iso(now - timedelta(days=1)),
                **error,
            }
            for rule_id, error in (
                ("nato-enlargement", {}),
                (
                    "too-broad",
                    {
                        "last_error": "Elasticsearch refused its query: too_many_nested_clauses",
                        "last_error_at": _iso(now - timedelta(hours=1)),
                    },
                ),
            )
        ],
    }


def story_documents(articles: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One story document per story of ``articles``, as pipeline.store.story_documents writes."""
    members: dict[str, list[dict[str, Any]]] = {}
    for doc in sorted(articles, key=lambda d: d["fetched"]):
        members.setdefault(doc["story_id"], []).append(doc)
    stories = []
    for story_id, docs in members.items():
        sources = sorted({d["source"] for d in docs})
        languages = sorted({d["language"] for d in docs})
        stories.append(
            {
                "story_id": story_id,
                "title": docs[0]["title"],
                "language": docs[0]["language"],
                "lead": _sha(docs[0]["url"]),
                "first_seen": docs[0]["fetched"],
                "last_seen": docs[-1]["fetched"],
                "sources": sources,
                "source_count": len(sources),
                "languages": languages,
                "language_count": len(languages),
                "articles": [_sha(d["url"]) for d in docs],
                "article_count": len(docs),
                "report_count": sum("duplicate_of" not in d for d in docs),
            }
        )
    return stories


def _has_data(result: dict[str, Any], request: dict[str, Any]) -> list[str]:
    """What is empty in an aggregation result: every bucket level and metric must be filled."""
    empty: list[str] = []
    for agg_id, spec in request.items():
        got = result[agg_id]
        if "value" in got:
            if got["value"] is None:
                empty.append(agg_id)
            continue
        if "hits" in got:
            if not got["hits"]["hits"]:
                empty.append(agg_id)
            continue
        buckets = got["buckets"]
        if isinstance(buckets, dict):  # filters: every named filter must match something
            empty += [f"{agg_id}[{k}]" for k, b in buckets.items() if b["doc_count"] == 0]
            buckets = list(buckets.values())
        filled = [b for b in buckets if b["doc_count"] > 0]
        if not filled:
            empty.append(agg_id)
            continue
        sub = spec.get("aggs", {})
        if sub and all(_has_data(b, sub) for b in filled):
            empty.append(f"{agg_id} > {_has_data(filled[0], sub)}")
    return empty


def test_every_panel_returns_data_on_the_real_node(
    es_client: Elasticsearch, index_prefix: str
) -> None:
    install(es_client, index_prefix)
    names = IndexNames(index_prefix)
    now = datetime.now(UTC)
    actions = [
        {"_index": names.alias(index), "_source": doc}
        for index, documents in demo_documents(now).items()
        for doc in documents
    ]
    assert bulk(es_client, actions, refresh=True)[0] == len(actions)

    objects = load_saved_objects(index_prefix)
    by_id = _by_id(objects)
    panels = [o for o in objects if o["type"] in ("visualization", "search")]
    assert len(panels) >= 15
    span = ("2000-01-01T00:00:00Z", _iso(now + timedelta(days=1)))
    for obj in panels:
        request = panel_request(obj, by_id, time_range=span, auto_interval="1d")
        assert request["index"].startswith(f"{index_prefix}-")
        response = es_client.search(index=request["index"], **request["body"]).body
        title = obj["attributes"]["title"]
        assert response["hits"]["total"]["value"] > 0, f"{title}: no documents match"
        if obj["type"] == "search":
            assert response["hits"]["hits"], title
            continue
        assert not _has_data(response.get("aggregations", {}), request["body"]["aggs"]), title


def test_the_overview_shows_top_stories_from_the_stories_data_view(
    objects: list[dict[str, Any]], es_client: Elasticsearch, index_prefix: str
) -> None:
    by_id = _by_id(objects)
    overview = by_id["newsradar-dashboard-news-overview"]
    panels = {ref["id"]: ref for ref in overview["references"] if ref["type"] in ("search", "lens")}
    assert "newsradar-search-top-stories" in panels
    top = by_id["newsradar-search-top-stories"]
    assert top["attributes"]["title"] == "Top stories"
    view = _data_view(top, objects)
    assert view["id"] == "newsradar-stories"
    assert (view["attributes"]["title"], view["attributes"]["timeFieldName"]) == (
        "newsradar-stories",
        "first_seen",
    )
    columns = top["attributes"]["columns"]
    assert columns[0] == "title"
    assert {"source_count", "language_count", "languages", "report_count", "first_seen"} <= set(
        columns
    )
    assert top["attributes"]["sort"][0] == ["source_count", "desc"]

    # On the node: stories carried by more sources come first; a merged (empty) one, here with
    # the most sources, not at all.
    install(es_client, index_prefix)
    names = IndexNames(index_prefix)
    now = datetime.now(UTC)
    stories = story_documents(demo_documents(now)["articles"])
    merged = dict(stories[0], story_id="merged", article_count=0, source_count=99, sources=[])
    actions = [{"_index": names.stories, "_source": doc} for doc in [*stories, merged]]
    assert bulk(es_client, actions, refresh=True)[0] == len(actions)
    mine = load_saved_objects(index_prefix)
    request = panel_request(
        _by_id(mine)[f"{index_prefix}-search-top-stories"],
        _by_id(mine),
        time_range=("2000-01-01T00:00:00Z", _iso(now + timedelta(days=1))),
    )
    assert request["index"] == names.stories
    hits = es_client.search(index=request["index"], **request["body"])["hits"]["hits"]
    counts = [hit["_source"]["source_count"] for hit in hits]
    assert len(hits) == len(stories) and counts == sorted(counts, reverse=True)
    assert counts[0] == max(s["source_count"] for s in stories) > 1


def test_panel_request_follows_kibanas_request_shape(objects: list[dict[str, Any]]) -> None:
    by_id = _by_id(objects)
    stale = by_id["newsradar-vis-stale-feeds"]
    request = panel_request(stale, by_id, time_range=("now-7d", "now"))
    assert request["index"] == "newsradar-feeds"
    body = request["body"]
    # The feeds data view has no time field: the time picker does not hide stale feeds.
    assert [c for c in body["query"]["bool"]["filter"] if "range" in c] == []
    terms = body["aggs"]["2"]
    assert terms["terms"]["order"] == {"1": "asc"}
    assert terms["aggs"]["1"] == {"max": {"field": "last_success"}}
    by_language = panel_request(
        by_id["newsradar-vis-articles-by-language"], by_id, time_range=("now-7d", "now")
    )["body"]
    assert {"range": {"published": {"gte": "now-7d", "lte": "now"}}} in by_language["query"][
        "bool"
    ]["filter"]
    histogram = by_language["aggs"]["2"]
    assert histogram["date_histogram"]["calendar_interval"] == "1d"
    assert histogram["aggs"]["3"]["terms"] == {
        "field": "language",
        "size": 10,
        "order": {"_count": "desc"},
    }


# --- the importer, against a stand-in for Kibana's import endpoint --------------------------


@dataclass
class Received:
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    filename: str | None = None
    part_type: str | None = None
    objects: list[dict[str, Any]] = field(default_factory=list)


class ImportStandIn(ThreadingHTTPServer):
    """Kibana's ``POST [/s/<space>]/api/saved_objects/_import`` as its API documents it."""

    def __init__(self, *, basic: tuple[str, str] | None = None, api_key: str | None = None):
        super().__init__(("127.0.0.1", 0), _ImportHandler)
        self.basic = basic
        self.api_key = api_key
        self.received: list[Received] = []
        self.stored: dict[str, dict[tuple[str, str], dict[str, Any]]] = {}
        self.refuse: set[str] = set()
        self.fail_status: int | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _ImportHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: ImportStandIn
    _known_types: ClassVar[set[str]] = {
        "index-pattern",
        "visualization",
        "search",
        "dashboard",
        "lens",
        "config",
    }

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _reply(self, status: int, body: dict[str, Any]) -> None:
        raw = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def _error(self, status: int, error: str, message: str) -> None:
        self._reply(status, {"statusCode": status, "error": error, "message": message})

    def do_POST(self) -> None:
        parts = urlsplit(self.path)
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        seen = Received(
            parts.path, parse_qs(parts.query), {k.lower(): v for k, v in self.headers.items()}
        )
        self.server.received.append(seen)
        match = re.fullmatch(r"(?:/s/([a-z0-9_-]+))?/api/saved_objects/_import", parts.path)
        if match is None:
            self._error(404, "Not Found", "Not Found")
            return
        if self.server.fail_status is not None:
            self._error(self.server.fail_status, "Internal Server Error", "An internal error")
            return
        if not self._authenticated(seen.headers.get("authorization")):
            self._error(401, "Unauthorized", "[security_exception]: unable to authenticate user")
            return
        if "kbn-xsrf" not in seen.headers:
            self._error(400, "Bad Request", "Request must contain a kbn-xsrf header.")
            return
        content_type = seen.headers.get("content-type", "")
        if not content_type.startswith("multipart/form-data"):
            self._error(415, "Unsupported Media Type", "Unsupported Media Type")
            return
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            f"Content-Type: {content_type}\r\n\r\n".encode() + body
        )
        files = [
            p
            for p in message.iter_parts()
            if p.get_param("name", header="content-disposition") == "file"
        ]
        if len(files) != 1:
            self._error(400, "Bad Request", "[request body.file]: expected value of type [Stream]")
            return
        part = files[0]
        seen.filename = part.get_filename()
        seen.part_type = part.get_content_type()
        if not (seen.filename or "").endswith(".ndjson"):
            self._error(
                400, "Bad Request", f"Invalid file extension {Path(seen.filename or '').suffix}"
            )
            return
        payload = part.get_payload(decode=True)
        assert isinstance(payload, bytes)
        seen.objects = [json.loads(line) for line in payload.decode().splitlines() if line.strip()]
        self._reply(200, self._import(match.group(1) or "default", seen))

    def _authenticated(self, header: str | None) -> bool:
        if self.server.basic is None and self.server.api_key is None:
            return True
        if header is None:
            return False
        if self.server.api_key is not None and header == f"ApiKey {self.server.api_key}":
            return True
        if self.server.basic is not None:
            pair = base64.b64encode(":".join(self.server.basic).encode()).decode()
            return header == f"Basic {pair}"
        return False

    def _import(self, space: str, seen: Received) -> dict[str, Any]:
        store = self.server.stored.setdefault(space, {})
        overwrite = seen.query.get("overwrite") == ["true"]
        uploaded = {(o["type"], o["id"]) for o in seen.objects}
        successes, errors = [], []
        for obj in seen.objects:
            key = (obj["type"], obj["id"])
            meta = {"title": obj["attributes"].get("title", ""), "icon": "app"}
            missing = [
                {"type": r["type"], "id": r["id"]}
                for r in obj.get("references", [])
                if (r["type"], r["id"]) not in uploaded and (r["type"], r["id"]) not in store
            ]
            if obj["type"] not in self._known_types:
                error: dict[str, Any] = {"type": "unsupported_type"}
            elif missing:
                error = {"type": "missing_references", "references": missing}
            elif obj["id"] in self.server.refuse:
                error = {"type": "unknown", "message": "document is not valid", "statusCode": 400}
            elif key in store and not overwrite:
                error = {"type": "conflict"}
            else:
                store[key] = obj
                successes.append(
                    {"type": key[0], "id": key[1], "meta": meta, "overwrite": overwrite}
                )
                continue
            errors.append(
                {"id": key[1], "type": key[0], "title": meta["title"], "meta": meta, "error": error}
            )
        answer: dict[str, Any] = {
            "success": not errors,
            "successCount": len(successes),
            "successResults": successes,
            "warnings": [],
        }
        if errors:
            answer["errors"] = errors
        return answer


@pytest.fixture
def kibana() -> Iterator[ImportStandIn]:
    server = ImportStandIn(basic=("elastic", "s3cret pass"))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("NEWSRADAR_")}
    return subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "kibana", "import", *args],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


AUTH = {"NEWSRADAR_KIBANA_USER": "elastic", "NEWSRADAR_KIBANA_PASSWORD": "s3cret pass"}


def test_import_uploads_every_object_for_the_prefix(kibana: ImportStandIn) -> None:
    env = {**AUTH, "NEWSRADAR_INDEX_PREFIX": "acme"}
    done = _cli("--url", kibana.url, "--json", env=env)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    expected = load_saved_objects("acme")
    assert report["ok"] is True
    assert report["imported"] == len(expected) and report["failed"] == 0
    assert {(o["type"], o["id"]) for o in report["objects"]} == {
        (o["type"], o["id"]) for o in expected
    }

    [seen] = kibana.received
    assert seen.path == "/api/saved_objects/_import"
    assert seen.query == {"overwrite": ["true"]}
    assert seen.headers["kbn-xsrf"] == "true"
    assert seen.headers["authorization"].startswith("Basic ")
    assert seen.headers["content-type"].startswith("multipart/form-data; boundary=")
    assert seen.filename is not None and seen.filename.endswith(".ndjson")
    assert seen.part_type == "application/ndjson"
    assert seen.objects == expected
    views = {o["attributes"]["title"] for o in seen.objects if o["type"] == "index-pattern"}
    assert "acme-articles" in views and "acme-alert-outbox" in views
    assert "newsradar-" not in json.dumps(seen.objects)


def test_importing_again_overwrites_and_succeeds(kibana: ImportStandIn) -> None:
    for _ in range(2):
        done = _cli("--url", kibana.url, env=AUTH)
        assert done.returncode == 0, done.stderr
    assert len(kibana.received) == 2
    assert len(kibana.stored["default"]) == len(load_saved_objects())
    lines = done.stdout.strip().splitlines()
    assert all(line.startswith("ok") for line in lines[:-1])
    assert lines[-1] == f"imported {len(lines) - 1} of {len(lines) - 1} saved objects"


def test_a_space_and_an_api_key(kibana: ImportStandIn) -> None:
    kibana.basic, kibana.api_key = None, "a2V5OnNlY3JldA=="
    done = _cli(
        "--url",
        kibana.url + "/",
        "--space",
        "analysts",
        env={**AUTH, "NEWSRADAR_KIBANA_API_KEY": kibana.api_key},
    )
    assert done.returncode == 0, done.stderr
    assert kibana.received[0].path == "/s/analysts/api/saved_objects/_import"
    assert kibana.received[0].headers["authorization"] == f"ApiKey {kibana.api_key}"
    assert set(kibana.stored) == {"analysts"}


def test_a_refused_object_is_reported_and_fails_the_command(kibana: ImportStandIn) -> None:
    kibana.refuse = {"newsradar-vis-top-sources"}
    done = _cli("--url", kibana.url, "--json", env=AUTH)
    assert done.returncode != 0
    report = json.loads(done.stdout)
    assert report["ok"] is False and report["failed"] == 1
    [bad] = [o for o in report["objects"] if not o["ok"]]
    assert bad["id"] == "newsradar-vis-top-sources"
    assert bad["error"] == "unknown: document is not valid"
    [line] = done.stderr.strip().splitlines()
    assert "refused 1 of" in line and "newsradar-vis-top-sources" in line


def test_missing_references_are_named(kibana: ImportStandIn, tmp_path: Path) -> None:
    # A dashboard uploaded without its panels: Kibana names each missing reference.
    objects = [o for o in load_saved_objects() if o["type"] == "dashboard"]
    from pipeline.ops.kibana import KibanaAuth, import_saved_objects

    report = import_saved_objects(kibana.url, objects, auth=KibanaAuth("elastic", "s3cret pass"))
    assert not report.ok and report.imported == 0
    assert all(r.error and r.error.startswith("missing references: ") for r in report.failed)
    assert "visualization newsradar-vis-top-sources" in " ".join(
        r.error or "" for r in report.failed
    )


@pytest.mark.parametrize(
    ("env", "status", "expected"),
    [
        ({"NEWSRADAR_KIBANA_USER": "elastic", "NEWSRADAR_KIBANA_PASSWORD": "wrong"}, None, "401"),
        (AUTH, 503, "503"),
    ],
)
def test_a_non_2xx_answer_exits_nonzero_with_one_line(
    kibana: ImportStandIn, env: dict[str, str], status: int | None, expected: str
) -> None:
    kibana.fail_status = status
    done = _cli("--url", kibana.url, env=env)
    assert done.returncode != 0
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("newsradar kibana: Kibana at ") and f"answered {expected}" in line
    assert done.stdout == ""


def test_unreachable_kibana_and_bad_settings_fail_with_one_line() -> None:
    done = _cli("--url", "http://127.0.0.1:9", env=AUTH)
    assert done.returncode != 0
    [line] = done.stderr.strip().splitlines()
    assert "unreachable" in line
    done = _cli("--url", "http://127.0.0.1:9", env={"NEWSRADAR_KIBANA_USER": "elastic"})
    assert done.returncode != 0
    [line] = done.stderr.strip().splitlines()
    assert "NEWSRADAR_KIBANA_PASSWORD" in line
