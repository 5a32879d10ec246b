"""Configuration: shipped defaults, environment overrides, validation naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.config import (
    DEFAULT_CONFIG_PATH,
    ConfigError,
    load_config,
    resolve_config_path,
)

LONG_KEY = "k" * 16
ROOT = DEFAULT_CONFIG_PATH.parent


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_come_from_the_shipped_config_yaml() -> None:
    config = load_config(DEFAULT_CONFIG_PATH, env={})
    # the file's relative paths resolve against the file's folder, not the working directory
    assert config.database.url == f"sqlite://{ROOT}/data/garmin-sync.sqlite3"
    assert config.database.is_sqlite
    assert config.database.auto_migrate is True
    assert config.http.host == "127.0.0.1"
    assert config.http.port == 8080
    assert config.http.shutdown_timeout_seconds == 30.0
    assert config.garmin.domain == "garmin.com"
    assert config.garmin.base_url == ""
    assert config.garmin.executor_threads == 16
    assert config.garmin.retries == 2
    assert config.auth.api_keys == ()
    assert config.security.encryption_keys == ()
    assert config.security.data_dir == f"{ROOT}/data"
    assert config.status.validation_ttl_seconds == 300
    assert config.mfa.ttl_seconds == 600
    assert config.mfa.max_attempts == 5
    assert config.login.cooldown_seconds == 900
    assert config.logging.level == "INFO"
    assert config.logging.format == "text"


def test_shipped_file_and_built_in_defaults_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)  # without a file, relative defaults resolve against the cwd
    assert load_config(DEFAULT_CONFIG_PATH, env={}) == load_config(None, env={})


def test_env_overrides_database_url() -> None:
    url = "postgres://u:p@db.example:5432/gs"
    config = load_config(DEFAULT_CONFIG_PATH, env={"GARMIN_SYNC_DATABASE_URL": url})
    assert config.database.url == url
    assert not config.database.is_sqlite


def test_env_api_keys_are_comma_separated_into_a_tuple() -> None:
    keys = "first-key-0123456789, second-key-0123456789 ,"
    config = load_config(DEFAULT_CONFIG_PATH, env={"GARMIN_SYNC_AUTH_API_KEYS": keys})
    assert config.auth.api_keys == ("first-key-0123456789", "second-key-0123456789")


def test_env_overrides_garmin_base_url_and_strips_trailing_slash() -> None:
    config = load_config(
        DEFAULT_CONFIG_PATH, env={"GARMIN_SYNC_GARMIN_BASE_URL": "http://127.0.0.1:9090/"}
    )
    assert config.garmin.base_url == "http://127.0.0.1:9090"


def test_env_wins_over_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "http:\n  port: 9000\n")
    assert load_config(path, env={}).http.port == 9000
    assert load_config(path, env={"GARMIN_SYNC_HTTP_PORT": "9001"}).http.port == 9001


def test_env_int_is_parsed() -> None:
    env = {"GARMIN_SYNC_HTTP_PORT": " 8443 ", "GARMIN_SYNC_MFA_MAX_ATTEMPTS": "3"}
    config = load_config(DEFAULT_CONFIG_PATH, env=env)
    assert config.http.port == 8443
    assert config.mfa.max_attempts == 3


@pytest.mark.parametrize(
    ("text", "expected"),
    [("false", False), ("0", False), ("no", False), ("OFF", False),
     ("true", True), ("1", True), ("Yes", True), ("on", True)],
)
def test_env_bool_is_parsed(text: str, expected: bool) -> None:
    config = load_config(DEFAULT_CONFIG_PATH, env={"GARMIN_SYNC_DATABASE_AUTO_MIGRATE": text})
    assert config.database.auto_migrate is expected


def test_env_bad_bool_names_the_variable() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(DEFAULT_CONFIG_PATH, env={"GARMIN_SYNC_DATABASE_AUTO_MIGRATE": "maybe"})
    assert "GARMIN_SYNC_DATABASE_AUTO_MIGRATE" in str(info.value)


def test_a_nice_outside_0_to_19_names_the_variable() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(DEFAULT_CONFIG_PATH, env={"GARMIN_SYNC_SYNC_NICE": "20"})
    assert info.value.key == "GARMIN_SYNC_SYNC_NICE"


def test_garmin_threads_run_at_nice_10_unless_configured() -> None:
    assert load_config(DEFAULT_CONFIG_PATH, env={}).garmin.thread_nice == 10
    config = load_config(DEFAULT_CONFIG_PATH, env={"GARMIN_SYNC_GARMIN_THREAD_NICE": "0"})
    assert config.garmin.thread_nice == 0
    with pytest.raises(ConfigError) as info:
        load_config(DEFAULT_CONFIG_PATH, env={"GARMIN_SYNC_GARMIN_THREAD_NICE": "-1"})
    assert info.value.key == "GARMIN_SYNC_GARMIN_THREAD_NICE"


def test_env_non_int_port_names_the_variable() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(DEFAULT_CONFIG_PATH, env={"GARMIN_SYNC_HTTP_PORT": "abc"})
    assert info.value.key == "GARMIN_SYNC_HTTP_PORT"
    assert "GARMIN_SYNC_HTTP_PORT" in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("yaml_text", "key"),
    [
        ("http:\n  port: eighty\n", "http.port"),
        ("http:\n  port: 70000\n", "http.port"),
        ("http:\n  port: true\n", "http.port"),
        ("garmin:\n  executor_threads: 0\n", "garmin.executor_threads"),
        ("garmin:\n  timeout_seconds: fast\n", "garmin.timeout_seconds"),
        ("mfa:\n  max_attempts: 0\n", "mfa.max_attempts"),
        ("logging:\n  level: VERBOSE\n", "logging.level"),
        ("logging:\n  format: xml\n", "logging.format"),
        ("database:\n  url: mysql://root@localhost/gs\n", "database.url"),
        ("database:\n  url: ''\n", "database.url"),
        ("database:\n  auto_migrate: perhaps\n", "database.auto_migrate"),
        ("garmin:\n  base_url: ftp://example.com\n", "garmin.base_url"),
        ("auth:\n  api_keys: {a: b}\n", "auth.api_keys"),
        ("garmin:\n  oauth_consumer_key: ck\n", "garmin.oauth_consumer_key"),
        ("auth:\n  api_keys: [short]\n", "auth.api_keys"),
        ("webserver:\n  port: 1\n", "webserver"),
        ("http:\n  prot: 8080\n", "http.prot"),
        ("http: 8080\n", "http"),
        ("- a\n- b\n", "--config"),
        ("http: [unclosed\n", "--config"),
    ],
    ids=[
        "non-int-port", "port-out-of-range", "bool-port", "executor-threads-zero",
        "non-number-timeout", "max-attempts-zero", "bad-log-level", "bad-log-format",
        "bad-database-url", "empty-database-url", "bad-bool", "bad-base-url",
        "api-keys-mapping", "consumer-key-without-secret", "short-api-key",
        "unknown-section", "unknown-key", "section-not-mapping", "non-mapping-yaml",
        "invalid-yaml",
    ],
)
def test_invalid_file_value_names_the_key(tmp_path: Path, yaml_text: str, key: str) -> None:
    path = write(tmp_path, yaml_text)
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert info.value.key == key
    message = str(info.value)
    assert key in message
    assert message.startswith("configuration error: ")
    assert "\n" not in message


def test_consumer_secret_without_key_is_refused() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, env={"GARMIN_SYNC_GARMIN_OAUTH_CONSUMER_SECRET": "cs"})
    assert "garmin.oauth_consumer_key" in str(info.value)


def test_consumer_key_and_secret_together_are_accepted() -> None:
    config = load_config(None, env={"GARMIN_SYNC_GARMIN_OAUTH_CONSUMER_KEY": "ck",
                                    "GARMIN_SYNC_GARMIN_OAUTH_CONSUMER_SECRET": "cs"})
    assert (config.garmin.oauth_consumer_key, config.garmin.oauth_consumer_secret) == ("ck", "cs")


def test_api_key_of_exactly_16_characters_is_accepted() -> None:
    config = load_config(None, env={"GARMIN_SYNC_AUTH_API_KEYS": LONG_KEY})
    assert config.auth.api_keys == (LONG_KEY,)


def test_short_api_key_from_env_is_refused() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, env={"GARMIN_SYNC_AUTH_API_KEYS": f"{LONG_KEY},k15-characters!"})
    assert "auth.api_keys" in str(info.value)


def test_missing_config_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "absent.yaml", env={})
    assert "--config" in str(info.value)
    assert "absent.yaml" in str(info.value)


def test_empty_config_file_means_all_defaults(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert load_config(write(tmp_path, ""), env={}) == load_config(None, env={})


def test_unknown_section_in_overrides_is_refused() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, env={}, overrides={"nosuch": {"a": 1}})
    assert "nosuch" in str(info.value)


def test_config_path_flag_wins_over_env(tmp_path: Path) -> None:
    env = {"GARMIN_SYNC_CONFIG": str(tmp_path / "from-env.yaml")}
    assert resolve_config_path(str(tmp_path / "flag.yaml"), env) == tmp_path / "flag.yaml"


def test_config_path_env_wins_over_default(tmp_path: Path) -> None:
    env = {"GARMIN_SYNC_CONFIG": str(tmp_path / "from-env.yaml")}
    assert resolve_config_path(None, env) == tmp_path / "from-env.yaml"


def test_config_path_defaults_to_the_shipped_file() -> None:
    assert resolve_config_path(None, {}) == DEFAULT_CONFIG_PATH
    assert resolve_config_path(None, {"GARMIN_SYNC_CONFIG": ""}) == DEFAULT_CONFIG_PATH
    assert DEFAULT_CONFIG_PATH.is_file()


def test_postgres_pool_size_comes_from_the_config() -> None:
    from service.db import tortoise_config

    config = tortoise_config("postgres://u@db:5432/app", pool_max_size=24)
    assert config["connections"]["default"]["credentials"]["maxsize"] == 24


def test_a_maxsize_in_the_url_wins_over_the_config() -> None:
    from service.db import tortoise_config

    config = tortoise_config("postgres://u@db:5432/app?maxsize=3", pool_max_size=24)
    assert int(config["connections"]["default"]["credentials"]["maxsize"]) == 3


def test_sqlite_has_no_pool_settings() -> None:
    from service.db import tortoise_config

    config = tortoise_config("sqlite://./x.sqlite3", pool_max_size=24)
    credentials = config["connections"]["default"]["credentials"]
    assert credentials["file_path"] == "./x.sqlite3"
    assert "maxsize" not in credentials


def test_sqlite_commits_without_fsync_unless_the_url_asks_for_it() -> None:
    from service.db import READS, tortoise_config

    connections = tortoise_config("sqlite://./x.sqlite3")["connections"]
    assert connections["default"]["credentials"]["synchronous"] == "NORMAL"
    assert connections[READS]["credentials"]["synchronous"] == "NORMAL"
    durable = tortoise_config("sqlite://./x.sqlite3?synchronous=FULL")["connections"]
    assert durable["default"]["credentials"]["synchronous"] == "FULL"


def test_migrations_use_the_sqlite_url_as_given() -> None:
    from service.db import tortoise_config

    config = tortoise_config("sqlite://./x.sqlite3", with_aerich=True)
    assert config["connections"] == {"default": "sqlite://./x.sqlite3"}


# --- one declaration per key ----------------------------------------------------------------


def test_the_committed_configuration_reference_is_current() -> None:
    from service.config_doc import markdown

    committed = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert committed == markdown(), "docs/configuration.md is stale: run `make config-doc`"


def test_the_shipped_config_yaml_is_current() -> None:
    from service.config_doc import yaml_text

    committed = DEFAULT_CONFIG_PATH.read_text(encoding="utf-8")
    assert committed == yaml_text(), "config.yaml is stale: run `make config-doc`"


def test_every_key_is_documented_with_its_variable_and_default() -> None:
    from service.config import Config
    from service.config_doc import markdown
    from service.settings import keys_of, sections_of

    doc = markdown()
    keys = [key for section, cls in sections_of(Config) for key in keys_of(section, cls)]
    assert len(keys) >= 40
    for key in keys:
        assert f"### `{key.dotted}`" in doc
        assert f"`{key.env_name}`" in doc
        assert key.rule.doc.split()[0] in doc


def test_a_declared_bound_is_enforced_from_file_and_environment(tmp_path: Path) -> None:
    path = write(tmp_path, "sync:\n  page_size: 101\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert info.value.key == "sync.page_size"
    with pytest.raises(ConfigError) as info:
        load_config(None, env={"GARMIN_SYNC_SYNC_JITTER_FRACTION": "1"})
    assert info.value.key == "GARMIN_SYNC_SYNC_JITTER_FRACTION"
    assert load_config(None, env={"GARMIN_SYNC_SYNC_PAGE_SIZE": "1"}).sync.page_size == 1


def test_choices_ignore_case_and_normalise() -> None:
    config = load_config(None, env={"GARMIN_SYNC_LOGGING_LEVEL": "debug",
                                    "GARMIN_SYNC_LOGGING_FORMAT": "JSON"})
    assert (config.logging.level, config.logging.format) == ("DEBUG", "json")


def test_an_unknown_file_key_suggests_the_likely_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, "database:\n  ulr: sqlite://x.db\n"), env={})
    assert info.value.key == "database.ulr"
    assert "did you mean database.url?" in str(info.value)


# --- environment variables that name no key -------------------------------------------------


def test_a_misspelt_variable_is_refused_naming_the_likely_one() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, env={"GARMIN_SYNC_DATABSE_URL": "postgres://u@db:5432/gs"})
    assert info.value.key == "GARMIN_SYNC_DATABSE_URL"
    message = str(info.value)
    assert "unknown environment variable" in message
    assert "did you mean GARMIN_SYNC_DATABASE_URL?" in message
    assert "\n" not in message


def test_an_unknown_variable_far_from_every_key_gets_no_guess() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, env={"GARMIN_SYNC_FLUX_CAPACITOR": "1"})
    assert info.value.key == "GARMIN_SYNC_FLUX_CAPACITOR"
    assert "did you mean" not in str(info.value)


def test_variables_that_are_not_keys_but_are_known_are_accepted(tmp_path: Path) -> None:
    env = {"GARMIN_SYNC_CONFIG": str(tmp_path / "c.yaml"),
           "GARMIN_SYNC_MIGRATIONS_DIR": str(tmp_path),
           "GARMIN_SYNC_TEST_DATABASE_URL": "postgres://u@db:5432/test",
           "GARMIN_SYNCHRONY": "other program", "HOME": "/root"}
    assert load_config(None, env=env).http.port == 8080


# --- relative paths -----------------------------------------------------------------------


def test_relative_paths_in_the_file_resolve_against_its_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder, elsewhere = tmp_path / "etc", tmp_path / "elsewhere"
    folder.mkdir()
    elsewhere.mkdir()
    path = folder / "config.yaml"
    path.write_text("database:\n  url: sqlite://state/gs.sqlite3?synchronous=FULL\n"
                    "security:\n  data_dir: ../keys\n", encoding="utf-8")
    monkeypatch.chdir(elsewhere)
    config = load_config(path, env={})
    assert config.database.url == f"sqlite://{folder}/state/gs.sqlite3?synchronous=FULL"
    assert config.security.data_dir == f"{tmp_path}/keys"


def test_defaults_missing_from_the_file_resolve_against_its_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, "http:\n  port: 9000\n")
    monkeypatch.chdir("/")
    config = load_config(path, env={})
    assert config.database.url == f"sqlite://{tmp_path}/data/garmin-sync.sqlite3"
    assert config.security.data_dir == f"{tmp_path}/data"


def test_relative_paths_from_the_environment_resolve_against_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    config = load_config(DEFAULT_CONFIG_PATH, env={
        "GARMIN_SYNC_DATABASE_URL": "sqlite://./here.sqlite3",
        "GARMIN_SYNC_SECURITY_DATA_DIR": "keys"})
    assert config.database.url == f"sqlite://{tmp_path}/here.sqlite3"
    assert config.security.data_dir == f"{tmp_path}/keys"


@pytest.mark.parametrize("url", ["sqlite:///var/lib/gs.sqlite3", "sqlite://:memory:",
                                 "postgres://u@db:5432/gs"])
def test_absolute_memory_and_server_urls_are_kept_as_written(tmp_path: Path, url: str) -> None:
    path = write(tmp_path, f"database:\n  url: '{url}'\n")
    assert load_config(path, env={}).database.url == url
