"""``python -m spiders.run JOBDIR``: run one crawl job of pipeline.crawl.process in this process."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from scrapy.crawler import AsyncCrawlerProcess, Crawler
from scrapy.settings import Settings as ScrapySettings

from pipeline.crawl.process import CrawlJob, JobFiles, read_job
from pipeline.errors import NewsradarError
from pipeline.net.fetch import user_agent
from pipeline.normalise.page import DEFAULT_EXTRACT_TIMEOUT, start_fork_server
from spiders.spiders.article import ArticleSpider

_MAX_MESSAGES = 20


class _ErrorLog(logging.Handler):
    """Keeps the first error messages of the run, for the summary."""

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if len(self.messages) < _MAX_MESSAGES:
            text = record.getMessage().splitlines()[0] if record.getMessage() else ""
            if record.exc_info and record.exc_info[1] is not None:
                error = record.exc_info[1]
                text += f" [{type(error).__name__}: {error}]"
            self.messages.append(f"{record.name}: {text}"[:1000])


def scrapy_settings(job: CrawlJob, files: JobFiles) -> ScrapySettings:
    """spiders.settings with the job's values on top (at the command-line priority)."""
    settings = ScrapySettings()
    settings.setmodule("spiders.settings", priority="project")
    policy = job.policy
    settings.setdict(
        {
            "USER_AGENT": user_agent(job.settings.contact_url),
            "SSRF_ALLOW_PRIVATE_NETWORKS": job.settings.allow_private_networks,
            "SSRF_ALLOWED_NETWORKS": list(policy.allowed_networks),
            "CONCURRENT_REQUESTS_PER_DOMAIN": policy.concurrency_per_domain,
            "DOWNLOAD_DELAY": policy.download_delay,
            "AUTOTHROTTLE_START_DELAY": policy.autothrottle_start_delay,
            "AUTOTHROTTLE_MAX_DELAY": policy.autothrottle_max_delay,
            "DOWNLOAD_TIMEOUT": policy.download_timeout,
            "DOWNLOAD_MAXSIZE": policy.max_bytes,
            "DOWNLOAD_WARNSIZE": policy.warn_bytes,
            "REDIRECT_MAX_TIMES": policy.max_redirects,
            "RETRY_TIMES": policy.retry_times,
            "RETRY_BACKOFF": policy.retry_backoff,
            "RETRY_AFTER_MAX": policy.retry_after_max,
            "LOG_LEVEL": policy.log_level,
            "NORMALISE_WORKERS": policy.normalise_workers or 1,
            "EXTRACT_TIMEOUT": policy.extract_timeout or DEFAULT_EXTRACT_TIMEOUT,
            "OUTCOMES_FILE": str(files.outcomes),
            "NEWSRADAR_INDEX": job.index,
            "NEWSRADAR_SETTINGS": job.settings,
            "NEWSRADAR_RUN_ID": job.run_id,
            "NEWSRADAR_COUNTRIES": dict(job.countries),
        },
        priority="cmdline",
    )
    if job.index:
        pipelines = {
            **settings.getdict("ITEM_PIPELINES"),
            "spiders.pipelines.index.IndexPipeline": 400,
        }
        settings.set("ITEM_PIPELINES", pipelines, priority="cmdline")
    for name, value in policy.scrapy_settings.items():
        if isinstance(value, Mapping):
            # Component dicts (ITEM_PIPELINES, DOWNLOADER_MIDDLEWARES...) are extended.
            merged = {**settings.getdict(name), **value}
            settings.set(name, merged, priority="cmdline")
        else:
            settings.set(name, value, priority="cmdline")
    return settings


def problems(
    stats: Mapping[str, Any], errors: Sequence[str], failure: str | None = None
) -> list[str]:
    """Why the run counts as failed, read from its stats (``scrapy crawl`` ignores them)."""
    found: list[str] = []
    if failure is not None:
        found.append(f"the crawl could not run: {failure}")
    elif stats.get("finish_reason") != "finished":
        found.append(f"the crawl ended early: {stats.get('finish_reason')}")
    for key, what in (
        ("spider_exceptions/count", "spider callback errors"),
        ("newsradar/item_errors", "item pipeline errors"),
        ("newsradar/outcome_conflicts", "second outcomes for a URL"),
        ("log_count/CRITICAL", "critical messages logged"),
        ("log_count/ERROR", "error messages logged"),
    ):
        count = int(stats.get(key, 0))
        if count:
            found.append(f"{what}: {count}")
    if found:
        found.extend(errors)
    return found


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, int | float | str | bool) or value is None:
        return value
    return str(value)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the job in JOBDIR; exit 0 if it went well, 1 if not, 2 if it could not run."""
    parser = argparse.ArgumentParser(prog="python -m spiders.run", description=__doc__)
    parser.add_argument("jobdir", type=Path, help="directory written by pipeline.crawl.process")
    args = parser.parse_args(argv)
    files = JobFiles(args.jobdir)
    try:
        job = read_job(files)
    except NewsradarError as exc:
        print(f"spiders.run: {exc}", file=sys.stderr)
        return 2
    # The extraction workers' fork server loads its models while Scrapy starts up.
    start_fork_server()
    error_log = _ErrorLog()
    logging.getLogger().addHandler(error_log)
    process = AsyncCrawlerProcess(scrapy_settings(job, files))
    crawler: Crawler = process.create_crawler(ArticleSpider)
    task = process.crawl(crawler, candidates=job.candidates, languages=job.languages)
    process.start()
    failure: str | None = None
    if not task.done() or task.cancelled():
        failure = "the crawl task did not complete"
    elif (error := task.exception()) is not None:
        failure = f"{type(error).__name__}: {error}"
    try:
        stats: dict[str, Any] = dict(crawler.stats.get_stats())
    except AttributeError:  # the crawler failed before it had stats
        stats = {}
    found = problems(stats, error_log.messages, failure)
    summary = {
        "stats": {key: _jsonable(value) for key, value in stats.items()},
        "problems": found,
    }
    temporary = files.summary.with_suffix(".tmp")
    temporary.write_text(json.dumps(summary, indent=1, sort_keys=True), encoding="utf-8")
    temporary.replace(files.summary)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
