"""The DAGs under the loopback cluster's scheduler, on two Celery workers (`make cluster-test`).

Runs against the stack `make cluster` started with the demo configuration, ingest_feeds every
minute, and crawl_sites' and deliver_alerts' own schedules out of the way (see the Makefile's
cluster-test): nothing here triggers a run. The schedule starts the ingest, its mapped tasks
spread over both workers, the alerts it creates update the outbox asset, and that asset alone
starts the deliver_alerts run that mails the digest to the cluster's mail sink.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from devtools.mailsink import read_mbox

from .airflow_api import AirflowClient, TaskInstance, cluster_state, read_env_file

pytestmark = pytest.mark.cluster

# The first ingest over the demo site crawls seven sources on a two-core machine that also runs
# three Elasticsearch nodes: minutes, not seconds.
_INGEST_TIMEOUT = 900
_DELIVER_TIMEOUT = 300
_DAGS = ("ingest_feeds", "crawl_sites", "deliver_alerts", "maintenance")


@pytest.fixture(scope="module")
def settings() -> dict[str, str]:
    env = cluster_state() / "airflow.env"
    assert env.is_file(), f"no {env}: start the cluster first (make cluster)"
    values = read_env_file(env)
    # make cluster-test's settings: the demo site, and ingest_feeds the only DAG run on its own.
    expected = {
        "CLUSTER_DEMO_PORT": "the demo site (NEWSRADAR_CONFIG_DIR=config/demo)",
        "NEWSRADAR_INGEST_SCHEDULE": "ingest_feeds every minute",
        "NEWSRADAR_CRAWL_SCHEDULE": "crawl_sites out of the way",
        "NEWSRADAR_DELIVER_SCHEDULE": "deliver_alerts' tick out of the way",
    }
    for name, why in expected.items():
        assert values.get(name), f"{env} has no {name} ({why}): start it as make cluster-test does"
    return values


@pytest.fixture(scope="module")
def client(settings: dict[str, str]) -> Iterator[AirflowClient]:
    with AirflowClient.from_cluster() as api:
        api.login()
        yield api


def _when(stamp: str | None) -> datetime:
    assert stamp, "no timestamp"
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def _since_start(runs: list[dict[str, Any]], settings: dict[str, str]) -> list[dict[str, Any]]:
    """The runs this stack started (or has yet to): the database may hold an earlier one's.

    By start, not by ``run_after``: on a kept database the scheduler's first run of a DAG may
    be for a tick from before this start.
    """
    started = _when(settings["CLUSTER_STARTED_AT"])
    return [r for r in runs if not r["start_date"] or _when(r["start_date"]) >= started]


def _wait(what: str, timeout: float, attempt: Any) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = attempt()
        if result is not None:
            return result
        assert time.monotonic() < deadline, f"{what} within {timeout:.0f} s"
        time.sleep(3)


def _table(tis: list[TaskInstance]) -> str:
    lines = [f"{'task':<16} {'map':>4}  {'host':<28} {'state':<10} try"]
    lines += [
        f"{ti.task_id:<16} {ti.map_index:>4}  {ti.hostname:<28} {ti.state or '-':<10} "
        f"{ti.try_number}"
        for ti in tis
    ]
    return "\n".join(lines)


def _first_ingest(client: AirflowClient, settings: dict[str, str]) -> dict[str, Any] | None:
    """The first scheduled ingest_feeds run of this stack, once it has ended."""
    runs = _since_start(client.runs("ingest_feeds", run_type="scheduled"), settings)
    runs = [r for r in runs if r["start_date"]]
    if not runs or runs[0]["state"] not in ("success", "failed"):
        return None
    return runs[0]


# Beyond the suite's five minutes: the waits above are this test's own limits.
@pytest.mark.timeout(_INGEST_TIMEOUT + _DELIVER_TIMEOUT + 60)
def test_the_schedule_runs_ingest_over_both_workers_and_the_asset_mails_the_digest(
    client: AirflowClient, settings: dict[str, str]
) -> None:
    began = time.monotonic()
    ingest = _wait(
        "no scheduled ingest_feeds run ended",
        _INGEST_TIMEOUT,
        lambda: _first_ingest(client, settings),
    )
    waited_ingest = time.monotonic() - began
    tis = client.task_instances("ingest_feeds", ingest["dag_run_id"])
    print(f"\ningest_feeds {ingest['dag_run_id']} ({ingest['run_type']}): {ingest['state']}")
    print(_table(tis))
    assert ingest["state"] == "success"
    mapped = [ti for ti in tis if ti.task_id == "ingest"]
    assert len(mapped) >= 4, "the demo sources should make several mapped ingest tasks"
    workers = set(settings["CLUSTER_WORKERS"].split())
    assert {ti.hostname for ti in mapped} == workers, "the mapped tasks did not use both workers"
    [announce] = [ti for ti in tis if ti.task_id == "announce_alerts"]
    assert announce.state == "success", "the first ingest of the demo site created no alerts"
    created = client.xcom("ingest_feeds", ingest["dag_run_id"], "announce_alerts")
    assert created >= 1

    ingest_end = _when(ingest["end_date"])

    def delivered() -> dict[str, Any] | None:
        # The run this ingest's asset event started (crawl_sites announces on the asset too).
        for run in client.runs("deliver_alerts", run_type="asset_triggered"):
            events = client.upstream_asset_events("deliver_alerts", run["dag_run_id"])
            if any(e.get("source_run_id") == ingest["dag_run_id"] for e in events):
                return run if run["state"] in ("success", "failed") else None
        return None

    deliver = _wait(
        "no deliver_alerts run started by the ingest's asset event ended",
        _DELIVER_TIMEOUT,
        delivered,
    )
    report = client.xcom("deliver_alerts", deliver["dag_run_id"], "deliver")
    print(f"deliver_alerts {deliver['dag_run_id']}: {deliver['state']} {report}")
    print(_table(client.task_instances("deliver_alerts", deliver["dag_run_id"])))
    assert deliver["state"] == "success"
    assert report["sent"] >= 1, "the asset-triggered run mailed no digest"

    mails = read_mbox(Path(settings["CLUSTER_MBOX"]))
    digests = [m for m in mails if "analyst@newsradar.test" in str(m["To"])]
    assert digests, f"no digest to the demo rule's recipient in {settings['CLUSTER_MBOX']}"
    print(
        f"timings: stack started {settings['CLUSTER_STARTED_AT']}; "
        f"ingest run {ingest['start_date']} -> {ingest['end_date']} "
        f"({(ingest_end - _when(ingest['start_date'])).total_seconds():.0f} s, waited "
        f"{waited_ingest:.0f} s here); asset event to digest sent "
        f"{(_when(deliver['end_date']) - ingest_end).total_seconds():.0f} s; "
        f"{len(mapped)} mapped tasks, {created} alerts, {len(digests)} digest(s) in the sink"
    )


def test_no_task_instance_of_this_stack_failed(
    client: AirflowClient, settings: dict[str, str]
) -> None:
    failed: list[str] = []
    retried: list[str] = []
    counted = 0
    for dag_id in _DAGS:
        for run in _since_start(client.runs(dag_id), settings):
            for ti in client.task_instances(dag_id, run["dag_run_id"]):
                counted += 1
                where = f"{dag_id} {run['dag_run_id']} {ti}"
                if ti.state in ("failed", "upstream_failed"):
                    failed.append(where)
                elif ti.try_number > 1:
                    retried.append(where)
    print(f"\n{counted} task instances since the stack started; retried and then not failed:")
    print("\n".join(retried) or "none")
    assert counted > 0
    assert failed == []
