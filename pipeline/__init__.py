"""newsradar's pipeline: one module per stage, plain functions for the CLI, Scrapy and Airflow.

Stages are imported from their modules (``from pipeline.extract import extract_article``); this
package imports nothing itself, so loading it (for instance while Airflow parses DAG files) is free.
"""

__all__ = [
    "alerts",
    "articles",
    "charsets",
    "crawl",
    "crawl_frontier",
    "dates",
    "dedup",
    "demosite",
    "digest",
    "discover",
    "elastic",
    "extract",
    "feeds",
    "feedstate",
    "fetch",
    "frontier",
    "index",
    "ingest_feeds",
    "jobs",
    "kibana",
    "language",
    "mailer",
    "normalise",
    "pages",
    "pull",
    "rules",
    "search",
    "settings",
    "sitemaps",
    "stories",
    "urls",
]
