"""One typed settings object: environment variables plus sources.yaml and alerts.yaml."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Final, Literal, TypeVar
from urllib.parse import urlsplit

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from pipeline.alerts.query import QuerySyntaxError, parse_query
from pipeline.errors import ConfigError
from pipeline.store.names import LANGUAGE_FIELDS, IndexNames

__all__ = [
    "DEFAULT_MIN_RELEVANCE",
    "FOCUS_RELEVANCE",
    "AlertRule",
    "Breaking",
    "Config",
    "RuleFilters",
    "Settings",
    "Source",
    "load_config",
    "load_settings",
]

_M = TypeVar("_M", bound=BaseModel)
_DURATION = re.compile(r"^(\d+)([smhd])$")
_DURATION_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
# Config files nest about 6 levels; PyYAML's composer recurses once per level.
_MAX_YAML_DEPTH = 100
# Relevance thresholds (pipeline.alerts.relevance scores 0..1 in tiers): the rule's terms in
# the title score 0.8 and more, in the lead (first paragraph) 0.5 and more, only further down
# below 0.5, as far as the text keeps coming back to them. ``focus`` names a tier; the default
# lets a body-only match through when the text is about the topic (tuned on
# tests/fixtures/relevance).
FOCUS_RELEVANCE: Final = {"title": 0.8, "lead": 0.5, "body": 0.0}
DEFAULT_MIN_RELEVANCE: Final = 0.25
# Deliberately loose: the SMTP server is the judge of deliverability; this catches typos.
_EMAIL = re.compile(r"^[^@\s<>,;\"]+@[^@\s<>,;\"]+\.[^@\s<>,;\"]+$")


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{value!r} is not an http(s) URL")
    return value


def _email(value: str) -> str:
    if not _EMAIL.match(value):
        raise ValueError(f"{value!r} is not an e-mail address")
    return value


def _http_urls(value: str) -> str:
    """One http(s) URL, or several separated by commas (the nodes of one cluster)."""
    if "," not in value:
        return _http_url(value)
    urls = [part.strip() for part in value.split(",")]
    if not all(urls):
        raise ValueError(f"{value!r} has an empty entry between its commas")
    return ",".join(_http_url(url) for url in urls)


HttpUrl = Annotated[str, AfterValidator(_http_url)]
HttpUrls = Annotated[str, AfterValidator(_http_urls)]
Email = Annotated[str, AfterValidator(_email)]


def parse_duration(value: str) -> int:
    """Seconds in a duration such as ``15m``, ``2h`` or ``1d``."""
    match = _DURATION.match(value.strip())
    if not match or int(match.group(1)) == 0:
        raise ValueError(f"{value!r} is not a duration like 30s, 15m, 2h or 1d")
    return int(match.group(1)) * _DURATION_SECONDS[match.group(2)]


# Where the local services sit above NEWSRADAR_PORT_BASE; docker/ports.sh holds the whole plan.
_ES_PORT_OFFSET: Final = 0
_MAIL_PORT_OFFSET: Final = 5
_PORT_SPAN: Final = 7


def _port_or_none(value: Any) -> int | None:
    """``value`` as a port number, or None when it is not one (field validation then says so)."""
    try:
        port = int(value)
    except (TypeError, ValueError):
        return None
    return port if 0 < port < 65536 else None


class Settings(BaseSettings):
    """Process-wide settings from ``NEWSRADAR_*`` environment variables (INTERFACE.md)."""

    model_config = SettingsConfigDict(env_prefix="NEWSRADAR_", extra="ignore", frozen=True)

    # One node's URL, or a cluster's nodes separated by commas: the client then goes to the next
    # one when a node does not answer (es_urls, es_first_url).
    es_url: HttpUrls = "http://127.0.0.1:9200"
    # The local node's port (docker/es-up.sh) and the base every local port is derived from
    # (docker/ports.sh); they name the URL and the mail sink's port when those are not given.
    es_port: int | None = Field(default=None, ge=1, le=65535)
    port_base: int | None = Field(default=None, ge=1024, le=65535 - _PORT_SPAN)
    es_api_key: SecretStr | None = None
    es_ca_certs: Path | None = None
    index_prefix: str = Field(default="newsradar", pattern=r"^[a-z0-9][a-z0-9_-]{0,40}$")
    config_dir: Path = Path("config")
    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(default=8025, ge=1, le=65535)
    smtp_user: str | None = None
    smtp_password: SecretStr | None = None
    # None is "auto": STARTTLS to any host but loopback (the demo's mail sink has no TLS); an
    # explicit false to a remote host is an opt-out that doctor reports.
    smtp_starttls: bool | None = None
    smtp_from: Email = "newsradar@localhost.localdomain"
    # Where a digest's "not relevant" links write to (`newsradar alerts feedback` reads that
    # mailbox); the sender's address when unset.
    feedback_address: Email | None = None
    allow_private_networks: bool = False
    contact_url: HttpUrl = "https://example.org/newsradar-contact"
    # Seconds of CPU the crawl may spend extracting one page; over it the page's outcome is
    # extract_timeout (pipeline.normalise.page.ExtractionPool).
    extract_timeout: float = Field(default=10.0, gt=0, le=3600)
    # `newsradar kibana import`: an API key wins over user and password.
    kibana_url: HttpUrl = "http://127.0.0.1:5601"
    kibana_user: str | None = None
    kibana_password: SecretStr | None = None
    kibana_api_key: SecretStr | None = None
    kibana_ca_certs: Path | None = None
    # The crawl's politeness for every host (pipeline.jobs.crawl_policy): seconds between two
    # requests, and requests in flight; a source's own ``crawl:`` limits win.
    crawl_delay: float = 1.0
    crawl_concurrency: int = 2
    # Sources per mapped Airflow task (dags/newsradar_common.shards).
    sources_per_task: int = 1
    # Whether independently written reports of one event are one story, and when
    # (pipeline.normalise.events.EventConfig):
    # the most hours between them, the least score within a language and across two, and the
    # names, numbers or dates they must share. Defaults chosen on tests/fixtures/events.
    story_same_event: bool = True
    story_window_hours: float = Field(default=72.0, gt=0, le=24 * 31)
    story_threshold: float = Field(default=0.16, gt=0, le=2)
    story_cross_threshold: float = Field(default=0.10, gt=0, le=2)
    story_min_shared: int = Field(default=2, ge=1, le=20)

    @cached_property
    def names(self) -> IndexNames:
        """The index names under ``index_prefix``, one object for every stage."""
        return IndexNames(self.index_prefix)

    @property
    def es_urls(self) -> list[str]:
        """The Elasticsearch nodes ``es_url`` names, in its order (one for a single URL)."""
        return self.es_url.split(",")

    @property
    def es_first_url(self) -> str:
        """The first node ``es_url`` names: where one URL alone is meaningful."""
        return self.es_urls[0]

    def to_json(self) -> str:
        """Every setting as JSON, secrets in clear: for a child process's private job file."""
        data = self.model_dump(mode="json")
        for name, value in self:
            if isinstance(value, SecretStr):
                data[name] = value.get_secret_value()
        return json.dumps(data, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> Settings:
        """Settings written by ``to_json``; the environment is not read."""
        return cls.model_validate(json.loads(text))

    @field_validator("crawl_delay", mode="before")
    @classmethod
    def _crawl_delay(cls, value: Any) -> Any:
        return _number(value, 1.0, 0.0, 60.0)

    @field_validator("crawl_concurrency", mode="before")
    @classmethod
    def _crawl_concurrency(cls, value: Any) -> Any:
        return int(_number(value, 2, 1, 64))

    @field_validator("sources_per_task", mode="before")
    @classmethod
    def _sources_per_task(cls, value: Any) -> Any:
        raw = str(value).strip() or "1"
        if not raw.isdigit() or not 1 <= int(raw) <= 1000:
            raise ValueError(f"{raw!r} is not 1..1000")
        return int(raw)

    @model_validator(mode="before")
    @classmethod
    def _local_ports(cls, data: Any) -> Any:
        """Derive the local node's URL and the mail sink's port from the port variables.

        Without this, NEWSRADAR_ES_PORT alone would leave the URL on 9200: another node, used
        silently. A variable given explicitly always wins over a derived value.
        """
        if not isinstance(data, dict):
            return data
        data = dict(data)
        base = _port_or_none(data.get("port_base"))
        if "es_url" not in data:
            port = _port_or_none(data.get("es_port"))
            if port is None and base is not None:
                port = base + _ES_PORT_OFFSET
            if port is not None:
                data["es_url"] = f"http://127.0.0.1:{port}"
        # Only the loopback sink moves with the base; a named mail server keeps its own port.
        if base is not None and "smtp_host" not in data and "smtp_port" not in data:
            data["smtp_port"] = base + _MAIL_PORT_OFFSET
        return data


def _number(value: Any, default: float, low: float, high: float) -> float:
    """``value`` (an environment string or a number) as a number in [low, high]; blank: default."""
    raw = str(value).strip()
    if not raw:
        return default
    try:
        number = float(raw)
    except ValueError:
        raise ValueError(f"{raw!r} is not a number") from None
    if not low <= number <= high:
        raise ValueError(f"{raw} is not between {low:g} and {high:g}")
    return number


class CrawlLimits(BaseModel):
    """A source's own politeness, over the crawl's defaults: requests at once and the gap."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    concurrency: int | None = Field(default=None, ge=1, le=16)
    delay: float | None = Field(default=None, ge=0.0, le=600.0)  # seconds between requests


class Source(BaseModel):
    """One news source: where its articles are found."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z0-9-]+$", max_length=64)
    name: str = Field(min_length=1)
    feeds: tuple[HttpUrl, ...] = ()
    sitemaps: tuple[HttpUrl, ...] = ()
    start_urls: tuple[HttpUrl, ...] = ()
    homepage: HttpUrl | None = None
    language: str | None = Field(default=None, pattern=r"^[a-z]{2}$")
    country: str | None = Field(default=None, pattern=r"^[A-Z]{2}$")
    crawl: CrawlLimits | None = None

    @model_validator(mode="after")
    def _has_an_entry_point(self) -> Source:
        if not (self.feeds or self.sitemaps or self.start_urls or self.homepage):
            raise ValueError("needs at least one of feeds, sitemaps, start_urls or homepage")
        return self


# YAML 1.1 (PyYAML) reads an unquoted no, the code of Norwegian, as the boolean false.
_UNQUOTED_NO: Final = 'YAML reads an unquoted no as false: write Norwegian as "no"'


class RuleFilters(BaseModel):
    """Which articles a rule may match at all; an empty list does not filter."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sources: tuple[str, ...] = ()
    languages: tuple[str, ...] = ()
    countries: tuple[Annotated[str, Field(pattern=r"^[A-Z]{2}$")], ...] = ()

    @field_validator("languages", mode="before")
    @classmethod
    def _no_is_norwegian(cls, value: Any) -> Any:
        if isinstance(value, list | tuple) and any(isinstance(v, bool) for v in value):
            raise ValueError(_UNQUOTED_NO)
        return value


class Breaking(BaseModel):
    """A breaking-story rule's trigger: ``sources`` distinct sources within ``within``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sources: int = Field(ge=2, le=100)
    within: str

    @field_validator("within")
    @classmethod
    def _within_is_duration(cls, value: str) -> str:
        parse_duration(value)
        return value

    @property
    def within_seconds(self) -> int:
        """The window in seconds."""
        return parse_duration(self.within)


class AlertRule(BaseModel):
    """One topic rule; ``queries`` maps a language code to the rule's query in that language.

    The query syntax is pipeline.alerts.query'; ``min_sources`` holds a story back until that many
    distinct sources carry it. ``min_relevance`` (or its shorthand ``focus``) is how much a
    matched article must be about the topic (pipeline.alerts.relevance). With ``breaking`` the
    rule alerts when a story reaches that many sources within the window: a story on its
    topic, or any story when it has no queries.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z0-9-]+$", max_length=64)
    name: str = Field(min_length=1)
    recipients: tuple[Email, ...] = Field(min_length=1)
    digest: str = "15m"
    queries: dict[str, str] = Field(default_factory=dict)
    filters: RuleFilters | None = None
    min_sources: int = Field(default=1, ge=1, le=100)
    min_relevance: float | None = Field(default=None, ge=0.0, le=1.0)
    focus: Literal["title", "lead", "body"] | None = None
    breaking: Breaking | None = None

    @field_validator("digest")
    @classmethod
    def _digest_is_duration(cls, value: str) -> str:
        parse_duration(value)
        return value

    @field_validator("queries", mode="before")
    @classmethod
    def _no_is_norwegian(cls, value: Any) -> Any:
        if isinstance(value, dict) and any(isinstance(key, bool) for key in value):
            raise ValueError(_UNQUOTED_NO)
        return value

    @field_validator("queries")
    @classmethod
    def _languages_are_codes(cls, value: dict[str, str]) -> dict[str, str]:
        for lang, query in value.items():
            if not re.fullmatch(r"[a-z]{2}", lang):
                raise ValueError(f"language key {lang!r} is not a two-letter code")
            if not query.strip():
                raise ValueError(f"the {lang} query is empty")
        for lang, query in value.items():
            if lang not in LANGUAGE_FIELDS:
                known = ", ".join(LANGUAGE_FIELDS)
                raise ValueError(
                    f"unknown language {lang!r}: queries can use the {len(LANGUAGE_FIELDS)} "
                    f"languages of the language table ({known})"
                )
            try:
                parse_query(query)
            except QuerySyntaxError as exc:
                raise ValueError(f"the {lang} query: {exc}") from None
        return value

    @model_validator(mode="after")
    def _filter_languages_have_queries(self) -> AlertRule:
        for lang in self.filters.languages if self.filters else ():
            if lang not in self.queries:
                raise ValueError(f"filters.languages has {lang!r}, which has no query")
        return self

    @model_validator(mode="after")
    def _options_fit_together(self) -> AlertRule:
        if not self.queries and self.breaking is None:
            raise ValueError("queries: a rule needs at least one query, unless it is breaking:")
        if self.min_relevance is not None and self.focus is not None:
            raise ValueError("give min_relevance or focus, not both (focus is its shorthand)")
        if self.breaking is not None and self.min_sources > 1:
            raise ValueError("breaking.sources replaces min_sources: give one of them")
        return self

    @property
    def digest_seconds(self) -> int:
        """The digest interval in seconds."""
        return parse_duration(self.digest)

    @property
    def relevance_threshold(self) -> float:
        """The least relevance a match needs: min_relevance, else the focus's, else the default."""
        if self.min_relevance is not None:
            return self.min_relevance
        if self.focus is not None:
            return FOCUS_RELEVANCE[self.focus]
        return DEFAULT_MIN_RELEVANCE

    @property
    def languages(self) -> tuple[str, ...]:
        """The languages whose articles the rule reads: its queries', less those filtered out."""
        chosen = self.filters.languages if self.filters and self.filters.languages else ()
        return tuple(sorted(lang for lang in self.queries if not chosen or lang in chosen))


class _SourcesFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sources: list[Source] = Field(min_length=1)


class _AlertsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    alerts: list[AlertRule] = Field(default_factory=list)


@dataclass(frozen=True)
class Config:
    """Everything the entry point passes down: settings, sources and alert rules."""

    settings: Settings
    sources: tuple[Source, ...]
    alerts: tuple[AlertRule, ...]

    def source(self, source_id: str) -> Source:
        """The source with this id; a ConfigError names unknown ids."""
        for source in self.sources:
            if source.id == source_id:
                return source
        known = ", ".join(s.id for s in self.sources)
        raise ConfigError("sources.yaml", source_id, f"no such source (known: {known})")


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from the process environment, or from ``environ`` when given (tests)."""
    try:
        if environ is None:
            return Settings()
        values = {
            key.removeprefix("NEWSRADAR_").lower(): value
            for key, value in environ.items()
            if key.startswith("NEWSRADAR_")
        }
        return Settings.model_validate(values)
    except ValidationError as exc:
        err = exc.errors()[0]
        name = "NEWSRADAR_" + str(err["loc"][0]).upper() if err["loc"] else "NEWSRADAR_*"
        raise ConfigError("environment", name, _message(err)) from None


def load_config(settings: Settings) -> Config:
    """Read and validate sources.yaml and alerts.yaml from ``settings.config_dir``."""
    sources_path = settings.config_dir / "sources.yaml"
    alerts_path = settings.config_dir / "alerts.yaml"
    sources = _load(sources_path, _SourcesFile, "sources")
    _check_unique([s.id for s in sources.sources], sources_path, "sources")
    alerts = _load(alerts_path, _AlertsFile, "alerts") if alerts_path.exists() else _AlertsFile()
    _check_unique([a.id for a in alerts.alerts], alerts_path, "alerts")
    _check_filter_sources(alerts.alerts, {s.id for s in sources.sources}, alerts_path)
    return Config(settings=settings, sources=tuple(sources.sources), alerts=tuple(alerts.alerts))


class _StrictLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses a key given twice in one mapping, and very deep nesting.

    PyYAML keeps the last of two equal keys, so a second ``feeds:`` in a source would
    silently drop the first list; and its composer recurses once per level, so a few
    thousand ``[`` would exhaust Python's recursion limit.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        self._depth += 1
        try:
            if self._depth > _MAX_YAML_DEPTH:
                mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
                problem = f"nested deeper than {_MAX_YAML_DEPTH} levels"
                raise yaml.composer.ComposerError(None, None, problem, mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, yaml.Mark] = {}
        for key_node, _ in node.value:
            # A merge key (<<) may repeat keys it merges: overriding them is its purpose.
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.setdefault(key, key_node.start_mark)
            except TypeError:  # unhashable: the base class refuses it with its own message
                continue
            if first is not key_node.start_mark:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"duplicate key {key!r} (first on line {first.line + 1})",
                    key_node.start_mark,
                )
        return super().construct_mapping(node, deep=deep)


def _load(path: Path, model: type[_M], key: str) -> _M:
    try:
        # _StrictLoader is a SafeLoader: plain data only, no Python objects.
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_StrictLoader)
    except FileNotFoundError:
        raise ConfigError(str(path), "", "file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(str(path), "", f"cannot be read: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(str(path), "", f"not valid YAML: {where}{problem}") from None
    if not isinstance(raw, dict) or key not in raw:
        raise ConfigError(str(path), "", f"expected a mapping with a top-level '{key}:' list")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise ConfigError(str(path), _entry(raw, err["loc"]), _message(err)) from None


def _entry(raw: dict[str, Any], loc: tuple[int | str, ...]) -> str:
    """Name the failing entry the way a user finds it: ``sources[2] (id=foo).feeds[0]``."""
    parts: list[str] = []
    node: Any = raw
    for item in loc:
        if isinstance(item, int):
            parts[-1] += f"[{item}]"
            node = node[item] if isinstance(node, list) and item < len(node) else None
            if len(parts) == 1 and isinstance(node, dict) and "id" in node:
                parts[-1] += f" (id={node['id']})"
        else:
            parts.append(str(item))
            node = node.get(item) if isinstance(node, dict) else None
    return ".".join(parts)


def _message(err: Mapping[str, Any]) -> str:
    msg = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        return "unknown key"
    if err["type"] == "missing":
        return "required key is missing"
    return msg


def _check_unique(ids: list[str], path: Path, key: str) -> None:
    seen: set[str] = set()
    for index, ident in enumerate(ids):
        if ident in seen:
            raise ConfigError(str(path), f"{key}[{index}] (id={ident})", "duplicate id")
        seen.add(ident)


def _check_filter_sources(rules: list[AlertRule], known: set[str], path: Path) -> None:
    """A rule filtering on a source id that sources.yaml lacks would never match: a typo."""
    for index, rule in enumerate(rules):
        for position, source in enumerate(rule.filters.sources if rule.filters else ()):
            if source not in known:
                entry = f"alerts[{index}] (id={rule.id}).filters.sources[{position}]"
                raise ConfigError(str(path), entry, f"no such source {source!r} in sources.yaml")
