"""Database lifecycle: Tortoise contexts, Aerich migrations, the schema-version guard.

Each app instance owns an explicit `TortoiseContext` (not Tortoise's process-wide default)
so two instances in one process, as in tests that restart the service, never share or close
each other's connections. Request handlers and jobs activate the app's context for their
own task with `activate()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import copy
import logging
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.backends.base.config_generator import expand_db_url
from tortoise.context import TortoiseContext, _current_context

from service.config import ConfigError, StartupError

log = logging.getLogger(__name__)

APP_LABEL = "models"
# A connection of its own for the status read path, so a probe never queues behind sync
# jobs. SQLite: Tortoise serialises every query of one connection behind its lock, which a
# sync job's transaction holds to its end; in WAL mode a second connection reads while the
# first one writes. PostgreSQL: a small pool of its own (READS_POOL_SIZE), since sync
# transactions can hold every connection of the main pool while the loop is busy.
READS = "reads"
READS_POOL_SIZE = 2
MODEL_MODULES = ["service.models"]
MIGRATIONS_ENV = "GARMIN_SYNC_MIGRATIONS_DIR"


class SchemaError(Exception):
    """The database schema does not match this build (newer, or migrations missing)."""


def tortoise_config(
    url: str, *, with_aerich: bool = False, statement_timeout_seconds: float = 0,
    pool_max_size: int | None = None,
) -> dict[str, Any]:
    """Tortoise's config for one database URL; Aerich's own model joins only for migrating.

    On PostgreSQL a positive `statement_timeout_seconds` becomes the server's
    `statement_timeout` for every pooled connection: a query stuck behind a lock is
    cancelled (503) instead of holding its request and its pool connection forever.
    `pool_max_size` bounds the connection pool (a `maxsize` in the URL wins); the pool takes
    a connection back without resetting its session (`keep_session`). Outside
    migrations, status reads get a connection of their own (`READS`): a second one on a
    SQLite file, a pool of `READS_POOL_SIZE` on PostgreSQL.
    """
    modules = [*MODEL_MODULES, "aerich.models"] if with_aerich else list(MODEL_MODULES)
    connection: str | dict[str, Any] = url
    connections: dict[str, Any] = {"default": connection}
    if url.startswith("sqlite://"):
        if not with_aerich:
            connection = connections["default"] = sqlite_connection(url)
            if ":memory:" not in url:
                connections[READS] = copy.deepcopy(connection)
    elif statement_timeout_seconds > 0 or pool_max_size or not with_aerich:
        connection = connections["default"] = expand_db_url(url)
        credentials = connection["credentials"]
        if statement_timeout_seconds > 0:
            settings = dict(credentials.get("server_settings") or {})
            settings["statement_timeout"] = str(int(statement_timeout_seconds * 1000))
            credentials["server_settings"] = settings
        if pool_max_size and "maxsize" not in credentials:
            credentials["maxsize"] = pool_max_size
        credentials["reset"] = keep_session
        if not with_aerich:
            reads = copy.deepcopy(connection)
            reads["credentials"].update(minsize=1, maxsize=READS_POOL_SIZE)
            connections[READS] = reads
    return {
        "connections": connections,
        "apps": {APP_LABEL: {"models": modules, "default_connection": "default"}},
        "use_tz": True,
        "timezone": "UTC",
    }


async def keep_session(connection: Any) -> None:
    """asyncpg's pool resets each connection it takes back: by default one more round trip
    per statement outside a transaction (advisory locks, cursors, LISTEN and session
    settings: this service holds none of them, and `statement_timeout` is a startup
    setting). A transaction left open is still rolled back: asyncpg does that before
    calling this."""


def sqlite_connection(url: str) -> dict[str, Any]:
    """A SQLite URL as Tortoise's connection settings, `synchronous=NORMAL` unless the URL
    names another value.

    In WAL mode (Tortoise's default) NORMAL skips the fsync at each commit, which costs
    more CPU and disk time than the statement itself: a login commits five times and a sync
    job about ten. The database stays consistent after any crash; only the last
    transactions before a power loss or OS crash may be rolled back, and a lost token
    refresh or sync cursor is redone by the next job (a lost login is asked for again).
    `?synchronous=FULL` in the URL restores durability at every commit.
    """
    connection = expand_db_url(url)
    connection["credentials"].setdefault("synchronous", "NORMAL")
    return connection


# The configuration the `aerich` command line uses when developers generate migrations.
AERICH_CONFIG = tortoise_config(
    os.environ.get("GARMIN_SYNC_DATABASE_URL", "sqlite://./data/garmin-sync.sqlite3"),
    with_aerich=True,
)


def migrations_dir() -> Path:
    """Where the migration files live: next to the package in a checkout or the image."""
    override = os.environ.get(MIGRATIONS_ENV)
    candidates = [Path(override)] if override else []
    candidates += [Path(__file__).resolve().parent.parent / "migrations", Path.cwd() / "migrations"]
    for candidate in candidates:
        if (candidate / APP_LABEL).is_dir():
            return candidate
    raise ConfigError(MIGRATIONS_ENV, "cannot find the migrations/ folder")


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL (None for PostgreSQL and in-memory SQLite)."""
    if not url.startswith("sqlite://"):
        return None
    path = url.removeprefix("sqlite://").split("?", 1)[0]
    return Path(path) if path and path != ":memory:" else None


def prepare_sqlite_path(url: str) -> None:
    """Create a missing SQLite file, and its folder, readable by this user only.

    SQLite does not create folders, and creates the file with the process's umask (usually
    world-readable); its -wal and -shm files take the database file's mode, so creating the
    file 0600 first keeps all three private.
    """
    path = sqlite_path(url)
    if path is None:
        return
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    except OSError as exc:
        raise StartupError(
            "database.url",
            f"cannot create or open the SQLite file {path}: {exc.strerror or exc}; check "
            "that the path is right and that this user may write the file and its folder",
        ) from None
    if path.stat().st_mode & 0o077:
        log.warning("the SQLite file %s is readable by other users; chmod 600 it", path)


def _where(url: str) -> str:
    """The database a URL names, without its credentials."""
    if url.startswith("sqlite://"):
        return f"the SQLite file {sqlite_path(url) or ':memory:'}"
    parts = urlsplit(url)
    return f"PostgreSQL at {parts.hostname}:{parts.port or 5432}{parts.path}"


# What connecting can raise: OSError covers refused connections, unresolvable hosts and
# timeouts (Tortoise's DBConnectionError is one too); asyncpg raises the server's refusals
# (unknown role, wrong password) untranslated while a pool is being created.
CONNECT_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError)


def unreachable(url: str, exc: BaseException) -> StartupError:
    """A failure to connect as one line naming `database.url`, never the URL's password."""
    if isinstance(exc, socket.gaierror):
        reason = f"the host {urlsplit(url).hostname} does not resolve"
    elif isinstance(exc, ConnectionRefusedError):
        reason = "the connection was refused"
    elif isinstance(exc, OSError) and exc.strerror:
        reason = exc.strerror
    else:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return StartupError(
        "database.url",
        f"cannot connect to {_where(url)}: {reason}; check that the server is running and "
        "that the URL's host, port, user, password and database name are right",
    )


@contextlib.asynccontextmanager
async def naming_the_database(url: str) -> AsyncIterator[None]:
    """Turn a failure to reach the database into a `StartupError` naming the setting."""
    try:
        yield
    except StartupError:
        raise
    except CONNECT_ERRORS as exc:
        raise unreachable(url, exc) from None


def _known_versions() -> list[str]:
    from aerich.migrate import Migrate

    Migrate.migrate_location = migrations_dir() / APP_LABEL
    return Migrate.get_all_version_files()


async def _applied_versions(command: Any) -> list[str]:
    from aerich.models import Aerich
    from tortoise.exceptions import OperationalError

    try:
        rows = await Aerich.filter(app=APP_LABEL).values_list("version", flat=True)
    except OperationalError:
        return []
    return [str(row) for row in rows]


async def _migrate_in_own_context(url: str, apply: bool) -> list[str]:
    from aerich import Command

    prepare_sqlite_path(url)
    command = Command(tortoise_config(url, with_aerich=True), app=APP_LABEL,
                      location=str(migrations_dir()))
    async with command:
        known_versions = _known_versions()
        applied = set(await _applied_versions(command))
        unknown = sorted(applied - set(known_versions))
        if unknown:
            raise SchemaError(
                f"the database has migrations this build does not know ({', '.join(unknown)}):"
                " it was migrated by a newer garmin-sync; run that version or restore a backup"
            )
        if apply:
            return list(await command.upgrade(run_in_transaction=True))
        return [version for version in known_versions if version not in applied]


async def upgrade(url: str) -> list[str]:
    """Apply pending migrations; returns the files applied.

    Aerich initialises and closes Tortoise through the process-wide context, so it runs in
    a task with a fresh `contextvars.Context`: nothing it sets leaks into the caller.
    """
    task = asyncio.get_running_loop().create_task(
        _migrate_in_own_context(url, apply=True), context=contextvars.Context()
    )
    async with naming_the_database(url):
        return await task


async def pending(url: str) -> list[str]:
    """Migrations not yet applied (empty when the schema is current)."""
    task = asyncio.get_running_loop().create_task(
        _migrate_in_own_context(url, apply=False), context=contextvars.Context()
    )
    async with naming_the_database(url):
        return await task


async def _within(ctx: TortoiseContext, work: Callable[[], Awaitable[None]]) -> None:
    """Run `work` with `ctx` active, in a task of its own so the caller's context is untouched."""

    async def run() -> None:
        activate(ctx)
        await work()

    await asyncio.get_running_loop().create_task(run(), context=contextvars.Context())


async def open_context(url: str, statement_timeout_seconds: float = 0,
                       pool_max_size: int | None = None) -> TortoiseContext:
    """A connected Tortoise context of our own for one app instance."""
    prepare_sqlite_path(url)
    ctx = TortoiseContext()
    config = tortoise_config(url, statement_timeout_seconds=statement_timeout_seconds,
                             pool_max_size=pool_max_size)
    async with naming_the_database(url):
        await _within(ctx, lambda: ctx.init(config=config))
    return ctx


async def close_context(ctx: TortoiseContext) -> None:
    await _within(ctx, ctx.close_connections)


def reads() -> BaseDBAsyncClient | None:
    """The active context's read connection, where it has one (not in-memory SQLite)."""
    ctx = _current_context.get()
    if ctx is None or READS not in ctx.connections.db_config:
        return None
    return ctx.connections.get(READS)


def activate(ctx: TortoiseContext) -> None:
    """Make `ctx` the Tortoise context of the current task (and tasks it starts).

    Sets the context variable directly rather than via `with ctx:`, whose reset token lives
    on the shared context object and would be clobbered by concurrent requests.
    """
    _current_context.set(ctx)
