"""Bulk indexing against the local node: every item accounted for, under faults."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import pickle
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from unittest import mock

import pytest
from conftest import REPO
from elasticsearch import Elasticsearch
from elasticsearch.helpers import scan
from httpfaults import closed_port

from pipeline.store.bulk import (
    BulkAction,
    BulkRejected,
    BulkReport,
    IndexingInterrupted,
    RunStats,
    record_run,
    write,
)
from pipeline.store.client import IndexNames, SearchUnavailable, install, rollover

# --- helpers --------------------------------------------------------------------------------


def article(n: int, **extra: Any) -> dict[str, Any]:
    """A small valid article document."""
    url = f"https://news.example/{n}"
    return {
        "url": url,
        "canonical_url": url,
        "source": "example",
        "title": f"Article {n}",
        "text": f"Body of article number {n}. " * 5,
        "language": "en",
        "published": "2024-05-01T12:00:00Z",
        **extra,
    }


def doc_id(n: int) -> str:
    return hashlib.sha256(f"https://news.example/{n}".encode()).hexdigest()[:40]


def creates(names: IndexNames, numbers: range) -> list[BulkAction]:
    return [BulkAction(names.articles, doc_id(n), article(n), op="create") for n in numbers]


def all_ids(es: Elasticsearch, index: str) -> list[str]:
    return [hit["_id"] for hit in scan(es, index=index, query={"query": {"match_all": {}}})]


def dead_letters(es: Elasticsearch, names: IndexNames) -> dict[str, dict[str, Any]]:
    es.indices.refresh(index=names.dead_letters)
    hits = es.search(index=names.dead_letters, size=100)["hits"]["hits"]
    return {hit["_source"]["doc_id"]: hit["_source"] for hit in hits}


@pytest.fixture
def names(es_client: Elasticsearch, index_prefix: str) -> IndexNames:
    install(es_client, index_prefix)
    return IndexNames(index_prefix)


# --- outcomes ---------------------------------------------------------------------------------


def test_mapping_errors_are_dead_lettered_and_the_rest_of_the_bulk_indexed(
    es_client: Elasticsearch, names: IndexNames
) -> None:
    actions = creates(names, range(5))
    actions[1] = BulkAction(names.articles, "unknown-field", article(1, sentiment=0.3), op="create")
    actions[3] = BulkAction(
        names.articles, "bad-date", article(3, published="last Tuesday"), op="create"
    )

    report = write(es_client, actions, names=names, stage="index", run_id="run-1", refresh=True)

    assert (report.created, report.dead_lettered, report.total) == (3, 2, 5)
    assert report.outcomes["unknown-field"] == report.outcomes["bad-date"] == "dead_lettered"
    assert "strict_dynamic_mapping_exception" in report.errors["unknown-field"]
    assert sorted(all_ids(es_client, names.articles)) == sorted(doc_id(n) for n in (0, 2, 4))
    letters = dead_letters(es_client, names)
    assert set(letters) == {"unknown-field", "bad-date"}
    unknown, bad_date = letters["unknown-field"], letters["bad-date"]
    assert unknown["error_type"] == "strict_dynamic_mapping_exception"
    assert "sentiment" in unknown["error_reason"]
    assert bad_date["error_type"] == "document_parsing_exception"
    assert "published" in bad_date["error_reason"]
    for letter in letters.values():
        assert letter["status"] == 400
        assert letter["stage"] == "index"
        assert letter["run_id"] == "run-1"
        assert letter["target"] == names.articles
        assert datetime.fromisoformat(letter["recorded"]) > datetime.now(UTC) - timedelta(hours=1)
    # The document is kept whole, so it can be fixed and replayed.
    assert bad_date["document"] == article(3, published="last Tuesday")


def test_the_same_article_created_twice_is_one_document(
    es_client: Elasticsearch, names: IndexNames
) -> None:
    first = write(es_client, creates(names, range(3)), names=names, stage="index", refresh=True)
    second = write(es_client, creates(names, range(3)), names=names, stage="index", refresh=True)
    assert first.created == 3
    assert (second.created, second.already_stored) == (0, 3)
    assert set(second.outcomes.values()) == {"already_stored"}
    assert es_client.count(index=names.articles)["count"] == 3
    assert es_client.count(index=names.dead_letters)["count"] == 0


def test_a_repeated_id_within_one_call_counts_every_item(
    es_client: Elasticsearch, names: IndexNames
) -> None:
    actions = [*creates(names, range(2)), *creates(names, range(1))]
    report = write(es_client, actions, names=names, stage="index", refresh=True)
    assert (report.created, report.already_stored, report.total) == (2, 1, 3)
    assert report.outcomes == {doc_id(0): "created", doc_id(1): "created"}


def test_conditional_updates_report_conflicts(es_client: Elasticsearch, names: IndexNames) -> None:
    (action,) = creates(names, range(1))
    created = write(es_client, [action], names=names, stage="index")
    seq_no, term = created.versions[action.id]
    change = {"story_id": "story-1"}
    fresh = BulkAction(names.articles, action.id, change, "update", seq_no, term)
    stale = BulkAction(names.articles, action.id, {"story_id": "story-2"}, "update", seq_no, term)

    first = write(es_client, [fresh], names=names, stage="dedup")
    second = write(es_client, [stale], names=names, stage="dedup", refresh=True)

    assert first.outcomes == {action.id: "updated"}
    assert first.versions[action.id][0] > seq_no
    assert second.outcomes == {action.id: "conflict"}
    assert second.conflicts == 1
    stored = es_client.get(index=names.articles, id=action.id)["_source"]
    assert stored["story_id"] == "story-1"
    assert es_client.count(index=names.dead_letters)["count"] == 0


def test_an_update_of_a_missing_document_is_dead_lettered(
    es_client: Elasticsearch, names: IndexNames
) -> None:
    missing = BulkAction(names.articles, "nope", {"story_id": "s"}, op="update")
    report = write(es_client, [missing], names=names, stage="dedup")
    assert report.outcomes == {"nope": "dead_lettered"}
    assert dead_letters(es_client, names)["nope"]["status"] == 404


def test_index_overwrites_and_counts_as_updated(
    es_client: Elasticsearch, names: IndexNames
) -> None:
    actions = [BulkAction(names.articles, doc_id(0), article(0), op="index")]
    assert write(es_client, actions, names=names, stage="index").created == 1
    assert write(es_client, actions, names=names, stage="index").updated == 1


def test_chunks_are_bounded_by_documents_and_bytes(
    es_node: str, es_client: Elasticsearch, names: IndexNames
) -> None:
    with BulkFaultProxy(es_node) as proxy:
        es = Elasticsearch(proxy.url)
        report = write(es, creates(names, range(50)), names=names, stage="index", chunk_docs=20)
        assert report.created == 50
        assert [len(body) for body in proxy.bulk_items] == [20, 20, 10]
        proxy.bulk_items.clear()
        big = [
            BulkAction(names.articles, f"big-{n}", article(n, text="x" * 300_000), op="create")
            for n in range(10)
        ]
        report = write(es, big, names=names, stage="index", chunk_bytes=1024 * 1024)
        assert report.created == 10
        # About 300 KB each: three fit under 1 MB.
        assert [len(body) for body in proxy.bulk_items] == [3, 3, 3, 1]
    with pytest.raises(ValueError, match="capped"):
        write(es_client, [], names=names, stage="index", chunk_bytes=11 * 1024 * 1024)


# --- faults through a loopback proxy ---------------------------------------------------------

Fault = Callable[[int, list[tuple[str, dict[str, Any]]]], tuple[int, dict[str, Any]] | None]


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: BulkFaultProxy

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        path = self.path.split("?", 1)[0]
        if path.endswith("/_bulk"):
            items = _bulk_items(body)
            with self.server.lock:
                self.server.bulk_items.append(items)
                number = len(self.server.bulk_items)
            canned = self.server.fault(number, items) if self.server.fault else None
            if canned is not None:
                self._reply(*canned)
                return
        upstream = http.client.HTTPConnection(self.server.upstream, timeout=60)
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
            upstream.request(self.command, self.path, body=body or None, headers=headers)
            response = upstream.getresponse()
            data = response.read()
            self.send_response(response.status)
            for name, value in response.getheaders():
                if name.lower() not in ("content-length", "transfer-encoding", "connection"):
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        finally:
            upstream.close()

    def _reply(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-Elastic-Product", "Elasticsearch")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _handle

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


class BulkFaultProxy(ThreadingHTTPServer):
    """Forwards everything to the node, except the bulks ``fault`` answers itself.

    ``fault(n, items)`` sees the n-th bulk (from 1) as (op, metadata) pairs and returns a
    (status, body) to answer with, or None to forward it.
    """

    daemon_threads = True
    block_on_close = False

    def __init__(self, upstream_url: str, fault: Fault | None = None) -> None:
        super().__init__(("127.0.0.1", 0), _ProxyHandler)
        self.upstream = upstream_url.removeprefix("http://").rstrip("/")
        self.fault = fault
        self.lock = threading.Lock()
        self.bulk_items: list[list[tuple[str, dict[str, Any]]]] = []
        self._thread = threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def __enter__(self) -> BulkFaultProxy:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.shutdown()
        self.server_close()


def _bulk_items(body: bytes) -> list[tuple[str, dict[str, Any]]]:
    """(op, metadata) of each action in an NDJSON bulk body (index/create/update carry a body)."""
    lines = [line for line in body.split(b"\n") if line.strip()]
    items: list[tuple[str, dict[str, Any]]] = []
    position = 0
    while position < len(lines):
        ((op, meta),) = json.loads(lines[position]).items()
        items.append((op, meta))
        position += 1 if op == "delete" else 2
    return items


def every_item(status: int, error_type: str) -> Fault:
    """Answer a bulk 200 with every item failed with ``status``, as Elasticsearch does."""

    def answer(number: int, items: list[tuple[str, dict[str, Any]]]) -> tuple[int, dict[str, Any]]:
        return 200, {
            "took": 1,
            "errors": True,
            "items": [
                {
                    op: {
                        "_index": meta.get("_index"),
                        "_id": meta.get("_id"),
                        "status": status,
                        "error": {"type": error_type, "reason": f"injected {status}"},
                    }
                }
                for op, meta in items
            ],
        }

    return answer


def whole_request(status: int, error_type: str) -> Fault:
    def answer(number: int, items: list[tuple[str, dict[str, Any]]]) -> tuple[int, dict[str, Any]]:
        return status, {
            "error": {"type": error_type, "reason": f"injected {status}"},
            "status": status,
        }

    return answer


def first_bulks(count: int, fault: Fault) -> Fault:
    """``fault`` for the first ``count`` bulks, then forward."""

    def answer(
        number: int, items: list[tuple[str, dict[str, Any]]]
    ) -> tuple[int, dict[str, Any]] | None:
        return fault(number, items) if number <= count else None

    return answer


def only_articles(fault: Fault) -> Fault:
    """``fault`` for bulks aimed at the articles, forward the rest (the dead letters)."""

    def answer(
        number: int, items: list[tuple[str, dict[str, Any]]]
    ) -> tuple[int, dict[str, Any]] | None:
        if all("-articles" in str(meta.get("_index")) for _, meta in items):
            return fault(number, items)
        return None

    return answer


REJECTED = "es_rejected_execution_exception"


@pytest.mark.parametrize(
    "fault",
    [every_item(429, REJECTED), whole_request(429, REJECTED)],
    ids=["429-per-item", "429-whole-request"],
)
def test_a_429_on_the_first_bulk_is_retried_and_the_documents_arrive(
    es_node: str, es_client: Elasticsearch, names: IndexNames, fault: Fault
) -> None:
    with BulkFaultProxy(es_node, first_bulks(1, fault)) as proxy:
        started = time.monotonic()
        report = write(
            Elasticsearch(proxy.url),
            creates(names, range(30)),
            names=names,
            stage="index",
            initial_backoff=0.2,
            refresh=True,
        )
        waited = time.monotonic() - started
        # The refused bulk, then its retry: the client itself did not re-send at once.
        assert [len(items) for items in proxy.bulk_items] == [30, 30]
    assert waited >= 0.2
    assert (report.created, report.total) == (30, 30)
    assert sorted(all_ids(es_client, names.articles)) == sorted(doc_id(n) for n in range(30))


def test_backoff_grows_and_is_capped(es_node: str, names: IndexNames) -> None:
    with BulkFaultProxy(es_node, first_bulks(4, every_item(429, REJECTED))) as proxy:
        started = time.monotonic()
        report = write(
            Elasticsearch(proxy.url),
            creates(names, range(3)),
            names=names,
            stage="index",
            initial_backoff=0.1,
            max_backoff=0.15,
        )
        waited = time.monotonic() - started
    # 0.1 + 0.15 + 0.15 + 0.15 (0.2 and 0.4 capped at 0.15)
    assert 0.55 <= waited < 3
    assert report.created == 3
    assert len(proxy.bulk_items) == 5


def test_429s_that_outlast_the_retries_are_dead_lettered_not_dropped(
    es_node: str, es_client: Elasticsearch, names: IndexNames
) -> None:
    with BulkFaultProxy(es_node, only_articles(every_item(429, REJECTED))) as proxy:
        report = write(
            Elasticsearch(proxy.url),
            creates(names, range(4)),
            names=names,
            stage="index",
            run_id="run-429",
            max_retries=2,
            initial_backoff=0.01,
        )
        assert len([b for b in proxy.bulk_items if "-articles" in str(b[0][1])]) == 3
    assert (report.dead_lettered, report.created) == (0 + 4, 0)
    letters = dead_letters(es_client, names)
    assert set(letters) == {doc_id(n) for n in range(4)}
    assert {letter["status"] for letter in letters.values()} == {429}
    assert {letter["error_type"] for letter in letters.values()} == {REJECTED}
    assert letters[doc_id(2)]["document"] == article(2)


@pytest.mark.parametrize(
    "fault",
    [every_item(503, "unavailable_shards_exception"), whole_request(503, "unavailable")],
    ids=["503-per-item", "503-whole-request"],
)
def test_server_errors_that_outlast_the_retries_raise_search_unavailable(
    es_node: str, es_client: Elasticsearch, names: IndexNames, fault: Fault
) -> None:
    def second_bulk_onwards(
        number: int, items: list[tuple[str, dict[str, Any]]]
    ) -> tuple[int, dict[str, Any]] | None:
        return fault(number, items) if number >= 2 else None

    with (
        BulkFaultProxy(es_node, second_bulk_onwards) as proxy,
        pytest.raises(IndexingInterrupted) as caught,
    ):
        write(
            Elasticsearch(proxy.url),
            creates(names, range(25)),
            names=names,
            stage="index",
            chunk_docs=10,
            max_retries=2,
            initial_backoff=0.01,
        )
    assert isinstance(caught.value, SearchUnavailable)
    assert "503" in str(caught.value)
    # Only the acknowledged first bulk is claimed; nothing was dead-lettered.
    assert caught.value.report.outcomes == {doc_id(n): "created" for n in range(10)}
    assert es_client.count(index=names.dead_letters)["count"] == 0


def test_an_unreachable_node_raises_search_unavailable(names: IndexNames) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    with pytest.raises(SearchUnavailable) as caught:
        write(Elasticsearch(url), creates(names, range(3)), names=names, stage="index")
    assert url in str(caught.value)


def test_a_refused_request_raises_a_permanent_error(es_node: str, names: IndexNames) -> None:
    forbidden = whole_request(403, "security_exception")
    with BulkFaultProxy(es_node, forbidden) as proxy, pytest.raises(BulkRejected) as caught:
        write(Elasticsearch(proxy.url), creates(names, range(3)), names=names, stage="index")
    assert caught.value.status == 403


def test_a_dead_letter_that_cannot_be_stored_raises(
    es_node: str, es_client: Elasticsearch, names: IndexNames
) -> None:
    def refuse_dead_letters(
        number: int, items: list[tuple[str, dict[str, Any]]]
    ) -> tuple[int, dict[str, Any]] | None:
        if any("-dead-letters" in str(meta.get("_index")) for _, meta in items):
            return every_item(400, "mapper_parsing_exception")(number, items)
        return None

    bad = BulkAction(names.articles, "bad", article(0, sentiment=1), op="create")
    with BulkFaultProxy(es_node, refuse_dead_letters) as proxy, pytest.raises(BulkRejected):
        write(Elasticsearch(proxy.url), [bad], names=names, stage="index")
    es_client.indices.refresh(index=names.pattern)
    assert es_client.count(index=names.dead_letters)["count"] == 0


def test_indexing_interrupted_pickles_with_its_report() -> None:
    report = BulkReport()
    report.add("a", "created")
    error = IndexingInterrupted("http://es:9200", "boom", report)
    copy = pickle.loads(pickle.dumps(error))
    assert str(copy) == str(error)
    assert copy.report.outcomes == {"a": "created"}


# --- a node killed mid-run --------------------------------------------------------------------

OWN_PORT = 9210
OWN_STATE = Path(os.environ.get("NEWSRADAR_TEST_ES_STATE", "/tmp/newsradar-index-es"))


def _es_script(name: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "NEWSRADAR_ES_STATE": str(OWN_STATE),
        "NEWSRADAR_ES_PORT": str(OWN_PORT),
    }
    return subprocess.run(
        ["bash", str(REPO / "docker" / name)], env=env, capture_output=True, text=True
    )


def _start_own_node() -> None:
    OWN_STATE.mkdir(parents=True, exist_ok=True)
    # The node runs as an unprivileged user when the tests run as root; it must reach the state.
    OWN_STATE.chmod(0o755)
    done = _es_script("es-up.sh")
    if done.returncode != 0:
        pytest.fail(f"the node on port {OWN_PORT} did not start: {done.stderr.strip()}")


@pytest.fixture(scope="module")
def own_node() -> Iterator[str]:
    """A node of this module's own on port 9210, which the test may kill."""
    _start_own_node()
    yield f"http://127.0.0.1:{OWN_PORT}"
    _es_script("es-down.sh")


# A restart of the node takes 20-60 s depending on the machine's load.
@pytest.mark.timeout(600)
def test_a_node_killed_mid_run_loses_and_duplicates_nothing(own_node: str) -> None:
    es = Elasticsearch(own_node, request_timeout=30)
    names = IndexNames(f"test-kill-{uuid.uuid4().hex[:8]}")
    install(es, names.prefix)
    total, kill_at = 4000, 1500
    expected = {doc_id(n) for n in range(total)}
    pid = int((OWN_STATE / "run" / "es.pid").read_text().strip())
    killer = threading.Thread(target=os.kill, args=(pid, signal.SIGKILL))

    def actions() -> Iterator[BulkAction]:
        for n, action in enumerate(creates(names, range(total))):
            if n == kill_at:
                # From another thread, so the kill can land while a bulk is on the wire.
                killer.start()
            yield action

    try:
        with pytest.raises(SearchUnavailable) as caught:
            write(
                es,
                actions(),
                names=names,
                stage="index",
                chunk_docs=100,
                max_retries=1,
                initial_backoff=0.01,
            )
        killer.join()
        assert isinstance(caught.value, IndexingInterrupted)
        acknowledged = {i for i, o in caught.value.report.outcomes.items() if o == "created"}
        assert 0 < len(acknowledged) < total

        _start_own_node()
        es.cluster.health(index=names.pattern, wait_for_status="yellow", timeout="60s")
        es.indices.refresh(index=names.articles)
        # What was acknowledged before the kill survived it (the translog is fsynced per request).
        assert acknowledged <= set(all_ids(es, names.articles))

        again = write(es, creates(names, range(total)), names=names, stage="index", refresh=True)
        assert again.created + again.already_stored == total
        assert again.already_stored >= len(acknowledged)
        assert again.dead_lettered == again.conflicts == 0
        ids = all_ids(es, names.articles)
        assert len(ids) == total == es.count(index=names.articles)["count"]
        assert set(ids) == expected
    finally:
        es.options(ignore_status=404).indices.delete(index=names.pattern)
        es.options(ignore_status=404).indices.delete_index_template(name=f"{names.prefix}-*")
        es.close()


# --- run statistics, lifecycle -------------------------------------------------------------


def test_a_retried_run_overwrites_its_statistics(
    es_client: Elasticsearch, names: IndexNames
) -> None:
    started = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    stats = RunStats(run_id="r-7", stage="crawl", source="bbc-world", started=started)
    stats.fetched, stats.new, stats.duplicate = 10, 7, 2
    stats.fail("http_404")
    report = BulkReport()
    for n in range(6):
        report.add(str(n), "created")
    report.add("6", "dead_lettered", error="400 x: y")
    stats.add_report(report)
    stats.finished = started + timedelta(seconds=42.5)
    first_id = record_run(es_client, names, stats)

    stats.fail("timeout", 2)
    second_id = record_run(es_client, names, stats, refresh=True)

    assert first_id == second_id
    hits = es_client.search(index=names.runs)["hits"]["hits"]
    assert len(hits) == 1
    stored = hits[0]["_source"]
    assert stored["failed"] == 3
    assert stored["failed_by_reason"] == {"http_404": 1, "timeout": 2}
    assert (stored["indexed"], stored["dead_lettered"]) == (6, 1)
    assert stored["duration_seconds"] == 42.5
    other = RunStats(run_id="r-7", stage="crawl", source="dw-de", started=started)
    assert other.doc_id != stats.doc_id


def test_install_without_ilm_attaches_no_policy_and_rollover_works_by_hand(
    es_client: Elasticsearch, index_prefix: str
) -> None:
    report = install(es_client, index_prefix)
    names = IndexNames(index_prefix)
    assert report.lifecycle_policy is None
    assert rollover(es_client, names) is False
    assert rollover(es_client, names, max_age="1ms") is True
    write(es_client, creates(names, range(2)), names=names, stage="index", refresh=True)
    aliases = es_client.indices.get_alias(name=names.articles).body
    writes = [i for i, a in aliases.items() if a["aliases"][names.articles].get("is_write_index")]
    assert writes == [f"{names.articles}-000002"]
    assert es_client.count(index=f"{names.articles}-000002")["count"] == 2


def test_install_with_ilm_attaches_the_articles_policy(index_prefix: str) -> None:
    # The local node has no ILM (it refuses the lifecycle settings), so a cluster that has ILM
    # is stood in for by a client that records the calls.
    es = mock.MagicMock()
    es.ilm.get_status.return_value = {"operation_mode": "RUNNING"}
    es.indices.exists_alias.side_effect = lambda name: name.endswith("-runs")
    report = install(es, index_prefix)
    names = IndexNames(index_prefix)
    assert report.lifecycle_policy == names.articles
    policy = es.ilm.put_lifecycle.call_args.kwargs
    assert policy["name"] == names.articles
    hot = policy["policy"]["phases"]["hot"]["actions"]["rollover"]
    assert hot == {"max_age": "30d", "max_primary_shard_size": "50gb"}
    templates = {
        c.kwargs["name"]: c.kwargs["template"] for c in es.indices.put_index_template.mock_calls
    }
    lifecycle = {
        "index.lifecycle.name": names.articles,
        "index.lifecycle.rollover_alias": names.articles,
    }
    assert lifecycle.items() <= templates[names.articles]["settings"].items()
    assert "index.lifecycle.name" not in templates[names.runs]["settings"]
    assert names.first_index("articles") in report.created


def test_install_with_ilm_upgrades_existing_articles_indices(index_prefix: str) -> None:
    es = mock.MagicMock()
    es.indices.exists_alias.return_value = True
    install(es, index_prefix)
    names = IndexNames(index_prefix)
    es.indices.put_settings.assert_called_once_with(
        index=names.articles,
        settings={
            "index.lifecycle.name": names.articles,
            "index.lifecycle.rollover_alias": names.articles,
        },
    )
