"""deliver_alerts: mail the alert digests that are due.

Every five minutes, and as soon as an ingest announces new alerts on the alert-outbox asset.
The outbox makes any number of runs safe: a digest goes pending -> sending -> transmitting ->
sent, at most one per recipient and rule interval. One cut off before DATA is sent again; one
cut off after DATA began becomes ``unknown``, never sent twice (``newsradar alerts resend``
decides).

NEWSRADAR_DELIVER_SCHEDULE (a cron expression, read where the DAG is parsed) replaces the
five-minute tick, e.g. by a rare one for a cluster test that wants the outbox asset alone to
start the run that mails a digest.
"""

from __future__ import annotations

import os

from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable, dag, task
from newsradar_common import ALERT_OUTBOX, DEFAULT_ARGS, START, now


@dag(
    dag_id="deliver_alerts",
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable(
            os.environ.get("NEWSRADAR_DELIVER_SCHEDULE") or "*/5 * * * *", timezone="UTC"
        ),
        assets=ALERT_OUTBOX,
    ),
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
