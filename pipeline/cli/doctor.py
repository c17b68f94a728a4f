"""``newsradar doctor``: the configuration and every service it points at, checked."""

from __future__ import annotations

import argparse
import base64
import json
import smtplib
import ssl
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from urllib.parse import unquote, urlsplit, urlunsplit

from pipeline.alerts.smtp import SmtpConfig
from pipeline.errors import ConfigError
from pipeline.settings import Config, Settings, load_config

__all__ = ["Check", "cmd_doctor", "doctor"]


@dataclass(frozen=True)
class Check:
    """One line of ``newsradar doctor``."""

    name: str
    ok: bool
    detail: str


def _check_config(settings: Settings) -> tuple[Check, Config | None]:
    try:
        config = load_config(settings)
    except ConfigError as exc:
        return Check("config", False, str(exc)), None
    detail = (
        f"{len(config.sources)} sources, {len(config.alerts)} alert rules in {settings.config_dir}"
    )
    return Check("config", True, detail), config


def _split_userinfo(url: str) -> tuple[str, str, str | None]:
    """(URL without user:pass@, the URL with the password redacted, Basic credentials or None)."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url, url, None
    # urllib would take "user:pass@host" for the host name; credentials go in a header instead.
    netloc = parts.netloc.rpartition("@")[2]
    bare = urlunsplit(parts._replace(netloc=netloc))
    user = unquote(parts.username or "")
    shown = urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))
    pair = f"{user}:{unquote(parts.password or '')}"
    return bare, shown, base64.b64encode(pair.encode("utf-8")).decode("ascii")


def _check_elasticsearch(settings: Settings, timeout: float) -> Check:
    """The first of ``es_url``'s nodes that answers; a failure names every node tried."""
    failures: list[Check] = []
    for node in settings.es_urls:
        check = _check_node(settings, node, timeout)
        if check.ok:
            return check
        failures.append(check)
    return Check("elasticsearch", False, "; ".join(f.detail for f in failures))


def _check_node(settings: Settings, node: str, timeout: float) -> Check:
    url, shown, basic = _split_userinfo(node)
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    if settings.es_api_key is not None:
        request.add_header("Authorization", f"ApiKey {settings.es_api_key.get_secret_value()}")
    elif basic is not None:
        request.add_header("Authorization", f"Basic {basic}")
    # The cluster's own CA, as the pipeline's client is given it (pipeline.store.client.connect).
    context = None
    if settings.es_ca_certs is not None and url.startswith("https://"):
        context = ssl.create_default_context(cafile=str(settings.es_ca_certs))
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
            product = response.headers.get("X-Elastic-Product", "")
            body = json.loads(response.read(1_000_000))
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return Check("elasticsearch", False, f"{shown} unreachable: {reason}")
    version = str(body.get("version", {}).get("number", "?"))
    if product != "Elasticsearch":
        return Check("elasticsearch", False, f"{shown} is not Elasticsearch")
    if not version.startswith(("8.", "9.")):
        return Check("elasticsearch", False, f"{shown} runs {version}; 8.x or 9.x needed")
    return Check("elasticsearch", True, f"{shown} Elasticsearch {version}")


def _check_smtp(settings: Settings, timeout: float) -> Check:
    where = f"{settings.smtp_host}:{settings.smtp_port}"
    try:
        config = SmtpConfig.from_settings(settings)
    except ConfigError as exc:
        return Check("smtp", False, str(exc))
    if config.unencrypted_remote:
        note = "; mail goes out unencrypted (NEWSRADAR_SMTP_STARTTLS=false)"
    else:
        note = " (STARTTLS)" if config.starttls else ""
    try:
        with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=timeout) as smtp:
            code, _ = smtp.noop()
    except (OSError, smtplib.SMTPException) as exc:
        return Check("smtp", False, f"{where} unreachable: {exc}{note}")
    if code != 250:
        return Check("smtp", False, f"{where} answered NOOP with {code}{note}")
    return Check("smtp", True, f"{where} answers{note}")


def doctor(settings: Settings, *, timeout: float = 3.0) -> list[Check]:
    """Check the configuration and every service it points at."""
    config_check, _ = _check_config(settings)
    return [
        config_check,
        _check_elasticsearch(settings, timeout),
        _check_smtp(settings, timeout),
    ]


def cmd_doctor(settings: Settings, args: argparse.Namespace) -> int:
    """Print the checks; exit 1 when one fails."""
    checks = doctor(settings)
    if args.json:
        print(json.dumps({"ok": all(c.ok for c in checks), "checks": [asdict(c) for c in checks]}))
    else:
        for check in checks:
            print(f"{'ok  ' if check.ok else 'FAIL'} {check.name:<14} {check.detail}")
    return 0 if all(c.ok for c in checks) else 1
