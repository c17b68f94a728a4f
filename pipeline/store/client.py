"""Elasticsearch access: the client from settings, index names, and installing mappings/."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Final, TypeVar

from elastic_transport import TransportError
from elasticsearch import ApiError, BadRequestError, Elasticsearch
from elasticsearch import ConnectionError as EsConnectionError

from pipeline.errors import ConfigError, TransientError
from pipeline.settings import Settings
from pipeline.store.names import INDICES, LANGUAGE_FIELDS, IndexNames

__all__ = [
    "INDICES",
    "LANGUAGE_FIELDS",
    "MAPPINGS_DIR",
    "IndexNames",
    "InstallReport",
    "SearchUnavailable",
    "call",
    "connect",
    "install",
    "load_template",
    "node_url",
    "rollover",
]

_T = TypeVar("_T")

MAPPINGS_DIR: Final = Path(__file__).resolve().parents[2] / "mappings"


class SearchUnavailable(TransientError):
    """Elasticsearch could not be reached or answered with a server error; retry later."""

    def __init__(self, url: str, detail: str) -> None:
        super().__init__(f"Elasticsearch at {url} is unavailable: {detail}")
        self.url = url
        self.detail = detail

    def __reduce__(self) -> tuple[Any, ...]:
        # Airflow and multiprocessing pickle exceptions; the default would call __init__ with
        # the message alone.
        return (type(self), (self.url, self.detail))


def connect(settings: Settings, *, timeout: float = 30.0) -> Elasticsearch:
    """A client for ``NEWSRADAR_ES_URL`` with the API key and CA certificates from settings.

    With several nodes in the URL the client is given all of them: a request that cannot reach
    one node is retried on the next (elasticsearch-py's node pool), so one dead node is skipped.
    """
    options: dict[str, Any] = {"request_timeout": timeout}
    if settings.es_api_key is not None:
        options["api_key"] = settings.es_api_key.get_secret_value()
    if settings.es_ca_certs is not None:
        options["ca_certs"] = str(settings.es_ca_certs)
    urls = settings.es_urls
    return Elasticsearch(urls[0] if len(urls) == 1 else urls, **options)


@cache
def _template_file(name: str) -> dict[str, Any]:
    path = MAPPINGS_DIR / f"{name}.json"
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(str(path), name, f"cannot be read as JSON: {exc}") from exc
    if not isinstance(body, dict) or "template" not in body:
        raise ConfigError(str(path), name, "is not an index template (no 'template' key)")
    return body


def load_template(name: str, prefix: str) -> dict[str, Any]:
    """The index template ``mappings/<name>.json`` with ``{prefix}`` filled in."""
    body = copy.deepcopy(_template_file(name))
    body["index_patterns"] = [p.replace("{prefix}", prefix) for p in body["index_patterns"]]
    body.setdefault("_meta", {})["managed_by"] = "newsradar"
    return body


@dataclass(slots=True)
class InstallReport:
    """What ``install`` changed: templates written, indices created, mappings extended.

    A template or alias counts only when what Elasticsearch stores changed; one that already
    held what install would write is ``unchanged`` (aliases) or not listed (templates).
    """

    templates: list[str] = field(default_factory=list)
    created: list[str] = field(default_factory=list)
    upgraded: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    # The ILM policy attached to the articles indices; None where the cluster has no ILM.
    lifecycle_policy: str | None = None


def install(es: Elasticsearch, prefix: str) -> InstallReport:
    """Create or upgrade every template, index and alias under ``prefix``; safe to repeat.

    Templates are overwritten (they only shape future indices). An alias that exists keeps its
    indices and data; their mappings get the fields added since, which Elasticsearch accepts
    for new fields and refuses for changed ones, so an incompatible change fails loudly here.

    What is stored is compared before and after each write: Elasticsearch normalises what it
    stores (objects lose ``"type": "object"``, settings become strings), so only its own
    reading tells whether a write changed anything, and an unchanged write is a no-op there.
    """
    names = IndexNames(prefix)
    report = InstallReport()
    try:
        lifecycle = _articles_lifecycle(es, names)
        report.lifecycle_policy = lifecycle.get("index.lifecycle.name")
        templates_before = _stored_templates(es, names)
        for name in INDICES:
            body = load_template(name, prefix)
            if name == "articles" and lifecycle:
                body["template"].setdefault("settings", {}).update(lifecycle)
            es.indices.put_index_template(
                name=names.template(name),
                index_patterns=body["index_patterns"],
                template=body["template"],
                priority=body.get("priority", 200),
                meta=body["_meta"],
            )
            alias = names.alias(name)
            if es.indices.exists_alias(name=alias):
                before = _stored_index(es, alias, lifecycle if name == "articles" else {})
                analysers = _add_analysers(es, alias, body["template"].get("settings", {}))
                es.indices.put_mapping(index=alias, **body["template"]["mappings"])
                if name == "articles" and lifecycle:
                    es.indices.put_settings(index=alias, settings=lifecycle)
                after = _stored_index(es, alias, lifecycle if name == "articles" else {})
                changed = analysers or after != before
                (report.upgraded if changed else report.unchanged).append(alias)
                continue
            try:
                es.indices.create(
                    index=names.first_index(name), aliases={alias: {"is_write_index": True}}
                )
            except BadRequestError as exc:
                # Another installer created it between our check and our create.
                if exc.error != "resource_already_exists_exception":
                    raise
                continue
            report.created.append(names.first_index(name))
        templates_after = _stored_templates(es, names)
        report.templates = [
            names.template(name)
            for name in INDICES
            if templates_after.get(names.template(name))
            != templates_before.get(names.template(name))
        ]
        es.cluster.health(index=names.pattern, wait_for_status="yellow", timeout="30s")
    except EsConnectionError as exc:
        raise SearchUnavailable(node_url(es), str(exc)) from exc
    except ApiError as exc:
        if exc.meta.status >= 500:
            raise SearchUnavailable(node_url(es), str(exc)) from exc
        raise
    return report


def _add_analysers(es: Elasticsearch, alias: str, settings: dict[str, Any]) -> bool:
    """Give each index behind ``alias`` the template's analysers it lacks; True if one did.

    An index made before an analyser joined the template (the articles' folding analyser, say)
    refuses fields that name it. Elasticsearch adds analysers only to a closed index, so such an
    index is closed for the moment it takes, and opened again whatever happened. Analysers it
    already has are left as they are: changing one would change how stored text was analysed.
    """
    wanted: dict[str, Any] = settings.get("analysis", {}).get("analyzer", {})
    if not wanted:
        return False
    # An index without any analyser is left out of the answer, so the alias says which there are.
    stored = es.indices.get_settings(index=alias, name="index.analysis.analyzer.*").body
    changed = False
    for index in sorted(es.indices.get_alias(name=alias).body):
        settings_of = stored.get(index, {}).get("settings", {}).get("index", {})
        present = settings_of.get("analysis", {}).get("analyzer", {})
        missing = {name: spec for name, spec in wanted.items() if name not in present}
        if not missing:
            continue
        es.indices.close(index=index)
        try:
            es.indices.put_settings(index=index, settings={"analysis": {"analyzer": missing}})
        finally:
            es.indices.open(index=index, wait_for_active_shards="1")
        changed = True
    return changed


def _stored_templates(es: Elasticsearch, names: IndexNames) -> dict[str, Any]:
    """The index templates stored under the prefix, by name, as Elasticsearch returns them."""
    response = es.options(ignore_status=404).indices.get_index_template(name=f"{names.prefix}-*")
    return {t["name"]: t["index_template"] for t in response.get("index_templates", [])}


def _stored_index(es: Elasticsearch, alias: str, settings: dict[str, str]) -> dict[str, Any]:
    """The mappings of every index behind ``alias``, and the values of ``settings`` there."""
    stored: dict[str, Any] = {"mappings": es.indices.get_mapping(index=alias).body}
    if settings:
        stored["settings"] = es.indices.get_settings(index=alias, name=list(settings)).body
    return stored


def _articles_lifecycle(es: Elasticsearch, names: IndexNames) -> dict[str, str]:
    """Put the articles ILM policy where the cluster has ILM; the index settings that use it.

    Production clusters have ILM; the local node (no x-pack) answers ``_ilm/status`` with an
    error, and there ``rollover`` below does the same job when called on a schedule.
    """
    try:
        # Without ILM the node answers 405, and the client then benches the node for a second
        # (harmless with one node; clusters with ILM never see it).
        es.ilm.get_status()
    except ApiError as exc:
        if exc.meta.status >= 500:
            raise
        return {}
    policy = names.alias("articles")
    es.ilm.put_lifecycle(
        name=policy,
        policy={
            "_meta": {"managed_by": "newsradar"},
            "phases": {
                "hot": {
                    "actions": {"rollover": {"max_age": "30d", "max_primary_shard_size": "50gb"}}
                }
            },
        },
    )
    return {"index.lifecycle.name": policy, "index.lifecycle.rollover_alias": names.articles}


def rollover(
    es: Elasticsearch, names: IndexNames, max_age: str = "30d", max_primary_size: str = "50gb"
) -> bool:
    """Roll the articles alias over to a new write index once either limit is reached.

    For clusters without ILM (ILM does this by itself). Ids are unique per index only, so a
    create of an already stored article after a rollover is not refused: dedup must look the
    canonical URL up across the alias first.
    """
    try:
        response = es.indices.rollover(
            alias=names.articles,
            conditions={"max_age": max_age, "max_primary_shard_size": max_primary_size},
        )
    except EsConnectionError as exc:
        raise SearchUnavailable(node_url(es), str(exc)) from exc
    except ApiError as exc:
        if exc.meta.status >= 500:
            raise SearchUnavailable(node_url(es), str(exc)) from exc
        raise
    return bool(response["rolled_over"])


def call(es: Elasticsearch, request: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
    """Run ``request(*args, **kwargs)``; an unreachable or failing node is SearchUnavailable.

    Connection failures, 5xx and 429 are worth retrying later (transient); any other
    refusal is the caller's to handle and is raised as it is.
    """
    try:
        return request(*args, **kwargs)
    except TransportError as exc:
        raise SearchUnavailable(node_url(es), str(exc).splitlines()[0]) from exc
    except ApiError as exc:
        if exc.status_code >= 500 or exc.status_code == 429:
            raise SearchUnavailable(node_url(es), str(exc)) from exc
        raise


def node_url(es: Elasticsearch) -> str:
    """The URL of the client's node, or its nodes separated by commas, for error messages."""
    # Sorted: the pool shuffles its nodes, and a message should read the same every time.
    urls = sorted(str(node.base_url) for node in es.transport.node_pool.all())
    return ",".join(urls) if urls else "?"
