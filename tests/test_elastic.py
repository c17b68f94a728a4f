"""The local node and ``install``: templates from mappings/, idempotent, language analysers."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from elasticsearch import Elasticsearch
from httpfaults import FaultServer, closed_port

from pipeline.cli import main
from pipeline.settings import load_settings
from pipeline.store.client import (
    INDICES,
    MAPPINGS_DIR,
    IndexNames,
    SearchUnavailable,
    call,
    connect,
    install,
    load_template,
    node_url,
)

REPO = Path(__file__).resolve().parents[1]


def test_root_url_reports_an_elasticsearch_8_node(es_client: Elasticsearch) -> None:
    response = es_client.perform_request("GET", "/")
    assert response.meta.headers["X-Elastic-Product"] == "Elasticsearch"
    assert response.body["version"]["number"].startswith("8.")


def test_install_twice_gives_the_same_templates(
    es_client: Elasticsearch, index_prefix: str
) -> None:
    first = install(es_client, index_prefix)
    names = IndexNames(index_prefix)
    templates = {
        t["name"]: t["index_template"]
        for t in es_client.indices.get_index_template(name=f"{index_prefix}-*")["index_templates"]
    }
    second = install(es_client, index_prefix)
    again = {
        t["name"]: t["index_template"]
        for t in es_client.indices.get_index_template(name=f"{index_prefix}-*")["index_templates"]
    }
    assert sorted(first.created) == sorted(names.first_index(n) for n in INDICES)
    assert second.created == []
    # Nothing changed, so nothing is reported as upgraded or written.
    assert (second.upgraded, second.templates) == ([], [])
    assert sorted(second.unchanged) == sorted(names.alias(n) for n in INDICES)
    assert again == templates
    assert set(templates) == {names.template(n) for n in INDICES}


def test_install_keeps_documents_and_adds_new_fields(
    es_client: Elasticsearch, index_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    install(es_client, index_prefix)
    names = IndexNames(index_prefix)
    es_client.index(index=names.runs, id="r1", document={"run_id": "r1"}, refresh=True)
    body = load_template("runs", index_prefix)
    body["template"]["mappings"]["properties"]["note"] = {"type": "keyword"}
    monkeypatch.setattr(
        "pipeline.store.client.load_template",
        lambda name, prefix: body if name == "runs" else load_template(name, prefix),
    )
    report = install(es_client, index_prefix)
    assert report.upgraded == [names.runs]
    assert report.templates == [names.template("runs")]
    assert names.runs not in report.unchanged and len(report.unchanged) == len(INDICES) - 1
    mapping = es_client.indices.get_mapping(index=names.runs)
    (only,) = mapping.body.values()
    assert only["mappings"]["properties"]["note"] == {"type": "keyword"}
    assert es_client.count(index=names.runs)["count"] == 1


def test_init_twice_reports_nothing_upgraded_the_second_time(
    es_node: str,
    index_prefix: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # An unchanged cluster used to be reported as "9 upgraded" on every run.
    for name in list(os.environ):
        if name.startswith("NEWSRADAR_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("NEWSRADAR_ES_URL", es_node)
    monkeypatch.setenv("NEWSRADAR_INDEX_PREFIX", index_prefix)
    monkeypatch.setenv("NEWSRADAR_CONFIG_DIR", str(REPO / "config" / "demo"))
    assert main(["init"]) == 0
    first = capsys.readouterr().out.splitlines()[-1]
    assert main(["init"]) == 0
    second = capsys.readouterr().out
    assert f"{len(INDICES)} templates written, {len(INDICES)} indices created, 0 upgraded" in first
    assert "upgraded " not in second  # no per-alias "upgraded <alias>" lines
    summary = second.splitlines()[-1]
    assert summary.startswith("0 templates written, 0 indices created, 0 upgraded, ")
    assert f", {len(INDICES)} unchanged, " in summary


def test_every_mapping_file_is_a_template_with_the_prefix_placeholder() -> None:
    for name in INDICES:
        body = json.loads((MAPPINGS_DIR / f"{name}.json").read_text(encoding="utf-8"))
        assert body["index_patterns"] == [f"{{prefix}}-{name}-*"]
        assert body["template"]["mappings"]["dynamic"] == "strict"


def _tokens(es: Elasticsearch, index: str, field: str, text: str) -> list[str]:
    result = es.indices.analyze(index=index, field=field, text=text)
    return [t["token"] for t in result["tokens"]]


def test_russian_field_stems_both_forms_alike_and_english_does_not(
    es_client: Elasticsearch, index_prefix: str
) -> None:
    install(es_client, index_prefix)
    index = IndexNames(index_prefix).articles
    ru = [_tokens(es_client, index, "text_ru", w) for w in ("расширения", "расширение")]
    en = [_tokens(es_client, index, "text_en", w) for w in ("расширения", "расширение")]
    assert ru[0] == ru[1]
    assert en == [["расширения"], ["расширение"]]


@pytest.mark.parametrize(
    ("field", "forms"),
    [
        ("text_en", ("enlargement", "enlargements")),
        ("text_uk", ("розширення", "розширенням")),
        ("text_fr", ("élargissement", "élargissements")),
        ("text_de", ("Erweiterung", "Erweiterungen")),
        ("text_es", ("ampliación", "ampliaciones")),
    ],
)
def test_each_language_field_stems_inflected_forms_together(
    es_client: Elasticsearch, index_prefix: str, field: str, forms: tuple[str, str]
) -> None:
    install(es_client, index_prefix)
    index = IndexNames(index_prefix).articles
    first, second = (_tokens(es_client, index, field, w) for w in forms)
    assert first == second


def _es_up(port: int, state: Path) -> subprocess.CompletedProcess[str]:
    """docker/es-up.sh for a node on ``port``, its files (if it starts one) under ``state``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSRADAR_")}
    env |= {"NEWSRADAR_ES_PORT": str(port), "NEWSRADAR_ES_STATE": str(state)}
    script = REPO / "docker" / "es-up.sh"
    return subprocess.run(
        ["bash", str(script)], env=env, capture_output=True, text=True, timeout=120
    )


def test_es_up_accepts_the_running_node_only_with_this_checkouts_plugin(
    es_node: str, tmp_path: Path
) -> None:
    # The node the suite runs on carries the plugin this checkout builds: es-up leaves it be.
    done = _es_up(int(es_node.rsplit(":", 1)[1]), tmp_path / "unused")
    assert (done.returncode, done.stdout.strip()) == (
        0,
        f"es-up: a node already answers on {es_node}",
    )
    # A node with an older build lacks analysers the mapping names: es-up says so, not a test.
    old = {"nodes": {"n1": {"plugins": [{"name": "newsradar-local", "version": "1.0.0"}]}}}
    with FaultServer() as server:
        server.routes["/_cluster/health"] = lambda h: h.reply(200, b"{}")
        server.routes["/_nodes/plugins"] = lambda h: h.reply(200, json.dumps(old).encode())
        done = _es_up(server.port, tmp_path / "unused")
    assert done.returncode == 1
    assert "runs local-node plugin 1.0.0, this checkout builds 1.1.0-" in done.stderr
    assert "stop it (make es-down" in done.stderr
    assert not (tmp_path / "unused").exists()


def test_a_client_of_several_nodes_skips_one_that_does_not_answer(es_node: str) -> None:
    # The first node named is down: the client goes on to the next and the request succeeds.
    dead = f"http://127.0.0.1:{closed_port()}"
    settings = load_settings({"NEWSRADAR_ES_URL": f"{dead},{es_node}"})
    es = connect(settings, timeout=10)
    try:
        for _ in range(4):  # whichever node the pool picks first
            assert es.cluster.health()["status"] in ("green", "yellow")
        assert node_url(es) == ",".join(sorted([dead, es_node]))
    finally:
        es.close()


def test_when_every_node_is_down_the_error_names_them_all() -> None:
    dead = sorted(f"http://127.0.0.1:{closed_port()}" for _ in range(2))
    es = connect(load_settings({"NEWSRADAR_ES_URL": ",".join(dead)}), timeout=5)
    try:
        with pytest.raises(SearchUnavailable) as info:
            call(es, es.cluster.health)
    finally:
        es.close()
    assert str(info.value).startswith(f"Elasticsearch at {dead[0]},{dead[1]} is unavailable: ")


def test_one_url_gives_a_client_of_that_node_alone(es_node: str) -> None:
    es = connect(load_settings({"NEWSRADAR_ES_URL": es_node}))
    try:
        assert node_url(es) == es_node
        assert es.cluster.health()["cluster_name"]
    finally:
        es.close()
