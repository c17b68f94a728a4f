"""What the newsradar DAGs share: start date, retries, the alert-outbox asset, the task bodies.

Not a DAG file (``.airflowignore`` skips it). Like the DAG files it imports nothing but
``airflow.sdk``: the scheduler parses them often, so pipeline modules are imported inside tasks.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import Asset, ExceptionRetryPolicy, RetryAction, RetryRule, get_current_context
from airflow.sdk.exceptions import AirflowSkipException

__all__ = [
    "ALERT_OUTBOX",
    "DEFAULT_ARGS",
    "START",
    "count_alerts",
    "crawl_sources",
    "now",
    "run_id",
    "schedule_from_env",
    "shards",
    "source_groups",
]

START = datetime(2025, 1, 1, tzinfo=UTC)
"""Static, and in the past: with catchup off, only the latest interval runs."""

ALERT_OUTBOX = Asset(name="newsradar_alert_outbox", uri="newsradar://alert-outbox")
"""Updated by an ingest that created alerts; deliver_alerts is scheduled on it."""

# Classes by dotted path: resolved when a task fails, not when the file is parsed.
_RETRY_POLICY = ExceptionRetryPolicy(
    rules=[
        RetryRule(
            exception="pipeline.errors.PermanentError",
            action=RetryAction.FAIL,
            reason="permanent error (configuration, a broken source, a refused document): "
            "a retry would fail the same way",
        ),
        RetryRule(
            exception="pipeline.errors.TransientError",
            action=RetryAction.RETRY,
            reason="transient error (a service down or busy): retried with backoff",
        ),
    ],
)

DEFAULT_ARGS: dict[str, Any] = {
    "owner": "newsradar",
    # 1, 2, 4, 8 minutes: Elasticsearch restarting or SMTP busy is over by then, or a person
    # is needed. Every task is idempotent, so a retry (or a second attempt that the
    # scheduler started after a restart) changes nothing that the first one finished.
    "retries": 4,
    "retry_delay": timedelta(minutes=1),
    "retry_exponential_backoff": 2.0,
    "max_retry_delay": timedelta(minutes=15),
    "retry_policy": _RETRY_POLICY,
}


def schedule_from_env(variable: str, default: str) -> str | None:
    """A DAG's cron schedule: ``variable`` when set, else ``default``; ``none``: no schedule.

    Read where the DAG is parsed (the DAG processor's environment). A cluster test sets every
    minute for the DAG it waits on and ``none`` for the others: a cron expression, however rare,
    still runs once when the DAG appears, its latest tick being due with catchup off.
    """
    value = os.environ.get(variable, "").strip() or default
    return None if value.lower() == "none" else value


def now() -> datetime:
    """The time a task works at.

    Windows come from watermarks stored in Elasticsearch (feed states, frontier claims, the
    outbox), not from the run's data interval.
    """
    return datetime.now(UTC)


def run_id() -> str:
    """A pipeline run id that a retry of this task reuses, so its records are overwritten."""
    context = get_current_context()
    ti = context["ti"]
    return f"{ti.dag_id}:{ti.run_id}:{ti.task_id}:{ti.map_index}"


def shards(source_ids: Sequence[str], size: int) -> list[list[str]]:
    """The sources in groups of ``size`` (NEWSRADAR_SOURCES_PER_TASK), one mapped task each.

    One source per task isolates failures best. Each task also starts a crawl process, which
    costs a few seconds however few pages it fetches, so many small sources go faster in groups:
    a source that cannot be read then fails its group's task, after the group's work is saved.
    """
    ids = list(source_ids)
    return [ids[i : i + size] for i in range(0, len(ids), size)]


def source_groups(*, listed_only: bool = False) -> list[list[str]]:
    """The configured sources (NEWSRADAR_CONFIG_DIR/sources.yaml), one group per mapped task.

    ``listed_only``: only those with sitemaps or section pages.
    """
    from pipeline.settings import load_config, load_settings

    config = load_config(load_settings())
    ids = [s.id for s in config.sources if not listed_only or s.sitemaps or s.start_urls]
    return shards(ids, config.settings.sources_per_task)


def crawl_sources(source_ids: list[str], *, pull_feeds: bool) -> dict[str, int]:
    """One mapped ingest task: crawl the sources' pending URLs, index, match; counts only.

    ``pull_feeds`` first pulls their due feeds (ingest_feeds); without it their sitemaps and
    section pages are read instead (crawl_sites). A source that could not be read at all
    fails the task once the others' work is saved.
    """
    from pipeline import jobs

    with jobs.connected() as (config, es):
        policy = jobs.crawl_policy(config.settings)
        if pull_feeds:
            report = jobs.ingest(
                config,
                es,
                now=now(),
                sources=source_ids,
                policy=policy,
                with_discovery=False,  # crawl_sites' job, hourly
                run_id=run_id(),
            )
        else:
            report = jobs.discover_and_crawl(
                config, es, now=now(), sources=source_ids, policy=policy, run_id=run_id()
            )
    report.raise_for_broken_sources()
    return report.counts()


def count_alerts(counts: Sequence[dict[str, int] | None]) -> int:
    """The alerts the mapped tasks created; skips the task (no asset update) when none.

    Run as a teardown, so it runs whatever became of the sources while a failed source
    still fails the run.
    """
    created = sum(c.get("alerts", 0) for c in counts if c)
    if not created:
        raise AirflowSkipException("no new alerts")
    return created
