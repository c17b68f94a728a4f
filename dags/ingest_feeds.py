"""ingest_feeds: poll every source's feeds, crawl the new URLs, index them, match alert rules.

One mapped task per source (or per group of NEWSRADAR_SOURCES_PER_TASK sources): a source
that cannot be read fails its own task, the others go on. When the run created alerts,
``announce_alerts`` updates the alert-outbox asset and deliver_alerts mails them without
waiting for its next five-minute tick.
"""

from __future__ import annotations

from airflow.sdk import dag, task, teardown
from airflow.sdk.exceptions import AirflowSkipException
from newsradar_common import ALERT_OUTBOX, DEFAULT_ARGS, START, now, run_id, shards


@dag(
    dag_id="ingest_feeds",
    schedule="*/10 * * * *",
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
        from pipeline.settings import load_config, load_settings

        return shards([source.id for source in load_config(load_settings()).sources])

    @task(
        map_index_template="{{ task.op_kwargs['source_ids'] | join(' ') }}",
        max_active_tis_per_dag=4,
    )
    def ingest(source_ids: list[str]) -> dict[str, int]:
        """Pull the sources' due feeds, crawl their pending URLs, index, match; counts only."""
        from pipeline import jobs

        with jobs.connected() as (config, es):
            report = jobs.ingest(
                config,
                es,
                now=now(),
                sources=source_ids,
                policy=jobs.crawl_policy(),
                with_discovery=False,  # crawl_sites' job, hourly
                run_id=run_id(),
            )
        report.raise_for_broken_sources()
        return report.counts()

    @teardown
    @task(outlets=[ALERT_OUTBOX])
    def announce_alerts(counts: list[dict[str, int]]) -> int:
        """Update the outbox asset if alerts were created; a teardown, so it runs whatever
        became of the sources while a failed source still fails the run."""
        created = sum(c.get("alerts", 0) for c in counts if c)
        if not created:
            raise AirflowSkipException("no new alerts")
        return created

    announce_alerts(ingest.expand(source_ids=sources()))


ingest_feeds()
