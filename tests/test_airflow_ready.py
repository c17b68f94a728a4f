"""docker/airflow_ready.py: the step of ``make up`` that unpauses the DAGs and triggers a run."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import httpx
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "docker" / "airflow_ready.py"


@pytest.fixture(scope="module")
def ready() -> ModuleType:
    spec = importlib.util.spec_from_file_location("airflow_ready", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["airflow_ready"] = module
    spec.loader.exec_module(module)
    return module


def _client(answers: list[int], seen: list[str]) -> httpx.Client:
    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request.method)
        if request.method == "GET":
            return httpx.Response(200, json={"dag_id": "ingest_feeds"})
        return httpx.Response(answers.pop(0), json={})

    return httpx.Client(base_url="http://airflow.test", transport=httpx.MockTransport(handle))


def test_an_unpause_that_meets_a_locked_database_is_tried_again(
    ready: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ready.time, "sleep", lambda _seconds: None)
    seen: list[str] = []
    with _client([500, 500, 200], seen) as client:
        ready._unpause_when_parsed(ready.Waiter(60, []), client, "ingest_feeds")
    assert seen == ["GET", "PATCH", "PATCH", "PATCH"]


def test_a_refused_unpause_fails_at_once_naming_the_url(
    ready: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ready.time, "sleep", lambda _seconds: None)
    seen: list[str] = []
    with (
        _client([403, 200], seen) as client,
        pytest.raises(ready.NotReady, match="dags/ingest_feeds: HTTP 403"),
    ):
        ready._unpause_when_parsed(ready.Waiter(60, []), client, "ingest_feeds")
    assert seen.count("PATCH") == 1


def test_server_errors_until_the_deadline_say_what_could_not_be_done(
    ready: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = iter(range(0, 10_000, 10))
    monkeypatch.setattr(ready.time, "monotonic", lambda: float(next(clock)))
    monkeypatch.setattr(ready.time, "sleep", lambda _seconds: None)
    with (
        _client([500] * 100, []) as client,
        pytest.raises(
            ready.NotReady, match="could not be unpaused within 30 s: HTTPStatusError: HTTP 500"
        ),
    ):
        ready._unpause_when_parsed(ready.Waiter(30, []), client, "ingest_feeds")
