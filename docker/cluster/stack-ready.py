"""Wait until the Airflow that docker/cluster/stack.sh started is whole; stack.sh calls this.

Whole means: the API server reports the metadatabase, scheduler, DAG processor and triggerer
healthy; the scheduler's own health endpoint answers; the admin login gets a token; the DAGs
are parsed without import errors; and every named Celery worker answers a ping through the
broker. Run with the cluster's AIRFLOW__* environment (the Celery app reads it). One line on
stderr and exit 1 when a step fails or the time runs out.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import httpx

# docker/ is on the path (stack.sh sets PYTHONPATH): the waiter and health check of `make up`.
from airflow_ready import NotReady, Waiter, healthy


def _token(client: httpx.Client, user: str, password: str) -> str | None:
    response = client.post("/auth/token", json={"username": user, "password": password})
    if response.status_code in (200, 201):
        return str(response.json()["access_token"])
    if response.status_code in (401, 403):
        raise NotReady(f"the API refuses the login of {user!r}: HTTP {response.status_code}")
    return None


def _dags_parsed(client: httpx.Client, expected: Sequence[str]) -> list[str] | None:
    errors = client.get("/api/v2/importErrors").json().get("import_errors", [])
    if errors:
        first = errors[0]
        raise NotReady(f"DAG import error in {first.get('filename')}: {first.get('stack_trace')}")
    dags = client.get("/api/v2/dags", params={"limit": 100}).json().get("dags", [])
    found = sorted(d["dag_id"] for d in dags)
    return found if set(expected) <= set(found) else None


def _workers_answer(names: Sequence[str]) -> list[str] | None:
    # Imported here: the Celery app reads the broker from the AIRFLOW__* environment.
    from airflow.providers.celery.executors.celery_executor import app

    replies = app.control.ping(destination=list(names), timeout=2.0)
    answered = sorted(name for reply in replies for name in reply)
    return answered if set(names) <= set(answered) else None


def main(argv: Sequence[str] | None = None) -> int:
    """Wait for each step in turn; print what answered."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--api", required=True, help="the API server's URL")
    parser.add_argument("--scheduler-health", required=True, help="the scheduler's health URL")
    parser.add_argument("--user", required=True)
    parser.add_argument("--password-env", required=True, help="variable holding the password")
    parser.add_argument("--dags", nargs="+", default=[])
    parser.add_argument("--workers", nargs="+", default=[], help="Celery names to ping")
    parser.add_argument("--timeout", type=float, default=300)
    parser.add_argument(
        "--watch", nargs=3, action="append", default=[], metavar=("NAME", "PID", "LOG")
    )
    args = parser.parse_args(argv)
    watched = [(name, Path(pid), Path(log)) for name, pid, log in args.watch]
    waiter = Waiter(args.timeout, watched)
    started = time.monotonic()
    try:
        with httpx.Client(base_url=args.api, timeout=10) as client:
            waiter.until("the components did not all report healthy", lambda: healthy(client))
            waiter.until(
                f"the scheduler's health check {args.scheduler_health} did not answer",
                lambda: httpx.get(args.scheduler_health, timeout=5).raise_for_status() or True,
            )
            password = os.environ[args.password_env]
            token = waiter.until("no API token", lambda: _token(client, args.user, password))
            client.headers["Authorization"] = f"Bearer {token}"
            dags = waiter.until(
                f"the DAGs {' '.join(args.dags)} were not all parsed",
                lambda: _dags_parsed(client, args.dags),
            )
        workers = waiter.until(
            f"the Celery workers {' '.join(args.workers)} did not all answer a ping",
            lambda: _workers_answer(args.workers),
        )
    except NotReady as exc:
        print(f"stack-ready: {exc}", file=sys.stderr)
        return 1
    took = time.monotonic() - started
    print(
        f"stack-ready: healthy in {took:.0f} s; DAGs {' '.join(dags)}; workers {' '.join(workers)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
