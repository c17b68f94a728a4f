"""maintenance: daily source health, articles rollover and dead-letter summary.

Each task returns its summary (shown as the task's XCom) and logs what needs a person.
"""

from __future__ import annotations

import logging
from typing import Any

from airflow.sdk import dag, task
from newsradar_common import DEFAULT_ARGS, START, now

log = logging.getLogger(__name__)


@dag(
    dag_id="maintenance",
    schedule="30 3 * * *",
    start_date=START,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["newsradar"],
    doc_md=__doc__,
)
def maintenance() -> None:
    """Three independent tasks."""

    @task
    def source_health() -> dict[str, Any]:
        """Sources whose feeds are failing, and sources never pulled."""
        from pipeline import jobs

        with jobs.connected() as (config, es):
            health = jobs.source_health(config, es)
        for source_id, feeds in sorted(health["unhealthy"].items()):
            log.warning("source %s is unhealthy: %s", source_id, "; ".join(feeds))
        return health

    @task
    def rollover_articles() -> bool:
        """Start a new articles index once the current one is 30 days old or 50 GB."""
        from pipeline import jobs

        with jobs.connected() as (config, es):
            return jobs.rollover_articles(config, es)

    @task
    def dead_letters() -> dict[str, Any]:
        """Documents Elasticsearch refused in the last day, by stage and error."""
        from pipeline import jobs

        with jobs.connected() as (config, es):
            summary = jobs.dead_letter_summary(config, es, now=now())
        if summary["recent"]:
            log.warning("%d dead letters in the last day: %s", summary["recent"], summary)
        return summary

    source_health()
    rollover_articles()
    dead_letters()


maintenance()
