"""newsradar's pipeline: one module per stage, plain functions for the CLI, Scrapy and Airflow.

Stages are imported from their modules (``from pipeline.extract import extract_article``); this
package imports nothing itself, so loading it (for instance while Airflow parses DAG files) is free.
"""

__all__ = [
    "crawl",
    "dedup",
    "discover",
    "extract",
    "feeds",
    "fetch",
    "language",
    "mailer",
    "normalise",
    "pull",
    "settings",
    "sitemaps",
    "urls",
]
