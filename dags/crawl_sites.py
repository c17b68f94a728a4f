"""crawl_sites: read each source's sitemaps, news sitemaps and section pages, crawl what is new.

One mapped task per source that has sitemaps or section pages (or per group of
NEWSRADAR_SOURCES_PER_TASK of them); feeds are ingest_feeds'. Alerts
it creates are announced on the alert-outbox asset, as ingest_feeds does.

Hourly; NEWSRADAR_CRAWL_SCHEDULE sets another cron schedule, or ``none``
(``schedule_from_env``), e.g. for a cluster test that wants ingest_feeds alone to announce.
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
    dag_id="crawl_sites",
    # Hourly, off the minute ingest_feeds starts on.
    schedule=schedule_from_env("NEWSRADAR_CRAWL_SCHEDULE", "5 * * * *"),
    start_date=START,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["newsradar"],
    doc_md=__doc__,
)
def crawl_sites() -> None:
    """Listed sources, then one discovery and crawl per source, then the announcement."""

    @task
    def sources() -> list[list[str]]:
        """The sources with sitemaps or section pages, one group per task."""
        return source_groups(listed_only=True)

    @task(
        map_index_template="{{ task.op_kwargs['source_ids'] | join(' ') }}",
        max_active_tis_per_dag=4,
    )
    def crawl(source_ids: list[str]) -> dict[str, int]:
        """Discover the sources' listed articles, crawl their pending URLs, index, match."""
        return crawl_sources(source_ids, pull_feeds=False)

    @teardown
    @task(outlets=[ALERT_OUTBOX])
    def announce_alerts(counts: list[dict[str, int]]) -> int:
        """Update the outbox asset if alerts were created (see ingest_feeds)."""
        return count_alerts(counts)

    announce_alerts(crawl.expand(source_ids=sources()))


crawl_sites()
