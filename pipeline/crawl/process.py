"""The crawl stage: fetch and normalise candidate URLs with Scrapy in a child process."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from pipeline.discover.listings import Candidate
from pipeline.errors import ConfigError, TransientError
from pipeline.net.fetch import AddressRule
from pipeline.normalise.fingerprint import Fingerprint
from pipeline.settings import Settings

__all__ = [
    "CrawlError",
    "CrawlFailed",
    "CrawlIncomplete",
    "CrawlJob",
    "CrawlOutcome",
    "CrawlPolicy",
    "CrawlReport",
    "JobFiles",
    "crawl",
    "read_job",
    "write_job",
]

# Seconds the crawl process gets after SIGTERM to close the spider and write its summary.
_GRACE = 15.0
_LOG_TAIL = 20


@dataclass(frozen=True)
class CrawlPolicy:
    """Politeness, limits and retries for one crawl; build it from Settings at the entry point."""

    concurrency_per_domain: int = 2
    download_delay: float = 1.0  # seconds between requests to one host; AutoThrottle's floor
    autothrottle_start_delay: float = 2.0
    autothrottle_max_delay: float = 60.0
    download_timeout: float = 30.0
    max_bytes: int = 10 * 1024 * 1024  # of the body, and again after decompression
    warn_bytes: int = 2 * 1024 * 1024
    max_redirects: int = 5
    retry_times: int = 2  # retries after the first attempt, for 5xx, 429 and network errors
    retry_backoff: float = 1.0  # seconds before the first retry without Retry-After; doubles
    retry_after_max: float = 120.0  # a longer Retry-After ends the URL now, recording the wait
    # Narrower than Settings.allow_private_networks: CIDRs the SSRF guard lets through.
    allowed_networks: tuple[str, ...] = ()
    log_level: str = "INFO"
    # Processes that normalise pages, for every crawl: the reactor thread never does it, so
    # one pathological page cannot stall the crawl. None: one per CPU, at most one per URL.
    normalise_workers: int | None = None
    # Seconds of CPU one page's extraction may use; over it, the page's outcome is
    # extract_timeout and its worker is replaced. None: Settings.extract_timeout.
    extract_timeout: float | None = None
    # Extra Scrapy settings; dict values are merged into Scrapy's component dicts (tests
    # use this to add an item pipeline or a middleware).
    scrapy_settings: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Parsed only to check: a bad CIDR is a ConfigError here, not in the crawl process.
        AddressRule.parse(False, self.allowed_networks, where="crawl policy")
        if self.normalise_workers is not None and self.normalise_workers < 1:
            problem = f"{self.normalise_workers} is not at least 1 (pages normalise in workers)"
            raise ConfigError("crawl policy", "normalise_workers", problem)
        # NaN fails the comparison too; the cap keeps a typo from switching the guard off.
        timeout = self.extract_timeout
        if timeout is not None and not 0 < timeout <= 3600:
            problem = f"{timeout!r} is not a number of seconds in (0, 3600]"
            raise ConfigError("crawl policy", "extract_timeout", problem)


@dataclass(frozen=True)
class CrawlOutcome:
    """What became of one requested URL. ``url`` is the candidate's canonical URL.

    ``outcome`` is ``normalised`` (an article; its fields are set) or why not: ``no_text``,
    ``not_html``, ``extract_failed``, ``extract_timeout`` (extraction used more than its CPU
    budget, CrawlPolicy.extract_timeout), ``robots``, ``robots_deferred``, ``http_4xx``,
    ``http_5xx``, ``http_429``, ``http_other`` (a status no other name covers),
    ``bad_redirect``, ``redirect_loop``, ``too_many_redirects``, ``oversize`` (too many
    bytes, or too many HTML elements to extract), ``decode``,
    ``blocked_address``, ``blocked_scheme``, ``bad_url``, ``dns``, ``timeout``, ``connect``,
    ``protocol``, ``tls``, ``ignored`` (a request refused without a named reason),
    ``duplicate_url`` (the dupe filter dropped it: a second spelling of, or a redirect to, a
    URL already requested in this crawl), ``dropped`` (an item pipeline dropped it), ``error``
    (a component failed on it; the crawl fails too).
    """

    url: str
    source: str
    outcome: str
    status: int | None = None
    final_url: str | None = None
    detail: str = ""
    retry_after: float | None = None  # seconds, from Retry-After on a 429 or 5xx
    article_id: str | None = None
    canonical_url: str | None = None
    title: str | None = None
    language: str | None = None
    content_hash: str | None = None
    band_keys: tuple[str, ...] = ()
    minhash: str | None = None  # base64, as Fingerprint.to_document writes it
    num_perm: int | None = None
    story_id: str | None = None  # set when the crawl indexed the article
    duplicate_of: str | None = None  # the earlier article this one copies, if any

    def fingerprint(self) -> Fingerprint | None:
        """The article's dedup fingerprint, when the outcome is ``normalised``."""
        if self.content_hash is None or self.minhash is None or self.num_perm is None:
            return None
        return Fingerprint.from_document(
            {
                "content_hash": self.content_hash,
                "minhash": self.minhash,
                "band_keys": self.band_keys,
                "num_perm": self.num_perm,
            }
        )

    def to_json(self) -> str:
        """One JSON line."""
        return json.dumps(asdict(self), ensure_ascii=False, sort_keys=True)

    @classmethod
    def from_json(cls, line: str) -> CrawlOutcome:
        """Parse a line written by ``to_json``."""
        data = json.loads(line)
        if not isinstance(data, dict):
            raise ValueError("an outcome line must hold a JSON object")
        known = {f.name for f in fields(cls)}
        values = {key: value for key, value in data.items() if key in known}
        values["band_keys"] = tuple(values.get("band_keys") or ())
        return cls(**values)


@dataclass(frozen=True)
class CrawlReport:
    """Every requested URL's outcome, the crawl's Scrapy stats, and what went wrong, if anything."""

    requested: tuple[str, ...]  # candidate URLs, in input order, without repeats
    sources: Mapping[str, str]  # requested URL -> source id
    outcomes: Mapping[str, CrawlOutcome]  # requested URL -> its outcome
    stats: Mapping[str, Any]
    errors: tuple[str, ...]  # problems of the run itself; empty when it went well
    elapsed: float  # seconds, wall time of the crawl process
    repeated_input: int = 0  # candidates given twice; each URL is requested once

    @property
    def missing(self) -> tuple[str, ...]:
        """Requested URLs that ended with no outcome."""
        return tuple(url for url in self.requested if url not in self.outcomes)

    @property
    def ok(self) -> bool:
        """True if the run had no errors and every requested URL has an outcome."""
        return not self.errors and not self.missing

    def by(self, outcome: str) -> list[CrawlOutcome]:
        """The outcomes with this name, in request order."""
        found = (self.outcomes.get(url) for url in self.requested)
        return [o for o in found if o is not None and o.outcome == outcome]

    def counts(self) -> dict[str, Counter[str]]:
        """Per source, how many URLs ended in each outcome (``missing`` for none)."""
        counts: dict[str, Counter[str]] = {}
        for url in self.requested:
            outcome = self.outcomes.get(url)
            name = outcome.outcome if outcome is not None else "missing"
            counts.setdefault(self.sources[url], Counter())[name] += 1
        return counts


class CrawlError(TransientError):
    """The crawl did not end cleanly; ``report`` holds every outcome it did record.

    Transient on purpose: the caller records what finished, and URLs without an outcome
    stay pending, so the next run retries them.
    """

    def __init__(self, message: str, report: CrawlReport) -> None:
        super().__init__(message, report)
        self.message = message
        self.report = report

    def __str__(self) -> str:
        return self.message


class CrawlFailed(CrawlError):
    """The crawl process failed, where ``scrapy crawl`` would exit 0 (scrapy #4175).

    An error was logged, a spider or item pipeline raised, it crashed or timed out. ``scrapy
    crawl`` exits 0 in these cases; we do not.
    """


class CrawlIncomplete(CrawlError):
    """Some requested URLs (``report.missing``) ended with no outcome (scrapy #1225)."""


# --------------------------------------------------------------------------- the job files


@dataclass(frozen=True)
class CrawlJob:
    """Everything the crawl process is given: what to fetch and under which rules."""

    candidates: tuple[Candidate, ...]
    languages: Mapping[str, str | None]  # source id -> language hint
    settings: Settings  # the caller's, whole: the node, the SSRF guard, the contact URL
    policy: CrawlPolicy
    index: bool = False  # dedup and index each article (IndexPipeline), keep its page
    run_id: str | None = None
    countries: Mapping[str, str | None] = field(default_factory=dict)  # source id -> country


@dataclass(frozen=True)
class JobFiles:
    """Where a job's input and output live inside its directory."""

    directory: Path

    @property
    def job(self) -> Path:
        """JSON: the settings (secrets included: owner-only), the policy and the language hints."""
        return self.directory / "job.json"

    @property
    def candidates(self) -> Path:
        """JSON lines, one Candidate each."""
        return self.directory / "candidates.jsonl"

    @property
    def outcomes(self) -> Path:
        """JSON lines, one CrawlOutcome each, appended as the crawl goes."""
        return self.directory / "outcomes.jsonl"

    @property
    def summary(self) -> Path:
        """Scrapy's stats and the run's errors, written when the crawl process ends."""
        return self.directory / "summary.json"

    @property
    def log(self) -> Path:
        """The crawl process's stdout and stderr: Scrapy's log."""
        return self.directory / "crawl.log"


def write_job(job: CrawlJob, files: JobFiles) -> None:
    """Write the job for ``python -m spiders.run``: a JSON header and JSON-lines candidates.

    A previous job's outcomes and summary in the directory are removed first.
    """
    # Else a reused directory reports the last run: a crawl process that dies before writing
    # its own outcomes and summary leaves the old ones to be read as this run's.
    for stale in (files.outcomes, files.summary):
        stale.unlink(missing_ok=True)
    header = {
        "settings": json.loads(job.settings.to_json()),
        "languages": dict(job.languages),
        "policy": asdict(job.policy),
        "index": job.index,
        "run_id": job.run_id,
        "countries": dict(job.countries),
    }
    # The settings hold the Elasticsearch API key: the file is its owner's alone, and nothing
    # logs it (a Settings repr masks secrets).
    files.job.unlink(missing_ok=True)
    descriptor = os.open(files.job, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with open(descriptor, "w", encoding="utf-8") as out:
        out.write(json.dumps(header, ensure_ascii=False, indent=1))
    with files.candidates.open("w", encoding="utf-8") as out:
        for candidate in job.candidates:
            out.write(json.dumps(asdict(candidate), ensure_ascii=False) + "\n")


def read_job(files: JobFiles) -> CrawlJob:
    """Read a job written by ``write_job``; a ConfigError names the file and the problem."""
    try:
        header = json.loads(files.job.read_text(encoding="utf-8"))
        policy_values = dict(header["policy"])
        policy_values["allowed_networks"] = tuple(policy_values.get("allowed_networks", ()))
        policy = CrawlPolicy(**policy_values)
        candidates: list[Candidate] = []
        with files.candidates.open(encoding="utf-8") as lines:
            for line in lines:
                if line.strip():
                    candidates.append(Candidate(**json.loads(line)))
        return CrawlJob(
            candidates=tuple(candidates),
            languages=dict(header.get("languages") or {}),
            settings=Settings.from_json(json.dumps(header["settings"])),
            policy=policy,
            index=bool(header.get("index", False)),
            run_id=header.get("run_id"),
            countries=dict(header.get("countries") or {}),
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(str(files.directory), "", f"not a crawl job: {exc!r}") from None


# --------------------------------------------------------------------------- crawl


def crawl(
    candidates: Sequence[Candidate],
    *,
    settings: Settings,
    languages: Mapping[str, str | None] | None = None,
    policy: CrawlPolicy | None = None,
    timeout: float = 3600.0,
    workdir: Path | None = None,
    index: bool = False,
    run_id: str | None = None,
    countries: Mapping[str, str | None] | None = None,
) -> CrawlReport:
    """Fetch and normalise every candidate in a fresh Scrapy process; one outcome per URL.

    The crawl runs as ``python -m spiders.run`` so Twisted's reactor never starts in (and
    never needs restarting in) the caller. ``workdir`` keeps the job, outcome and log files
    there instead of in a temporary directory. With ``index`` each article is deduplicated
    and indexed in Elasticsearch (``settings``' node and prefix) by the crawl's item pipeline,
    its page kept, and its outcome is ``indexed`` or ``duplicate``. Raises CrawlFailed when
    the crawl process failed or timed out and CrawlIncomplete when a requested URL has no
    outcome; both carry the report with every outcome that was recorded.
    """
    unique: dict[str, Candidate] = {}
    for candidate in candidates:
        unique.setdefault(candidate.url, candidate)
    if not unique:  # nothing to do: no process to start
        return CrawlReport(requested=(), sources={}, outcomes={}, stats={}, errors=(), elapsed=0.0)
    policy = policy or CrawlPolicy()
    if policy.normalise_workers is None:
        workers = max(1, min(os.cpu_count() or 1, len(unique)))
        policy = replace(policy, normalise_workers=workers)
    if policy.extract_timeout is None:
        policy = replace(policy, extract_timeout=settings.extract_timeout)
    job = CrawlJob(
        candidates=tuple(unique.values()),
        languages=dict(languages or {}),
        settings=settings,
        policy=policy,
        index=index,
        run_id=run_id,
        countries=dict(countries or {}),
    )
    with _job_directory(workdir) as directory:
        files = JobFiles(directory)
        write_job(job, files)
        started = time.monotonic()
        run_errors = _run(files, timeout)
        report = _report(files, job, run_errors, time.monotonic() - started)
    report = replace(report, repeated_input=len(candidates) - len(unique))
    if report.errors:
        raise CrawlFailed(f"the crawl failed: {report.errors[0]}", report)
    if report.missing:
        missing = report.missing
        raise CrawlIncomplete(
            f"{len(missing)} of {len(report.requested)} requested URLs have no outcome, "
            f"first {missing[0]}",
            report,
        )
    return report


@contextlib.contextmanager
def _job_directory(workdir: Path | None) -> Iterator[Path]:
    if workdir is not None:
        workdir.mkdir(parents=True, exist_ok=True)
        yield workdir
        return
    with tempfile.TemporaryDirectory(prefix="newsradar-crawl-") as tmp:
        yield Path(tmp)


def _run(files: JobFiles, timeout: float) -> list[str]:
    """Run the crawl process; the problems of the run as seen from outside it.

    The process inherits our environment unchanged: it reads its settings from the job file.
    """
    command = [sys.executable, "-m", "spiders.run", str(files.directory)]
    with files.log.open("wb") as log:
        # Output goes to a file, not a pipe: a chatty crawl can never block on a full pipe.
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        try:
            code = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            # SIGTERM first: Scrapy closes the spider and the summary is still written.
            process.terminate()
            try:
                process.wait(timeout=_GRACE)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            return [f"the crawl did not finish within {timeout:g} s and was stopped"]
        finally:
            if process.poll() is None:  # interrupted in the caller: leave no orphan behind
                process.kill()
                process.wait()
    if code != 0:
        return [f"the crawl process exited with status {code}"]
    return []


def _report(files: JobFiles, job: CrawlJob, run_errors: list[str], elapsed: float) -> CrawlReport:
    requested = tuple(candidate.url for candidate in job.candidates)
    sources = {candidate.url: candidate.source for candidate in job.candidates}
    outcomes, read_errors = _read_outcomes(files.outcomes, sources)
    stats: dict[str, Any] = {}
    child_errors: list[str] = []
    try:
        summary = json.loads(files.summary.read_text(encoding="utf-8"))
        stats = dict(summary.get("stats") or {})
        child_errors = [str(problem) for problem in summary.get("problems") or ()]
    except (OSError, ValueError) as exc:
        child_errors = [f"the crawl process left no summary ({exc.__class__.__name__})"]
        child_errors.extend(_log_tail(files.log))
    return CrawlReport(
        requested=requested,
        sources=sources,
        outcomes=outcomes,
        stats=stats,
        # The child's own account first: it says why; the exit status only says that.
        errors=(*child_errors, *read_errors, *run_errors),
        elapsed=elapsed,
    )


def _read_outcomes(
    path: Path, sources: Mapping[str, str]
) -> tuple[dict[str, CrawlOutcome], list[str]]:
    outcomes: dict[str, CrawlOutcome] = {}
    errors: list[str] = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return outcomes, errors
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            outcome = CrawlOutcome.from_json(line)
        except (ValueError, TypeError) as exc:
            # A line cut short by a killed process is expected only at the very end.
            errors.append(f"{path.name} line {number}: unreadable outcome ({exc})")
            continue
        if outcome.url not in sources:
            errors.append(f"an outcome for a URL that was not requested: {outcome.url}")
        elif outcome.url in outcomes:
            errors.append(f"a second outcome for {outcome.url}: {outcome.outcome}")
        else:
            outcomes[outcome.url] = outcome
    return outcomes, errors


def _log_tail(path: Path) -> list[str]:
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []
    return [line for line in lines[-_LOG_TAIL:] if line.strip()]
