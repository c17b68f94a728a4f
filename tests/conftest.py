"""Fixtures shared by several test modules."""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, tzinfo
from pathlib import Path

import pytest
from elasticsearch import Elasticsearch

from pipeline.settings import Settings, load_settings


class NoOffset(tzinfo):
    """A tzinfo that knows no offset: datetimes carrying it count as naive."""

    def utcoffset(self, dt: datetime | None) -> timedelta | None:
        return None

    def dst(self, dt: datetime | None) -> timedelta | None:
        return None

    def tzname(self, dt: datetime | None) -> str | None:
        return None


@pytest.fixture
def tokyo_local_time(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The machine's local zone is UTC+9, so reading a time as local time shows."""
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


# --- the local Elasticsearch node ---------------------------------------------------------

REPO = Path(__file__).resolve().parent.parent
ES_URL = os.environ.get("NEWSRADAR_TEST_ES_URL", "http://127.0.0.1:9200")


@pytest.fixture(scope="session")
def es_node() -> str:
    """The local node's URL; started by docker/es-up.sh unless it already answers.

    A node that cannot be started fails the test that needs it: integration tests never skip.
    """
    if "NEWSRADAR_TEST_ES_URL" not in os.environ:
        done = subprocess.run(
            ["bash", str(REPO / "docker" / "es-up.sh")], capture_output=True, text=True
        )
        if done.returncode != 0:
            pytest.fail(f"the local Elasticsearch node did not start: {done.stderr.strip()}")
    return ES_URL


@pytest.fixture(scope="session")
def es_client(es_node: str) -> Iterator[Elasticsearch]:
    client = Elasticsearch(es_node, request_timeout=60)
    yield client
    client.close()


@pytest.fixture
def index_prefix(es_client: Elasticsearch) -> Iterator[str]:
    """A prefix of this test's own; its indices and templates are removed afterwards."""
    prefix = f"test-{uuid.uuid4().hex[:12]}"
    yield prefix
    es_client.options(ignore_status=404).indices.delete(index=f"{prefix}-*", expand_wildcards="all")
    es_client.options(ignore_status=404).indices.delete_index_template(name=f"{prefix}-*")


@pytest.fixture
def es_settings(es_node: str, index_prefix: str) -> Settings:
    """Settings pointing at the local node under this test's own prefix."""
    return load_settings({"NEWSRADAR_ES_URL": es_node, "NEWSRADAR_INDEX_PREFIX": index_prefix})
