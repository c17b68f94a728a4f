"""crawl_sites: read each source's sitemaps, news sitemaps and section pages, crawl what is new.

One mapped task per source that has sitemaps or section pages (or per group of
NEWSRADAR_SOURCES_PER_TASK of them); feeds are ingest_feeds'. Alerts
it creates are announced on the alert-outbox asset, as ingest_feeds does.
"""

from __future__ import annotations

from airflow.sdk import dag, task, teardown
from airflow.sdk.exceptions import AirflowSkipException
from newsradar_common import ALERT_OUTBOX, DEFAULT_ARGS, START, now, run_id, shards


@dag(
    dag_id="crawl_sites",
    schedule="5 * * * *",  # hourly, off the minute ingest_feeds starts on
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
        from pipeline.settings import load_config, load_settings

        config = load_config(load_settings())
        return shards([s.id for s in config.sources if s.sitemaps or s.start_urls])

    @task(
        map_index_template="{{ task.op_kwargs['source_ids'] | join(' ') }}",
        max_active_tis_per_dag=4,
    )
    def crawl(source_ids: list[str]) -> dict[str, int]:
        """Discover the sources' listed articles, crawl their pending URLs, index, match."""
        from pipeline import jobs

        with jobs.connected() as (config, es):
            report = jobs.discover_and_crawl(
                config,
                es,
                now=now(),
                sources=source_ids,
                policy=jobs.crawl_policy(),
                run_id=run_id(),
            )
        report.raise_for_broken_sources()
        return report.counts()

    @teardown
    @task(outlets=[ALERT_OUTBOX])
    def announce_alerts(counts: list[dict[str, int]]) -> int:
        """Update the outbox asset if alerts were created (see ingest_feeds)."""
        created = sum(c.get("alerts", 0) for c in counts if c)
        if not created:
            raise AirflowSkipException("no new alerts")
        return created

    announce_alerts(crawl.expand(source_ids=sources()))


crawl_sites()
