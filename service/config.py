"""Configuration: `config.yaml`, then `GARMIN_SYNC_<SECTION>_<KEY>` environment overrides.

One schema drives parsing, environment overrides and validation, so a key cannot exist in
one place and be forgotten in another. Every problem becomes a `ConfigError` naming the key;
the CLI turns it into one line and exit code 2.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ENV_PREFIX = "GARMIN_SYNC_"
DEFAULT_CONFIG_PATH = Path(__file__).resolve().parent.parent / "config.yaml"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


class ConfigError(Exception):
    """Invalid configuration; `str()` is the single line shown to the operator."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"configuration error: {key}: {problem}")
        self.key = key


@dataclass(frozen=True)
class DatabaseConfig:
    url: str
    auto_migrate: bool
    statement_timeout_seconds: float
    pool_max_size: int

    @property
    def is_sqlite(self) -> bool:
        return self.url.startswith("sqlite://")


@dataclass(frozen=True)
class HttpConfig:
    host: str
    port: int
    shutdown_timeout_seconds: float


@dataclass(frozen=True)
class GarminConfig:
    domain: str
    base_url: str
    oauth_consumer_key: str
    oauth_consumer_secret: str
    executor_threads: int
    thread_nice: int
    timeout_seconds: float
    retries: int


@dataclass(frozen=True)
class AuthConfig:
    api_keys: tuple[str, ...]


@dataclass(frozen=True)
class SecurityConfig:
    encryption_keys: tuple[str, ...]
    data_dir: str


@dataclass(frozen=True)
class StatusConfig:
    validation_ttl_seconds: int
    cache_seconds: float
    cache_max_users: int


@dataclass(frozen=True)
class MfaConfig:
    ttl_seconds: int
    max_attempts: int


@dataclass(frozen=True)
class LoginConfig:
    cooldown_seconds: int


@dataclass(frozen=True)
class SyncConfig:
    enabled: bool
    worker_id: str
    tick_seconds: float
    max_concurrent_users: int
    calls_per_user: int
    claim_batch: int
    activities_interval_minutes: float
    health_interval_minutes: float
    initial_spread_seconds: float
    jitter_fraction: float
    backfill_days: int
    overlap_days: int
    page_size: int
    lease_seconds: int
    shutdown_grace_seconds: float
    nice: int
    backoff_base_seconds: int
    backoff_max_seconds: int


@dataclass(frozen=True)
class LoggingConfig:
    level: str
    format: str


@dataclass(frozen=True)
class MetricsConfig:
    enabled: bool
    require_auth: bool


@dataclass(frozen=True)
class Config:
    database: DatabaseConfig
    http: HttpConfig
    garmin: GarminConfig
    auth: AuthConfig
    security: SecurityConfig
    status: StatusConfig
    mfa: MfaConfig
    login: LoginConfig
    sync: SyncConfig
    logging: LoggingConfig
    metrics: MetricsConfig


# --- the schema -------------------------------------------------------------------------

Parser = Callable[[Any], Any]


def _as_str(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool | dict | list):
        raise ValueError("must be a string")
    return str(value)


def _as_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("must be an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value):
        return int(value)
    raise ValueError("must be an integer")


def _as_float(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError("must be a number")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError("must be a number") from None


def _as_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in {"1", "true", "yes", "on"}:
        return True
    if isinstance(value, str) and value.strip().lower() in {"0", "false", "no", "off"}:
        return False
    raise ValueError("must be true or false")


def _as_list(value: Any) -> tuple[str, ...]:
    """A YAML list, a comma-separated string, or the schema's own default (a tuple)."""
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        return tuple(item.strip() for item in value.split(",") if item.strip())
    if isinstance(value, list | tuple) and all(isinstance(item, str | int) for item in value):
        return tuple(str(item) for item in value)
    raise ValueError("must be a list of strings (comma-separated in the environment)")


def _at_least(parse: Parser, minimum: float) -> Parser:
    def parse_bounded(value: Any) -> Any:
        parsed = parse(value)
        if parsed < minimum:
            raise ValueError(f"must be >= {minimum:g}")
        return parsed

    return parse_bounded


def _one_of(*choices: str, upper: bool = False) -> Parser:
    def parse_choice(value: Any) -> str:
        parsed = _as_str(value)
        parsed = parsed.upper() if upper else parsed.lower()
        if parsed not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}")
        return parsed

    return parse_choice


def _database_url(value: Any) -> str:
    url = _as_str(value).strip()
    if not re.match(r"^(sqlite|postgres|asyncpg|psycopg)://", url):
        raise ValueError("must start with sqlite:// or postgres://")
    return url


def _base_url(value: Any) -> str:
    url = _as_str(value).strip().rstrip("/")
    if url and not re.match(r"^https?://[^/\s]+", url):
        raise ValueError("must be empty or an http(s):// URL")
    return url


def _fraction(value: Any) -> float:
    parsed = _as_float(value)
    if not 0 <= parsed < 1:
        raise ValueError("must be a fraction from 0 to below 1")
    return parsed


def _nice(value: Any) -> int:
    parsed = _as_int(value)
    if not 0 <= parsed <= 19:
        raise ValueError("must be a niceness from 0 to 19")
    return parsed


def _page_size(value: Any) -> int:
    parsed = _as_int(value)
    if not 1 <= parsed <= 100:
        raise ValueError("must be 1 to 100 (Garmin's largest page)")
    return parsed


def _port(value: Any) -> int:
    port = _as_int(value)
    if not 0 <= port <= 65535:
        raise ValueError("must be a TCP port (0-65535)")
    return port


SCHEMA: dict[str, dict[str, tuple[Parser, Any]]] = {
    "database": {
        "url": (_database_url, "sqlite://./data/garmin-sync.sqlite3"),
        "auto_migrate": (_as_bool, True),
        "statement_timeout_seconds": (_at_least(_as_float, 0), 5.0),
        "pool_max_size": (_at_least(_as_int, 1), 10),
    },
    "http": {
        "host": (_as_str, "127.0.0.1"),
        "port": (_port, 8080),
        "shutdown_timeout_seconds": (_at_least(_as_float, 0), 30.0),
    },
    "garmin": {
        "domain": (_as_str, "garmin.com"),
        "base_url": (_base_url, ""),
        "oauth_consumer_key": (_as_str, ""),
        "oauth_consumer_secret": (_as_str, ""),
        "executor_threads": (_at_least(_as_int, 1), 16),
        "thread_nice": (_nice, 10),
        "timeout_seconds": (_at_least(_as_float, 0.1), 15.0),
        "retries": (_at_least(_as_int, 0), 2),
    },
    "auth": {"api_keys": (_as_list, ())},
    "security": {
        "encryption_keys": (_as_list, ()),
        "data_dir": (_as_str, "./data"),
    },
    "status": {
        "validation_ttl_seconds": (_at_least(_as_int, 0), 300),
        "cache_seconds": (_at_least(_as_float, 0), 1.0),
        "cache_max_users": (_at_least(_as_int, 0), 10_000),
    },
    "mfa": {
        "ttl_seconds": (_at_least(_as_int, 1), 600),
        "max_attempts": (_at_least(_as_int, 1), 5),
    },
    "login": {"cooldown_seconds": (_at_least(_as_int, 0), 900)},
    "sync": {
        "enabled": (_as_bool, True),
        "worker_id": (_as_str, ""),
        "tick_seconds": (_at_least(_as_float, 0.05), 30.0),
        "max_concurrent_users": (_at_least(_as_int, 1), 8),
        "calls_per_user": (_at_least(_as_int, 1), 4),
        "claim_batch": (_at_least(_as_int, 1), 200),
        "activities_interval_minutes": (_at_least(_as_float, 0.01), 15.0),
        "health_interval_minutes": (_at_least(_as_float, 0.01), 60.0),
        "initial_spread_seconds": (_at_least(_as_float, 0), 60.0),
        "jitter_fraction": (_fraction, 0.1),
        "backfill_days": (_at_least(_as_int, 1), 30),
        "overlap_days": (_at_least(_as_int, 0), 2),
        "page_size": (_page_size, 100),
        "lease_seconds": (_at_least(_as_int, 5), 300),
        "shutdown_grace_seconds": (_at_least(_as_float, 0), 20.0),
        "nice": (_nice, 0),
        "backoff_base_seconds": (_at_least(_as_int, 1), 60),
        "backoff_max_seconds": (_at_least(_as_int, 1), 21600),
    },
    "logging": {
        "level": (_one_of(*LOG_LEVELS, upper=True), "INFO"),
        "format": (_one_of("json", "text"), "text"),
    },
    "metrics": {
        "enabled": (_as_bool, True),
        "require_auth": (_as_bool, False),
    },
}

SECTION_TYPES: dict[str, type[Any]] = {
    "database": DatabaseConfig,
    "http": HttpConfig,
    "garmin": GarminConfig,
    "auth": AuthConfig,
    "security": SecurityConfig,
    "status": StatusConfig,
    "mfa": MfaConfig,
    "login": LoginConfig,
    "sync": SyncConfig,
    "logging": LoggingConfig,
    "metrics": MetricsConfig,
}


# --- loading ----------------------------------------------------------------------------


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError("--config", f"cannot read {path}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise ConfigError("--config", f"{path} is not valid YAML{where}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError("--config", f"{path} must hold a mapping of sections")
    return data


def _check_known_keys(raw: Mapping[str, Any]) -> None:
    for section, values in raw.items():
        if section not in SCHEMA:
            raise ConfigError(str(section), "unknown section")
        if values is None:
            continue
        if not isinstance(values, dict):
            raise ConfigError(section, "must be a mapping")
        for key in values:
            if key not in SCHEMA[section]:
                raise ConfigError(f"{section}.{key}", "unknown key")


def _env_name(section: str, key: str) -> str:
    return f"{ENV_PREFIX}{section}_{key}".upper()


def _section(section: str, raw: Mapping[str, Any], env: Mapping[str, str]) -> Any:
    values = raw.get(section) or {}
    parsed: dict[str, Any] = {}
    for key, (parse, default) in SCHEMA[section].items():
        env_name = _env_name(section, key)
        source = env[env_name] if env_name in env else values.get(key, default)
        label = env_name if env_name in env else f"{section}.{key}"
        try:
            parsed[key] = parse(source)
        except ValueError as exc:
            raise ConfigError(label, str(exc)) from None
    return SECTION_TYPES[section](**parsed)


def _check_consistency(config: Config) -> None:
    """Rules that involve more than one key."""
    garmin = config.garmin
    if bool(garmin.oauth_consumer_key) != bool(garmin.oauth_consumer_secret):
        raise ConfigError(
            "garmin.oauth_consumer_key", "set both the consumer key and secret, or neither"
        )
    if any(len(key) < 16 for key in config.auth.api_keys):
        raise ConfigError("auth.api_keys", "every API key must be at least 16 characters")


def resolve_config_path(cli_path: str | None, env: Mapping[str, str]) -> Path:
    """`--config` wins over `GARMIN_SYNC_CONFIG`, which wins over the shipped default."""
    if cli_path:
        return Path(cli_path)
    if env.get(f"{ENV_PREFIX}CONFIG"):
        return Path(env[f"{ENV_PREFIX}CONFIG"])
    return DEFAULT_CONFIG_PATH


def load_config(
    path: Path | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> Config:
    """Build the effective configuration; raises `ConfigError` naming the first bad key.

    `overrides` (section -> key -> value) sits between the file and the environment; tests
    use it to build configurations without writing files.
    """
    env = os.environ if env is None else env
    raw: dict[str, Any] = _read_yaml(path) if path is not None else {}
    _check_known_keys(raw)
    for section, values in (overrides or {}).items():
        merged = dict(raw.get(section) or {})
        merged.update(values)
        raw[section] = merged
    _check_known_keys(raw)
    config = Config(**{section: _section(section, raw, env) for section in SCHEMA})
    _check_consistency(config)
    return config
