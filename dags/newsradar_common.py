"""What the newsradar DAGs share: start date, retries by error kind, the alert-outbox asset.

Not a DAG file (``.airflowignore`` skips it). Like the DAG files it imports nothing but
``airflow.sdk``: the scheduler parses them often, so pipeline modules are imported inside tasks.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import Asset, ExceptionRetryPolicy, RetryAction, RetryRule, get_current_context

__all__ = ["ALERT_OUTBOX", "DEFAULT_ARGS", "START", "now", "run_id"]

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


def run_id(*parts: str) -> str:
    """A pipeline run id that a retry of this task reuses, so its records are overwritten."""
    context = get_current_context()
    return ":".join([context["dag"].dag_id, context["run_id"], *parts])
