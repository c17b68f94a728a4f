"""The newsradar command: exit codes, one-line errors and doctor's checks against real servers."""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Sink
from httpfaults import FaultServer

REPO = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("NEWSRADAR_")}
    return subprocess.run(
        [sys.executable, "-m", "pipeline.cli", *args],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def smtp_port() -> Iterator[int]:
    controller = Controller(Sink(), hostname="127.0.0.1", port=_free_port())
    controller.start()
    try:
        yield int(controller.port)
    finally:
        controller.stop()


def test_broken_sources_yaml_exits_nonzero_with_one_clear_line(tmp_path: Path) -> None:
    (tmp_path / "sources.yaml").write_text(
        "sources:\n  - id: ok-source\n    name: Fine\n    feeds: [gopher://old.example/]\n",
        encoding="utf-8",
    )
    result = _run("config", env={"NEWSRADAR_CONFIG_DIR": str(tmp_path)})
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "sources.yaml" in lines[0]
    assert "sources[0] (id=ok-source).feeds[0]" in lines[0]
    assert "not an http(s) URL" in lines[0]
    assert result.stdout == ""


def test_a_rule_nested_too_deep_is_a_config_error_on_one_line(tmp_path: Path) -> None:
    # 300 levels used to exhaust Python's recursion limit: a 3000-line traceback and exit 1.
    (tmp_path / "sources.yaml").write_text(
        "sources:\n  - id: ok-source\n    name: Fine\n    feeds: [https://example.org/rss]\n",
        encoding="utf-8",
    )
    query = "(" * 300 + "NATO" + ")" * 300
    (tmp_path / "alerts.yaml").write_text(
        "alerts:\n  - id: deep\n    name: Deep\n    recipients: [a@example.org]\n"
        f"    queries:\n      en: '{query}'\n",
        encoding="utf-8",
    )
    result = _run("config", env={"NEWSRADAR_CONFIG_DIR": str(tmp_path)})
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"newsradar config: {tmp_path / 'alerts.yaml'}: alerts[0] (id=deep).queries: the en "
        "query: nested too deep: 11 levels of ( and NOT; the limit is 10 (column 11)"
    ]
    assert result.stdout == ""


def test_config_json_lists_the_shipped_rule() -> None:
    result = _run("config", "--json", env={"NEWSRADAR_CONFIG_DIR": str(REPO / "config")})
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert "nato-enlargement" in [a["id"] for a in data["alerts"]]


def test_bad_environment_variable_is_named() -> None:
    result = _run("config", env={"NEWSRADAR_SMTP_PORT": "many"})
    assert result.returncode != 0
    assert result.stderr.strip().startswith("newsradar config: environment: NEWSRADAR_SMTP_PORT:")


def test_doctor_reports_each_service_on_one_line(smtp_port: int) -> None:
    dead_port = _free_port()
    env = {
        "NEWSRADAR_CONFIG_DIR": str(REPO / "config"),
        "NEWSRADAR_ES_URL": f"http://127.0.0.1:{dead_port}",
        "NEWSRADAR_SMTP_PORT": str(smtp_port),
    }
    result = _run("doctor", "--json", env=env)
    assert result.returncode == 1
    checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    assert checks["config"]["ok"] is True
    assert checks["smtp"]["ok"] is True
    assert checks["elasticsearch"]["ok"] is False
    assert str(dead_port) in checks["elasticsearch"]["detail"]

    text = _run("doctor", env=env)
    assert text.returncode == 1
    assert [line.split()[1] for line in text.stdout.splitlines()] == [
        "config",
        "elasticsearch",
        "smtp",
    ]


def test_doctor_fails_when_mail_is_unreachable() -> None:
    env = {
        "NEWSRADAR_CONFIG_DIR": str(REPO / "config"),
        "NEWSRADAR_SMTP_PORT": str(_free_port()),
    }
    result = _run("doctor", "--json", env=env)
    checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    assert result.returncode == 1
    assert checks["smtp"]["ok"] is False


def test_doctor_sends_es_credentials_as_basic_auth_and_never_prints_the_password(
    smtp_port: int,
) -> None:
    with FaultServer("127.0.0.1") as server:
        # Answers like a JSON service, but without Elasticsearch's product header.
        server.routes["/"] = lambda h: h.reply(
            200, b'{"version": {"number": "8.15.0"}}', content_type="application/json"
        )
        env = {
            "NEWSRADAR_CONFIG_DIR": str(REPO / "config"),
            "NEWSRADAR_ES_URL": f"http://elastic:s3cret@127.0.0.1:{server.port}",
            "NEWSRADAR_SMTP_PORT": str(smtp_port),
        }
        result = _run("doctor", "--json", env=env)
        text = _run("doctor", env=env)
    checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    shown = f"http://elastic:***@127.0.0.1:{server.port}"
    assert checks["elasticsearch"]["detail"] == f"{shown} is not Elasticsearch"
    assert [r.headers.get("authorization") for r in server.seen] == [
        "Basic " + base64.b64encode(b"elastic:s3cret").decode()
    ] * 2
    for output in (result.stdout, result.stderr, text.stdout, text.stderr):
        assert "s3cret" not in output


def test_doctor_says_when_mail_to_a_remote_host_is_unencrypted() -> None:
    base = {"NEWSRADAR_CONFIG_DIR": str(REPO / "config"), "NEWSRADAR_SMTP_HOST": "smtp.invalid"}
    off = _run("doctor", "--json", env={**base, "NEWSRADAR_SMTP_STARTTLS": "false"})
    auto = _run("doctor", "--json", env=base)
    [off_smtp] = [c for c in json.loads(off.stdout)["checks"] if c["name"] == "smtp"]
    [auto_smtp] = [c for c in json.loads(auto.stdout)["checks"] if c["name"] == "smtp"]
    assert "unencrypted (NEWSRADAR_SMTP_STARTTLS=false)" in off_smtp["detail"]
    assert "unencrypted" not in auto_smtp["detail"]
    assert "(STARTTLS)" in auto_smtp["detail"]
