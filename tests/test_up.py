"""``make up`` / ``make down`` (docker/up.sh, down.sh): any free ports, loopback only, tasks run."""

from __future__ import annotations

import ipaddress
import json
import os
import random
import socket
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[1]
UP = REPO / "docker" / "up.sh"
DOWN = REPO / "docker" / "down.sh"
SPAN = 7  # ports above NEWSRADAR_PORT_BASE: docker/ports.sh
EMPTY_FEED = b"""<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>Quiet</title><link>http://127.0.0.1/</link>
<description>no news</description></channel></rss>
"""


def _clean_environ(**values: str) -> dict[str, str]:
    """This process's environment without NEWSRADAR_* and AIRFLOW* settings, plus ``values``."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("NEWSRADAR_", "AIRFLOW"))}
    return environ | values


def _plan(**values: str) -> dict[str, str]:
    done = subprocess.run(
        ["bash", str(UP), "--ports"],
        env=_clean_environ(**values),
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return {line[:28].strip(): line[28:].strip() for line in done.stdout.splitlines()}


def test_port_base_moves_every_port_and_the_urls_derived_from_them() -> None:
    plan = _plan(NEWSRADAR_PORT_BASE="20000")
    assert plan["Elasticsearch HTTP"] == "127.0.0.1:20000"
    assert plan["Elasticsearch transport"] == "127.0.0.1:20001"
    assert plan["Airflow API server"] == "127.0.0.1:20002"
    assert plan["Airflow execution API"] == "http://127.0.0.1:20002/execution/"
    assert plan["Airflow worker log server"].startswith("port 20003 ")
    assert plan["Airflow triggerer log server"].startswith("port 20004 ")
    assert plan["mail sink"] == "127.0.0.1:20005"
    assert plan["demo site"].startswith("127.0.0.1:20006 ")


def test_without_a_base_the_ports_are_the_documented_defaults() -> None:
    plan = _plan()
    assert plan["Elasticsearch HTTP"] == "127.0.0.1:9200"
    assert plan["Elasticsearch transport"] == "127.0.0.1:9300"
    assert plan["Airflow execution API"] == "http://127.0.0.1:8080/execution/"
    assert plan["mail sink"] == "127.0.0.1:8025"


def test_individual_port_variables_win_over_the_base() -> None:
    # AIRFLOW_PORT alone used to move only the API: the workers kept calling port 8080.
    plan = _plan(
        NEWSRADAR_PORT_BASE="20000",
        AIRFLOW_PORT="18080",
        NEWSRADAR_ES_PORT="19200",
        NEWSRADAR_SMTP_PORT="2525",
    )
    assert plan["Airflow API server"] == "127.0.0.1:18080"
    assert plan["Airflow execution API"] == "http://127.0.0.1:18080/execution/"
    assert plan["Elasticsearch HTTP"] == "127.0.0.1:19200"
    assert plan["Elasticsearch transport"] == "127.0.0.1:19300"
    assert plan["mail sink"] == "127.0.0.1:2525"
    assert plan["demo site"].startswith("127.0.0.1:20006 ")
    assert _plan(AIRFLOW_PORT="18080")["Airflow execution API"] == (
        "http://127.0.0.1:18080/execution/"
    )


@pytest.mark.parametrize(
    ("variable", "value", "problem"),
    [
        ("NEWSRADAR_PORT_BASE", "abc", "NEWSRADAR_PORT_BASE=abc is not a port number (1024-65528)"),
        ("NEWSRADAR_PORT_BASE", "65530", "NEWSRADAR_PORT_BASE=65530 is not a port number"),
        (
            "AIRFLOW_PORT",
            "80; rm -rf /",
            "AIRFLOW_PORT=80; rm -rf / is not a port number (1-65535)",
        ),
        ("NEWSRADAR_ES_PORT", "70000", "NEWSRADAR_ES_PORT=70000 is not a port number (1-65535)"),
    ],
)
def test_a_bad_port_variable_is_one_line_and_exit_2(
    variable: str, value: str, problem: str, tmp_path: Path
) -> None:
    done = subprocess.run(
        ["bash", str(UP)],
        env=_clean_environ(NEWSRADAR_STATE_DIR=str(tmp_path / "state"), **{variable: value}),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    [line] = done.stderr.splitlines()
    assert line.startswith(f"up: {problem}")
    assert not (tmp_path / "state").exists()  # refused before anything started


# --- the whole stack ------------------------------------------------------------------------


def _free(port: int) -> bool:
    """Nobody listens on ``port``, on any address (a wildcard bind would collide with either)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


def _free_base() -> int:
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(20000, 60000)
        if all(_free(port) for port in range(base, base + SPAN)):
            return base
    pytest.fail("no span of free ports found between 20000 and 60000")


def test_a_port_taken_by_another_process_stops_up_before_it_starts_anything(
    tmp_path: Path,
) -> None:
    base = _free_base()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", base + 2))
        taken.listen()
        done = subprocess.run(
            ["bash", str(UP)],
            env=_clean_environ(
                NEWSRADAR_STATE_DIR=str(tmp_path / "state"), NEWSRADAR_PORT_BASE=str(base)
            ),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f"up: port {base + 2} (airflow-api-server) is in use by another process; "
        "set NEWSRADAR_PORT_BASE to move every port, or AIRFLOW_PORT"
    ]
    assert list((tmp_path / "state" / "run").glob("*")) == []


@pytest.fixture
def feed_server() -> Iterator[str]:
    """A loopback HTTP server with one valid feed that has nothing new."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/rss+xml")
            self.send_header("Content-Length", str(len(EMPTY_FEED)))
            self.end_headers()
            self.wfile.write(EMPTY_FEED)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/rss.xml"
    server.shutdown()
    server.server_close()


def _sessions(run: Path) -> dict[str, int]:
    """The session ids up.sh recorded (each process was started with setsid), by name."""
    return {p.stem: int(p.read_text()) for p in run.glob("*.pid")}


def _live_members(sessions: set[int]) -> list[int]:
    """The live (not zombie) processes whose session is one of ``sessions``."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        # Fields after the command name, which may hold spaces: state ppid pgrp session ...
        state, _ppid, _pgrp, session = text.rsplit(")", 1)[1].split()[:4]
        if int(session) in sessions and state != "Z":
            members.append(int(stat.parent.name))
    return members


def _address(hex_address: str) -> tuple[str, int]:
    """A /proc/net/tcp{,6} address ("0100007F:1F90") as (IP, port)."""
    host, port = hex_address.split(":")
    raw = bytes.fromhex(host)
    if len(raw) == 4:
        ip = socket.inet_ntop(socket.AF_INET, raw[::-1])
    else:  # four 32-bit words, each in host (little-endian) order
        words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
        ip = socket.inet_ntop(socket.AF_INET6, words)
    return ip, int(port, 16)


def _listening(pids: list[int]) -> set[tuple[str, int]]:
    """The TCP addresses the processes ``pids`` listen on."""
    inodes: set[str] = set()
    for pid in pids:
        try:
            fds = list(Path(f"/proc/{pid}/fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[len("socket:[") : -1])
    found: set[tuple[str, int]] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                found.add(_address(fields[1]))
    return found


def _is_loopback(ip: str) -> bool:
    address = ipaddress.ip_address(ip)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


@pytest.mark.timeout(480)
def test_up_on_free_ports_runs_a_task_listens_on_loopback_only_and_down_stops_it_all(
    tmp_path: Path, es_node: str, index_prefix: str, feed_server: str
) -> None:
    base = _free_base()
    state = tmp_path / "state"
    config = tmp_path / "config"
    config.mkdir()
    (config / "sources.yaml").write_text(
        f"sources:\n  - id: quiet\n    name: Quiet\n    feeds: [{feed_server}]\n", encoding="utf-8"
    )
    # A restart must not lose what the previous start logged.
    (state / "logs").mkdir(parents=True)
    (state / "logs" / "mailsink.log").write_text("the first run's error\n", encoding="utf-8")
    environ = _clean_environ(
        NEWSRADAR_STATE_DIR=str(state),
        NEWSRADAR_PORT_BASE=str(base),
        NEWSRADAR_CONFIG_DIR=str(config),
        # The test node, under this test's prefix: up starts no node, and down stops none (the
        # state folder below holds no node either, so even a wrong down could not stop it).
        NEWSRADAR_ES_URL=es_node,
        NEWSRADAR_ES_STATE=str(tmp_path / "no-node"),
        NEWSRADAR_INDEX_PREFIX=index_prefix,
        NEWSRADAR_ALLOW_PRIVATE_NETWORKS="1",
        NEWSRADAR_CRAWL_DELAY="0",
        NEWSRADAR_UP_TIMEOUT="300",
    )
    api = f"http://127.0.0.1:{base + 2}"
    sessions: dict[str, int] = {}
    try:
        up = subprocess.run(
            ["bash", str(UP)], env=environ, capture_output=True, text=True, timeout=400
        )
        assert up.returncode == 0, up.stderr[-3000:]
        assert "succeeded" in up.stdout and "tasks run" in up.stdout
        assert f"Airflow UI:  {api}" in up.stdout
        sessions = _sessions(state / "run")
        assert set(sessions) == {
            "mailsink",
            "airflow-api-server",
            "airflow-scheduler",
            "airflow-dag-processor",
            "airflow-triggerer",
        }

        # A task ran through the scheduler, a worker and the execution API, as the REST API says.
        passwords = state / "airflow" / "simple_auth_manager_passwords.json.generated"
        users = json.loads(passwords.read_text(encoding="utf-8"))
        with httpx.Client(base_url=api, timeout=30, trust_env=False) as client:
            login = client.post(
                "/auth/token", json={"username": "admin", "password": users["admin"]}
            )
            client.headers["Authorization"] = "Bearer " + login.json()["access_token"]
            found = client.get("/api/v2/dags/deliver_alerts/dagRuns/~/taskInstances").json()
        states = {t["dag_run_id"]: t["state"] for t in found["task_instances"]}
        assert "success" in states.values(), states

        # Every listening socket of every process started is on loopback, on the base's ports.
        listening = _listening(_live_members(set(sessions.values())))
        assert listening, "nothing listens"
        assert all(_is_loopback(ip) for ip, _ in listening), listening
        ports = {port for _, port in listening}
        assert {base + 2, base + 5} <= ports
        assert not ports & {8080, 8793, 8794, 8025}

        # The LocalExecutor's workers: as many as the cores this machine gives us, not 32.
        workers = [
            pid
            for pid in _live_members({sessions["airflow-scheduler"]})
            if Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"airflow worker -- LocalExec")
        ]
        assert len(workers) == len(os.sched_getaffinity(0))

        log = (state / "logs" / "mailsink.log").read_text(encoding="utf-8").splitlines()
        assert log[0] == "the first run's error"
        assert log[1].startswith("==== up: starting mailsink at ")
    finally:
        sessions |= _sessions(state / "run")
        down = subprocess.run(
            ["bash", str(DOWN)], env=environ, capture_output=True, text=True, timeout=300
        )
    assert down.returncode == 0, down.stderr
    assert "leaving the Elasticsearch node" in down.stdout
    assert _live_members(set(sessions.values())) == []
    assert list((state / "run").glob("*.pid")) == []
    assert not any(_listening_on(port) for port in (base + 2, base + 5))


def _listening_on(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(2)
        return probe.connect_ex(("127.0.0.1", port)) == 0
