"""docker/compose.yml, the images it names and its setup script.

The compose file is validated by Debian's ``docker-compose`` (the Makefile installs it):
``config`` checks the file against the Compose Specification schema it ships, interpolates the
variables and resolves anchors, build contexts and profiles, all without a Docker engine.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline.languages import plugins

REPO = Path(__file__).resolve().parents[1]
COMPOSE = REPO / "docker" / "compose.yml"
ENV_EXAMPLE = REPO / ".env.example"
SETUP = REPO / "docker" / "setup" / "create-credentials.sh"

# An exact release: 1.2.3 or v1.2.3, optionally with a variant (-slim-bookworm, -alpine).
_EXACT = re.compile(r"^v?\d+\.\d+\.\d+(-[a-z0-9][a-z0-9.]*)*$")
# Postgres numbers its releases major.minor: 17.6 is one exact release.
_EXACT_TWO_PART = {"postgres": re.compile(r"^\d+\.\d+(-[a-z0-9][a-z0-9.]*)*$")}
_VARIABLE = re.compile(r"(?<!\$)\$\{?([A-Za-z_][A-Za-z0-9_]*)")
# Variables Compose itself reads from .env rather than the file.
_COMPOSE_OWN = {"COMPOSE_PROJECT_NAME"}


def _docker_compose(*args: str, env_file: Path) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("docker-compose")
    assert tool, (
        "docker-compose is missing: run `make compose-tool` (Debian package docker-compose)"
    )
    # Nothing from this process's environment may fill a variable: .env.example alone must do.
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(REPO)}
    return subprocess.run(
        [tool, "--env-file", str(env_file), "-f", str(COMPOSE), "config"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def resolved() -> dict[str, Any]:
    """The compose file as docker-compose resolves it with .env.example."""
    done = _docker_compose(env_file=ENV_EXAMPLE)
    assert done.returncode == 0, done.stderr
    config = yaml.safe_load(done.stdout)
    assert isinstance(config, dict)
    return config


def _env_example() -> dict[str, str]:
    values: dict[str, str] = {}
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value
    return values


def test_the_compose_file_is_valid_and_has_the_whole_stack(resolved: dict[str, Any]) -> None:
    services = resolved["services"]
    assert set(services) == {
        "setup",
        "es01",
        "es02",
        "es03",
        "kibana",
        "newsradar-init",
        "kibana-import",
        "postgres",
        "redis",
        "airflow-init",
        "airflow-apiserver",
        "airflow-scheduler",
        "airflow-dag-processor",
        "airflow-triggerer",
        "airflow-worker",
        "mailpit",
    }
    for name, service in services.items():
        if "build" in service:
            build = service["build"]
            assert (Path(build["context"]) / build.get("dockerfile", "Dockerfile")).is_file(), name
    worker = services["airflow-worker"]
    assert worker["environment"]["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert worker["command"] == ["airflow", "celery", "worker"]
    assert services["es02"]["profiles"] == ["es-cluster"]
    es = services["es01"]["environment"]
    assert es["xpack.security.enabled"] == "true"
    assert es["xpack.security.http.ssl.enabled"] == "true"
    pipeline = services["newsradar-init"]["environment"]
    assert pipeline["NEWSRADAR_ES_URL"].startswith("https://")
    assert pipeline["NEWSRADAR_ES_CA_CERTS"] == "/certs/ca/ca.crt"
    assert "NEWSRADAR_ES_API_KEY" not in pipeline  # comes from setup's key file
    for service in services.values():
        for port in service.get("ports", []):
            published = port if isinstance(port, str) else port.get("host_ip", "")
            assert str(published).startswith("127.0.0.1"), port


def test_without_secrets_compose_refuses_with_the_variable_named(tmp_path: Path) -> None:
    empty = tmp_path / "empty.env"
    empty.write_text("", encoding="utf-8")
    done = _docker_compose(env_file=empty)
    assert done.returncode != 0
    assert re.search(r"set [A-Z_]+ in \.env", done.stderr), done.stderr


def test_every_image_is_pinned_to_an_exact_version(resolved: dict[str, Any]) -> None:
    versions: dict[str, str] = {}
    for name, service in resolved["services"].items():
        image = service["image"]
        repository, _, tag = image.rpartition(":")
        assert repository and "/" not in tag, f"{name}: {image} has no tag"
        exact = _EXACT_TWO_PART.get(repository.rsplit("/", 1)[-1], _EXACT)
        assert exact.match(tag), f"{name}: {image} is not pinned to an exact version"
        versions[repository] = tag
    es = versions["docker.elastic.co/elasticsearch/elasticsearch"]
    assert versions["docker.elastic.co/kibana/kibana"] == es
    assert versions["newsradar-elasticsearch"] == es
    assert resolved["services"]["es01"]["build"]["args"]["ES_VERSION"] == es
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert versions["newsradar"] == project["version"]

    es_dockerfile = (REPO / "docker" / "elasticsearch.Dockerfile").read_text(encoding="utf-8")
    assert f"ARG ES_VERSION={es}\n" in es_dockerfile
    # The plugins are those the language table's analysers need, no more and no fewer.
    install = r"elasticsearch-plugin install --batch((?:[\s\\]+[a-z][a-z-]*)+)"
    installed = re.search(install, es_dockerfile)
    assert installed is not None
    assert tuple(sorted(installed.group(1).replace("\\", " ").split())) == plugins()
    dockerfile = (REPO / "docker" / "Dockerfile").read_text(encoding="utf-8")
    [base] = re.findall(r"^FROM (\S+)", dockerfile, flags=re.MULTILINE)
    assert re.fullmatch(r"python:3\.11\.\d+-slim(-[a-z]+)?", base), base
    assert "--require-hashes" in dockerfile and "requirements.lock" in dockerfile


def test_every_variable_is_documented_in_env_example() -> None:
    used = set(_VARIABLE.findall(COMPOSE.read_text(encoding="utf-8")))
    documented = _env_example()
    assert used - set(documented) == set()
    assert set(documented) - used - _COMPOSE_OWN == set()
    text = ENV_EXAMPLE.read_text(encoding="utf-8").splitlines()
    for n, line in enumerate(text):
        if line and not line.startswith("#"):
            # Each variable or group of variables is explained by the comment above it.
            above = next(t for t in reversed(text[:n]) if not re.match(r"^[A-Z_]+=", t))
            assert above.startswith("#"), line


def test_secrets_have_no_default_in_the_compose_file() -> None:
    text = COMPOSE.read_text(encoding="utf-8")
    for name in _env_example():
        if re.search(r"PASSWORD|SECRET|FERNET|ENCRYPTION", name) and "SMTP" not in name:
            assert not re.search(rf"\$\{{{name}:?-", text), f"{name} has a default"
            assert re.search(rf"\$\{{{name}:\?", text), f"{name} is not required"


# --- the setup script, against a stand-in for Elasticsearch's security API -----------------------
#
# The local node is Elastic's integration-test distribution without the security plugin, so the
# security API (users, roles, API keys) cannot be called for real here. The stand-in is a
# `curl` on PATH that records each request and answers as that API does; `elasticsearch-certutil`
# is replaced by one that writes the same zip layout.

_FAKE_CURL = r"""#!PYTHON
import json, os, sys

VALUED = {"-X": "method", "--data-binary": "body", "-u": "user", "-w": "format", "-o": "out",
          "--cacert": "cacert", "-H": "header"}
req, args = {"method": "GET", "headers": {}}, iter(sys.argv[1:])
for arg in args:
    if arg in VALUED:
        value = next(args)
        if arg == "-H":
            name, _, content = value.partition(":")
            req["headers"][name.lower()] = content.strip()
        else:
            req[VALUED[arg]] = value
    elif arg.startswith("https://"):
        req["url"] = arg
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write(json.dumps(req) + "\n")
path = req["url"].split("://", 1)[1].split("/", 1)[1]
status, body = 200, {"acknowledged": True}
if path.startswith("_security/_authenticate"):
    valid = "ApiKey " + os.environ.get("FAKE_VALID_KEY", "-")
    ok = req["headers"].get("authorization") == valid
    status, body = (200, {"username": "elastic"}) if ok else (401, {"error": "invalid key"})
elif path == "_security/api_key" and req["method"] == "POST":
    body = {"id": "k1", "name": "x", "api_key": "secret", "encoded": "ZW5jb2RlZC1rZXk="}
if req.get("out"):
    with open(req["out"], "w") as target:
        target.write(json.dumps(body))
else:
    sys.stdout.write(json.dumps(body))
if req.get("format"):
    sys.stdout.write(req["format"].replace("\\n", "\n").replace("%{http_code}", str(status)))
"""

_FAKE_CERTUTIL = r"""#!PYTHON
import sys, zipfile, yaml
args = sys.argv[1:]
out = args[args.index("--out") + 1]
with zipfile.ZipFile(out, "w") as z:
    if args[0] == "ca":
        z.writestr("ca/ca.crt", "CA"); z.writestr("ca/ca.key", "KEY")
    else:
        for node in yaml.safe_load(open(args[args.index("--in") + 1]))["instances"]:
            z.writestr(f"{node['name']}/{node['name']}.crt", "C")
            z.writestr(f"{node['name']}/{node['name']}.key", "K")
"""


def _run_setup(tmp: Path, **env: str) -> tuple[subprocess.CompletedProcess[str], list[Any]]:
    bin_dir = tmp / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name, text in (("curl", _FAKE_CURL), ("elasticsearch-certutil", _FAKE_CERTUTIL)):
        script = bin_dir / name
        script.write_text(text.replace("PYTHON", sys.executable, 1), encoding="utf-8")
        script.chmod(0o755)
    log = tmp / "requests.jsonl"
    log.unlink(missing_ok=True)
    (tmp / "certs").mkdir(exist_ok=True)
    done = subprocess.run(
        ["bash", str(SETUP)],
        cwd=tmp,  # the script calls bin/elasticsearch-certutil, as in the Elasticsearch image
        env={
            "PATH": f"{bin_dir}:{os.environ['PATH']}",
            "FAKE_LOG": str(log),
            "CERTS_DIR": str(tmp / "certs"),
            "SECRETS_DIR": str(tmp / "secrets"),
            "ELASTIC_PASSWORD": 'pa"ss\\word',
            "KIBANA_SYSTEM_PASSWORD": "kibana-pass",
            "NEWSRADAR_INDEX_PREFIX": "acme",
            **env,
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    requests = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return done, requests


def test_setup_creates_certificates_passwords_and_a_least_privilege_key(tmp_path: Path) -> None:
    done, requests = _run_setup(tmp_path)
    assert done.returncode == 0, done.stderr
    certs = tmp_path / "certs"
    for node in ("es01", "es02", "es03"):
        assert (certs / node / f"{node}.crt").is_file()
    assert stat.S_IMODE((certs / "ca" / "ca.key").stat().st_mode) == 0o600
    key_file = tmp_path / "secrets" / "es-api-key"
    assert key_file.read_text() == "ZW5jb2RlZC1rZXk="
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o440
    assert key_file.stat().st_uid == 50000 or os.geteuid() != 0

    calls = {(r["method"], r["url"].split("9200", 1)[1]): r for r in requests}
    assert all(r["user"] == 'elastic:pa"ss\\word' for r in requests if "user" in r)
    password = json.loads(calls["POST", "/_security/user/kibana_system/_password"]["body"])
    assert password == {"password": "kibana-pass"}
    analyst = json.loads(calls["PUT", "/_security/role/acme_analyst"]["body"])
    assert analyst["indices"] == [
        {"names": ["acme-*"], "privileges": ["read", "view_index_metadata"]}
    ]
    assert json.loads(calls["DELETE", "/_security/api_key"]["body"]) == {
        "name": "newsradar-pipeline-acme"
    }
    key = json.loads(calls["POST", "/_security/api_key"]["body"])
    [role] = key["role_descriptors"].values()
    assert set(role["cluster"]) <= {"monitor", "manage_index_templates", "manage_ilm"}
    assert [i["names"] for i in role["indices"]] == [["acme-*"]]
    assert "all" not in role["indices"][0]["privileges"]


def test_setup_keeps_a_working_key_and_refuses_placeholders(tmp_path: Path) -> None:
    done, _ = _run_setup(tmp_path)
    assert done.returncode == 0, done.stderr
    done, requests = _run_setup(tmp_path, FAKE_VALID_KEY="ZW5jb2RlZC1rZXk=")
    assert done.returncode == 0, done.stderr
    assert "still works; kept" in done.stdout
    assert not [r for r in requests if r["url"].endswith("/_security/api_key")]

    done, requests = _run_setup(tmp_path, ELASTIC_PASSWORD="change-me-elastic")
    assert done.returncode != 0 and requests == []
    [line] = done.stderr.strip().splitlines()
    assert "change-me" in line


# --- the Airflow settings shared with the loopback cluster ----------------------------------------

AIRFLOW_ENV = REPO / "docker" / "airflow.env"
STACK = REPO / "docker" / "cluster" / "stack.sh"


def _airflow_env() -> dict[str, str]:
    values: dict[str, str] = {}
    for line in AIRFLOW_ENV.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            name, sep, value = line.partition("=")
            # Both readers take values as written: no quotes, spaces or variables to expand.
            assert sep and re.fullmatch(r"AIRFLOW__[A-Z_]+__[A-Z_]+", name), line
            assert re.fullmatch(r"[A-Za-z0-9_.:/-]+", value), line
            values[name] = value
    return values


def test_the_shared_airflow_settings_reach_every_airflow_service(resolved: dict[str, Any]) -> None:
    shared = _airflow_env()
    assert shared["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT" in shared
    airflow_services = [
        name for name, service in resolved["services"].items() if name.startswith("airflow-")
    ]
    assert len(airflow_services) == 6
    for name in airflow_services:
        environment = resolved["services"][name]["environment"]
        for setting, value in shared.items():
            assert environment.get(setting) == value, f"{name}: {setting}"
    # Said once: the compose file does not repeat (or contradict) a shared setting.
    compose = COMPOSE.read_text(encoding="utf-8")
    for setting in shared:
        assert setting not in compose, setting


def test_the_loopback_stack_reads_the_same_airflow_settings() -> None:
    text = STACK.read_text(encoding="utf-8")
    assert re.search(r"docker/airflow\.env", text), "stack.sh does not read docker/airflow.env"
    for setting in _airflow_env():
        # The stack may add settings of its own, never set a shared one again.
        assert not re.search(rf"^\s*(export\s+)?{setting}=", text, flags=re.MULTILINE), setting
