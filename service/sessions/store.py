"""Persistence of the per-user auth row, with compare-and-set on `version`.

Every write names the version it read; a write that finds another version changed nothing
and reports so. That is what keeps a slow request (or a sync job holding a stale copy) from
overwriting a newer login.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.expressions import F

from service import db
from service.models import GarminAuthenticationState, SyncCursor, sql
from service.sync import store as sync_store

LOAD = sql.Sql("SELECT * FROM garmin_authentication_state WHERE user_id = ?")


def utcnow() -> datetime:
    return datetime.now(UTC)


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


async def compare_and_set(row: GarminAuthenticationState, **changes: Any) -> bool:
    """Write `changes` only if the row still has the version we read; bump the version.

    On success the in-memory row reflects the write, so callers can answer from it.
    """
    changes["updated_at"] = utcnow()
    updated = await GarminAuthenticationState.filter(
        user_id=row.user_id, version=row.version
    ).update(version=row.version + 1, **changes)
    if not updated:
        return False
    for name, value in changes.items():
        setattr(row, name, value)
    row.version += 1
    return True


async def force_update(user_id: str, **changes: Any) -> None:
    """An unconditional write for fields no one else derives data from (login cooldown)."""
    changes["updated_at"] = utcnow()
    await GarminAuthenticationState.filter(user_id=user_id).update(
        version=F("version") + 1, **changes
    )


async def delete(user_id: str) -> int:
    return await GarminAuthenticationState.filter(user_id=user_id).delete()


async def load_for_status(
    user_id: str,
) -> tuple[GarminAuthenticationState | None, list[SyncCursor]]:
    """What a status answer shows: the auth row and the user's sync cursors.

    On SQLite both reads go through the read connection (`db.reads`), so a probe never
    waits behind a sync job's transaction on the write connection.
    """
    connection = db.reads() or sql.connection_of(GarminAuthenticationState)
    rows = await sql.fetch(LOAD, [user_id], connection)
    row = sql.model(GarminAuthenticationState, rows[0]) if rows else None
    return row, await sync_store.cursors_of(user_id, connection)
