"""A small client of the loopback cluster's Airflow REST API (docker/cluster/stack.sh).

Logs in with the admin login that ``stack.sh up`` wrote to ``$cluster_state/airflow.env``,
triggers DAG runs, waits for them to end, and lists runs and task instances with the fields
the cluster tests look at (state, try number, the host that ran the task).
"""

from __future__ import annotations

import os
import shlex
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

__all__ = [
    "FINISHED",
    "AirflowClient",
    "TaskInstance",
    "cluster_state",
    "read_env_file",
]

FINISHED = frozenset({"success", "failed"})
"""The states a DAG run ends in."""

_REPO = Path(__file__).resolve().parents[2]


def cluster_state() -> Path:
    """The cluster's state folder: NEWSRADAR_CLUSTER_STATE, as docker/cluster/ports.sh says."""
    return Path(os.environ.get("NEWSRADAR_CLUSTER_STATE") or _REPO / ".local" / "cluster")


def read_env_file(path: Path) -> dict[str, str]:
    """``NAME=value`` lines, shell-quoted or not, as the scripts under docker/cluster write them."""
    values: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        [word] = shlex.split(line)
        name, _, value = word.partition("=")
        values[name] = value
    return values


@dataclass(frozen=True)
class TaskInstance:
    """One task instance of a run, as the API lists it."""

    task_id: str
    map_index: int
    state: str | None
    try_number: int
    hostname: str

    @classmethod
    def from_api(cls, item: dict[str, Any]) -> TaskInstance:
        """From one entry of ``taskInstances``."""
        return cls(
            task_id=item["task_id"],
            map_index=item["map_index"],
            state=item["state"],
            try_number=item["try_number"],
            hostname=item.get("hostname") or "",
        )


class AirflowClient:
    """The API server's REST API with a bearer token, renewed when it expires."""

    def __init__(self, api: str, user: str, password: str, *, timeout: float = 30) -> None:
        self._user = user
        self._password = password
        self._http = httpx.Client(base_url=api, timeout=timeout)

    @classmethod
    def from_cluster(cls, state: Path | None = None) -> AirflowClient:
        """The client of the running cluster, from its ``airflow.env``."""
        env = read_env_file((state or cluster_state()) / "airflow.env")
        return cls(
            env["CLUSTER_AIRFLOW_API"], env["CLUSTER_AIRFLOW_USER"], env["CLUSTER_AIRFLOW_PASSWORD"]
        )

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> AirflowClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def login(self) -> None:
        """Get a token for the user and password given."""
        response = self._http.post(
            "/auth/token", json={"username": self._user, "password": self._password}
        )
        response.raise_for_status()
        self._http.headers["Authorization"] = f"Bearer {response.json()['access_token']}"

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """One call; logs in first, and again once when the token was refused."""
        if "Authorization" not in self._http.headers:
            self.login()
        response = self._http.request(method, path, **kwargs)
        if response.status_code == 401:
            self.login()
            response = self._http.request(method, path, **kwargs)
        response.raise_for_status()
        return response.json() if response.content else None

    def _pages(self, path: str, key: str, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
        offset = 0
        while True:
            page = self.request("GET", path, params={**params, "limit": 100, "offset": offset})
            items: list[dict[str, Any]] = page[key]
            yield from items
            offset += len(items)
            if not items or offset >= page["total_entries"]:
                return

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None) -> str:
        """Start a run of ``dag_id`` now; its run id."""
        run = self.request(
            "POST",
            f"/api/v2/dags/{dag_id}/dagRuns",
            json={"logical_date": None, "conf": conf or {}},
        )
        return str(run["dag_run_id"])

    def run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        """One DAG run."""
        run: dict[str, Any] = self.request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")
        return run

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float) -> dict[str, Any]:
        """The run once it has ended; TimeoutError with its last state when it does not."""
        deadline = time.monotonic() + timeout
        while True:
            run = self.run(dag_id, run_id)
            if run["state"] in FINISHED:
                return run
            if time.monotonic() > deadline:
                raise TimeoutError(f"{dag_id} {run_id} still {run['state']} after {timeout:.0f} s")
            time.sleep(2)

    def runs(self, dag_id: str, run_type: str | None = None) -> list[dict[str, Any]]:
        """The runs of ``dag_id``, oldest first; only those of ``run_type`` when given.

        Run types: ``scheduled``, ``manual``, ``asset_triggered``, ``backfill``.
        """
        params: dict[str, Any] = {"order_by": "run_after"}
        if run_type:
            params["run_type"] = [run_type]
        return list(self._pages(f"/api/v2/dags/{dag_id}/dagRuns", "dag_runs", params))

    def upstream_asset_events(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        """The asset events that started an asset-triggered run (``source_dag_id`` etc.)."""
        path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/upstreamAssetEvents"
        events: list[dict[str, Any]] = self.request("GET", path)["asset_events"]
        return events

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value") -> Any:
        """The value a task pushed (its return value by default), deserialised."""
        path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}"
        return self.request("GET", path, params={"deserialize": True})["value"]

    def task_instances(self, dag_id: str, run_id: str) -> list[TaskInstance]:
        """Every task instance of the run, mapped ones one per map index."""
        path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances"
        items = self._pages(path, "task_instances", {})
        return sorted(
            (TaskInstance.from_api(item) for item in items),
            key=lambda ti: (ti.task_id, ti.map_index),
        )
