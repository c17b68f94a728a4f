"""Tests against the loopback production stack that `make cluster` starts (docker/cluster/).

Every test collected here is marked ``cluster``: the plain run leaves them out, `make
cluster-test` selects them. They need the stack up; without it they fail, never skip.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from elasticsearch import Elasticsearch

from pipeline.settings import Settings, load_settings
from pipeline.store.client import connect

from .escluster import cluster_state, read_env

HERE = Path(__file__).resolve().parent


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the tests under tests/cluster before ``-m`` selects (hence tryfirst)."""
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.cluster)


@pytest.fixture(scope="session")
def es_cluster_env() -> dict[str, str]:
    """$cluster_state/es.env: the pipeline's URL list, CA, API key and the elastic password."""
    path = cluster_state() / "es.env"
    if not path.is_file():
        pytest.fail(f"no {path}: the Elasticsearch cluster is not up; run make cluster first")
    env = read_env(path)
    wanted = {
        "NEWSRADAR_ES_URL",
        "NEWSRADAR_ES_CA_CERTS",
        "NEWSRADAR_ES_API_KEY",
        "CLUSTER_ES_ELASTIC_PASSWORD",
    }
    missing = sorted(wanted - set(env))
    if missing:
        pytest.fail(f"{path} lacks {', '.join(missing)}; run make cluster first")
    return env


@pytest.fixture(scope="session")
def es_admin(es_cluster_env: dict[str, str]) -> Iterator[Elasticsearch]:
    """A client of every node as the elastic user (for checks the pipeline's key may not make)."""
    client = Elasticsearch(
        es_cluster_env["NEWSRADAR_ES_URL"].split(","),
        ca_certs=es_cluster_env["NEWSRADAR_ES_CA_CERTS"],
        basic_auth=("elastic", es_cluster_env["CLUSTER_ES_ELASTIC_PASSWORD"]),
        request_timeout=60,
    )
    yield client
    client.close()


@pytest.fixture(scope="session")
def pipeline_settings(es_cluster_env: dict[str, str]) -> Settings:
    """The pipeline's settings from es.env alone (its NEWSRADAR_* lines)."""
    return load_settings({k: v for k, v in es_cluster_env.items() if k.startswith("NEWSRADAR_")})


@pytest.fixture(scope="session")
def pipeline_es(pipeline_settings: Settings) -> Iterator[Elasticsearch]:
    """The pipeline's own client: every node, its API key, the cluster's CA."""
    client = connect(pipeline_settings, timeout=30)
    yield client
    client.close()
