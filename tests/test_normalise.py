"""pipeline.normalise.page's extraction pool: every page in a worker process, under a CPU budget."""

from __future__ import annotations

import multiprocessing
import signal
from collections.abc import Iterator
from concurrent.futures import TimeoutError as FutureTimeout
from datetime import UTC, datetime

import pytest
from pebble import ProcessExpired
from test_crawl import ARTICLE  # the same ordinary article page the crawl tests serve

from pipeline.errors import ConfigError, ExtractionError
from pipeline.net.fetch import FetchResult
from pipeline.normalise.page import ExtractionPool, normalise_page

FETCHED = datetime(2026, 11, 27, tzinfo=UTC)
BUDGET = 0.5  # seconds of CPU: a normal page needs a few hundredths
# Under the element cap (pipeline.normalise.extract.MAX_ELEMENTS), yet about 4 s of CPU to extract.
SLOW = b"<html><body>" + b"<p>lorem ipsum dolor sit</p>\n" * 45_000 + b"</body></html>"


def _fetched(body: bytes, url: str = "http://127.0.0.1/article.html") -> FetchResult:
    return FetchResult(
        url=url,
        requested_url=url,
        status=200,
        headers={"content-type": "text/html; charset=utf-8"},
        body=body,
        not_modified=False,
        redirect_chain=(),
        elapsed=0.0,
    )


@pytest.fixture(scope="module")
def pool() -> Iterator[ExtractionPool]:
    # A wall-clock backstop far away: on a busy machine it must not be what stops a page.
    with ExtractionPool(workers=1, budget=BUDGET, wall_limit=300.0) as running:
        running.start().result(timeout=120)
        yield running


def _normalise(pool: ExtractionPool, body: bytes, url: str = "http://127.0.0.1/a.html") -> object:
    return pool.submit(_fetched(body, url), source="s", fetched_at=FETCHED).result(timeout=120)


def test_a_page_normalises_in_a_worker_as_it_does_in_process(pool: ExtractionPool) -> None:
    here = normalise_page(_fetched(ARTICLE), source="s", fetched_at=FETCHED)
    there = pool.submit(_fetched(ARTICLE), source="s", fetched_at=FETCHED).result(timeout=120)
    assert there == here
    assert there.language.language == "en"


def test_a_page_over_the_cpu_budget_is_extract_timeout_and_the_worker_is_replaced(
    pool: ExtractionPool,
) -> None:
    with pytest.raises(ExtractionError) as over:
        _normalise(pool, SLOW, "http://127.0.0.1/slow.html")
    assert (over.value.url, over.value.reason) == ("http://127.0.0.1/slow.html", "extract_timeout")
    assert over.value.detail == "over the 0.5 s CPU budget; the worker was stopped"
    # The pool's only worker was killed; its replacement takes the next page.
    article = _normalise(pool, ARTICLE)
    assert getattr(article, "source", None) == "s"


def test_a_page_past_the_wall_clock_backstop_is_extract_timeout_too() -> None:
    # The backstop is for a worker that hangs without using CPU; here it simply comes first.
    # SLOW needs seconds of CPU, so more than 1 s by any clock.
    with ExtractionPool(workers=1, budget=60.0, wall_limit=1.0) as pool:
        pool.start().result(timeout=120)
        with pytest.raises(ExtractionError) as stopped:
            _normalise(pool, SLOW, "http://127.0.0.1/slow.html")
        assert (stopped.value.reason, stopped.value.detail) == (
            "extract_timeout",
            "no result within 1 s of wall-clock time",
        )


def test_the_pages_own_refusals_and_bugs_come_back_unchanged(pool: ExtractionPool) -> None:
    with pytest.raises(ExtractionError) as refused:
        _normalise(pool, b"<html><body><p>Too short.</p></body></html>")
    assert refused.value.reason == "no_text"
    # A bug in normalising (here: no body at all) is re-raised as itself, not as an outcome.
    with pytest.raises(AttributeError):
        _normalise(pool, None)  # type: ignore[arg-type]


def test_the_budget_is_per_page_not_per_worker(pool: ExtractionPool) -> None:
    # Each page well under the budget, together well over it: none is stopped.
    for _ in range(40):
        _normalise(pool, ARTICLE)


def test_a_pool_closed_while_it_starts_leaves_no_worker_behind() -> None:
    before = set(multiprocessing.active_children())
    pool = ExtractionPool(workers=2, budget=1.0)
    pool.start()
    pool.close()  # at once: as a crawl whose every URL failed before its first page
    assert set(multiprocessing.active_children()) - before == set()


def _expired(exitcode: int) -> ProcessExpired:
    """What pebble reports for a worker that ended with ``exitcode`` while on a page."""
    return ProcessExpired("Abnormal termination", code=exitcode)  # type: ignore[no-untyped-call]


def test_the_pools_own_failures_become_the_pages_outcome() -> None:
    pool = ExtractionPool(workers=1, budget=2.0)  # never started: only the translation
    url = "http://127.0.0.1/page.html"
    cases = {
        FutureTimeout("Task timeout", pool.wall_limit): (
            "extract_timeout",
            "no result within 11 s of wall-clock time",
        ),
        _expired(-signal.SIGPROF): (
            "extract_timeout",
            "over the 2 s CPU budget; the worker was stopped",
        ),
        _expired(-signal.SIGSEGV): (
            "extract_failed",
            "the extraction worker died (signal SIGSEGV)",
        ),
        _expired(3): (
            "extract_failed",
            "the extraction worker died (exit status 3)",
        ),
    }
    for error, (reason, detail) in cases.items():
        translated = pool._translate(url, error)
        assert isinstance(translated, ExtractionError)
        assert (translated.url, translated.reason, translated.detail) == (url, reason, detail)


@pytest.mark.parametrize(
    ("workers", "budget", "message"),
    [
        (0, 10.0, "extraction pool: workers: 0 is not at least 1"),
        (1, 0.0, "extraction pool: budget: 0.0 is not a positive number"),
        (1, float("nan"), "extraction pool: budget: nan is not a positive number"),
    ],
)
def test_a_bad_pool_is_a_config_error(workers: int, budget: float, message: str) -> None:
    with pytest.raises(ConfigError) as refused:
        ExtractionPool(workers=workers, budget=budget)
    assert str(refused.value) == message
