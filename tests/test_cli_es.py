"""``newsradar init``, ``pull`` and ``status`` against the local node and the demo site."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from elasticsearch import Elasticsearch
from httpfaults import FaultServer, closed_port

from devtools.demosite import DemoSite
from pipeline.cli import main
from pipeline.store.client import INDICES, IndexNames

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, es_node: str, index_prefix: str, tmp_path: Path) -> Path:
    """A clean NEWSRADAR_* environment on this test's prefix; returns the config folder."""
    for name in list(os.environ):
        if name.startswith("NEWSRADAR_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("NEWSRADAR_ES_URL", es_node)
    monkeypatch.setenv("NEWSRADAR_INDEX_PREFIX", index_prefix)
    monkeypatch.setenv("NEWSRADAR_CONFIG_DIR", str(tmp_path))
    return tmp_path


def _write_sources(folder: Path, sources: list[dict[str, Any]]) -> None:
    (folder / "sources.yaml").write_text(yaml.safe_dump({"sources": sources}), encoding="utf-8")


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def _templates(es: Elasticsearch, prefix: str) -> dict[str, Any]:
    found = es.indices.get_index_template(name=f"{prefix}-*")["index_templates"]
    return {t["name"]: t["index_template"] for t in found}


def test_init_twice_creates_nothing_the_second_time(
    env: Path, capsys: pytest.CaptureFixture[str], es_client: Elasticsearch, index_prefix: str
) -> None:
    _write_sources(env, [{"id": "one", "name": "One", "feeds": ["https://one.example/rss"]}])
    code, out, _ = _run(capsys, "init", "--json")
    first = json.loads(out)
    templates = _templates(es_client, index_prefix)
    code_again, out_again, _ = _run(capsys, "init")
    second_code, second_json, _ = _run(capsys, "init", "--json")
    names = IndexNames(index_prefix)
    assert (code, code_again, second_code) == (0, 0, 0)
    assert sorted(first["created"]) == sorted(names.first_index(n) for n in INDICES)
    assert json.loads(second_json)["created"] == []
    assert "0 indices created" in out_again.splitlines()[-1]
    assert _templates(es_client, index_prefix) == templates


def test_a_broken_sources_yaml_makes_pull_fail_with_one_line_naming_the_file(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (env / "sources.yaml").write_text("sources:\n  - id: Bad Id\n    name: x\n", encoding="utf-8")
    code, out, err = _run(capsys, "pull")
    assert code != 0 and out == ""
    [line] = err.strip().splitlines()
    assert line.startswith("newsradar pull: ") and str(env / "sources.yaml") in line


@pytest.mark.parametrize("command", ["init", "pull", "status"])
def test_unreachable_elasticsearch_is_one_line_naming_the_url(
    env: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    command: str,
) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    monkeypatch.setenv("NEWSRADAR_ES_URL", url)
    _write_sources(env, [{"id": "one", "name": "One", "feeds": ["https://one.example/rss"]}])
    code, _, err = _run(capsys, command)
    assert code == 1
    [line] = err.strip().splitlines()
    assert line.startswith(f"newsradar {command}: Elasticsearch at {url}")


def test_the_console_script_reports_an_unreachable_node_on_one_line(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    _write_sources(tmp_path, [{"id": "one", "name": "One", "feeds": ["https://one.example/rss"]}])
    clean = {k: v for k, v in os.environ.items() if not k.startswith("NEWSRADAR_")}
    done = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "status", "--json"],
        env={**clean, "NEWSRADAR_ES_URL": url, "NEWSRADAR_CONFIG_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=REPO,
    )
    assert done.returncode == 1 and done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1
    assert url in done.stderr


def test_pull_and_status_on_the_demo_site(
    env: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with DemoSite() as site, FaultServer() as broken:
        broken.routes["/rss.xml"] = lambda h: h.reply(
            200, b"<html>moved</html>", content_type="text/html"
        )
        sources = [s.model_dump(mode="json", exclude_none=True) for s in site.sources()]
        sources.append({"id": "broken", "name": "Broken", "feeds": [broken.url("/rss.xml")]})
        _write_sources(env, sources)
        assert _run(capsys, "status")[0] == 2  # not installed yet: one line says what to do
        assert _run(capsys, "init")[0] == 0
        # Without NEWSRADAR_ALLOW_PRIVATE_NETWORKS the loopback feeds are refused, and it shows.
        code, out, _ = _run(capsys, "pull", "--json")
        refused = json.loads(out)
        assert code == 0 and refused["new"] == 0
        _, out, _ = _run(capsys, "status", "--json")
        reasons = {f["reason"] for s in json.loads(out)["sources"] for f in s["feeds"]}
        assert reasons == {"blocked_address"}
        monkeypatch.setenv("NEWSRADAR_ALLOW_PRIVATE_NETWORKS", "1")
        code, out, err = _run(capsys, "pull", "--force")
        _, out_again, _ = _run(capsys, "pull", "--json", "--force", "--source", "broken")
        _, status_out, _ = _run(capsys, "status", "--json")
        _, status_text, _ = _run(capsys, "status")
    assert code == 0 and err == ""
    lines = out.strip().splitlines()
    assert lines[0].split() == ["source", "new", "seen", "not-modified", "errors", "not-due"]
    assert any(line.startswith("northwind-times") for line in lines)
    assert any("broken: " in line and "html_not_feed" in line for line in lines)
    assert lines[-1].startswith("pulled 7 feeds (0 not due yet) of 8 sources in ")
    assert "1 with errors" in lines[-1]
    assert [s["id"] for s in json.loads(out_again)["sources"]] == ["broken"]

    status = json.loads(status_out)
    assert {"articles", "duplicates", "by_language", "alerts_sent", "alerts_pending"} <= set(status)
    assert (status["alerts_sent"], status["alerts_pending"], status["dead_letters"]) == (0, 0, 0)
    assert (status["articles"], status["duplicates"], status["by_language"]) == (0, 0, {})
    shown = {s["id"]: s for s in status["sources"]}
    assert set(shown) == {s["id"] for s in sources}
    for source in shown.values():
        assert {"id", "last_pull", "status", "articles", "feeds"} <= set(source)
        for feed in source["feeds"]:
            assert {
                "url",
                "healthy",
                "reason",
                "last_success",
                "consecutive_failures",
                "next_poll",
            } <= set(feed)
    assert shown["northwind-times"]["status"] == "ok"
    assert shown["northwind-times"]["pending"] > 0
    assert shown["northwind-times"]["feeds"][0]["last_success"] is not None
    assert shown["diario-del-puerto"]["status"] == "never"  # sitemaps only: pull has no feed
    assert shown["diario-del-puerto"]["last_pull"] is None
    [feed] = shown["broken"]["feeds"]
    assert shown["broken"]["status"] == "unhealthy"
    assert (feed["healthy"], feed["reason"], feed["consecutive_failures"]) == (
        False,
        "html_not_feed",
        0,
    )
    assert "broken: " in status_text and "html_not_feed" in status_text


ENGLISH = (
    "The alliance discussed its enlargement at length on Tuesday. Finland and Sweden asked to "
    "join NATO last year, and the foreign ministers said the accession talks would go on "
    "through the winter, whatever the objections raised by one of the members."
)


def _write_rule(folder: Path) -> None:
    _write_sources(folder, [{"id": "one", "name": "One", "feeds": ["https://one.example/rss"]}])
    rule = {
        "id": "nato-enlargement",
        "name": "NATO enlargement",
        "recipients": ["analyst@example.org"],
        "queries": {"en": "NATO AND enlargement"},
    }
    (folder / "alerts.yaml").write_text(yaml.safe_dump({"alerts": [rule]}), encoding="utf-8")


def test_alerts_test_tries_every_article_file_of_a_directory_in_order(
    env: Path, capsys: pytest.CaptureFixture[str], tmp_path_factory: pytest.TempPathFactory
) -> None:
    # A directory used to be refused as "no such file".
    _write_rule(env)
    articles = tmp_path_factory.mktemp("articles")
    (articles / "b-match.txt").write_text(f"NATO enlargement\n\n{ENGLISH}\n", encoding="utf-8")
    (articles / "a-page.HTML").write_text(
        "<!doctype html><html><head><title>Harbour festival</title></head><body><article>"
        "<h1>Harbour festival</h1><p>The harbour festival drew thousands of visitors to the "
        "quay on Saturday, with music, boats and food stalls until late in the evening, and "
        "the organisers already plan a longer programme for next summer.</p></article>"
        "</body></html>",
        encoding="utf-8",
    )
    # Binary junk under an article's name: no language, so no rule can match it.
    (articles / "c-junk.txt").write_bytes(random.Random(7).randbytes(4000))
    (articles / "notes.md").write_text(ENGLISH, encoding="utf-8")  # not an article file
    (articles / ".draft.txt").write_text(ENGLISH, encoding="utf-8")  # hidden
    (articles / "older.txt").mkdir()  # a directory, even with the suffix
    single = env / "single.txt"
    single.write_text(f"Enlargement\n\n{ENGLISH}\n", encoding="utf-8")

    code, out, err = _run(capsys, "alerts", "test", str(articles), str(single), "--json")

    assert (code, err) == (0, "")
    files = json.loads(out)["files"]
    names = [Path(f["file"]).name for f in files]
    assert names == ["a-page.HTML", "b-match.txt", "c-junk.txt", "single.txt"]
    assert [[h["rule_id"] for h in f["hits"]] for f in files] == [
        [],
        ["nato-enlargement"],
        [],
        ["nato-enlargement"],
    ]
    assert [f["language"] for f in files] == ["en", "en", "und", "en"]


def test_alerts_test_refuses_an_empty_directory_and_a_missing_path_on_one_line(
    env: Path, capsys: pytest.CaptureFixture[str], tmp_path_factory: pytest.TempPathFactory
) -> None:
    _write_rule(env)
    empty = tmp_path_factory.mktemp("empty")
    (empty / "readme.md").write_text("not an article", encoding="utf-8")
    missing = empty / "nowhere.txt"
    for path, problem in [
        (empty, "a directory without .txt or .html files"),
        (missing, "no such file or directory"),
        (Path("/dev/null"), "neither a file nor a directory"),
    ]:
        code, out, err = _run(capsys, "alerts", "test", str(path))
        assert (code, out) == (2, "")
        assert err.splitlines() == [f"newsradar alerts: {path}: {problem}"]
