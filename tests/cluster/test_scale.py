"""The scale test: thousands of pages through the cluster, with faults, nothing lost or doubled.

The generated site of devtools.scalesite (2,000 pages, eleven outlets, five languages, two
waves) goes through the loopback production stack (`make cluster`): ingest_feeds triggered
through Airflow's API runs its mapped tasks on both Celery workers against the three-node
Elasticsearch cluster; while they run, one node (es02) and one worker (worker2) are killed
with SIGKILL and started again. Then the second wave is published and ingest_feeds runs until
the feeds give nothing new, and deliver_alerts mails the digests.

The outcome must be what one clean single-process run of the same site makes on the plain
local node (tests/cluster/scale_reference.py): every page indexed exactly once, the same
stories, the same alerts, each digest mailed once, no task failed after its retries, and the
cluster green with three nodes. Then articles per second with one worker against two.

The module restarts the Airflow half of the stack (stack.sh down, up) with its own settings:
the site's sources, its own index prefix under the cluster's, and no schedule of its own (it
triggers every run). NEWSRADAR_SCALE_PAGES and NEWSRADAR_SCALE_BENCH_PAGES change the sizes.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, TypeVar

import pytest
from elasticsearch import Elasticsearch

from devtools.scalesite import ScaleSite
from pipeline.store.names import IndexNames

from .airflow_api import AirflowClient, TaskInstance, cluster_state, read_env_file
from .scale_reference import (
    REPO,
    Outcome,
    Reference,
    check_mail,
    collect,
    read_messages,
    run_reference,
)

# Minutes, not seconds: the reference run, the stack's restart and the runs under faults.
pytestmark = [pytest.mark.cluster, pytest.mark.timeout(3600)]

PAGES: Final = int(os.environ.get("NEWSRADAR_SCALE_PAGES") or 2000)
BENCH_PAGES: Final = int(os.environ.get("NEWSRADAR_SCALE_BENCH_PAGES") or 300)
STACK: Final = str(REPO / "docker" / "cluster" / "stack.sh")
ES_CLUSTER: Final = str(REPO / "docker" / "cluster" / "es-cluster.sh")
_RUN_TIMEOUT: Final = 900.0
_NEVER: Final = "none"  # no schedule: the module triggers every run itself
_T = TypeVar("_T")


def _sh(*args: str, env: dict[str, str] | None = None, timeout: float = 600) -> str:
    done = subprocess.run(
        ["bash", *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, f"bash {' '.join(args)}: {(done.stderr or done.stdout)[-1500:]}"
    return done.stdout


def _wait(what: str, timeout: float, attempt: Callable[[], _T | None], pause: float = 2) -> _T:
    deadline = time.monotonic() + timeout
    while True:
        result = attempt()
        if result is not None:
            return result
        assert time.monotonic() < deadline, f"{what} within {timeout:.0f} s"
        time.sleep(pause)


@dataclass
class Stack:
    """The restarted stack: its settings, the Airflow API, and an admin client of the cluster."""

    state: Path
    config: Path
    prefix: str
    client: AirflowClient
    es: Elasticsearch
    mbox: Path
    workers: list[str]
    mails_before: int
    started_at: str  # when the restarted stack started: runs before it are not this module's
    restart_seconds: float
    faults: list[str] = field(default_factory=list)
    runs: dict[str, list[str]] = field(default_factory=dict)  # dag -> run ids triggered here

    @property
    def names(self) -> IndexNames:
        """The index names under this module's prefix."""
        return IndexNames(self.prefix)

    def articles(self) -> int:
        """Articles indexed so far."""
        self.es.indices.refresh(index=self.names.articles)
        return int(self.es.count(index=self.names.articles)["count"])

    def trigger(self, dag_id: str) -> str:
        """Start a run of ``dag_id``; its id, remembered for the checks at the end."""
        run_id = self.client.trigger(dag_id)
        self.runs.setdefault(dag_id, []).append(run_id)
        return run_id


def _stack_env(config: Path, prefix: str) -> dict[str, str]:
    keep = ("NEWSRADAR_CLUSTER_", "NEWSRADAR_VENV", "NEWSRADAR_STACK_")
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("NEWSRADAR_") or k.startswith(keep)
    }
    env.update(
        {
            "NEWSRADAR_CONFIG_DIR": str(config),
            "NEWSRADAR_INDEX_PREFIX": prefix,
            "NEWSRADAR_INGEST_SCHEDULE": _NEVER,
            "NEWSRADAR_DELIVER_SCHEDULE": _NEVER,
            "NEWSRADAR_CRAWL_SCHEDULE": _NEVER,
            "NEWSRADAR_ALLOW_PRIVATE_NETWORKS": "1",
            "NEWSRADAR_CRAWL_DELAY": "0",
            "NEWSRADAR_CRAWL_CONCURRENCY": "8",
        }
    )
    return env


@pytest.fixture(scope="module")
def site() -> Iterator[ScaleSite]:
    with ScaleSite(pages=PAGES) as running:
        yield running


@pytest.fixture(scope="module")
def reference_run(
    es_node: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Future[Reference]]:
    """The reference run, started at once: it runs while the stack restarts."""
    prefix = f"scale-ref-{int(time.time())}"
    work = tmp_path_factory.mktemp("scale-ref")

    def run() -> Reference:
        with ScaleSite(pages=PAGES) as own_site:
            return run_reference(own_site, es_node, prefix, work)

    with ThreadPoolExecutor(max_workers=1) as pool:
        yield pool.submit(run)
    with Elasticsearch(es_node) as es:
        es.options(ignore_status=404).indices.delete(index=f"{prefix}-*", expand_wildcards="all")
        es.options(ignore_status=404).indices.delete_index_template(name=f"{prefix}-*")


@pytest.fixture(scope="module")
def reference(reference_run: Future[Reference]) -> Reference:
    return reference_run.result()


@pytest.fixture(scope="module")
def stack(
    site: ScaleSite,
    reference_run: Future[Reference],
    es_cluster_env: dict[str, str],
    es_admin: Elasticsearch,
) -> Iterator[Stack]:
    state = cluster_state()
    # The pipeline's API key reaches only the indices under the cluster's prefix.
    prefix = f"{es_cluster_env.get('NEWSRADAR_INDEX_PREFIX', 'newsradar')}-scale-{int(time.time())}"
    config = site.write_config(
        state / "scale" / "config", REPO / "config" / "alerts.yaml", digest="1s"
    )
    began = time.monotonic()
    # The Airflow half restarts with this module's settings, which are fixed at its start.
    _sh(STACK, "down")
    _sh(STACK, "up", env=_stack_env(config, prefix), timeout=900)
    restart = time.monotonic() - began
    settings = read_env_file(state / "airflow.env")
    mbox = Path(settings["CLUSTER_MBOX"])
    client = AirflowClient.from_cluster(state)
    before = len(read_messages(mbox)) if mbox.exists() else 0
    try:
        yield Stack(
            state,
            config,
            prefix,
            client,
            es_admin,
            mbox,
            settings["CLUSTER_WORKERS"].split(),
            before,
            settings["CLUSTER_STARTED_AT"],
            restart,
        )
    finally:
        client.close()


def _running_on(stack: Stack, run_id: str, worker: str) -> list[TaskInstance] | None:
    tis = stack.client.task_instances("ingest_feeds", run_id)
    running = [t for t in tis if t.task_id == "ingest" and t.state == "running"]
    return running if any(t.hostname.startswith(worker) for t in running) else None


def _inject_faults(stack: Stack, run_id: str) -> None:
    """While mapped tasks run on worker2 and pages are being indexed: kill es02 and worker2."""
    _wait("the first 100 articles indexed", 300, lambda: stack.articles() >= 100 or None, 3)
    _wait(
        "a mapped ingest task running on worker2",
        300,
        lambda: _running_on(stack, run_id, "worker2"),
    )
    _sh(ES_CLUSTER, "kill", "es02")
    stack.faults.append(f"kill -9 es02 at {stack.articles()} articles")
    time.sleep(5)
    _sh(STACK, "kill", "worker2")
    stack.faults.append(f"kill -9 worker2 at {stack.articles()} articles")
    time.sleep(10)
    _sh(STACK, "start", "worker2")
    _sh(ES_CLUSTER, "start", "es02", timeout=600)


def _claims_left(stack: Stack) -> int:
    """Frontier URLs still claimed once every run has ended: claims nobody will release.

    The retry of a crawl killed with its worker takes back the claims of its first try (its
    run id is the task instance's), so none should be left for the lease to end.
    """
    names = stack.names
    stack.es.indices.refresh(index=names.frontier)
    return int(stack.es.count(index=names.frontier, query={"term": {"state": "claimed"}})["count"])


def _make_feeds_due(stack: Stack) -> None:
    """Every feed due now (``newsradar pull --force`` for the DAG): a new wave is out."""
    names = stack.names
    stack.es.indices.refresh(index=names.feeds)
    now = datetime.now(UTC).isoformat()
    for hit in stack.es.search(index=names.feeds, size=1000, source=False)["hits"]["hits"]:
        stack.es.update(index=hit["_index"], id=hit["_id"], doc={"next_poll": now})


def _finish(stack: Stack, dag_id: str, run_id: str) -> dict[str, Any]:
    return stack.client.wait_for_run(dag_id, run_id, _RUN_TIMEOUT)


def _owed(stack: Stack) -> int | None:
    """None while an alert is owed to someone or a digest is not yet sent; else 0."""
    names = stack.names
    stack.es.indices.refresh(index=names.alert_outbox)
    owed = stack.es.count(
        index=names.alert_outbox,
        query={
            "bool": {
                "should": [
                    {
                        "bool": {
                            "filter": [
                                {"term": {"kind": "alert"}},
                                {"exists": {"field": "pending_for"}},
                            ]
                        }
                    },
                    {
                        "bool": {
                            "filter": [{"term": {"kind": "digest"}}],
                            "must_not": [{"term": {"state": "sent"}}],
                        }
                    },
                ],
                "minimum_should_match": 1,
            }
        },
    )["count"]
    return None if owed else 0


def _ingest_until_nothing_new(stack: Stack, site: ScaleSite) -> int:
    """The second wave out, then ingest_feeds until a run adds nothing; the runs it took."""
    site.publish_all()
    cycles = 0
    while True:
        before = stack.articles()
        _make_feeds_due(stack)
        run = _finish(stack, "ingest_feeds", stack.trigger("ingest_feeds"))
        cycles += 1
        assert run["state"] == "success", f"ingest_feeds {run['dag_run_id']} {run['state']}"
        if stack.articles() == before:
            return cycles
        assert cycles < 5, "the feeds still gave new pages after four runs"


def _deliver(stack: Stack) -> None:
    """deliver_alerts until nothing is owed: the asset starts it, a last run makes sure."""
    time.sleep(2)  # the 1 s digest interval of the scale rules
    run = _finish(stack, "deliver_alerts", stack.trigger("deliver_alerts"))
    assert run["state"] == "success", f"deliver_alerts {run['dag_run_id']} {run['state']}"
    _wait("every alert mailed and every digest sent", 300, lambda: _owed(stack), 5)


def _failed_task_instances(stack: Stack) -> tuple[list[str], list[str]]:
    """Task instances left failed, and the hosts of the mapped ingest tasks (lines each)."""
    failed: list[str] = []
    hosts: list[str] = []
    for dag_id in ("ingest_feeds", "deliver_alerts"):
        for run in stack.client.runs(dag_id):
            if run["run_type"] == "asset_triggered" or run["dag_run_id"] in stack.runs.get(
                dag_id, []
            ):
                for ti in stack.client.task_instances(dag_id, run["dag_run_id"]):
                    if ti.state in ("failed", "upstream_failed"):
                        failed.append(f"{dag_id} {run['dag_run_id']} {ti}")
                    if ti.task_id == "ingest":
                        hosts.append(
                            f"  {run['dag_run_id'][-25:]:<26} {ti.map_index:>3} "
                            f"{ti.hostname:<22} {ti.state or '-':<9} try {ti.try_number}"
                        )
    return failed, hosts


def _when(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def _cluster_health(stack: Stack) -> dict[str, Any]:
    health: dict[str, Any] = stack.es.cluster.health(
        wait_for_status="green", wait_for_nodes="3", timeout="120s"
    ).body
    return health


@dataclass
class Figures:
    """The table the test prints."""

    rows: list[tuple[str, str]] = field(default_factory=list)

    def add(self, name: str, value: object) -> None:
        self.rows.append((name, str(value)))

    def show(self) -> str:
        width = max(len(name) for name, _ in self.rows)
        return "\n".join(f"{name:<{width}}  {value}" for name, value in self.rows)


def test_two_waves_through_two_workers_with_faults_lose_and_double_nothing(
    site: ScaleSite, stack: Stack, reference: Reference, capsys: pytest.CaptureFixture[str]
) -> None:
    started = time.monotonic()
    first = stack.trigger("ingest_feeds")
    _inject_faults(stack, first)
    run = _finish(stack, "ingest_feeds", first)
    assert run["state"] == "success", f"the faulted ingest_feeds run ended {run['state']}"
    stranded = _claims_left(stack)
    cycles = 1 + _ingest_until_nothing_new(stack, site)
    _deliver(stack)
    seconds = time.monotonic() - started

    outcome: Outcome = collect(stack.es, stack.prefix)
    mail = check_mail(stack.mbox, skip=stack.mails_before)
    new_messages = mail.messages
    failed, hosts = _failed_task_instances(stack)
    health = _cluster_health(stack)
    expected = {page.path for page in site.pages}
    lost = len(expected - set(outcome.articles))
    figures = Figures()
    figures.add("pages", len(expected))
    figures.add("sources", len({page.source for page in site.pages}))
    figures.add("workers", len(stack.workers))
    figures.add("faults injected", "; ".join(stack.faults))
    figures.add("claims left after the faulted run", stranded)
    figures.add("ingest_feeds runs", cycles)
    figures.add("articles indexed", sum(outcome.articles.values()))
    figures.add("articles lost", lost)
    figures.add("duplicates", outcome.duplicates)
    figures.add("stories (reference)", f"{len(outcome.stories)} ({len(reference.outcome.stories)})")
    figures.add("alerts (reference)", f"{len(outcome.alerts)} ({len(reference.outcome.alerts)})")
    figures.add("digests mailed", f"{new_messages} {dict(mail.by_rule)}")
    figures.add("mails sent twice", mail.sent_twice)
    figures.add("task instances left failed", len(failed))
    figures.add("cluster", f"{health['status']}, {health['number_of_nodes']} nodes")
    figures.add(
        "wall time",
        f"{seconds:.0f} s (stack restart {stack.restart_seconds:.0f} s and reference run "
        f"{reference.seconds:.0f} s before it, side by side)",
    )
    figures.add("articles/s", f"{len(outcome.articles) / seconds:.1f}")
    with capsys.disabled():
        print("\n" + figures.show())
        print("mapped ingest tasks: run, map index, worker, state, try\n" + "\n".join(hosts))

    assert lost == 0 and outcome.duplicates == 0
    assert stranded == 0
    assert len(outcome.articles) == len(expected) == sum(outcome.articles.values())
    assert outcome.stories == reference.outcome.stories, _differ(
        outcome.stories, reference.outcome.stories
    )
    assert outcome.alerts == reference.outcome.alerts, _differ(
        {f"{rule}: {sorted(story)}" for rule, story in outcome.alerts},
        {f"{rule}: {sorted(story)}" for rule, story in reference.outcome.alerts},
    )
    assert outcome.digested == reference.outcome.digested
    assert mail.sent_twice == 0, (mail.message_ids_twice, mail.alerts_twice)
    assert new_messages == outcome.digests
    assert failed == []
    assert health["status"] == "green" and health["number_of_nodes"] == 3
    assert {line.split()[2].split("@")[0] for line in hosts} == {"worker1", "worker2"}


def _differ(cluster: set[Any], reference: set[Any]) -> str:
    """The first few items only one side has, to read in a failure."""
    only = sorted(map(str, cluster - reference))[:3], sorted(map(str, reference - cluster))[:3]
    return (
        f"{len(cluster - reference)} only in the cluster run, e.g. {only[0]}; "
        f"{len(reference - cluster)} only in the reference run, e.g. {only[1]}"
    )


def _timed_ingest(stack: Stack, site: ScaleSite) -> tuple[int, float]:
    """Articles a triggered ingest_feeds indexed from ``site``, and the run's own seconds."""
    site.write_config(stack.config, REPO / "config" / "alerts.yaml", digest="1s")
    before = stack.articles()
    run = _finish(stack, "ingest_feeds", stack.trigger("ingest_feeds"))
    assert run["state"] == "success"
    seconds = (_when(run["end_date"]) - _when(run["start_date"])).total_seconds()
    return stack.articles() - before, seconds


def test_articles_per_second_with_one_worker_and_with_two(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    # Fresh sites (other seeds, other ports: new URLs), all published, one per measurement.
    with ScaleSite(pages=BENCH_PAGES, seed=11) as one, ScaleSite(pages=BENCH_PAGES, seed=12) as two:
        one.publish_all()
        two.publish_all()
        _sh(STACK, "kill", "worker2")
        try:
            single = _timed_ingest(stack, one)
        finally:
            _sh(STACK, "start", "worker2")
        double = _timed_ingest(stack, two)
    rates = [count / seconds for count, seconds in (single, double)]
    with capsys.disabled():
        print(
            f"\n{BENCH_PAGES} pages each: one worker {single[0]} articles in {single[1]:.0f} s "
            f"({rates[0]:.1f}/s), two workers {double[0]} in {double[1]:.0f} s ({rates[1]:.1f}/s)"
        )
    assert single[0] == double[0] == BENCH_PAGES
