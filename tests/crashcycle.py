"""One cycle of the main job (``jobs.run_cycle``) in a process of its own, optionally killed.

``python tests/crashcycle.py --now ISO [--crash-at BOUNDARY]`` runs the cycle with the settings
in the environment (``NEWSRADAR_*``). With ``--crash-at`` the process SIGKILLs itself at that
boundary: no exception, no ``finally``, no flush, exactly what an out-of-memory kill or a lost
machine leaves behind. The boundaries that lie inside the SMTP conversation are the mail
server's to cut (tests/test_crashpoints.py kills this process from there).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from collections.abc import Callable
from datetime import datetime
from typing import Any

from devtools.demo import DEMO_CRAWL
from pipeline import jobs
from pipeline.alerts import match
from pipeline.crawl import claims as crawl_frontier
from pipeline.settings import load_config, load_settings
from pipeline.store.client import connect

# boundary -> (module, function, "before" or "after" the call to die)
BOUNDARIES: dict[str, tuple[Any, str, str]] = {
    "after_pull": (jobs, "pull", "after"),
    "after_indexing": (crawl_frontier, "record_outcomes", "before"),
    "after_outcomes": (jobs, "crawl_frontier", "after"),
    "after_matching": (match, "run_rules", "after"),
    "after_outbox": (match, "match_new", "after"),
    "before_delivery": (jobs, "deliver", "before"),
}


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _arm(boundary: str) -> None:
    module, name, when = BOUNDARIES[boundary]
    real: Callable[..., Any] = getattr(module, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if when == "before":
            _die()
        result = real(*args, **kwargs)
        _die()
        return result

    setattr(module, name, wrapper)


def main(argv: list[str] | None = None) -> int:
    """Run the cycle; print its counts as one JSON line."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--now", required=True, type=datetime.fromisoformat)
    parser.add_argument("--crash-at", choices=sorted(BOUNDARIES))
    args = parser.parse_args(argv)
    if args.crash_at:
        _arm(args.crash_at)
    settings = load_settings()
    config = load_config(settings)
    es = connect(settings)
    try:
        report = jobs.run_cycle(config, es, now=args.now, policy=DEMO_CRAWL, force_pull=True)
    finally:
        es.close()
    print(json.dumps({**report.ingest.counts(), "sent": report.delivery.sent}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
