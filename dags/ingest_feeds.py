"""ingest_feeds: poll every source's feeds, crawl the new URLs, index them, match alert rules.

One mapped task per source (or per group of NEWSRADAR_SOURCES_PER_TASK sources): a source
that cannot be read fails its own task, the others go on. When the run created alerts,
``announce_alerts`` updates the alert-outbox asset and deliver_alerts mails them without
waiting for its next five-minute tick.

Every ten minutes; NEWSRADAR_INGEST_SCHEDULE sets another cron schedule, or ``none``
(``schedule_from_env``), e.g. every minute for a cluster test that waits for it to fire.
"""

from __future__ import annotations

from airflow.sdk import dag, task, teardown
from newsradar_common import (
    ALERT_OUTBOX,
    DEFAULT_ARGS,
    START,
    count_alerts,
    crawl_sources,
    schedule_from_env,
    source_groups,
)


@dag(
    dag_id="ingest_feeds",
    schedule=schedule_from_env("NEWSRADAR_INGEST_SCHEDULE", "*/10 * * * *"),
    start_date=START,
    catchup=False,
    max_active_runs=1,  # a second run would find nothing due that the first has not taken
    default_args=DEFAULT_ARGS,
    tags=["newsradar"],
    doc_md=__doc__,
)
def ingest_feeds() -> None:
    """Sources, then one ingest per source, then the announcement of new alerts."""

    @task
    def sources() -> list[list[str]]:
        """The configured sources (NEWSRADAR_CONFIG_DIR/sources.yaml), one group per task."""
        return source_groups()

    @task(
        map_index_template="{{ task.op_kwargs['source_ids'] | join(' ') }}",
        max_active_tis_per_dag=4,
    )
    def ingest(source_ids: list[str]) -> dict[str, int]:
        """Pull the sources' due feeds, crawl their pending URLs, index, match; counts only."""
        return crawl_sources(source_ids, pull_feeds=True)

    @teardown
    @task(outlets=[ALERT_OUTBOX])
    def announce_alerts(counts: list[dict[str, int]]) -> int:
        """Update the outbox asset if alerts were created.

        A teardown, so it runs whatever became of the sources while a failed source still fails
        the run.
        """
        return count_alerts(counts)

    announce_alerts(ingest.expand(source_ids=sources()))


ingest_feeds()
