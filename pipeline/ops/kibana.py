"""Kibana dashboards: the saved objects in mappings/kibana/, imported under an index prefix."""

from __future__ import annotations

import base64
import copy
import json
import re
import ssl
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote, urlsplit

from pipeline.errors import ConfigError, PermanentError, TransientError
from pipeline.settings import Settings

__all__ = [
    "PLACEHOLDER",
    "SAVED_OBJECTS_DIR",
    "ImportReport",
    "KibanaAuth",
    "KibanaError",
    "KibanaUnavailable",
    "ObjectResult",
    "import_saved_objects",
    "load_saved_objects",
    "panel_request",
    "run_import",
    "to_ndjson",
]

# pipeline.store.client.MAPPINGS_DIR / "kibana", spelled out: importing pipeline.store.client
# loads the Elasticsearch client, seconds of start-up a Kibana import does not need.
SAVED_OBJECTS_DIR: Final = Path(__file__).resolve().parents[2] / "mappings" / "kibana"
# The files are written for the default prefix, so they also import by hand as they are.
# Every id and every data view title starts with "<PLACEHOLDER>-"; the loader swaps it for
# the install's prefix, so two installs in one Kibana space never overwrite each other.
PLACEHOLDER: Final = "newsradar"
_INDEX_REF: Final = "kibanaSavedObjectMeta.searchSourceJSON.index"
_SPACE_ID: Final = re.compile(r"^[a-z0-9_-]{1,100}$")
_INTERVAL: Final = re.compile(r"^(\d*)(ms|s|m|h|d|w|M|q|y)$")
_METRICS: Final = ("avg", "sum", "min", "max", "cardinality", "value_count", "median")
_BUCKETS: Final = frozenset(
    {"terms", "date_histogram", "filters", "histogram", "range", "date_range"}
)
# Kibana's own label for the bucket of documents without the field (terms "missingBucket").
_MISSING: Final = "__missing__"


class KibanaError(PermanentError):
    """Kibana refused the request (4xx) or answered with something that is not its API."""


class KibanaUnavailable(TransientError):
    """Kibana could not be reached or answered with a server error; retry later."""


# --- loading ----------------------------------------------------------------------------------


def load_saved_objects(
    prefix: str = PLACEHOLDER, directory: Path = SAVED_OBJECTS_DIR
) -> list[dict[str, Any]]:
    """Every saved object in ``directory/*.ndjson``, with ids and titles for ``prefix``."""
    files = sorted(directory.glob("*.ndjson"))
    if not files:
        raise ConfigError(str(directory), "", "holds no *.ndjson saved objects")
    objects: list[dict[str, Any]] = []
    for path in files:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            where = f"line {number}"
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ConfigError(str(path), where, f"not JSON: {exc.msg}") from None
            if not isinstance(obj, dict) or not {"id", "type", "attributes"} <= obj.keys():
                raise ConfigError(str(path), where, "not a saved object (id, type, attributes)")
            objects.append(_for_prefix(obj, prefix, f"{path}: {where}"))
    return objects


def _rebase(value: str, prefix: str, where: str) -> str:
    if not value.startswith(f"{PLACEHOLDER}-"):
        raise ConfigError(where, value, f"does not start with the placeholder '{PLACEHOLDER}-'")
    return f"{prefix}-{value.removeprefix(PLACEHOLDER + '-')}"


def _for_prefix(obj: dict[str, Any], prefix: str, where: str) -> dict[str, Any]:
    obj = copy.deepcopy(obj)
    obj["id"] = _rebase(obj["id"], prefix, where)
    for ref in obj.get("references", []):
        ref["id"] = _rebase(ref["id"], prefix, where)
    attributes = obj["attributes"]
    if obj["type"] == "index-pattern":
        attributes["title"] = _rebase(attributes["title"], prefix, where)
        name = attributes.get("name", "")
        if name.startswith(PLACEHOLDER):
            attributes["name"] = prefix + name.removeprefix(PLACEHOLDER)
    elif prefix != PLACEHOLDER:
        # Dashboards of two installs in one space must be told apart in Kibana's lists.
        attributes["title"] = f"{attributes['title']} [{prefix}]"
        if "visState" in attributes:
            state = json.loads(attributes["visState"])
            state["title"] = attributes["title"]
            attributes["visState"] = json.dumps(state, ensure_ascii=False)
    return obj


def to_ndjson(objects: Iterable[Mapping[str, Any]]) -> bytes:
    """The objects as Kibana's import reads them: one JSON object per line."""
    return "".join(json.dumps(o, ensure_ascii=False) + "\n" for o in objects).encode("utf-8")


# --- importing --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KibanaAuth:
    """Credentials for Kibana: an API key, or a user and password (Basic), or none."""

    user: str | None = None
    password: str | None = None
    api_key: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> KibanaAuth:
        """From ``NEWSRADAR_KIBANA_API_KEY`` or ``NEWSRADAR_KIBANA_USER``/``_PASSWORD``."""
        password = settings.kibana_password
        if (settings.kibana_user is None) != (password is None):
            raise ConfigError(
                "environment",
                "NEWSRADAR_KIBANA_USER",
                "NEWSRADAR_KIBANA_USER and NEWSRADAR_KIBANA_PASSWORD go together",
            )
        return cls(
            user=settings.kibana_user,
            password=password.get_secret_value() if password is not None else None,
            api_key=(
                settings.kibana_api_key.get_secret_value()
                if settings.kibana_api_key is not None
                else None
            ),
        )

    def header(self) -> str | None:
        """The Authorization header value, or None to send none."""
        if self.api_key is not None:
            return f"ApiKey {self.api_key}"
        if self.user is not None and self.password is not None:
            pair = f"{self.user}:{self.password}".encode()
            return f"Basic {base64.b64encode(pair).decode('ascii')}"
        return None


@dataclass(frozen=True, slots=True)
class ObjectResult:
    """What Kibana said about one saved object."""

    type: str
    id: str
    title: str
    ok: bool
    error: str | None = None


@dataclass(frozen=True, slots=True)
class ImportReport:
    """Kibana's answer to one import: the endpoint, its verdict and one result per object."""

    endpoint: str
    success: bool
    results: tuple[ObjectResult, ...]

    @property
    def imported(self) -> int:
        """Objects Kibana imported."""
        return sum(r.ok for r in self.results)

    @property
    def failed(self) -> tuple[ObjectResult, ...]:
        """The objects Kibana refused, with its errors."""
        return tuple(r for r in self.results if not r.ok)

    @property
    def ok(self) -> bool:
        """Kibana's ``success`` and no object left out or refused."""
        return self.success and not self.failed


def import_endpoint(url: str, space: str | None = None) -> str:
    """The saved-objects import URL of Kibana at ``url`` (a base path is kept) in ``space``."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError("--url", url, "is not an http(s) URL")
    if parts.username or parts.password:
        raise ConfigError(
            "--url", parts.hostname, "put credentials in NEWSRADAR_KIBANA_USER/_PASSWORD"
        )
    base = url.rstrip("/")
    if space is not None and space != "default":
        if not _SPACE_ID.match(space):
            raise ConfigError("--space", space, "is not a Kibana space id ([a-z0-9_-])")
        base += f"/s/{quote(space)}"
    return f"{base}/api/saved_objects/_import?overwrite=true"


def import_saved_objects(
    url: str,
    objects: Sequence[Mapping[str, Any]],
    *,
    space: str | None = None,
    auth: KibanaAuth | None = None,
    ca_certs: Path | None = None,
    timeout: float = 60.0,
) -> ImportReport:
    """Upload ``objects`` to Kibana's saved-objects import API, overwriting what is there.

    Safe to repeat: ids are fixed, so a second import replaces the first. Raises
    KibanaError on a 4xx or a body that is not the API's, KibanaUnavailable when Kibana
    cannot be reached or answers 5xx; a 2xx with refused objects is returned, not raised.
    """
    endpoint = import_endpoint(url, space)
    boundary = f"newsradar-{uuid.uuid4().hex}"
    body = b"".join(
        [
            f"--{boundary}\r\n".encode(),
            b'Content-Disposition: form-data; name="file"; filename="newsradar.ndjson"\r\n',
            b"Content-Type: application/ndjson\r\n\r\n",
            to_ndjson(objects),
            f"\r\n--{boundary}--\r\n".encode(),
        ]
    )
    request = urllib.request.Request(endpoint, data=body, method="POST")
    request.add_header("Content-Type", f"multipart/form-data; boundary={boundary}")
    # Kibana refuses state-changing API calls without it (its CSRF guard).
    request.add_header("kbn-xsrf", "true")
    request.add_header("Accept", "application/json")
    header = auth.header() if auth is not None else None
    if header is not None:
        request.add_header("Authorization", header)
    context = ssl.create_default_context(cafile=str(ca_certs) if ca_certs else None)
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
            raw = response.read(50_000_000)
    except urllib.error.HTTPError as exc:
        detail = _error_message(exc.read(1_000_000))
        what = f"Kibana at {endpoint} answered {exc.code} {exc.reason}: {detail}"
        if exc.code >= 500:
            raise KibanaUnavailable(what) from None
        raise KibanaError(what) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise KibanaUnavailable(f"Kibana at {endpoint} is unreachable: {reason}") from None
    try:
        answer = json.loads(raw)
    except ValueError:
        raise KibanaError(f"Kibana at {endpoint} answered with something not JSON") from None
    if not isinstance(answer, dict) or "success" not in answer:
        raise KibanaError(f"Kibana at {endpoint} answered without a 'success' verdict")
    return ImportReport(endpoint, answer["success"] is True, _results(objects, answer))


def _error_message(raw: bytes) -> str:
    try:
        body = json.loads(raw)
    except ValueError:
        return " ".join(raw.decode("utf-8", "replace").split())[:300] or "(no body)"
    if isinstance(body, dict) and body.get("message"):
        return str(body["message"])
    return json.dumps(body)[:300]


def _describe(error: Mapping[str, Any]) -> str:
    kind = str(error.get("type", "unknown"))
    if kind == "missing_references":
        missing = ", ".join(f"{r.get('type')} {r.get('id')}" for r in error.get("references", []))
        return f"missing references: {missing}"
    if kind == "ambiguous_conflict":
        return "ambiguous conflict with objects in other spaces"
    if kind == "unsupported_type":
        return "Kibana does not know this object type"
    message = error.get("message") or error.get("reason")
    return f"{kind}: {message}" if message else kind


def _results(
    sent: Sequence[Mapping[str, Any]], answer: Mapping[str, Any]
) -> tuple[ObjectResult, ...]:
    """One result per sent object, in the order sent; any object Kibana skipped fails."""
    done: dict[tuple[str, str], ObjectResult] = {}
    for item in answer.get("successResults") or []:
        key = (str(item.get("type")), str(item.get("id")))
        title = str((item.get("meta") or {}).get("title", ""))
        done[key] = ObjectResult(key[0], key[1], title, True)
    for item in answer.get("errors") or []:
        key = (str(item.get("type")), str(item.get("id")))
        title = str(item.get("title") or (item.get("meta") or {}).get("title", ""))
        done[key] = ObjectResult(key[0], key[1], title, False, _describe(item.get("error") or {}))
    results = []
    for obj in sent:
        key = (str(obj["type"]), str(obj["id"]))
        title = str(obj["attributes"].get("title", ""))
        if key in done:
            results.append(done.pop(key))
        else:
            results.append(ObjectResult(*key, title, False, "not mentioned in Kibana's answer"))
    return tuple(results) + tuple(done.values())


def run_import(settings: Settings, *, url: str | None, space: str | None, as_json: bool) -> int:
    """``newsradar kibana import``: print one line per object; non-zero if any failed."""
    objects = load_saved_objects(settings.index_prefix)
    report = import_saved_objects(
        url or settings.kibana_url,
        objects,
        space=space,
        auth=KibanaAuth.from_settings(settings),
        ca_certs=settings.kibana_ca_certs,
    )
    if as_json:
        print(
            json.dumps(
                {
                    "ok": report.ok,
                    "endpoint": report.endpoint,
                    "prefix": settings.index_prefix,
                    "imported": report.imported,
                    "failed": len(report.failed),
                    "objects": [asdict(r) for r in report.results],
                },
                ensure_ascii=False,
            )
        )
    else:
        for r in report.results:
            tail = f": {r.error}" if r.error else ""
            print(f"{'ok  ' if r.ok else 'FAIL'} {r.type:<14} {r.id}  {r.title}{tail}")
        print(f"imported {report.imported} of {len(report.results)} saved objects")
    if report.ok:
        return 0
    first = report.failed[0] if report.failed else None
    why = f"; first: {first.id}: {first.error}" if first else ""
    print(
        f"newsradar kibana: Kibana refused {len(report.failed)} of {len(report.results)} "
        f"saved objects{why}",
        file=sys.stderr,
    )
    return 1


# --- panels as Elasticsearch requests ---------------------------------------------------------


def panel_request(
    obj: Mapping[str, Any],
    objects: Mapping[str, Mapping[str, Any]],
    *,
    time_range: tuple[str, str] | None = None,
    auto_interval: str = "1d",
) -> dict[str, Any]:
    """The search a ``visualization`` or ``search`` object makes: ``{"index": ..., "body": ...}``.

    ``objects`` maps ids to saved objects (for the data view). Bucket aggregations nest in
    the order Kibana's editor lists them, metrics sit in the innermost bucket, as Kibana
    builds its request; ``time_range`` (from, to) filters on the data view's time field the
    way a dashboard's time picker does; ``auto_interval`` is the interval taken where Kibana
    would pick one ("auto"). Only Lucene queries are translated (KQL needs Kibana's parser),
    so the files use Lucene. A panel this cannot translate raises ConfigError.
    """
    refs = {r["name"]: r["id"] for r in obj.get("references", [])}
    if _INDEX_REF not in refs or refs[_INDEX_REF] not in objects:
        raise _untranslatable(f"{obj['id']}: no data view reference")
    view = objects[refs[_INDEX_REF]]["attributes"]
    attributes = obj["attributes"]
    source = json.loads(attributes["kibanaSavedObjectMeta"]["searchSourceJSON"])
    clauses = [_query(source.get("query") or {})]
    if time_range is not None and view.get("timeFieldName"):
        start, end = time_range
        clauses.append({"range": {view["timeFieldName"]: {"gte": start, "lte": end}}})
    body: dict[str, Any] = {"query": {"bool": {"filter": clauses}}}
    if obj["type"] == "search":
        body["size"] = 50
        body["sort"] = [{field: {"order": order}} for field, order in attributes.get("sort", [])]
        body["_source"] = list(attributes.get("columns", []))
    elif obj["type"] == "visualization":
        state = json.loads(attributes["visState"])
        body["size"] = 0
        body["track_total_hits"] = True
        aggs = [a for a in state.get("aggs", []) if a.get("enabled", True)]
        body["aggs"] = _nest(aggs, auto_interval)
    else:
        raise _untranslatable(f"{obj['id']}: a {obj['type']} is no panel with a query")
    return {"index": view["title"], "body": body}


def _untranslatable(problem: str) -> ConfigError:
    return ConfigError(str(SAVED_OBJECTS_DIR), "", problem)


def _query(query: Mapping[str, Any]) -> dict[str, Any]:
    text = str(query.get("query") or "").strip()
    if not text:
        return {"match_all": {}}
    if query.get("language") != "lucene":
        raise _untranslatable(f"only Lucene queries are translated, not {query.get('language')!r}")
    # What Kibana sends for a Lucene query bar.
    return {"query_string": {"query": text, "analyze_wildcard": True}}


def _nest(aggs: list[dict[str, Any]], auto_interval: str) -> dict[str, Any]:
    metrics = {a["id"]: a for a in aggs if a["type"] not in _BUCKETS}
    buckets = [a for a in aggs if a["type"] in _BUCKETS]
    inner = {agg_id: _metric(a) for agg_id, a in metrics.items() if a["type"] != "count"}
    for bucket in reversed(buckets):
        request = _bucket(bucket, metrics, auto_interval)
        if inner:
            request["aggs"] = {**request.get("aggs", {}), **inner}
        inner = {bucket["id"]: request}
    return inner


def _metric(agg: Mapping[str, Any]) -> dict[str, Any]:
    kind, params = agg["type"], agg.get("params", {})
    if kind == "median":
        return {"percentiles": {"field": params["field"], "percents": [50]}}
    if kind in _METRICS:
        return {kind: {"field": params["field"]}}
    if kind == "top_hits":
        request: dict[str, Any] = {
            "size": int(params.get("size", 1)),
            "_source": {"includes": [params["field"]]},
        }
        if params.get("sortField"):
            request["sort"] = [{params["sortField"]: {"order": params.get("sortOrder", "desc")}}]
        return {"top_hits": request}
    raise _untranslatable(f"aggregation {kind!r} is not translated")


def _bucket(
    agg: Mapping[str, Any], metrics: Mapping[str, Mapping[str, Any]], auto_interval: str
) -> dict[str, Any]:
    kind, params = agg["type"], agg.get("params", {})
    if kind == "terms":
        request: dict[str, Any] = {"field": params["field"], "size": int(params.get("size", 10))}
        order_by, order = str(params.get("orderBy", "_count")), params.get("order", "desc")
        if order_by == "_key":
            request["order"] = {"_key": order}
        elif order_by in metrics and metrics[order_by]["type"] != "count":
            request["order"] = {order_by: order}
        else:
            request["order"] = {"_count": order}
        if params.get("missingBucket"):
            request["missing"] = _MISSING
        result: dict[str, Any] = {"terms": request}
        if order_by in metrics and metrics[order_by]["type"] != "count":
            # Kibana orders by a metric computed in the terms bucket itself.
            result["aggs"] = {order_by: _metric(metrics[order_by])}
        return result
    if kind == "date_histogram":
        interval = str(params.get("interval", "auto"))
        return {
            "date_histogram": {
                "field": params["field"],
                **_interval(auto_interval if interval == "auto" else interval),
                "min_doc_count": int(params.get("min_doc_count", 1)),
                "time_zone": "UTC",
            }
        }
    if kind == "filters":
        return {
            "filters": {
                "filters": {
                    f.get("label") or f["input"]["query"] or "*": _query(f["input"])
                    for f in params["filters"]
                }
            }
        }
    if kind == "histogram":
        return {"histogram": {"field": params["field"], "interval": params["interval"]}}
    if kind in ("range", "date_range"):
        return {kind: {"field": params["field"], "ranges": params["ranges"]}}
    raise _untranslatable(f"aggregation {kind!r} is not translated")


def _interval(value: str) -> dict[str, str]:
    match = _INTERVAL.match(value)
    if not match:
        raise _untranslatable(f"{value!r} is not a date histogram interval")
    count, unit = int(match.group(1) or 1), match.group(2)
    if count == 1 and unit not in ("ms", "s"):
        return {"calendar_interval": f"1{unit}"}
    if unit in ("w", "M", "q", "y"):
        raise _untranslatable(f"{value!r}: weeks, months, quarters and years come one at a time")
    return {"fixed_interval": f"{count}{unit}"}
