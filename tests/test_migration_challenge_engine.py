"""The migration that gives the pending MFA challenge its own engine column, on rows written
before it: what SQL can tell moves to `mfa_engine`, the rest keeps its challenge unnamed (the
status then reads the challenge's sealed marker)."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from service import db
from service.clock import utcnow
from service.store import sql
from tests.support.app import PG_URL

MIGRATION = "5_"
COLUMNS = ("user_id", "status", "session_data", "engine", "mfa_pending", "mfa_state",
           "mfa_attempts", "version", "created_at", "updated_at")
INSERT = sql.Sql(f"INSERT INTO garmin_authentication_state ({', '.join(COLUMNS)}) "
                 f"VALUES ({', '.join('?' for _ in COLUMNS)})")
SELECT = sql.Sql("SELECT user_id, engine, mfa_engine FROM garmin_authentication_state")

# user: (status, session_data, engine, mfa_state) before -> (engine, mfa_engine) after
ROWS: dict[str, tuple[tuple[str, str | None, str | None, str | None],
                      tuple[str | None, str | None]]] = {
    # never connected: `engine` named the challenge (NULL: from before that column, garth's)
    "waits-di": (("MISSING", None, "di", "gs1.mfa"), (None, "di")),
    "waits-old": (("MISSING", None, None, "gs1.mfa"), (None, "garth")),
    "gave-up": (("MISSING", None, "di", None), (None, None)),
    # beside a stored or rejected session the challenge's engine is sealed: left unnamed
    "waits-beside-session": (("VALID", "gs1.session", "garth", "gs1.mfa"), ("garth", None)),
    "waits-after-expiry": (("EXPIRED", None, "di", "gs1.mfa"), ("di", None)),
    "connected": (("VALID", "gs1.session", "di", None), ("di", None)),
    "expired": (("EXPIRED", None, "garth", None), ("garth", None)),
}


@pytest.fixture
async def fresh_database(tmp_path: Path) -> AsyncIterator[str]:
    """An empty database: a SQLite file, or a PostgreSQL database of its own."""
    if not PG_URL:
        yield f"sqlite://{tmp_path}/migrations.sqlite3"
        return
    parts = urlsplit(PG_URL)
    name = parts.path.lstrip("/") + "_migrations"
    admin = await asyncpg.connect(PG_URL)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield urlunsplit(parts._replace(path="/" + name))
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def _migrations_before(tmp_path: Path) -> Path:
    shipped = db.migrations_dir() / db.APP_LABEL
    older = tmp_path / "migrations" / db.APP_LABEL
    older.mkdir(parents=True)
    for path in shipped.glob("*.py"):
        if int(path.name.split("_", 1)[0]) < int(MIGRATION.rstrip("_")):
            shutil.copy(path, older / path.name)
    return older.parent


async def _on(url: str, work: Any) -> Any:
    ctx = await db.open_context(url)
    try:
        return await work(ctx.db())
    finally:
        await db.close_context(ctx)


async def test_pending_challenges_get_the_engine_sql_can_tell(
    fresh_database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(db.MIGRATIONS_ENV, str(_migrations_before(tmp_path)))
    assert not any(name.startswith(MIGRATION) for name in await db.upgrade(fresh_database))
    now = utcnow()
    await _on(fresh_database, lambda connection: sql.execute_many(INSERT, [
        [user, status, session, engine, mfa_state is not None, mfa_state, 0, 1, now, now]
        for user, ((status, session, engine, mfa_state), _) in ROWS.items()], connection))

    monkeypatch.delenv(db.MIGRATIONS_ENV)
    applied = await db.upgrade(fresh_database)
    assert applied[0].startswith(MIGRATION)  # then the later ones
    after = {row["user_id"]: (row["engine"], row["mfa_engine"])
             for row in await _on(fresh_database,
                                  lambda connection: sql.fetch(SELECT, [], connection))}
    assert after == {user: expected for user, (_, expected) in ROWS.items()}
