"""Configuration: `config.yaml`, then `GARMIN_SYNC_<SECTION>_<KEY>` environment overrides.

Every key is declared once with `setting()` (type, default, bounds, documentation): below,
or in a section module of its own (`service.config_garmin`, `service.config_webhooks`) whose
section `Config` assembles and this module re-exports. `service.settings` reads the file and
the environment from those declarations, and `docs/configuration.md` and `config.yaml` are
generated from them (`make config-doc`).
Precedence: a command-line flag, then the environment, then the file, then the default.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from service.config_garmin import DI_STRATEGIES as DI_STRATEGIES
from service.config_garmin import GARMIN_ENGINES as GARMIN_ENGINES
from service.config_garmin import GarminConfig as GarminConfig
from service.config_webhooks import WebhooksConfig as WebhooksConfig
from service.settings import ENV_PREFIX as ENV_PREFIX
from service.settings import ConfigError as ConfigError
from service.settings import StartupError as StartupError
from service.settings import (
    build_section,
    check_environment,
    check_known_keys,
    read_yaml,
    sections_of,
    setting,
)

DEFAULT_CONFIG_PATH = Path(__file__).resolve().parent.parent / "config.yaml"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
CONFIG_ENV = f"{ENV_PREFIX}CONFIG"
# `GARMIN_SYNC_*` variables that are not configuration keys, and what each is for
NOT_SETTINGS: dict[str, str] = {
    CONFIG_ENV: "the configuration file, when `--config` is not given",
    f"{ENV_PREFIX}MIGRATIONS_DIR": "where the migration files are (found beside the package "
                                   "when unset)",
    f"{ENV_PREFIX}TEST_DATABASE_URL": "the test suite's PostgreSQL database (`make test`); "
                                      "the service ignores it",
}


def _database_url(url: str) -> str:
    url = url.strip()
    if not re.match(r"^(sqlite|postgres|asyncpg|psycopg)://", url):
        raise ValueError("must start with sqlite:// or postgres://")
    return url


@dataclass(frozen=True)
class DatabaseConfig:
    """Where sessions and synced data are stored."""

    url: str = setting(
        "sqlite://./data/garmin-sync.sqlite3",
        "`sqlite://<path>` (the embedded default) or `postgres://user:password@host:5432/db`. "
        "SQLite runs in WAL mode with `synchronous=NORMAL`: no fsync per commit, the file "
        "stays consistent after any crash, and only the last commits before a power loss or "
        "OS crash can be lost (a refresh or cursor is redone by the next job; a lost login is "
        "asked for again); append `?synchronous=FULL` to sync every commit. A new SQLite "
        "file and its folder are created readable by this user only.",
        check=_database_url, check_doc="starts with `sqlite://` or `postgres://`",
        path_kind="sqlite-url")
    auto_migrate: bool = setting(
        True, "`serve` applies pending migrations when it starts; when false, a schema "
        "behind the code stops startup (run `garmin-sync migrate`).")
    statement_timeout_seconds: float = setting(
        5.0, "PostgreSQL only: a query waiting longer than this (a held lock, a stalled "
        "server) is cancelled and the request answers 503 instead of hanging with its pool "
        "connection. 0 turns it off. Migrations never have this limit.", minimum=0)
    pool_max_size: int = setting(
        10, "PostgreSQL only: connections per replica (a `maxsize` in the URL wins). Requests "
        "and sync jobs share them; below `sync.max_concurrent_users`, jobs queue for one. "
        "Status reads have 2 more of their own, so probes never wait behind sync "
        "transactions.", minimum=1)

    @property
    def is_sqlite(self) -> bool:
        return self.url.startswith("sqlite://")


@dataclass(frozen=True)
class HttpConfig:
    """The HTTP listener of `serve` (`--host` and `--port` override it)."""

    host: str = setting("127.0.0.1", "Listen address: a name or an address of this machine "
                        "(`0.0.0.0` for every interface).")
    port: int = setting(8080, "Listen port (0: any free port).", minimum=0, maximum=65535)
    shutdown_timeout_seconds: float = setting(
        30.0, "In-flight requests get this long to finish on SIGTERM.", minimum=0)


@dataclass(frozen=True)
class AuthConfig:
    """Who may call the API."""

    api_keys: tuple[str, ...] = setting(
        (), "Bearer keys the calling services present (at least 16 characters each; several "
        "may be active during a rotation). Empty: every `/api/v1` call is refused with 401, "
        "and `serve` warns at startup.")


@dataclass(frozen=True)
class SecurityConfig:
    """Encryption of the stored Garmin sessions (see docs/security.md)."""

    encryption_keys: tuple[str, ...] = setting(
        (), "Base64 of 32 random bytes each (`garmin-sync generate-key`); the first encrypts, "
        "all decrypt. Required with PostgreSQL. Empty on SQLite: a key is generated once into "
        "`<data_dir>/encryption.key` (mode 0600).")
    data_dir: str = setting(
        "./data", "Where the generated key file lives (SQLite without `encryption_keys`). "
        "Keep it apart from database backups.", path_kind="path")


@dataclass(frozen=True)
class StatusConfig:
    """The session status endpoint."""

    validation_ttl_seconds: int = setting(
        300, "A successful validation is trusted this long; `?refresh=true` forces a live "
        "check.", minimum=0)
    cache_seconds: float = setting(
        1.0, "Repeated polls of one user are answered from memory for this long (0: always "
        "read the database); writes made by this replica show at once, those of other "
        "replicas within it.", minimum=0)
    cache_max_users: int = setting(
        10_000, "At most this many users' answers are kept in memory (the oldest go first).",
        minimum=0)


@dataclass(frozen=True)
class MfaConfig:
    """Logins waiting for a multi-factor code."""

    ttl_seconds: int = setting(600, "Lifetime of a pending MFA login.", minimum=1)
    max_attempts: int = setting(
        5, "Codes sent to Garmin without success before the pending login is dropped, "
        "counted as Garmin counts them: the DI engine may send one code twice (to the app's "
        "and the web sign-in), which counts two, and the codes of an attempt Garmin did not "
        "answer (a 5xx, a timeout, a 429) count too, though the challenge stays.", minimum=1)


@dataclass(frozen=True)
class LoginConfig:
    """Logins to Garmin."""

    cooldown_seconds: int = setting(
        900, "After Garmin answers a login or an MFA code with a rate limit, logins and "
        "codes for that Garmin account, by any user id on any replica, are refused this long "
        "(or Garmin's Retry-After when longer) without calling Garmin.", minimum=0)
    timeout_seconds: float = setting(
        120.0, "A whole login of either engine (every DI strategy tried, with its pauses; "
        "every request and retry), and an MFA code's check on its own, ends by then and "
        "answers 503; must exceed the DI pauses (`garmin.di_login_delays`).",
        minimum=1)


@dataclass(frozen=True)
class SyncConfig:
    """The in-process scheduler that syncs activities and health data."""

    enabled: bool = setting(
        True, "Run the scheduler (periodic syncs) in this process. Several replicas may run "
        "it on one PostgreSQL database; on SQLite only one process may (a second one refuses "
        "to start).")
    worker_id: str = setting(
        "", "This worker's name in sync jobs and leases; empty: `<hostname>:<pid>:<random>`.")
    tick_seconds: float = setting(30.0, "How often the scheduler looks for due users.",
                                  minimum=0.05)
    max_concurrent_users: int = setting(8, "Users synced at once by this replica.", minimum=1)
    calls_per_user: int = setting(
        4, "Garmin calls of one user's job at once (the days of a backfill, a day's three "
        "sources); the replica's calls together stay within `garmin.executor_threads`.",
        minimum=1)
    claim_batch: int = setting(200, "Due users claimed per tick.", minimum=1)
    activities_interval_minutes: float = setting(
        15.0, "How often each user's activities are synced.", minimum=0.01)
    health_interval_minutes: float = setting(
        60.0, "How often each user's health data is synced.", minimum=0.01)
    initial_spread_seconds: float = setting(
        60.0, "A newly connected user's first sync starts within this many seconds.",
        minimum=0)
    jitter_fraction: float = setting(
        0.1, "Plus or minus this fraction of the interval is added at random, so users drift "
        "apart.", minimum=0, below=1)
    backfill_days: int = setting(30, "The first sync of a user fetches this many days back.",
                                 minimum=1)
    overlap_days: int = setting(
        2, "Later syncs go back this many days before the last synced day (today's data "
        "changes).", minimum=0)
    page_size: int = setting(100, "Activities per page asked of Garmin (100 is Garmin's "
                             "largest page).", minimum=1, maximum=100)
    lease_seconds: int = setting(
        300, "A per-user lease not renewed for this long is taken over (a dead worker's users "
        "move on).", minimum=5)
    shutdown_grace_seconds: float = setting(
        20.0, "On SIGTERM running jobs get this long, then they are cancelled and marked "
        "FAILED.", minimum=0)
    nice: int = setting(
        0, "`serve` with the scheduler on lowers its CPU priority (Linux nice) to this, so "
        "API replicas (`sync.enabled: false`) sharing its cores answer first; 0 leaves it.",
        minimum=0, maximum=19)
    backoff_base_seconds: int = setting(
        60, "After a failure the next try waits base * 2^(failures-1), with jitter (50-100 % "
        "of it), capped at `sync.backoff_max_seconds`. A 429 with Retry-After waits that "
        "long instead, plus at most 10 %, whatever the failure count.", minimum=1)
    backoff_max_seconds: int = setting(
        21600, "The longest failure backoff, also for a 429 whose Retry-After is longer.",
        minimum=1)


@dataclass(frozen=True)
class LoggingConfig:
    """Log output (always on stderr)."""

    level: str = setting("INFO", "The least severe level written.", choices=LOG_LEVELS)
    format: str = setting("text", "`json` writes one JSON object per line.",
                          choices=("json", "text"))


@dataclass(frozen=True)
class MetricsConfig:
    """Prometheus metrics."""

    enabled: bool = setting(True, "Serve Prometheus metrics at `GET /metrics`.")
    require_auth: bool = setting(
        False, "`/metrics` needs the same `Authorization: Bearer <key>` as `/api/v1` (one of "
        "`auth.api_keys`; no `X-User-Id`).")


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
    webhooks: WebhooksConfig


# --- loading ----------------------------------------------------------------------------


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
    if env.get(CONFIG_ENV):
        return Path(env[CONFIG_ENV])
    return DEFAULT_CONFIG_PATH


def load_config(
    path: Path | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> Config:
    """Build the effective configuration; raises `ConfigError` naming the first bad key.

    `overrides` (section -> key -> value) sits between the file and the environment; tests
    use it to build configurations without writing files. Relative paths written in the
    file, and the defaults, resolve against the file's folder; those from the environment
    (and everything when there is no file) against the working directory.
    """
    env = os.environ if env is None else env
    check_environment(env, Config, NOT_SETTINGS)
    raw: dict[str, Any] = read_yaml(path) if path is not None else {}
    check_known_keys(raw, Config)
    for section, values in (overrides or {}).items():
        merged = dict(raw.get(section) or {})
        merged.update(values)
        raw[section] = merged
    check_known_keys(raw, Config)
    cwd = Path.cwd()
    file_dir = path.resolve().parent if path is not None else cwd
    config = Config(**{
        section: build_section(section, cls, raw.get(section) or {}, env, file_dir, cwd)
        for section, cls in sections_of(Config)
    })
    _check_consistency(config)
    return config
