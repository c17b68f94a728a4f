"""What the newsradar DAGs share: start date, retries by error kind, the alert-outbox asset.

Not a DAG file (``.airflowignore`` skips it). Like the DAG files it imports nothing but
``airflow.sdk``: the scheduler parses them often, so pipeline modules are imported inside tasks.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import Asset, ExceptionRetryPolicy, RetryAction, RetryRule, get_current_context

__all__ = ["ALERT_OUTBOX", "DEFAULT_ARGS", "START", "now", "run_id", "shards"]

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


def now() -> datetime:
    """The time a task works at. Windows come from watermarks stored in Elasticsearch (feed
    states, frontier claims, the outbox), not from the run's data interval."""
    return datetime.now(UTC)


def run_id() -> str:
    """A pipeline run id that a retry of this task reuses, so its records are overwritten."""
    context = get_current_context()
    ti = context["ti"]
    return f"{ti.dag_id}:{ti.run_id}:{ti.task_id}:{ti.map_index}"


def shards(source_ids: Sequence[str]) -> list[list[str]]:
    """The sources in groups of ``NEWSRADAR_SOURCES_PER_TASK`` (default 1), one mapped task each.

    One source per task isolates failures best. Each task also starts a crawl process, which
    costs a few seconds however few pages it fetches, so many small sources go faster in groups:
    a source that cannot be read then fails its group's task, after the group's work is saved.
    """
    from pipeline.errors import ConfigError

    raw = os.environ.get("NEWSRADAR_SOURCES_PER_TASK", "1").strip() or "1"
    if not raw.isdigit() or not 1 <= int(raw) <= 1000:
        raise ConfigError("environment", "NEWSRADAR_SOURCES_PER_TASK", f"{raw!r} is not 1..1000")
    size = int(raw)
    ids = list(source_ids)
    return [ids[i : i + size] for i in range(0, len(ids), size)]
