"""``make demo`` end to end, the mail sink on its own, and the scripts behind ``make up/down``.

End to end means the demo site, the mail sink, the node and Airflow together.
"""

from __future__ import annotations

import json
import os
import re
import signal
import smtplib
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from elasticsearch import Elasticsearch
from httpfaults import closed_port

from devtools.demo import demo_environment, local_node_url
from devtools.demosite import load_catalog
from devtools.mailsink import MailSink, read_mbox
from pipeline.errors import TransientError

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def demo_prefix(es_client: Elasticsearch) -> Iterator[str]:
    prefix = f"test-demo-{uuid.uuid4().hex[:8]}"
    yield prefix
    es_client.options(ignore_status=404).indices.delete(index=f"{prefix}-*")
    es_client.options(ignore_status=404).indices.delete_index_template(name=f"{prefix}-*")


def _reachable_in_demo_config() -> list[str]:
    """The catalog's articles that config/demo lists: feeds, and diario's sitemap and section."""
    return [
        e.canonical
        for e in load_catalog()
        if not e.robots_disallowed
        and (e.in_sitemap or e.on_section_page if e.source == "diario-del-puerto" else e.in_feed)
    ]


def test_make_demo_runs_the_main_job_through_airflow_and_mails_one_nato_digest(
    es_node: str, demo_prefix: str, tmp_path: Path
) -> None:
    env = {**os.environ, "NEWSRADAR_ES_URL": es_node}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "devtools.demo",
            "--json",
            "--port",
            str(closed_port()),  # free now; the demo site takes it
            "--prefix",
            demo_prefix,
            "--state",
            str(tmp_path),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout)
    assert [(d["dag_id"], d["ok"]) for d in summary["dags"]] == [
        ("ingest_feeds", True),
        ("crawl_sites", True),
        ("deliver_alerts", True),
    ]
    assert summary["articles"] == len(_reachable_in_demo_config())
    assert len(summary["by_source"]) == 7 and len(summary["by_language"]) == 6
    # The Sweden story twice word for word, and one lightly edited regional copy.
    assert summary["duplicates"] == 2
    # Other outlets' reports of one event share its story; no story mixes two of the
    # catalog's stories (precision first), and the 1954 note is one story in en, ru and uk.
    truth = {summary["site"] + e.path: e.story for e in load_catalog()}
    for group in summary["groups"]:
        assert len({truth[url] for url in group["urls"]}) == 1, group
    [soviet_note] = [
        g for g in summary["groups"] if truth[g["urls"][0]] == "ussr-1954-nato-request"
    ]
    assert len(soviet_note["urls"]) == 4 and soviet_note["languages"] == ["en", "ru", "uk"]
    joined = sum(len(group["urls"]) - 1 for group in summary["groups"])
    assert summary["stories"] == summary["articles"] - joined
    assert summary["reports"] == joined - summary["duplicates"] >= 4
    # The closing search: the base form finds the three Russian articles on enlargement,
    # among them the 1954 one, which only has the inflected "расширения".
    assert summary["search_total"] == 3
    assert any("1954" in hit["title"] for hit in summary["search_hits"])
    nato = [m for m in summary["mails"] if "NATO enlargement" in m["subject"]]
    assert len(nato) == 1 and nato[0]["to"] == "analyst@newsradar.test"
    # The Soviet note of 1954 once, led by one of its reports (the first the rule matched, which
    # depends on how the batches fell), its other reports under it: English, Russian and
    # Ukrainian among the four.
    told = {e.title for e in load_catalog() if e.story == "ussr-1954-nato-request"}
    [lead] = [title for title in nato[0]["stories"] if title in told]
    messages = read_mbox(tmp_path / "mail" / "demo.mbox")
    assert len(messages) == len(summary["mails"])
    [digest] = [m for m in messages if "NATO enlargement" in str(m["Subject"])]
    body = digest.get_body(("plain",))
    assert body is not None
    item = _digest_item(body.get_content(), lead)
    assert "Also reported by 3 sources in en, ru, uk" in item
    reports = re.findall(r"(?m)^ +.+ · (\w\w) · \d{4}-", item)
    assert len(reports) == 4 and sorted(set(reports)) == ["en", "ru", "uk"], item


def _digest_item(text: str, needle: str) -> str:
    """The numbered item of a digest's plain text whose title is ``needle``."""
    items = re.split(r"(?m)^(?=\d+\. )", text)
    [item] = [i for i in items if i[:1].isdigit() and i.splitlines()[0].split(". ", 1)[1] == needle]
    return item


def test_the_mail_sink_keeps_every_message_in_an_mbox(tmp_path: Path) -> None:
    mbox = tmp_path / "mail" / "sink.mbox"
    with MailSink(mbox, port=0) as sink, smtplib.SMTP("127.0.0.1", sink.port) as client:
        client.sendmail(
            "newsradar@localhost.localdomain",
            ["analyst@newsradar.test", "desk@newsradar.test"],
            b"Subject: =?utf-8?q?NATO_=C3=A9largissement?=\r\n\r\nFrom the desk.\r\n",
        )
        client.sendmail("a@example.org", ["b@example.org"], b"Subject: second\r\n\r\nbody\r\n")
    # Appended to, not replaced, by the next sink on the same file.
    with MailSink(mbox, port=0) as sink, smtplib.SMTP("127.0.0.1", sink.port) as client:
        client.sendmail("a@example.org", ["b@example.org"], b"Subject: third\r\n\r\nbody\r\n")
        assert sink.received == 1
    messages = read_mbox(mbox)
    assert [str(m["Subject"]) for m in messages] == ["NATO élargissement", "second", "third"]
    assert messages[0]["X-RcptTo"] == "analyst@newsradar.test, desk@newsradar.test"
    assert messages[0].get_content().strip() == ">From the desk."  # mbox quoting


def test_the_mail_sink_refuses_a_port_in_use(tmp_path: Path) -> None:
    with MailSink(tmp_path / "a.mbox", port=0) as first:
        taken = MailSink(tmp_path / "b.mbox", port=first.port)
        with pytest.raises(TransientError, match=f"cannot listen on 127.0.0.1:{first.port}"):
            taken.start()


def test_the_mail_sink_command_serves_until_terminated(tmp_path: Path) -> None:
    port = closed_port()
    mbox = tmp_path / "sink.mbox"
    process = subprocess.Popen(
        [sys.executable, "-m", "devtools.mailsink", "--port", str(port), "--mbox", str(mbox)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                assert process.poll() is None and time.monotonic() < deadline
                time.sleep(0.2)
        with smtplib.SMTP("127.0.0.1", port) as client:
            client.sendmail("a@example.org", ["b@example.org"], b"Subject: hi\r\n\r\nbody\r\n")
        process.send_signal(signal.SIGTERM)  # what make down sends
        output, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, output
    assert "mail sink stopped" in output
    assert [str(m["Subject"]) for m in read_mbox(mbox)] == ["hi"]


def test_the_demo_environment_replaces_the_callers_settings(tmp_path: Path) -> None:
    env = demo_environment(
        es_url="http://127.0.0.1:9200",
        prefix="newsradar-demo",
        config_dir=tmp_path,
        smtp_port=2525,
        airflow_home=tmp_path / "airflow",
        base={
            "PATH": "/usr/bin",
            "NEWSRADAR_SMTP_USER": "someone",
            "NEWSRADAR_ES_API_KEY": "key",
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        },
    )
    assert "NEWSRADAR_SMTP_USER" not in env and "AIRFLOW__CORE__EXECUTOR" not in env
    assert env["NEWSRADAR_ES_API_KEY"] == "key"  # how to reach the node is kept
    assert env["NEWSRADAR_SMTP_PORT"] == "2525" and env["NEWSRADAR_CRAWL_DELAY"] == "0"
    assert env["NEWSRADAR_ALLOW_PRIVATE_NETWORKS"] == "1"
    assert env["AIRFLOW__CORE__DAGS_FOLDER"] == str(REPO / "dags")
    assert env["PATH"] == "/usr/bin"


@pytest.mark.parametrize(
    ("environ", "url"),
    [
        ({}, "http://127.0.0.1:9200"),
        ({"NEWSRADAR_ES_PORT": "19200"}, "http://127.0.0.1:19200"),
        ({"NEWSRADAR_PORT_BASE": "20000"}, "http://127.0.0.1:20000"),
        ({"NEWSRADAR_PORT_BASE": "20000", "NEWSRADAR_ES_PORT": "19200"}, "http://127.0.0.1:19200"),
    ],
)
def test_the_demo_uses_the_node_es_up_started_on_its_port(
    environ: dict[str, str], url: str
) -> None:
    # It used to assume 9200 whatever port docker/es-up.sh had been given.
    assert local_node_url(environ | {"NEWSRADAR_SMTP_PORT": "not read here"}) == url


@pytest.mark.parametrize("script", ["up.sh", "down.sh"])
def test_the_up_and_down_scripts_are_valid_bash(script: str) -> None:
    done = subprocess.run(
        ["bash", "-n", str(REPO / "docker" / script)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr


def test_down_stops_what_up_recorded_and_cleans_stale_pids(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    # What up.sh leaves: a process in a session of its own (with a child), its pid recorded;
    # and a pid file whose process is long gone.
    started = subprocess.run(
        ["bash", "-c", "setsid bash -c 'sleep 300 & wait' >/dev/null 2>&1 & echo $!"],
        capture_output=True,
        text=True,
        check=True,
    )
    pid = int(started.stdout)
    gone = subprocess.Popen(["true"])
    gone.wait()
    (run / "mailsink.pid").write_text(f"{pid}\n")
    (run / "demosite.pid").write_text(f"{gone.pid}\n")
    try:
        done = subprocess.run(
            ["bash", str(REPO / "docker" / "down.sh"), "--keep-es"],
            env={**os.environ, "NEWSRADAR_STATE_DIR": str(tmp_path)},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        assert f"stopped mailsink (pid {pid})" in done.stdout
        assert not _group_alive(pid)
        assert not (run / "mailsink.pid").exists() and not (run / "demosite.pid").exists()
    finally:
        if _group_alive(pid):
            os.killpg(pid, signal.SIGKILL)


def _group_alive(group: int) -> bool:
    """Whether a process of this group is still running (zombies do not count)."""
    listing = subprocess.run(["ps", "-eo", "pgid=,stat="], capture_output=True, text=True)
    rows = (line.split() for line in listing.stdout.splitlines())
    return any(int(g) == group and not stat.startswith("Z") for g, stat in rows)
