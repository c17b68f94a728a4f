"""deliver_alerts: mail the alert digests that are due.

Every five minutes, and as soon as an ingest announces new alerts on the alert-outbox asset.
The outbox makes any number of runs safe: a digest goes pending -> sending -> transmitting ->
sent, at most one per recipient and rule interval. One cut off before DATA is sent again; one
cut off after DATA began becomes ``unknown``, never sent twice (``newsradar alerts resend``
decides).

NEWSRADAR_DELIVER_SCHEDULE replaces the five-minute tick by another cron schedule, or by
``none``: the outbox asset alone (``schedule_from_env``), as a cluster test wants it.
"""

from __future__ import annotations

from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable, dag, task
from newsradar_common import ALERT_OUTBOX, DEFAULT_ARGS, START, now, schedule_from_env

_TICK = schedule_from_env("NEWSRADAR_DELIVER_SCHEDULE", "*/5 * * * *")


@dag(
    dag_id="deliver_alerts",
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable(_TICK, timezone="UTC"), assets=ALERT_OUTBOX
    )
    if _TICK
    else ALERT_OUTBOX,
    start_date=START,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["newsradar"],
    doc_md=__doc__,
)
def deliver_alerts() -> None:
    """One task: send what is due."""

    @task
    def deliver() -> dict[str, int]:
        """Send the due digests; fails (after sending the rest) if one ended failed or unknown."""
        from pipeline import jobs

        with jobs.connected() as (config, es):
            report = jobs.deliver(config, es, now=now())
        jobs.raise_for_failed_digests(report)
        return {
            "sent": report.sent,
            "retrying": report.retrying,
            "held": report.held,
            "busy": report.busy,
            "interrupted": report.interrupted,
        }

    deliver()


deliver_alerts()
