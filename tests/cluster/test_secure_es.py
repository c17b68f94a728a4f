"""The pipeline on the secured three-node cluster of docker/cluster/es-cluster.sh.

With the API key and CA of es.env: ``newsradar init`` and a small ingest work; the key reaches
its own prefix's indices and nothing else (other prefixes, users, roles, the security index);
TLS is required and checked; every index has a replica; one node killed with -9 does not stop
the pipeline, and the node comes back to a green cluster.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import certifi
import pytest
import yaml
from elasticsearch import ApiError, AuthorizationException, Elasticsearch

from devtools.demosite import DemoSite
from pipeline.settings import Settings, load_settings
from pipeline.store.client import SearchUnavailable, call, connect
from pipeline.store.names import IndexNames

from .escluster import REPO, cluster_state, es_cluster

# Three JVMs, the pipeline and a restarting node share a small machine: minutes, not seconds.
pytestmark = pytest.mark.timeout(1200)

SOURCE = "northwind-times"
# The node the fault test kills: not the first the URL names, so a client built from one URL
# alone would still reach the cluster too.
VICTIM = "es02"


def _cli(env: dict[str, str], *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipeline.cli", *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="module")
def site() -> Iterator[DemoSite]:
    with DemoSite() as running:
        yield running


@pytest.fixture(scope="module")
def prefix(es_cluster_env: dict[str, str], es_admin: Elasticsearch) -> Iterator[str]:
    """A prefix of this module's own, under the one the key was made for; removed afterwards."""
    key_prefix = es_cluster_env.get("NEWSRADAR_INDEX_PREFIX", "newsradar")
    own = f"{key_prefix}-secure-{uuid.uuid4().hex[:8]}"
    yield own
    # By name: the cluster refuses wildcard deletes (action.destructive_requires_name).
    indices = es_admin.indices.get(index=f"{own}-*", expand_wildcards="all")
    if indices:
        es_admin.indices.delete(index=",".join(indices))
    found = es_admin.options(ignore_status=404).indices.get_index_template(name=f"{own}-*")
    for template in found.get("index_templates", []):
        es_admin.indices.delete_index_template(name=template["name"])


@pytest.fixture(scope="module")
def cli_env(
    es_cluster_env: dict[str, str], prefix: str, site: DemoSite, tmp_path_factory: Any
) -> dict[str, str]:
    """The environment of a ``newsradar`` process: es.env's connection, one demo source."""
    config = tmp_path_factory.mktemp("config")
    [source] = [s for s in site.sources() if s.id == SOURCE]
    sources = [source.model_dump(mode="json", exclude_none=True, exclude_defaults=True)]
    (config / "sources.yaml").write_text(yaml.safe_dump({"sources": sources}), encoding="utf-8")
    alerts = (REPO / "config" / "demo" / "alerts.yaml").read_text(encoding="utf-8")
    (config / "alerts.yaml").write_text(alerts, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSRADAR_")}
    env.update({k: v for k, v in es_cluster_env.items() if k.startswith("NEWSRADAR_")})
    env.update(
        NEWSRADAR_INDEX_PREFIX=prefix,
        NEWSRADAR_CONFIG_DIR=str(config),
        NEWSRADAR_ALLOW_PRIVATE_NETWORKS="1",
        NEWSRADAR_CRAWL_DELAY="0",
    )
    return env


@pytest.fixture(scope="module")
def settings(cli_env: dict[str, str]) -> Settings:
    return load_settings({k: v for k, v in cli_env.items() if k.startswith("NEWSRADAR_")})


@pytest.fixture(scope="module")
def ingested(cli_env: dict[str, str], settings: Settings) -> int:
    """``newsradar init``, then pull and crawl of the one source, as the pipeline's key."""
    for args in (("init",), ("pull",), ("crawl", "--limit", "20")):
        done = _cli(cli_env, *args)
        assert done.returncode == 0, f"newsradar {' '.join(args)}: {done.stderr[-2000:]}"
    es = connect(settings)
    try:
        names = IndexNames(settings.index_prefix)
        es.indices.refresh(index=names.articles)
        return int(es.count(index=names.articles)["count"])
    finally:
        es.close()


def test_init_and_a_small_ingest_work_with_the_pipeline_key(
    ingested: int, cli_env: dict[str, str], settings: Settings
) -> None:
    assert ingested >= 5
    done = _cli(cli_env, "status", "--json")
    assert done.returncode == 0, done.stderr
    # A second init changes nothing: the key may read back what it wrote.
    again = _cli(cli_env, "init")
    assert again.returncode == 0, again.stderr
    assert "0 templates written, 0 indices created, 0 upgraded" in again.stdout
    assert settings.es_url in again.stdout


def test_every_index_of_the_prefix_has_a_replica_and_the_cluster_is_green(
    ingested: int, es_admin: Elasticsearch, prefix: str
) -> None:
    stored = es_admin.indices.get_settings(index=f"{prefix}-*", name="index.number_of_replicas")
    assert len(stored) >= 9
    replicas = {index: s["settings"]["index"]["number_of_replicas"] for index, s in stored.items()}
    assert set(replicas.values()) == {"1"}, replicas
    health = es_admin.cluster.health(wait_for_status="green", timeout="60s")
    assert (health["status"], health["number_of_nodes"]) == ("green", 3)


def test_the_key_reaches_no_other_prefix(
    ingested: int, pipeline_es: Elasticsearch, es_admin: Elasticsearch
) -> None:
    other = f"elsewhere-{uuid.uuid4().hex[:8]}"
    es_admin.index(index=other, id="1", document={"secret": "kept"}, refresh=True)
    try:
        refusals: dict[str, Callable[[], object]] = {
            "read": lambda: pipeline_es.get(index=other, id="1"),
            "search": lambda: pipeline_es.search(index=other),
            "write": lambda: pipeline_es.index(index=other, id="2", document={"x": 1}),
            "create": lambda: pipeline_es.indices.create(index=f"{other}-new"),
            "delete": lambda: pipeline_es.indices.delete(index=other),
        }
        for what, request in refusals.items():
            with pytest.raises(AuthorizationException) as info:
                request()
            assert info.value.meta.status == 403, what
        assert es_admin.count(index=other)["count"] == 1
        assert not es_admin.indices.exists(index=f"{other}-new")
    finally:
        es_admin.indices.delete(index=other)


def test_the_key_manages_no_users_roles_or_security_index(pipeline_es: Elasticsearch) -> None:
    refusals: dict[str, Callable[[], object]] = {
        "user": lambda: pipeline_es.security.put_user(
            username="intruder", password="intruder-pass-1", roles=["superuser"]
        ),
        "role": lambda: pipeline_es.security.put_role(name="intruder", cluster=["all"]),
        "key": lambda: pipeline_es.security.create_api_key(name="intruder"),
        "users": lambda: pipeline_es.security.get_user(),
        "security index": lambda: pipeline_es.search(index=".security"),
        "security index by name": lambda: pipeline_es.get(index=".security-7", id="x"),
    }
    for what, request in refusals.items():
        with pytest.raises(ApiError) as info:
            request()
        assert info.value.meta.status == 403, (what, info.value)
    # A wildcard expands to the indices the key may read only: none of the security ones.
    hidden = pipeline_es.search(
        index=".security*", expand_wildcards="all", ignore_unavailable=True, size=1
    )
    assert hidden["hits"]["total"]["value"] == 0


def test_plain_http_to_the_https_port_fails(settings: Settings) -> None:
    # The key goes along (a client that would send it in clear); the server must refuse.
    url = settings.es_first_url.replace("https://", "http://")
    plain = settings.model_copy(update={"es_url": url, "es_ca_certs": None})
    es = connect(plain, timeout=10)
    try:
        with pytest.raises(SearchUnavailable) as info:
            call(es, es.cluster.health)
    finally:
        es.close()
    assert plain.es_url in str(info.value)


def test_an_unknown_ca_fails_with_a_clear_error(cli_env: dict[str, str]) -> None:
    # The public CAs do not know the cluster's own: verification must fail, not be skipped.
    env = {**cli_env, "NEWSRADAR_ES_CA_CERTS": certifi.where()}
    done = _cli(env, "status")
    assert done.returncode != 0
    assert "CERTIFICATE_VERIFY_FAILED" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert env["NEWSRADAR_ES_URL"].split(",")[0].split("://")[1] in done.stderr


def _wait_green(es_admin: Elasticsearch, seconds: float = 300) -> None:
    es_admin.cluster.health(wait_for_status="green", wait_for_nodes="3", timeout=f"{int(seconds)}s")


def test_one_node_killed_the_pipeline_goes_on_and_the_node_comes_back(
    ingested: int, cli_env: dict[str, str], settings: Settings, es_admin: Elasticsearch
) -> None:
    names = IndexNames(settings.index_prefix)
    es_cluster("kill", VICTIM)
    try:
        es = connect(settings)
        try:
            # Every request goes through, whichever node the pool tries first.
            for _ in range(6):
                assert es.count(index=names.articles)["count"] == ingested
        finally:
            es.close()
        done = _cli(cli_env, "status")
        assert done.returncode == 0, done.stderr
        health = es_admin.cluster.health()
        assert health["number_of_nodes"] == 2
    finally:
        started = time.monotonic()
        es_cluster("start", VICTIM)
        _wait_green(es_admin)
        print(f"{VICTIM} back and green in {time.monotonic() - started:.0f} s")
    health = es_admin.cluster.health()
    assert (health["status"], health["number_of_nodes"]) == ("green", 3)


def test_without_es_env_the_fixture_says_to_run_make_cluster(tmp_path: Path) -> None:
    # A copy of this package (its conftest imports its helpers relatively) with one probe test.
    package = tmp_path / "cluster"
    package.mkdir()
    for name in ("__init__.py", "conftest.py", "escluster.py"):
        source = Path(__file__).parent / name
        (package / name).write_text(source.read_text(encoding="utf-8"), encoding="utf-8")
    probe = package / "test_probe.py"
    probe.write_text("def test_needs(es_cluster_env):\n    pass\n", encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(probe), "-m", ""],
        env={
            **os.environ,
            "NEWSRADAR_CLUSTER_STATE": str(tmp_path / "nothing"),
            "PYTHONPATH": str(REPO),
        },
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1, done.stdout
    assert "run make cluster first" in done.stdout


def test_the_nodes_run_with_composes_security_settings(es_admin: Elasticsearch) -> None:
    # es-cluster.sh reads them from docker/compose.yml's x-elasticsearch-env, the one list.
    compose = yaml.safe_load((REPO / "docker" / "compose.yml").read_text(encoding="utf-8"))
    wanted = {
        key: str(value).lower()
        for key, value in compose["x-elasticsearch-env"].items()
        if key.startswith("xpack.")
    }
    assert wanted["xpack.security.http.ssl.enabled"] == "true"
    nodes = es_admin.nodes.info(metric="settings", flat_settings=True)["nodes"]
    assert sorted(n["name"] for n in nodes.values()) == ["es01", "es02", "es03"]
    for node in nodes.values():
        settings = node["settings"]
        assert settings["cluster.name"] == "newsradar-cluster"
        # The API hides the TLS file settings; what it shows must be compose's values.
        shown = {key: str(settings[key]).lower() for key in wanted if key in settings}
        assert {"xpack.security.enabled", "xpack.security.http.ssl.enabled"} <= set(shown)
        assert shown == {key: wanted[key] for key in shown}, node["name"]
        # The rest as the node read them, from its own configuration file.
        path = cluster_state() / "es" / node["name"] / "config" / "elasticsearch.yml"
        written = yaml.safe_load(path.read_text(encoding="utf-8"))
        assert {key: str(written[key]).lower() for key in wanted} == wanted, path


def test_doctor_reaches_the_cluster_through_any_node(cli_env: dict[str, str]) -> None:
    # The first node named is down: doctor goes on to the next, with the cluster's CA.
    urls = cli_env["NEWSRADAR_ES_URL"].split(",")
    env = {**cli_env, "NEWSRADAR_ES_URL": ",".join(["https://127.0.0.1:1", *urls[1:]])}
    done = _cli(env, "doctor", "--json")
    checks = {c["name"]: c for c in json.loads(done.stdout)["checks"]}
    assert checks["elasticsearch"]["ok"], checks["elasticsearch"]
    assert checks["elasticsearch"]["detail"] == f"{urls[1]} Elasticsearch 8.19.21"


def test_alerts_test_works_with_the_pipeline_key(
    ingested: int, cli_env: dict[str, str], tmp_path: Path
) -> None:
    # Its throw-away index and analysis stay within the prefix the key may touch.
    story = tmp_path / "story.txt"
    story.write_text(
        "NATO enlargement talks continue in Brussels as Finland and Sweden join the alliance. "
        "The ministers said that the enlargement of the alliance would be discussed again at "
        "the summit next month, where the new members are expected to take their seats.\n",
        encoding="utf-8",
    )
    done = _cli(cli_env, "alerts", "test", "--json", str(story))
    assert done.returncode == 0, done.stderr
    [result] = json.loads(done.stdout)["files"]
    assert result["language"] == "en"
    assert "nato-enlargement" in {hit["rule_id"] for hit in result["hits"]}
