"""What a run over the scale site left behind, and the clean single-process run to compare with.

An ``Outcome`` names everything by URL path, so two runs over the site on different ports (the
reference on the plain local node, the cluster run) compare directly: the articles, the stories
as sets of pages, the alerts as (rule, the pages of its story), and the digests mailed.
"""

from __future__ import annotations

import mailbox
import os
import re
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from elasticsearch import Elasticsearch
from elasticsearch.helpers import scan

from devtools.mailsink import MailSink
from devtools.scalesite import ScaleSite
from pipeline.store.names import IndexNames

REPO: Final = Path(__file__).resolve().parents[2]
NEWSRADAR: Final = str(Path(sys.executable).with_name("newsradar"))
_ALERT_CODE: Final = re.compile(r"nr:([0-9a-f]{40})")

Story = frozenset[str]


@dataclass
class Outcome:
    """Articles, stories, alerts and digests of one run, by URL path."""

    articles: Counter[str] = field(default_factory=Counter)  # path -> documents
    stories: set[Story] = field(default_factory=set)
    alerts: set[tuple[str, Story]] = field(default_factory=set)
    # rule -> the stories its sent digests listed (each story as its pages)
    digested: dict[str, set[Story]] = field(default_factory=dict)
    digests: int = 0  # digest records sent
    relations: Counter[str] = field(default_factory=Counter)  # first, copy, same_event

    @property
    def duplicates(self) -> int:
        """Documents beyond the first for a URL."""
        return sum(count - 1 for count in self.articles.values() if count > 1)


def _scan(es: Elasticsearch, index: str, query: dict[str, Any], fields: list[str]) -> Iterator[Any]:
    """Every hit of ``query``, by scroll: one consistent view across every shard and node.

    (search_after on ``_doc`` alone is not: ``_doc`` is only an order within a shard, so
    pages of a several-shard index overlap and leave documents out.)
    """
    yield from scan(es, index=index, query={"query": query}, _source_includes=fields, size=1000)


def collect(es: Elasticsearch, prefix: str) -> Outcome:
    """Read the run's outcome from its indices."""
    names = IndexNames(prefix)
    es.indices.refresh(index=names.pattern)
    outcome = Outcome()
    members: dict[str, set[str]] = defaultdict(set)
    story_of: dict[str, str] = {}
    path_of: dict[str, str] = {}
    fields = ["url", "story_id", "story_relation"]
    for hit in _scan(es, names.articles, {"match_all": {}}, fields):
        path = urlsplit(hit["_source"]["url"]).path
        outcome.articles[path] += 1
        outcome.relations[str(hit["_source"].get("story_relation"))] += 1
        members[hit["_source"]["story_id"]].add(path)
        story_of[hit["_id"]] = hit["_source"]["story_id"]
        path_of[hit["_id"]] = path
    outcome.stories = {frozenset(paths) for paths in members.values()}
    story_by_alert: dict[str, Story] = {}
    alert_fields = ["rule_id", "first_article", "story_id"]
    for hit in _scan(es, names.alert_outbox, {"term": {"kind": "alert"}}, alert_fields):
        source = hit["_source"]
        # The story its first article is in now: a story's id changes when an earlier report
        # arrives late, and the alert stands for the whole story.
        story = story_of.get(source["first_article"], source["story_id"])
        pages = frozenset(members.get(story, ()))
        story_by_alert[hit["_id"]] = pages
        outcome.alerts.add((source["rule_id"], pages))
    digest_query = {"bool": {"filter": [{"term": {"kind": "digest"}}, {"term": {"state": "sent"}}]}}
    for hit in _scan(es, names.alert_outbox, digest_query, ["rule_id", "alert_ids"]):
        outcome.digests += 1
        listed = outcome.digested.setdefault(hit["_source"]["rule_id"], set())
        listed.update(story_by_alert[a] for a in hit["_source"]["alert_ids"])
    return outcome


@dataclass
class MailCheck:
    """The mbox read against the outbox: what was mailed, and how often."""

    messages: int = 0
    message_ids_twice: list[str] = field(default_factory=list)
    alerts_twice: list[str] = field(default_factory=list)  # alert ids in two messages of a rule
    by_rule: Counter[str] = field(default_factory=Counter)  # messages per rule and recipient

    @property
    def sent_twice(self) -> int:
        """Messages that repeat one already mailed (by Message-ID or by an alert in it)."""
        return len(self.message_ids_twice) + len(self.alerts_twice)


def read_messages(mbox: Path) -> list[EmailMessage]:
    """Every message of the sink's mbox."""
    box = mailbox.mbox(mbox)
    try:
        return [message_from_bytes(m.as_bytes(), policy=policy.default) for m in box]
    finally:
        box.close()


def check_mail(mbox: Path, *, skip: int = 0) -> MailCheck:
    """Message-IDs and alert codes of the digests mailed (after the first ``skip`` messages)."""
    check = MailCheck()
    seen_ids: set[str] = set()
    seen_alerts: set[tuple[str, str]] = set()
    for message in read_messages(mbox)[skip:]:
        check.messages += 1
        message_id = str(message["Message-ID"])
        recipient = str(message["X-RcptTo"])
        if message_id in seen_ids:
            check.message_ids_twice.append(message_id)
        seen_ids.add(message_id)
        subject = str(message["Subject"])
        check.by_rule[subject.split(":")[0].removeprefix("[newsradar] ") + " → " + recipient] += 1
        body = message.get_body(preferencelist=("plain",))
        text = body.get_content() if body is not None else ""
        for code in sorted(set(_ALERT_CODE.findall(text))):
            if (code, recipient) in seen_alerts:
                check.alerts_twice.append(code)
            seen_alerts.add((code, recipient))
    return check


def _environment(es_url: str, prefix: str, config: Path, smtp_port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NEWSRADAR_", "AIRFLOW"))}
    env.update(
        {
            "NEWSRADAR_ES_URL": es_url,
            "NEWSRADAR_INDEX_PREFIX": prefix,
            "NEWSRADAR_CONFIG_DIR": str(config),
            "NEWSRADAR_ALLOW_PRIVATE_NETWORKS": "1",
            "NEWSRADAR_SMTP_HOST": "127.0.0.1",
            "NEWSRADAR_SMTP_PORT": str(smtp_port),
            "NEWSRADAR_CRAWL_DELAY": "0",
            "NEWSRADAR_CRAWL_CONCURRENCY": "8",
        }
    )
    return env


def _newsradar(env: Mapping[str, str], *args: str) -> str:
    done = subprocess.run(
        [NEWSRADAR, *args], env=dict(env), capture_output=True, text=True, timeout=1200
    )
    if done.returncode != 0:
        raise AssertionError(f"newsradar {' '.join(args)} failed: {done.stderr.strip()[-2000:]}")
    return done.stdout


@dataclass
class Reference:
    """The reference run: its outcome, its mail, and how long it took."""

    outcome: Outcome
    mail: MailCheck
    seconds: float
    mbox: Path


def run_reference(
    site: ScaleSite, es_url: str, prefix: str, work: Path, *, digest: str = "1s"
) -> Reference:
    """One clean single-process run of both waves: ``newsradar run``, the second wave, again.

    The site must be running with only its first wave published; it ends with both.
    """
    work.mkdir(parents=True, exist_ok=True)
    config = site.write_config(work / "config", REPO / "config" / "alerts.yaml", digest=digest)
    mbox = work / "reference.mbox"
    mbox.unlink(missing_ok=True)
    es = Elasticsearch(es_url, request_timeout=120)
    try:
        es.options(ignore_status=404).indices.delete(index=f"{prefix}-*", expand_wildcards="all")
        es.options(ignore_status=404).indices.delete_index_template(name=f"{prefix}-*")
        started = time.monotonic()
        with MailSink(mbox, port=0) as sink:
            env = _environment(es_url, prefix, config, sink.port)
            _newsradar(env, "init")
            _newsradar(env, "run")
            site.publish_all()
            # --force: the feeds were polled a moment ago and are not due yet.
            _newsradar(env, "run", "--force")
            time.sleep(1.5)  # the digest interval, from the first digest's window end
            _newsradar(env, "alerts", "send")
        seconds = time.monotonic() - started
        return Reference(collect(es, prefix), check_mail(mbox), seconds, mbox)
    finally:
        es.close()


def main() -> int:
    """``python tests/cluster/scale_reference.py [PAGES]``: the reference run, summarised."""
    pages = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    prefix = f"scale-ref-{datetime.now(UTC):%H%M%S}"
    with ScaleSite(pages=pages) as site:
        ref = run_reference(site, "http://127.0.0.1:9200", prefix, REPO / ".local" / "scale-ref")
    out = ref.outcome
    print(
        f"{len(out.articles)} URLs, {sum(out.articles.values())} documents in {ref.seconds:.0f} s"
    )
    print(f"relations {dict(out.relations)}; {len(out.stories)} stories, ", end="")
    print(f"{sum(len(s) > 1 for s in out.stories)} of several pages")
    print(f"alerts {Counter(rule for rule, _ in out.alerts)}")
    print(f"digests sent {out.digests}; mails {ref.mail.messages} {dict(ref.mail.by_rule)}")
    print(f"mailed twice {ref.mail.sent_twice}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
