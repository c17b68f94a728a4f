"""From a fetched page to a normalised article: extract, canonical URL, language, fingerprint."""

from __future__ import annotations

import functools
import multiprocessing
import multiprocessing.forkserver
import signal
import threading
import time
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Self

from pebble import ProcessExpired, ProcessFuture, ProcessPool
from pebble.common.types import RemoteTraceback

from pipeline.errors import ConfigError, ExtractionError
from pipeline.net.fetch import FetchResult
from pipeline.net.urls import url_id
from pipeline.normalise.events import EventSignature, signature
from pipeline.normalise.extract import ExtractedArticle, extract_article
from pipeline.normalise.fingerprint import DEFAULT_CONFIG, DedupConfig, Fingerprint, fingerprint
from pipeline.normalise.language import LanguageResult, detect_language

__all__ = [
    "DEFAULT_EXTRACT_TIMEOUT",
    "ExtractionPool",
    "NormalisedArticle",
    "normalise_page",
    "start_fork_server",
    "warm_up",
]

# Seconds of CPU one page's normalisation may use (Settings.extract_timeout).
DEFAULT_EXTRACT_TIMEOUT = 10.0
# The wall-clock backstop is this many budgets plus _WALL_SLACK: generous, since on a busy
# machine a page waits for a CPU too; it stops a worker that hangs without using any.
_WALL_FACTOR = 3.0
_WALL_SLACK = 5.0
# Imported by the fork server before it forks any worker: it loads the models there, once.
_PRELOAD = "pipeline.normalise.preload"
_WARM_UP = "The harbour authority said on Tuesday that the new terminal will open in spring."


@dataclass(frozen=True)
class NormalisedArticle:
    """Everything the indexer and dedup need about one page; ``id`` hashes the canonical URL."""

    id: str
    source: str
    article: ExtractedArticle
    language: LanguageResult
    fingerprint: Fingerprint
    event: EventSignature | None = None  # None: pipeline.store.articles.event_of finds it
    # Seconds of CPU each step took (extract, language, fingerprint, event): the crawl adds
    # them up in its stats. A measurement, not part of the article, so never compared.
    cpu: tuple[tuple[str, float], ...] = field(default=(), compare=False)


def normalise_page(
    result: FetchResult,
    *,
    source: str,
    fetched_at: datetime,
    language_hint: str | None = None,
    feed_title: str | None = None,
    feed_published: str | None = None,
    dedup: DedupConfig = DEFAULT_CONFIG,
) -> NormalisedArticle:
    """Normalise one fetched page, or raise a PermanentError saying why it yields no article.

    That is ExtractionError with the reason, or UnsupportedURL when the page's URL is unusable.
    """
    # Per-step CPU of this thread: five clock reads, some microseconds, 0.01% of a page.
    clock = time.thread_time
    started = clock()
    article = extract_article(
        result.body,
        result.url,
        content_type=result.content_type,
        content_language=result.headers.get("content-language"),
        feed_title=feed_title,
        feed_published=feed_published,
        fetched_at=fetched_at,
    )
    extracted = clock()
    # The page's own declaration beats the source's configured language as a fallback.
    language = detect_language(
        article.title, article.text, hint=article.language_hint or language_hint
    )
    detected = clock()
    print_ = fingerprint(article.text, num_perm=dedup.num_perm, bands=dedup.bands, rows=dedup.rows)
    printed = clock()
    # Here, in the extraction worker, rather than in the crawl's process.
    event = signature(article.title, article.text, language.language)
    steps = (extracted - started, detected - extracted, printed - detected, clock() - printed)
    return NormalisedArticle(
        id=url_id(article.canonical_url),
        source=source,
        article=article,
        language=language,
        fingerprint=print_,
        event=event,
        cpu=tuple(zip(("extract", "language", "fingerprint", "event"), steps, strict=True)),
    )


def start_fork_server() -> None:
    """Start the extraction workers' fork server now; it loads the models in the background.

    Called as a crawl process starts, so that the fork server's few seconds of imports and
    model loading overlap Scrapy's own start-up instead of following it. Idempotent.
    """
    multiprocessing.get_context("forkserver").set_forkserver_preload([_PRELOAD])
    multiprocessing.forkserver.ensure_running()


def warm_up() -> None:
    """Load the language profiles and the MinHash permutations (about 2 s on first use)."""
    detect_language("", _WARM_UP)
    fingerprint(
        _WARM_UP,
        num_perm=DEFAULT_CONFIG.num_perm,
        bands=DEFAULT_CONFIG.bands,
        rows=DEFAULT_CONFIG.rows,
    )


class ExtractionPool:
    """Worker processes that run normalise_page, each page under a budget of CPU seconds.

    A page that uses more than ``budget`` seconds of CPU is stopped by the kernel: a profiling
    timer armed for that page alone sends SIGPROF, whose default action ends the worker even
    inside lxml's C code. Its future fails with ExtractionError ``extract_timeout`` and pebble
    forks a fresh worker in its place; the other pages go on. A page still without a result
    after ``wall_limit`` seconds by the clock (default three budgets and 5 s: a worker that
    hangs without using CPU) is stopped the same way. Workers are forked from a fork
    server that loaded the models once (``pipeline.normalise.preload``), so starting or
    replacing one costs milliseconds; the fork server is single-threaded, so forking it is
    safe where forking the threaded caller (a Scrapy crawl) is not.
    """

    def __init__(
        self,
        workers: int,
        budget: float = DEFAULT_EXTRACT_TIMEOUT,
        *,
        wall_limit: float | None = None,
    ) -> None:
        if workers < 1:
            raise ConfigError("extraction pool", "workers", f"{workers} is not at least 1")
        if not budget > 0:  # also refuses NaN
            raise ConfigError("extraction pool", "budget", f"{budget!r} is not a positive number")
        self.workers = workers
        self.budget = budget
        # The backstop for a worker that hangs without using CPU; see _WALL_FACTOR.
        self.wall_limit = wall_limit or budget * _WALL_FACTOR + _WALL_SLACK
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload([_PRELOAD])  # before the first start; start_fork_server
        self._pool = ProcessPool(max_workers=workers, initializer=_worker_start, context=context)
        self._started: Future[None] = Future()
        self._lock = threading.Lock()

    def start(self) -> Future[None]:
        """Start the fork server and the workers in a background thread; done when they are up.

        The first start loads the models in the fork server (a few seconds), so a caller with
        an event loop waits for this future before its first ``submit``, which would block
        until the workers are up.
        """
        with self._lock:  # a second call returns the first one's future
            if not self._started.running() and not self._started.done():
                self._started.set_running_or_notify_cancel()
                starter = threading.Thread(target=self._start, name="extraction-pool-start")
                starter.daemon = True
                starter.start()
        return self._started

    def _start(self) -> None:
        try:
            # Any call that checks the pool starts it; pebble forks the workers here.
            self._pool.schedule(_ready).result()
        except BaseException as exc:  # handed to whoever waits for the start
            self._started.set_exception(exc)
        else:
            self._started.set_result(None)

    def submit(self, result: FetchResult, **options: Any) -> Future[NormalisedArticle]:
        """normalise_page(result, **options) in a worker; a page over budget: extract_timeout."""
        task = self._pool.schedule(
            _normalise_within_budget,
            args=(self.budget, result),
            kwargs=options,
            timeout=self.wall_limit,
        )
        article: Future[NormalisedArticle] = Future()
        url = result.url

        def settle(done: Future[NormalisedArticle]) -> None:
            if not article.set_running_or_notify_cancel():
                return  # the caller gave up on it (a cancelled crawl)
            try:
                article.set_result(done.result())
            except BaseException as exc:  # handed on to the caller, translated
                article.set_exception(self._translate(url, exc))

        task.add_done_callback(settle)
        article.add_done_callback(functools.partial(_cancel_with, task))
        return article

    def _translate(self, url: str, exc: BaseException) -> BaseException:
        """The pool's own failures as the page's outcome; the worker's exceptions unchanged."""
        if isinstance(exc.__cause__, RemoteTraceback):
            return exc  # raised by normalise_page: a PermanentError, or a bug
        if isinstance(exc, FutureTimeout):
            detail = f"no result within {self.wall_limit:g} s of wall-clock time"
            return ExtractionError(url, "extract_timeout", detail)
        if not isinstance(exc, ProcessExpired):
            return exc
        if exc.exitcode == -signal.SIGPROF:
            detail = f"over the {self.budget:g} s CPU budget; the worker was stopped"
            return ExtractionError(url, "extract_timeout", detail)
        # Killed by anything else on this page (a crash in a parser, the OOM killer): still
        # a fact about this page, and one that the next worker would meet again.
        detail = f"the extraction worker died ({_how_it_ended(exc.exitcode)})"
        return ExtractionError(url, "extract_failed", detail)

    def close(self) -> None:
        """Stop the workers and wait for them; pages still running are abandoned."""
        self._pool.stop()  # type: ignore[no-untyped-call]  # pebble leaves it unannotated
        self._pool.join()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _worker_start() -> None:
    """Pebble's initializer, in each worker: SIGPROF must end the process, as by default."""
    signal.signal(signal.SIGPROF, signal.SIG_DFL)
    warm_up()  # a no-op when the fork server did it; else done here, before any page's budget


def _cancel_with(task: ProcessFuture[Any], article: Future[Any]) -> None:
    """A caller that cancels a page frees its worker: pebble stops a cancelled running task."""
    if article.cancelled():
        task.cancel()  # type: ignore[no-untyped-call]  # pebble's own, which stops a worker


def _how_it_ended(exitcode: int) -> str:
    if exitcode >= 0:
        return f"exit status {exitcode}"
    try:
        return f"signal {signal.Signals(-exitcode).name}"
    except ValueError:  # a real-time signal has no name
        return f"signal {-exitcode}"


def _ready() -> bool:
    return True


def _normalise_within_budget(
    budget: float, result: FetchResult, **options: Any
) -> NormalisedArticle:
    """normalise_page, stopped by SIGPROF after ``budget`` seconds of this process's CPU."""
    signal.setitimer(signal.ITIMER_PROF, budget)
    try:
        return normalise_page(result, **options)
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
