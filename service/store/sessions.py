"""Persistence of the per-user auth row, with compare-and-set on `version`.

Every write names the version it read; a write that finds another version changed nothing
and reports so. That is what keeps a slow request (or a sync job holding a stale copy) from
overwriting a newer login.
"""

from __future__ import annotations

import functools
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import IntegrityError

from service import db
from service.clock import utcnow
from service.models import GarminAuthenticationState, SyncCursor
from service.store import sql

LOAD = sql.Sql("SELECT * FROM garmin_authentication_state WHERE user_id = ?")
DELETE = sql.Sql("DELETE FROM garmin_authentication_state WHERE user_id = ?")
_AUTH_COLUMNS = tuple(GarminAuthenticationState._meta.fields_db_projection.values())
_CURSOR_COLUMNS = tuple(SyncCursor._meta.fields_db_projection.values())
# one row per cursor, or one row of NULLs on the side that has none
LOAD_FOR_STATUS = sql.Sql(f"""
    SELECT {", ".join(f"a.{c} AS a_{c}" for c in _AUTH_COLUMNS)},
        {", ".join(f"c.{c} AS c_{c}" for c in _CURSOR_COLUMNS)}
    FROM (SELECT ?::text AS user_id) AS wanted
    LEFT JOIN garmin_authentication_state AS a ON a.user_id = wanted.user_id
    LEFT JOIN sync_cursor AS c ON c.user_id = wanted.user_id
""")  # noqa: S608 - column names come from the models; the user id is a parameter


async def load(user_id: str) -> GarminAuthenticationState | None:
    """The user's row (every sync job and status check starts here: hand-written SQL)."""
    rows = await sql.fetch(LOAD, [user_id], sql.connection_of(GarminAuthenticationState))
    return sql.model(GarminAuthenticationState, rows[0]) if rows else None


async def load_or_create(user_id: str) -> GarminAuthenticationState:
    """The user's row, created empty on first contact (a race with another replica is fine)."""
    row = await load(user_id)
    if row is not None:
        return row
    try:
        return await GarminAuthenticationState.create(user_id=user_id)
    except IntegrityError:
        row = await load(user_id)
        assert row is not None
        return row


@functools.lru_cache(maxsize=64)
def _compare_and_set_sql(names: tuple[str, ...]) -> sql.Sql:
    """The versioned UPDATE of these fields (hand-written: logins and refreshes run it)."""
    columns = GarminAuthenticationState._meta.fields_db_projection
    sets = ", ".join(f"{columns[name]} = ?" for name in names)
    return sql.Sql(f"UPDATE garmin_authentication_state SET version = ?, {sets} "  # noqa: S608
                   "WHERE user_id = ? AND version = ?")


async def compare_and_set(row: GarminAuthenticationState,
                          connection: BaseDBAsyncClient | None = None, **changes: Any) -> bool:
    """Write `changes` only if the row still has the version we read; bump the version.

    On success the in-memory row reflects the write, so callers can answer from it.
    `connection`: the caller's transaction (a change and the event that reports it).
    """
    changes["updated_at"] = utcnow()
    names = tuple(changes)
    fields = GarminAuthenticationState._meta.fields_map
    # converted as Tortoise's own UPDATE does (no instance: auto_now stays ours to set)
    converted = [fields[name].to_db_value(changes[name], None)  # type: ignore[arg-type]
                 for name in names]
    values = [row.version + 1, *converted, row.user_id, row.version]
    updated = await sql.execute(_compare_and_set_sql(names), values,
                                connection or sql.connection_of(GarminAuthenticationState))
    if not updated:
        return False
    for name, value in changes.items():
        setattr(row, name, value)
    row.version += 1
    return True


async def delete(user_id: str, connection: BaseDBAsyncClient | None = None) -> int:
    return await sql.execute(DELETE, [user_id],
                             connection or sql.connection_of(GarminAuthenticationState))


async def load_for_status(
    user_id: str,
) -> tuple[GarminAuthenticationState | None, list[SyncCursor]]:
    """What a status answer shows: the auth row and the user's sync cursors, in one query
    (one round trip: under a sync's load every extra one waits its turn on the event loop).

    On SQLite it goes through the read connection (`db.reads`), so a probe never waits
    behind a sync job's transaction on the write connection.
    """
    connection = db.reads() or sql.connection_of(GarminAuthenticationState)
    rows = await sql.fetch(LOAD_FOR_STATUS, [user_id], connection)
    first = rows[0]
    row = (sql.model(GarminAuthenticationState, {c: first["a_" + c] for c in _AUTH_COLUMNS})
           if first["a_id"] is not None else None)
    cursors = [sql.model(SyncCursor, {c: r["c_" + c] for c in _CURSOR_COLUMNS})
               for r in rows if r["c_id"] is not None]
    return row, cursors
