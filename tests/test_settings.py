"""Settings: environment variables and the two YAML files, good and each kind of bad."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.errors import ConfigError
from pipeline.settings import load_config, load_settings

REPO = Path(__file__).resolve().parents[1]

GOOD_SOURCES = """\
sources:
  - id: example-world
    name: Example World News
    feeds: [https://example.org/world/rss.xml]
    language: en
    country: GB
  - id: example-sitemaps
    name: Example Sitemaps
    sitemaps: [https://example.org/sitemap-news.xml]
"""

GOOD_ALERTS = """\
alerts:
  - id: nato-enlargement
    name: NATO enlargement
    recipients: [analyst@example.org]
    digest: 15m
    queries:
      en: 'NATO AND enlargement'
"""


def _config_dir(tmp_path: Path, sources: str = GOOD_SOURCES, alerts: str = GOOD_ALERTS) -> Path:
    (tmp_path / "sources.yaml").write_text(sources, encoding="utf-8")
    (tmp_path / "alerts.yaml").write_text(alerts, encoding="utf-8")
    return tmp_path


def _load(config_dir: Path) -> object:
    return load_config(load_settings({"NEWSRADAR_CONFIG_DIR": str(config_dir)}))


def test_defaults_work_locally() -> None:
    settings = load_settings({})
    assert settings.es_url == "http://127.0.0.1:9200"
    assert settings.index_prefix == "newsradar"
    assert settings.allow_private_networks is False


def test_environment_overrides_and_secrets_stay_secret() -> None:
    settings = load_settings(
        {
            "NEWSRADAR_INDEX_PREFIX": "test-abc",
            "NEWSRADAR_SMTP_PORT": "2525",
            "NEWSRADAR_SMTP_PASSWORD": "hunter2",
            "NEWSRADAR_ALLOW_PRIVATE_NETWORKS": "1",
        }
    )
    assert settings.index_prefix == "test-abc"
    assert settings.smtp_port == 2525
    assert settings.allow_private_networks is True
    assert settings.smtp_password is not None
    assert "hunter2" not in repr(settings)
    assert settings.smtp_password.get_secret_value() == "hunter2"


@pytest.mark.parametrize(("value", "expected"), [(None, None), ("true", True), ("false", False)])
def test_smtp_starttls_is_unset_unless_given(value: str | None, expected: bool | None) -> None:
    # Unset means "auto" (the mailer uses STARTTLS for any host but loopback), not "off".
    env = {} if value is None else {"NEWSRADAR_SMTP_STARTTLS": value}
    assert load_settings(env).smtp_starttls is expected


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("NEWSRADAR_SMTP_PORT", "not-a-port"),
        ("NEWSRADAR_SMTP_PORT", "70000"),
        ("NEWSRADAR_INDEX_PREFIX", "Has Spaces"),
        ("NEWSRADAR_ES_URL", "ftp://example.org"),
    ],
)
def test_bad_environment_names_the_variable(variable: str, value: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings({variable: value})
    assert info.value.entry == variable
    assert str(info.value).startswith(f"environment: {variable}: ")


@pytest.mark.parametrize(
    ("variable", "value", "problem"),
    [
        ("NEWSRADAR_CRAWL_DELAY", "soon", "'soon' is not a number"),
        ("NEWSRADAR_CRAWL_DELAY", "61", "61 is not between 0 and 60"),
        ("NEWSRADAR_CRAWL_CONCURRENCY", "0", "0 is not between 1 and 64"),
        ("NEWSRADAR_SOURCES_PER_TASK", "four", "'four' is not 1..1000"),
        ("NEWSRADAR_SOURCES_PER_TASK", "1001", "'1001' is not 1..1000"),
    ],
)
def test_bad_crawl_and_task_variables_are_one_line(variable: str, value: str, problem: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings({variable: value})
    assert str(info.value) == f"environment: {variable}: {problem}"


def test_crawl_and_task_variables_default_when_blank() -> None:
    settings = load_settings(
        {
            "NEWSRADAR_CRAWL_DELAY": " ",
            "NEWSRADAR_CRAWL_CONCURRENCY": "",
            "NEWSRADAR_SOURCES_PER_TASK": "",
        }
    )
    assert (settings.crawl_delay, settings.crawl_concurrency, settings.sources_per_task) == (
        1,
        2,
        1,
    )
    assert load_settings({"NEWSRADAR_SOURCES_PER_TASK": "4"}).sources_per_task == 4


def test_one_index_names_travels_with_the_settings() -> None:
    settings = load_settings({"NEWSRADAR_INDEX_PREFIX": "test-abc"})
    assert settings.names is settings.names
    assert settings.names.articles == "test-abc-articles"


def test_es_port_alone_moves_the_url_to_that_port() -> None:
    # NEWSRADAR_ES_PORT alone used to leave the URL on 9200: another node, used silently.
    assert load_settings({"NEWSRADAR_ES_PORT": "19200"}).es_url == "http://127.0.0.1:19200"


@pytest.mark.parametrize(
    ("environ", "es_url", "smtp_port"),
    [
        ({"NEWSRADAR_PORT_BASE": "20000"}, "http://127.0.0.1:20000", 20005),
        (
            {"NEWSRADAR_PORT_BASE": "20000", "NEWSRADAR_ES_PORT": "19200"},
            "http://127.0.0.1:19200",
            20005,
        ),
        (
            {"NEWSRADAR_PORT_BASE": "20000", "NEWSRADAR_ES_URL": "https://es.example.org:9243"},
            "https://es.example.org:9243",
            20005,
        ),
        (
            {"NEWSRADAR_PORT_BASE": "20000", "NEWSRADAR_SMTP_PORT": "2525"},
            "http://127.0.0.1:20000",
            2525,
        ),
        # A named mail server keeps its own (default) port: only the loopback sink moves.
        (
            {"NEWSRADAR_PORT_BASE": "20000", "NEWSRADAR_SMTP_HOST": "mail.example.org"},
            "http://127.0.0.1:20000",
            8025,
        ),
        (
            {"NEWSRADAR_ES_URL": "http://10.0.0.5:9200", "NEWSRADAR_ES_PORT": "19200"},
            "http://10.0.0.5:9200",
            8025,
        ),
    ],
)
def test_port_base_moves_local_addresses_and_explicit_variables_win(
    environ: dict[str, str], es_url: str, smtp_port: int
) -> None:
    settings = load_settings(environ)
    assert settings.es_url == es_url
    assert settings.smtp_port == smtp_port


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("NEWSRADAR_ES_PORT", "nine"),
        ("NEWSRADAR_ES_PORT", "0"),
        ("NEWSRADAR_PORT_BASE", "80"),
        ("NEWSRADAR_PORT_BASE", "65533"),
    ],
)
def test_bad_port_variables_name_the_variable(variable: str, value: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings({variable: value})
    assert info.value.entry == variable
    assert str(info.value).startswith(f"environment: {variable}: ")


def test_good_files_load(tmp_path: Path) -> None:
    config = load_config(load_settings({"NEWSRADAR_CONFIG_DIR": str(_config_dir(tmp_path))}))
    assert [s.id for s in config.sources] == ["example-world", "example-sitemaps"]
    assert config.alerts[0].digest_seconds == 900
    assert config.source("example-world").language == "en"
    with pytest.raises(ConfigError, match="no such source"):
        config.source("missing")


@pytest.mark.parametrize(
    ("sources", "entry", "problem"),
    [
        (
            "sources:\n  - id: Bad Id\n    name: x\n    feeds: [https://a.org/f]\n",
            "sources[0] (id=Bad Id).id",
            "pattern",
        ),
        (
            "sources:\n  - id: a\n    name: x\n    feeds: [file:///etc/passwd]\n",
            "sources[0] (id=a).feeds[0]",
            "not an http(s) URL",
        ),
        ("sources:\n  - id: a\n    name: x\n", "sources[0] (id=a)", "at least one of feeds"),
        (
            "sources:\n  - id: a\n    name: x\n    feeds: [https://a.org/f]\n    colour: red\n",
            "sources[0] (id=a).colour",
            "unknown key",
        ),
        (
            "sources:\n  - id: a\n    feeds: [https://a.org/f]\n",
            "sources[0] (id=a).name",
            "required key is missing",
        ),
        (
            "sources:\n  - id: a\n    name: x\n    feeds: [https://a.org/f]\n"
            "  - id: a\n    name: y\n    feeds: [https://b.org/f]\n",
            "sources[1] (id=a)",
            "duplicate id",
        ),
        ("sources: []\n", "sources", "at least 1 item"),
        (
            "sources:\n  - id: a\n    name: x\n    feeds: [https://a.org/f]\n"
            "    language: english\n",
            "sources[0] (id=a).language",
            "pattern",
        ),
    ],
)
def test_each_kind_of_bad_sources_names_file_entry_and_problem(
    tmp_path: Path, sources: str, entry: str, problem: str
) -> None:
    with pytest.raises(ConfigError) as info:
        _load(_config_dir(tmp_path, sources=sources))
    assert info.value.source.endswith("sources.yaml")
    assert info.value.entry == entry
    assert problem in info.value.problem
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("sources: [\n  - id: a\n", "not valid YAML: line"),
        ("just a string\n", "top-level 'sources:'"),
        ("", "top-level 'sources:'"),
    ],
)
def test_unparseable_sources(tmp_path: Path, text: str, problem: str) -> None:
    with pytest.raises(ConfigError) as info:
        _load(_config_dir(tmp_path, sources=text))
    assert problem in str(info.value)


@pytest.mark.parametrize(
    ("sources", "alerts", "problem"),
    [
        # PyYAML keeps the last of two equal keys: the first feed list used to vanish silently.
        (
            "sources:\n  - id: a\n    name: x\n    feeds: [https://a.org/f]\n"
            "    feeds: [https://b.org/f]\n",
            GOOD_ALERTS,
            "sources.yaml: not valid YAML: line 5, column 5: duplicate key 'feeds' "
            "(first on line 4)",
        ),
        (
            GOOD_SOURCES,
            GOOD_ALERTS + "alerts:\n  - id: other\n",
            "alerts.yaml: not valid YAML: line 8, column 1: duplicate key 'alerts' "
            "(first on line 1)",
        ),
        (
            GOOD_SOURCES,
            GOOD_ALERTS + "      en: 'NATO OR OTAN'\n",
            "alerts.yaml: not valid YAML: line 8, column 7: duplicate key 'en' (first on line 7)",
        ),
        # PyYAML's composer recursed once per level: thousands of [ were a RecursionError.
        (
            "sources: " + "[" * 5000 + "]" * 5000 + "\n",
            GOOD_ALERTS,
            "sources.yaml: not valid YAML: line 1, column 109: nested deeper than 100 levels",
        ),
    ],
    ids=["two-feeds", "two-alerts", "two-queries", "deep"],
)
def test_duplicate_keys_and_deep_nesting_name_the_file_and_the_line(
    tmp_path: Path, sources: str, alerts: str, problem: str
) -> None:
    with pytest.raises(ConfigError) as info:
        _load(_config_dir(tmp_path, sources=sources, alerts=alerts))
    assert str(info.value) == f"{tmp_path}/{problem}"


def test_a_merge_key_may_override_what_it_merges(tmp_path: Path) -> None:
    sources = (
        "sources:\n  - &first\n    id: a\n    name: First\n    feeds: [https://a.org/f]\n"
        "  - <<: *first\n    id: b\n    name: Second\n"
    )
    config = load_config(
        load_settings({"NEWSRADAR_CONFIG_DIR": str(_config_dir(tmp_path, sources=sources))})
    )
    assert [(s.id, s.name, s.feeds) for s in config.sources] == [
        ("a", "First", ("https://a.org/f",)),
        ("b", "Second", ("https://a.org/f",)),
    ]


def test_missing_sources_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_config(load_settings({"NEWSRADAR_CONFIG_DIR": str(tmp_path)}))


@pytest.mark.parametrize(
    ("alerts", "entry", "problem"),
    [
        (
            GOOD_ALERTS.replace("analyst@example.org", "not-an-address"),
            "alerts[0] (id=nato-enlargement).recipients[0]",
            "not an e-mail address",
        ),
        (
            GOOD_ALERTS.replace("15m", "soon"),
            "alerts[0] (id=nato-enlargement).digest",
            "not a duration",
        ),
        (
            GOOD_ALERTS.replace("      en:", "      english:"),
            "alerts[0] (id=nato-enlargement).queries",
            "not a two-letter code",
        ),
        (
            GOOD_ALERTS.replace("'NATO AND enlargement'", "''"),
            "alerts[0] (id=nato-enlargement).queries",
            "the en query is empty",
        ),
        (
            GOOD_ALERTS.replace("recipients: [analyst@example.org]", "recipients: []"),
            "alerts[0] (id=nato-enlargement).recipients",
            "at least 1 item",
        ),
    ],
)
def test_each_kind_of_bad_alerts(tmp_path: Path, alerts: str, entry: str, problem: str) -> None:
    with pytest.raises(ConfigError) as info:
        _load(_config_dir(tmp_path, alerts=alerts))
    assert info.value.source.endswith("alerts.yaml")
    assert info.value.entry == entry
    assert problem in info.value.problem


@pytest.mark.parametrize("folder", ["config", "config/demo"])
def test_shipped_configuration_is_valid(folder: str) -> None:
    config = load_config(load_settings({"NEWSRADAR_CONFIG_DIR": str(REPO / folder)}))
    languages = {s.language for s in config.sources}
    assert len(languages) >= 5
    rule = next(a for a in config.alerts if a.id == "nato-enlargement")
    assert {"en", "ru", "uk", "fr", "de"} <= set(rule.queries)


def test_several_elasticsearch_nodes_separated_by_commas() -> None:
    settings = load_settings(
        {"NEWSRADAR_ES_URL": "https://es01.example.org:9200, https://es02.example.org:9200"}
    )
    assert settings.es_urls == ["https://es01.example.org:9200", "https://es02.example.org:9200"]
    assert settings.es_first_url == "https://es01.example.org:9200"
    assert settings.es_url == "https://es01.example.org:9200,https://es02.example.org:9200"
    # One URL is kept exactly as given.
    single = load_settings({"NEWSRADAR_ES_URL": "https://es.example.org:9243/"})
    assert single.es_url == "https://es.example.org:9243/"
    assert single.es_urls == [single.es_first_url] == ["https://es.example.org:9243/"]
    # to_json and from_json carry the list as it is.
    assert load_settings({}).from_json(settings.to_json()).es_urls == settings.es_urls


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("https://es01:9200,ftp://es02:9200", "'ftp://es02:9200' is not an http(s) URL"),
        ("https://es01:9200,,https://es02:9200", "has an empty entry between its commas"),
        ("https://es01:9200,", "has an empty entry between its commas"),
    ],
)
def test_a_bad_node_in_the_list_is_named(value: str, problem: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings({"NEWSRADAR_ES_URL": value})
    assert info.value.entry == "NEWSRADAR_ES_URL"
    assert problem in str(info.value)
