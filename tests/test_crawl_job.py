"""The crawl's job directory: what a crawl reads back must be its own run's, never an older one."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, NoReturn

import pytest

from pipeline.crawl.process import (
    CrawlFailed,
    CrawlJob,
    CrawlOutcome,
    CrawlPolicy,
    JobFiles,
    crawl,
    read_job,
    write_job,
)
from pipeline.discover.listings import Candidate
from pipeline.errors import ConfigError
from pipeline.settings import Settings, load_settings
from spiders.run import scrapy_settings

TESTS = Path(__file__).resolve().parent
URL = "http://127.0.0.1:9/old-news.html"  # never fetched: the crawl process dies first


class DieAtStart:
    """A Scrapy extension that kills the crawl process as it starts: no outcome, no summary."""

    @classmethod
    def from_crawler(cls, crawler: Any) -> NoReturn:
        os._exit(3)


def _candidate(link: str) -> Candidate:
    return Candidate(url=link, link=link, source="faults", via="feed")


def _leave_a_previous_run(files: JobFiles) -> None:
    """What a finished crawl of URL leaves behind in its directory."""
    old = CrawlOutcome(URL, "faults", "normalised", status=200, title="Yesterday's news")
    files.outcomes.write_text(old.to_json() + "\n", encoding="utf-8")
    summary = {"stats": {"finish_reason": "finished"}, "problems": []}
    files.summary.write_text(json.dumps(summary), encoding="utf-8")


def test_write_job_clears_a_previous_runs_results(tmp_path: Path) -> None:
    files = JobFiles(tmp_path)
    _leave_a_previous_run(files)
    job = CrawlJob(
        candidates=(_candidate(URL),),
        languages={},
        settings=Settings(contact_url="https://example.org/contact"),
        policy=CrawlPolicy(),
    )
    write_job(job, files)
    assert not files.outcomes.exists()
    assert not files.summary.exists()
    assert files.job.exists() and files.candidates.exists()


def test_a_reused_workdir_does_not_report_the_previous_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONPATH", str(TESTS))  # the crawl process imports DieAtStart
    _leave_a_previous_run(JobFiles(tmp_path))
    policy = CrawlPolicy(scrapy_settings={"EXTENSIONS": {"test_crawl_job.DieAtStart": 0}})
    with pytest.raises(CrawlFailed) as failed:
        crawl(
            [_candidate(URL)],
            settings=Settings(allow_private_networks=True),
            policy=policy,
            workdir=tmp_path,
        )
    report = failed.value.report
    assert report.outcomes == {}
    assert report.missing == (URL,)
    assert report.stats == {}
    assert report.errors[0] == "the crawl process left no summary (FileNotFoundError)"
    assert report.errors[-1] == "the crawl process exited with status 3"


def test_a_bad_cidr_is_a_config_error_naming_it() -> None:
    with pytest.raises(ConfigError, match=re.escape("'10.0.0.0/33'")):
        CrawlPolicy(allowed_networks=("127.0.0.1/32", "10.0.0.0/33"))


def test_the_extraction_budget_travels_with_the_job(tmp_path: Path) -> None:
    files = JobFiles(tmp_path)
    job = CrawlJob(
        candidates=(_candidate(URL),),
        languages={},
        settings=Settings(contact_url="https://example.org/contact"),
        policy=CrawlPolicy(normalise_workers=2, extract_timeout=2.5),
    )
    write_job(job, files)
    assert read_job(files) == job
    settings = scrapy_settings(job, files)
    assert (settings.getint("NORMALISE_WORKERS"), settings.getfloat("EXTRACT_TIMEOUT")) == (2, 2.5)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"normalise_workers": 0}, "crawl policy: normalise_workers: 0 is not at least 1"),
        ({"extract_timeout": 0.0}, "crawl policy: extract_timeout: 0.0 is not a number of seconds"),
        ({"extract_timeout": float("nan")}, "crawl policy: extract_timeout: nan is not a number"),
        ({"extract_timeout": 7200.0}, "crawl policy: extract_timeout: 7200.0 is not a number"),
    ],
)
def test_a_bad_extraction_policy_is_a_config_error_naming_it(
    values: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        CrawlPolicy(**values)


@pytest.mark.parametrize("raw", ["0", "-1", "ten", "nan", "inf", "3601"])
def test_a_bad_extract_timeout_variable_is_one_line_naming_it(raw: str) -> None:
    with pytest.raises(ConfigError) as refused:
        load_settings({"NEWSRADAR_EXTRACT_TIMEOUT": raw})
    line = str(refused.value)
    assert line.startswith("environment: NEWSRADAR_EXTRACT_TIMEOUT: ")
    assert "\n" not in line


def test_the_extraction_budget_defaults_to_ten_seconds_and_reads_the_variable() -> None:
    assert load_settings({}).extract_timeout == 10.0
    assert load_settings({"NEWSRADAR_EXTRACT_TIMEOUT": "2.5"}).extract_timeout == 2.5


def test_the_settings_travel_whole_in_an_owner_only_job_file(tmp_path: Path) -> None:
    files = JobFiles(tmp_path)
    settings = load_settings(
        {"NEWSRADAR_ES_API_KEY": "s3cret", "NEWSRADAR_INDEX_PREFIX": "elsewhere"}
    )
    job = CrawlJob(
        candidates=(_candidate(URL),), languages={}, settings=settings, policy=CrawlPolicy()
    )
    write_job(job, files)
    assert files.job.stat().st_mode & 0o777 == 0o600
    read = read_job(files)
    assert read.settings == settings and read.settings.names.prefix == "elsewhere"
    assert read.settings.es_api_key is not None
    assert read.settings.es_api_key.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(read)
