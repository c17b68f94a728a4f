"""Helpers of the Elasticsearch cluster tests: its state folder, its env files, its script."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ES_CLUSTER = REPO / "docker" / "cluster" / "es-cluster.sh"


def cluster_state() -> Path:
    """NEWSRADAR_CLUSTER_STATE, or <repo>/.local/cluster, as docker/cluster/ports.sh says."""
    return Path(os.environ.get("NEWSRADAR_CLUSTER_STATE") or REPO / ".local" / "cluster")


def read_env(path: Path) -> dict[str, str]:
    """The ``NAME=value`` lines of an env file written by the cluster scripts."""
    values: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        name, sep, value = line.partition("=")
        if sep and name.strip() and not name.lstrip().startswith("#"):
            values[name.strip()] = value
    return values


def es_cluster(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run ``docker/cluster/es-cluster.sh ARGS``; fails the test when it fails."""
    done = subprocess.run(
        ["bash", str(ES_CLUSTER), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        pytest.fail(f"es-cluster.sh {' '.join(args)} failed: {done.stderr.strip()}")
    return done
