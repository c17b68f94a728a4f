"""Alert latency: from a 1000-article batch being indexed to its digests reaching SMTP.

Indexes 1000 generated articles (some on NATO enlargement in five languages, some copies of
the same story from other sources, the rest unrelated) into a throw-away install on the local
node, then runs match_new and send_digests against a loopback aiosmtpd server, and prints the
latency from the bulk write's acknowledgement to the last digest's arrival. Target: <= 5 s.
"""

# Cyrillic strings are meant to be Cyrillic, not look-alike Latin letters.
# ruff: noqa: RUF001

from __future__ import annotations

import random
import socket
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from elasticsearch import Elasticsearch, helpers

from pipeline.alerts.match import match_new
from pipeline.alerts.rules import store_rules
from pipeline.alerts.send import send_digests
from pipeline.alerts.smtp import SmtpConfig
from pipeline.settings import Config, Source, load_config, load_settings
from pipeline.store.client import IndexNames, install

REPO = Path(__file__).resolve().parent.parent
ARTICLES = 1000
TARGET_SECONDS = 5.0
NOW = datetime(2025, 11, 1, 12, 0, tzinfo=UTC)

# (language, title, text) of on-topic articles; each becomes a story with copies.
ON_TOPIC = [
    (
        "en",
        "Finland completes its NATO accession",
        "Finland joined NATO today, the alliance's "
        "enlargement reaching the Russian border. Membership was approved by every ally.",
    ),
    (
        "ru",
        "Вступление Финляндии в НАТО",
        "Финляндия завершила вступление в НАТО, расширение альянса дошло до российской границы.",
    ),
    (
        "uk",
        "Розширення НАТО на північ",
        "Швеція завершила вступ до НАТО; розширення альянсу змінює безпеку Балтики.",
    ),
    (
        "fr",
        "L'adhésion de la Suède à l'OTAN",
        "La Suède achève son adhésion à l'OTAN, un "
        "élargissement historique de l'Alliance atlantique.",
    ),
    (
        "de",
        "Schwedens NATO-Beitritt besiegelt",
        "Mit dem Beitritt Schwedens ist die Erweiterung der NATO im Norden abgeschlossen.",
    ),
]
FILLER = (
    "The harbour festival drew record crowds as tall ships returned to the old port. "
    "Shipping shares climbed while freight rates rebounded after a quiet summer. "
    "Forecasters warned of gales and flooding along the northern coast this weekend. "
)
SOURCES = [f"source-{n:02d}" for n in range(20)]


@dataclass
class Sink:
    """An aiosmtpd handler that records when each message arrived."""

    arrivals: list[float] = field(default_factory=list)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.arrivals.append(time.perf_counter())
        return "250 OK"


def _articles(rng: random.Random) -> dict[str, dict[str, Any]]:
    docs: dict[str, dict[str, Any]] = {}
    for number in range(ARTICLES):
        doc_id = f"bench-{number:05d}"
        # Every 20th article is on topic; its story has copies from three sources.
        if number % 20 < 3:
            story = number // 20
            lang, title, text = ON_TOPIC[story % len(ON_TOPIC)]
            title = f"{title} ({story})"
            source = SOURCES[(story + number) % len(SOURCES)]
            story_id = f"story-{story}"
        else:
            lang, title = "en", f"Local news item {number}"
            text = " ".join(rng.sample(FILLER.split(". "), 3))
            source, story_id = rng.choice(SOURCES), doc_id
        docs[doc_id] = {
            "url": f"https://news.example.org/{doc_id}",
            "source": source,
            "title": title,
            "text": text,
            f"title_{lang}": title,
            f"text_{lang}": text,
            "language": lang,
            "published": NOW.isoformat(),
            "indexed": NOW.isoformat(),
            "story_id": story_id,
        }
    return docs


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def main() -> int:
    settings = load_settings({"NEWSRADAR_INDEX_PREFIX": f"bench-alerts-{uuid.uuid4().hex[:8]}"})
    shipped = load_config(load_settings({"NEWSRADAR_CONFIG_DIR": str(REPO / "config")}))
    es = Elasticsearch(settings.es_url, request_timeout=60)
    names = IndexNames(settings.index_prefix)
    config = Config(
        settings=settings,
        sources=tuple(
            Source(id=s, name=s.title(), homepage=f"https://{s}.example.org") for s in SOURCES
        ),
        alerts=shipped.alerts,
    )
    sink = Sink()
    port = _free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    try:
        install(es, settings.index_prefix)
        store_rules(es, names, config.alerts, now=NOW)
        docs = _articles(random.Random(7))
        controller.start()
        smtp = SmtpConfig(host="127.0.0.1", port=port, sender="bench@newsradar.test")

        # The clock starts when Elasticsearch has acknowledged the batch, as the crawl's
        # index stage would hand it over; no refresh is forced here (match_new does its own).
        helpers.bulk(
            es,
            ({"_index": names.articles, "_id": i, "_source": d} for i, d in docs.items()),
            chunk_size=500,
        )
        indexed = time.perf_counter()
        matched = match_new(es, names, list(docs), now=NOW)
        after_match = time.perf_counter()
        sent = send_digests(es, names, config, smtp, now=NOW + timedelta(seconds=1))
        done = time.perf_counter()
        last = max(sink.arrivals) if sink.arrivals else done
        latency = last - indexed
        print(f"articles indexed        {ARTICLES}")
        print(f"rules                   {matched.rules}")
        print(f"matches (rule, article) {matched.matches}")
        print(f"alerts created          {matched.created} (one per story)")
        print(f"digests sent            {sent.sent} ({len(sink.arrivals)} reached SMTP)")
        print(f"match_new               {after_match - indexed:.2f} s")
        print(f"send_digests            {done - after_match:.2f} s")
        verdict = "ok" if latency <= TARGET_SECONDS else "OVER TARGET"
        print(
            f"indexed -> last digest  {latency:.2f} s (target <= {TARGET_SECONDS:.0f} s: {verdict})"
        )
        return 0 if latency <= TARGET_SECONDS and sink.arrivals else 1
    finally:
        controller.stop()
        es.options(ignore_status=404).indices.delete(
            index=f"{settings.index_prefix}-*", expand_wildcards="all"
        )
        es.options(ignore_status=404).indices.delete_index_template(
            name=f"{settings.index_prefix}-*"
        )
        es.close()


if __name__ == "__main__":
    sys.exit(main())
