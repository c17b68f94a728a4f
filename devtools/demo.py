"""``make demo``: the main job over the bundled demo news site, offline, through Airflow.

Starts the local Elasticsearch node, a loopback mail sink and the demo news site; wipes and
installs the ``newsradar-demo`` indices; runs the ingest_feeds, crawl_sites and deliver_alerts
DAGs once each with ``airflow dags test`` (SQLite, under .local/airflow-demo); and prints what
they did: articles by language and source, copies and stories, and the digests mailed, which
stay in .local/mail/demo.mbox.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import re
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from email.message import EmailMessage
from importlib.metadata import version
from pathlib import Path
from typing import Any, Final

from elasticsearch import Elasticsearch
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from devtools.demosite import DemoSite
from devtools.mailsink import MailSink, read_mbox
from pipeline.crawl.process import CrawlPolicy
from pipeline.errors import NewsradarError
from pipeline.settings import load_settings
from pipeline.store.client import IndexNames
from pipeline.store.search import search

__all__ = [
    "DEMO_CRAWL",
    "DEMO_PORT",
    "DEMO_PREFIX",
    "DagResult",
    "DemoSummary",
    "main",
    "summarise",
]

REPO: Final = Path(__file__).resolve().parent.parent
DEMO_PORT: Final = 8765  # config/demo/sources.yaml points here
DEMO_PREFIX: Final = "newsradar-demo"
# Shown at the end of the demo: the base form finds the inflected ones (расширения, ...).
SEARCH_QUERY: Final = "расширение НАТО"  # noqa: RUF001
DAGS: Final = ("ingest_feeds", "crawl_sites", "deliver_alerts")
# The demo site is on loopback and ours: no need for the politeness delays the web gets. The
# DAG runs get the same through NEWSRADAR_CRAWL_DELAY and NEWSRADAR_CRAWL_CONCURRENCY.
DEMO_CRAWL: Final = CrawlPolicy(
    concurrency_per_domain=4, download_delay=0.0, autothrottle_start_delay=0.05, log_level="WARNING"
)
_DAG_TIMEOUT: Final = 900.0


class DemoFailed(NewsradarError):
    """A step of the demo failed; the message says which and where its log is."""


@dataclass(frozen=True)
class DagResult:
    """One ``airflow dags test`` run."""

    dag_id: str
    ok: bool
    seconds: float
    log: str


@dataclass
class DemoSummary:
    """What the demo's DAG runs left in Elasticsearch and in the mail sink."""

    articles: int = 0
    stories: int = 0
    duplicates: int = 0
    by_language: dict[str, int] = field(default_factory=dict)
    by_source: dict[str, int] = field(default_factory=dict)
    copies: list[dict[str, Any]] = field(default_factory=list)  # url, kind, similarity, of
    reports: int = 0  # articles that joined a story as another outlet's report of its event
    # Stories of more than one article: title, languages, and the URLs of its articles.
    groups: list[dict[str, Any]] = field(default_factory=list)
    alerts: int = 0
    mails: list[dict[str, Any]] = field(default_factory=list)  # to, subject, stories
    mbox: str = ""
    site: str = ""  # the demo site's base URL
    dags: list[DagResult] = field(default_factory=list)
    search_query: str = ""
    search_total: int = 0
    search_hits: list[dict[str, Any]] = field(default_factory=list)  # title, language, source


def demo_environment(
    *,
    es_url: str,
    prefix: str,
    config_dir: Path,
    smtp_port: int,
    airflow_home: Path,
    base: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment of the demo's commands: ours, with every NEWSRADAR_* of the demo's."""
    # The caller's NEWSRADAR_* and Airflow settings are left out (a mail server login would
    # be tried on the sink), except how to reach and trust Elasticsearch.
    keep = ("NEWSRADAR_ES_API_KEY", "NEWSRADAR_ES_CA_CERTS")
    env = {
        k: v
        for k, v in (os.environ if base is None else base).items()
        if k in keep or not k.startswith(("NEWSRADAR_", "AIRFLOW__", "AIRFLOW_HOME"))
    }
    env.update(
        {
            "NEWSRADAR_ES_URL": es_url,
            "NEWSRADAR_INDEX_PREFIX": prefix,
            "NEWSRADAR_CONFIG_DIR": str(config_dir),
            "NEWSRADAR_ALLOW_PRIVATE_NETWORKS": "1",
            "NEWSRADAR_SMTP_HOST": "127.0.0.1",
            "NEWSRADAR_SMTP_PORT": str(smtp_port),
            # Loopback and ours: no politeness delay (pipeline.jobs.crawl_policy).
            "NEWSRADAR_CRAWL_DELAY": "0",
            "NEWSRADAR_CRAWL_CONCURRENCY": str(DEMO_CRAWL.concurrency_per_domain),
            # Seven small sources: two mapped tasks, not seven crawl processes in a row.
            "NEWSRADAR_SOURCES_PER_TASK": "4",
            "AIRFLOW_HOME": str(airflow_home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        }
    )
    return env


def migrate_airflow(env: Mapping[str, str], home: Path) -> None:
    """Create or upgrade Airflow's SQLite database, once per Airflow version."""
    stamp = home / f".migrated-{version('apache-airflow-core')}"
    if stamp.exists():
        return
    home.mkdir(parents=True, exist_ok=True)
    _run_logged([sys.executable, "-m", "airflow", "db", "migrate"], env, home / "migrate.log")
    stamp.touch()


def run_dags(dag_ids: Sequence[str], env: Mapping[str, str], log: Path) -> list[DagResult]:
    """``airflow dags test`` for each DAG in turn, in one Airflow process; output to ``log``.

    One process, because each ``airflow dags test`` spends about ten seconds starting Airflow's
    in-process API before its first task; the runs themselves are exactly the command's.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    results = log.with_suffix(".results")
    results.unlink(missing_ok=True)
    command = [sys.executable, "-m", "devtools.demo", "--dags-test", str(results), *dag_ids]
    # The results file says which DAG failed; a crash leaves the rest unreported (failed).
    with contextlib.suppress(DemoFailed):
        _run_logged(command, env, log)
    done: dict[str, DagResult] = {}
    if results.exists():
        for line in results.read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            done[record["dag_id"]] = DagResult(**record, log=str(log))
    return [done.get(d, DagResult(d, False, 0.0, str(log))) for d in dag_ids]


def _dags_test(results: Path, dag_ids: Sequence[str]) -> int:
    """Inside the Airflow process: ``airflow dags test`` per DAG, a JSON line each."""
    from airflow.cli import cli_parser

    parser = cli_parser.get_parser()
    failed = 0
    for dag_id in dag_ids:
        started = time.monotonic()
        args = parser.parse_args(["dags", "test", dag_id])
        try:
            args.func(args)
            ok = True
        except SystemExit as exc:  # "DagRun failed"
            ok = not exc.code
        except Exception:
            logging.getLogger(__name__).exception("airflow dags test %s", dag_id)
            ok = False
        failed += not ok
        record = {"dag_id": dag_id, "ok": ok, "seconds": round(time.monotonic() - started, 1)}
        with results.open("a", encoding="utf-8") as out:
            out.write(json.dumps(record) + "\n")
    return 1 if failed else 0


def _run_logged(command: Sequence[str], env: Mapping[str, str], log: Path) -> None:
    with log.open("wb") as out:
        try:
            done = subprocess.run(
                command,
                env=dict(env),
                cwd=REPO,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=_DAG_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise DemoFailed(
                f"{' '.join(command[1:])} took over {_DAG_TIMEOUT:g} s; see {log}"
            ) from None
    if done.returncode != 0:
        raise DemoFailed(f"{' '.join(command[1:])} failed; see {log}")


def wipe(es: Elasticsearch, prefix: str) -> None:
    """Remove every index and template of ``prefix``, so a rerun starts clean."""
    es.options(ignore_status=404).indices.delete(index=f"{prefix}-*", expand_wildcards="all")
    es.options(ignore_status=404).indices.delete_index_template(name=f"{prefix}-*")


def summarise(es: Elasticsearch, prefix: str, mbox: Path) -> DemoSummary:
    """Articles, copies and stories in the index; the digests in the mail sink."""
    names = IndexNames(prefix)
    es.indices.refresh(index=names.pattern)
    response = es.search(
        index=names.articles,
        size=0,
        track_total_hits=True,
        aggs={
            "languages": {"terms": {"field": "language", "size": 50}},
            "sources": {"terms": {"field": "source", "size": 200}},
            "stories": {"cardinality": {"field": "story_id"}},
        },
    )
    aggs = response["aggregations"]
    summary = DemoSummary(
        articles=int(response["hits"]["total"]["value"]),
        stories=int(aggs["stories"]["value"]),
        by_language={b["key"]: b["doc_count"] for b in aggs["languages"]["buckets"]},
        by_source={b["key"]: b["doc_count"] for b in aggs["sources"]["buckets"]},
        mbox=str(mbox),
    )
    copies = es.search(
        index=names.articles,
        size=100,
        query={"exists": {"field": "duplicate_of"}},
        source_includes=["url", "duplicate_of", "duplicate_kind", "similarity"],
    )["hits"]["hits"]
    summary.duplicates = len(copies)
    originals: dict[str, str] = {}
    ids = sorted({hit["_source"]["duplicate_of"] for hit in copies})
    if ids:
        found = es.mget(index=names.articles, ids=ids, source_includes=["url"])["docs"]
        originals = {doc["_id"]: doc["_source"]["url"] for doc in found if doc.get("found")}
    for hit in sorted(copies, key=lambda h: h["_source"]["url"]):
        doc = hit["_source"]
        summary.copies.append(
            {
                "url": doc["url"],
                "kind": doc.get("duplicate_kind") or "copy",
                "similarity": doc.get("similarity"),
                "of": originals.get(doc["duplicate_of"], doc["duplicate_of"]),
            }
        )
    summary.reports = int(
        es.count(index=names.articles, query={"term": {"story_relation": "same_event"}})["count"]
    )
    summary.groups = _story_groups(es, names)
    summary.alerts = int(
        es.count(index=names.alert_outbox, query={"term": {"kind": "alert"}})["count"]
    )
    summary.mails = [
        {
            "to": str(m.get("X-RcptTo") or m.get("To") or ""),
            "subject": str(m.get("Subject", "")),
            "stories": _story_titles(m),
        }
        for m in read_mbox(mbox)
    ]
    # A Russian query in the base form finds inflected forms in any Russian article.
    found = search(es, names, SEARCH_QUERY, language="ru", size=5)
    summary.search_query = SEARCH_QUERY
    summary.search_total = found.total
    summary.search_hits = [
        {"title": hit.title, "language": hit.language, "source": hit.source} for hit in found.hits
    ]
    return summary


def _story_groups(es: Elasticsearch, names: IndexNames) -> list[dict[str, Any]]:
    """The stories of more than one article, earliest published article first."""
    response = es.search(
        index=names.articles,
        size=0,
        aggs={
            "stories": {
                "terms": {"field": "story_id", "min_doc_count": 2, "size": 500},
                "aggs": {
                    "articles": {
                        "top_hits": {
                            "size": 100,
                            "sort": [{"published": "asc"}],
                            "_source": ["url", "title", "language"],
                        }
                    }
                },
            }
        },
    )
    groups = []
    for bucket in response["aggregations"]["stories"]["buckets"]:
        hits = [hit["_source"] for hit in bucket["articles"]["hits"]["hits"]]
        groups.append(
            {
                "title": hits[0].get("title", ""),
                "languages": sorted({hit.get("language", "") for hit in hits}),
                "urls": [hit["url"] for hit in hits],
            }
        )
    return sorted(groups, key=lambda group: group["urls"][0])


def _story_titles(message: EmailMessage) -> list[str]:
    """The numbered story titles of a digest's plain-text part."""
    body = message.get_body(("plain",))
    text = body.get_content() if isinstance(body, EmailMessage) else ""
    return [m.group(1).strip() for m in re.finditer(r"(?m)^\d+\. (.+)$", text)]


def print_summary(summary: DemoSummary, console: Console) -> None:
    """The demo's report for people."""
    base_url = summary.site
    for run in summary.dags:
        state = "[green]success[/green]" if run.ok else "[red]failed[/red]"
        console.print(f"airflow dags test {run.dag_id:<15} {state} in {run.seconds:.0f} s")
    table = Table("source", "articles")
    for source, count in sorted(summary.by_source.items()):
        table.add_row(source, str(count))
    console.print(table)
    languages = sorted(summary.by_language.items(), key=lambda kv: (-kv[1], kv[0]))
    console.print("Articles by language: " + ", ".join(f"{k} {v}" for k, v in languages))
    for copy in summary.copies:
        score = f" (similarity {copy['similarity']:.2f})" if copy["similarity"] else ""
        console.print(
            f"  {copy['kind']} copy{score}: {escape(copy['url'].removeprefix(base_url))}\n"
            f"      of {escape(copy['of'].removeprefix(base_url))}",
            overflow="fold",
        )
    console.print(
        f"{summary.articles} articles indexed: {summary.stories} stories, "
        f"{summary.duplicates} duplicates, {summary.reports} other outlets' reports of a story; "
        f"{summary.alerts} alerts raised."
    )
    for group in summary.groups:
        console.print(
            f"  story of {len(group['urls'])} articles in {', '.join(group['languages'])}: "
            f"{escape(group['title'])}",
            overflow="fold",
        )
    console.print(f"Digests mailed: {len(summary.mails)}")
    for mail in summary.mails:
        console.print(f"  to {escape(mail['to'])}: {escape(mail['subject'])}", overflow="fold")
        for number, title in enumerate(mail["stories"], start=1):
            console.print(f"     {number:>2}. {escape(title)}", overflow="fold")
    console.print(
        f"Search `newsradar search '{summary.search_query}' --lang ru`: "
        f"{summary.search_total} articles"
    )
    for hit in summary.search_hits:
        console.print(
            f"  {escape('[' + hit['language'] + ']')} {escape(hit['title'])} ({hit['source']})",
            overflow="fold",
        )
    console.print(
        f"[bold]The mails are in {summary.mbox}[/bold] (an mbox: `mutt -f {summary.mbox}`, "
        "or any mail client). Search the articles with "
        f"`NEWSRADAR_INDEX_PREFIX={DEMO_PREFIX} .venv/bin/newsradar search NATO`."
    )


def _config_dir(port: int, run_dir: Path) -> Path:
    """config/demo, or a copy pointing at another port when 8765 is not the one served."""
    shipped = REPO / "config" / "demo"
    if port == DEMO_PORT:
        return shipped
    copy = run_dir / "config"
    copy.mkdir(parents=True, exist_ok=True)
    for name in ("sources.yaml", "alerts.yaml"):
        text = (shipped / name).read_text(encoding="utf-8")
        text = text.replace(f"127.0.0.1:{DEMO_PORT}", f"127.0.0.1:{port}")
        (copy / name).write_text(text, encoding="utf-8")
    return copy


def _start_node(es_url: str | None) -> str:
    """The Elasticsearch URL: NEWSRADAR_ES_URL if set, else the local node (docker/es-up.sh)."""
    if es_url:
        return es_url
    done = subprocess.run(
        ["bash", str(REPO / "docker" / "es-up.sh")], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise DemoFailed(done.stderr.strip() or "docker/es-up.sh failed")
    return local_node_url(os.environ)


def local_node_url(environ: Mapping[str, str]) -> str:
    """The URL of the node es-up.sh starts: it follows NEWSRADAR_ES_PORT / NEWSRADAR_PORT_BASE."""
    # es-up.sh has already refused a bad port, so these cannot fail here.
    ports = ("NEWSRADAR_ES_PORT", "NEWSRADAR_PORT_BASE")
    return load_settings({k: v for k, v in environ.items() if k in ports}).es_url


def run(
    *,
    port: int = DEMO_PORT,
    prefix: str = DEMO_PREFIX,
    state: Path = REPO / ".local",
    console: Console,
) -> DemoSummary:
    """The whole demo; returns its summary. Raises DemoFailed naming the step that failed."""
    es_url = _start_node(os.environ.get("NEWSRADAR_ES_URL"))
    mbox = state / "mail" / "demo.mbox"
    mbox.unlink(missing_ok=True)  # the summary lists this run's mails only
    home = state / "airflow-demo"
    with DemoSite(port=port) as site, MailSink(mbox, port=0) as sink:
        env = demo_environment(
            es_url=es_url,
            prefix=prefix,
            config_dir=_config_dir(port, home),
            smtp_port=sink.port,
            airflow_home=home,
        )
        es = Elasticsearch(es_url, request_timeout=60)
        try:
            with console.status("installing the indices"):
                wipe(es, prefix)
                _run_logged(
                    [sys.executable, "-m", "pipeline.cli", "init"], env, state / "demo-init.log"
                )
            with console.status("preparing Airflow (SQLite, once)"):
                migrate_airflow(env, home)
            with console.status(f"airflow dags test {', '.join(DAGS)}"):
                results = run_dags(DAGS, env, home / "logs" / "dags-test.log")
            summary = summarise(es, prefix, mbox)
            summary.dags = results
            summary.site = site.base_url
        finally:
            es.close()
        summary.mbox = str(mbox.relative_to(REPO) if mbox.is_relative_to(REPO) else mbox)
        if not all(r.ok for r in results):
            failed = next(r for r in results if not r.ok)
            print_summary(summary, console)
            raise DemoFailed(f"airflow dags test {failed.dag_id} failed; see {failed.log}")
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo and print its summary (``--json``: one JSON object on stdout)."""
    parser = argparse.ArgumentParser(prog="python -m devtools.demo", description=__doc__)
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument("--port", type=int, default=DEMO_PORT, help="the demo site's port")
    parser.add_argument("--prefix", default=DEMO_PREFIX, help="index prefix (wiped first)")
    parser.add_argument("--state", type=Path, default=REPO / ".local", help=argparse.SUPPRESS)
    parser.add_argument("--dags-test", nargs="+", metavar="ARG", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.dags_test:  # run_dags' Airflow process: RESULTS_FILE DAG_ID...
        return _dags_test(Path(args.dags_test[0]), args.dags_test[1:])
    # A wide console when piped, so tables and URLs are not cut at 80 columns.
    console = Console(stderr=args.json, width=None if sys.stdout.isatty() else 130)
    try:
        summary = run(port=args.port, prefix=args.prefix, state=args.state, console=console)
    except NewsradarError as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(asdict(summary), ensure_ascii=False))
    else:
        print_summary(summary, console)
    return 0


if __name__ == "__main__":
    sys.exit(main())
