"""Wait until the Airflow that docker/up.sh started can run tasks; up.sh calls this.

An API that answers proves little: the workers reach the execution API by a URL of their own
(a wrong one fails every task with a ConnectError while the health endpoint says healthy), and
a task needs the scheduler, the DAG processor and a worker too. So this waits for every
component's health, checks the execution API at the URL the workers use, unpauses our DAGs,
then triggers one run of a DAG and follows it until its tasks succeed. One line on stderr and
exit 1 when any step fails or the time runs out.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import httpx

_T = TypeVar("_T")
_COMPONENTS = ("metadatabase", "scheduler", "dag_processor", "triggerer")


class NotReady(Exception):
    """A step failed for good, or did not succeed in time; the message says which and why."""


class Waiter:
    """Polls steps against one deadline, failing early when a watched process has exited."""

    def __init__(self, timeout: float, watched: Sequence[tuple[str, Path, Path]]) -> None:
        self.deadline = time.monotonic() + timeout
        self.timeout = timeout
        self.watched = watched

    def until(self, what: str | Callable[[], str], attempt: Callable[[], _T | None]) -> _T:
        """Call ``attempt`` every second until it returns a value; NotReady says ``what``."""
        last = ""
        while True:
            self._check_processes()
            try:
                result = attempt()
            except (httpx.HTTPError, OSError) as exc:  # OSError: a broker or socket not up yet
                result, last = None, f": {type(exc).__name__}: {exc}"
            if result is not None:
                return result
            if time.monotonic() > self.deadline:
                said = what if isinstance(what, str) else what()
                raise NotReady(f"{said} within {self.timeout:.0f} s{last}")
            time.sleep(1)

    def _check_processes(self) -> None:
        for name, pid_file, log in self.watched:
            try:
                pid = int(pid_file.read_text().strip())
                os.kill(pid, 0)
            except (OSError, ValueError):
                raise NotReady(f"{name} exited while starting; see {log}") from None


def healthy(client: httpx.Client) -> dict[str, Any] | None:
    """The API server's health report when every component is healthy, else None."""
    response = client.get("/api/v2/monitor/health")
    if response.status_code != 200:
        return None
    health: dict[str, Any] = response.json()
    statuses = [(health.get(c) or {}).get("status") for c in _COMPONENTS]
    return health if all(s == "healthy" for s in statuses) else None


def _token(client: httpx.Client, passwords: Path) -> str:
    users = json.loads(passwords.read_text(encoding="utf-8"))
    user = "admin" if "admin" in users else next(iter(users))
    response = client.post("/auth/token", json={"username": user, "password": users[user]})
    if response.status_code != 201:
        raise NotReady(f"cannot log in to the API as {user!r}: HTTP {response.status_code}")
    return str(response.json()["access_token"])


def _import_errors(client: httpx.Client) -> str:
    errors = client.get("/api/v2/importErrors").json().get("import_errors", [])
    lines = [f"{e['filename']}: {e['stack_trace'].strip().splitlines()[-1]}" for e in errors]
    return "; ".join(lines) or "none"


def check(args: argparse.Namespace) -> str:
    """Run every step; the success line, or NotReady."""
    watched = [(name, Path(pid), Path(log)) for name, pid, log in args.watch]
    wait = Waiter(args.timeout, watched)
    # trust_env off: a proxy from the environment must not stand between us and loopback.
    with httpx.Client(base_url=args.api, timeout=10, trust_env=False) as client:
        wait.until("the API server did not answer", lambda: _answers(client))
        wait.until("not every Airflow component reported healthy", lambda: healthy(client))
        # The URL the workers use, as they use it: it must reach this API server.
        execution = args.execution_api.rstrip("/") + "/health"
        try:
            with httpx.Client(timeout=10, trust_env=False) as workers_view:
                workers_view.get(execution).raise_for_status()
        except httpx.HTTPError as exc:
            raise NotReady(
                f"the workers' execution API URL {args.execution_api} does not answer "
                f"({type(exc).__name__}: {exc}); every task would fail"
            ) from None
        passwords = Path(args.passwords)
        wait.until(
            "no login was generated in " + str(passwords), lambda: passwords.is_file() or None
        )
        client.headers["Authorization"] = "Bearer " + _token(client, passwords)
        for dag_id in args.dags:
            _unpause_when_parsed(wait, client, dag_id)
        started = time.monotonic()
        run = wait.until(
            f"the {args.check_dag} run could not be triggered",
            lambda: _written(
                client.post(
                    f"/api/v2/dags/{args.check_dag}/dagRuns",
                    json={"logical_date": None, "note": "make up: a run to check that tasks run"},
                )
            ),
        )
        run_id = run.json()["dag_run_id"]
        runs = f"/api/v2/dags/{args.check_dag}/dagRuns/{run_id}"
        try:
            state = wait.until(
                f"the {args.check_dag} run {run_id} did not finish",
                lambda: _finished(client, runs),
            )
        except NotReady as exc:
            raise NotReady(f"{exc}; {_task_states(client, runs, args)}") from None
        if state != "success":
            raise NotReady(
                f"no task could run: the {args.check_dag} run {run_id} ended {state}; "
                f"{_task_states(client, runs, args)}"
            )
    return (
        f"a {args.check_dag} run ({run_id}) succeeded {time.monotonic() - started:.0f} s "
        "after it was triggered: tasks run"
    )


def _unpause_when_parsed(wait: Waiter, client: httpx.Client, dag_id: str) -> None:
    """Wait until the DAG processor has parsed ``dag_id``, then unpause it."""
    wait.until(
        lambda: f"the DAG {dag_id} was not parsed (import errors: {_import_errors(client)})",
        lambda: _known(client, dag_id),
    )
    # Seen before, it may have been paused by hand; new DAGs start unpaused anyway.
    wait.until(
        f"the DAG {dag_id} could not be unpaused",
        lambda: _written(client.patch(f"/api/v2/dags/{dag_id}", json={"is_paused": False})),
    )


def _written(response: httpx.Response) -> httpx.Response | None:
    """The response of a write the API took; None to try again after a server error.

    Standalone Airflow keeps its metadata in SQLite, and a write that meets the DAG processor's
    or the scheduler's lock fails with a 500 that the next attempt does not meet. A refusal
    (4xx) is for good.
    """
    if response.status_code >= 500:
        raise httpx.HTTPStatusError(
            f"HTTP {response.status_code} from {response.request.url}",
            request=response.request,
            response=response,
        )
    if response.is_error:
        raise NotReady(f"the API refused {response.request.url}: HTTP {response.status_code}")
    return response


def _answers(client: httpx.Client) -> bool | None:
    return True if client.get("/api/v2/monitor/health").status_code == 200 else None


def _known(client: httpx.Client, dag_id: str) -> bool | None:
    return True if client.get(f"/api/v2/dags/{dag_id}").status_code == 200 else None


def _finished(client: httpx.Client, run: str) -> str | None:
    response = client.get(run)
    response.raise_for_status()
    state = str(response.json()["state"])
    return state if state in ("success", "failed") else None


def _task_states(client: httpx.Client, run: str, args: argparse.Namespace) -> str:
    """Each task's state and where its log is, for the error line."""
    try:
        found = client.get(f"{run}/taskInstances").json().get("task_instances", [])
    except (httpx.HTTPError, ValueError):
        found = []
    states = ", ".join(f"{t['task_id']} {t['state']}" for t in found) or "no task instance"
    return f"tasks: {states}; logs in {args.task_logs} and {args.scheduler_log}"


def main(argv: Sequence[str] | None = None) -> int:
    """``python docker/airflow_ready.py --api URL --execution-api URL ...``; see up.sh."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--api", required=True, help="the API server's base URL")
    parser.add_argument("--execution-api", required=True, help="the workers' execution API URL")
    parser.add_argument("--passwords", required=True, help="the generated simple-auth passwords")
    parser.add_argument("--dags", nargs="+", required=True, help="DAGs to wait for and unpause")
    parser.add_argument("--check-dag", required=True, help="the DAG to trigger once")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds for every step")
    parser.add_argument("--task-logs", required=True, help="Airflow's task log folder")
    parser.add_argument("--scheduler-log", required=True, help="the scheduler's output")
    parser.add_argument(
        "--watch",
        nargs=3,
        action="append",
        default=[],
        metavar=("NAME", "PIDFILE", "LOG"),
        help="a process that must stay up",
    )
    args = parser.parse_args(argv)
    try:
        print(f"up: {check(args)}")
    except NotReady as exc:
        print(f"up: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
