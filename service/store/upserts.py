"""Activity and daily-health upserts that say what they changed.

`INSERT ... ON CONFLICT (natural key) DO UPDATE ... WHERE <a value differs>`, with all the
rows of a job in one multi-row statement (per `UPSERT_CHUNK` rows), on SQLite and PostgreSQL
alike: running the same sync twice changes no row count and rewrites no row (no new row
version on PostgreSQL, no page write on SQLite), and the statement returns the rows it
inserted or changed, which `activities.synced` and `health.synced` report.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient

from service.models import Activity, DailyHealth, SyncKind
from service.store import sql

ACTIVITY_KEY = ["user_id", "garmin_activity_id"]
ACTIVITY_UPDATE = [
    "activity_type", "name", "start_time_utc", "start_time_local", "duration_seconds",
    "distance_meters", "calories", "average_hr", "max_hr", "elevation_gain", "raw_json",
    "updated_at",
]
DAY_KEY = ["user_id", "calendar_date"]
DAY_UPDATE = [
    "steps", "resting_hr", "sleep_seconds", "sleep_score", "average_stress",
    "body_battery_high", "body_battery_low", "hrv_last_night", "raw_json", "updated_at",
]


UPSERT_CHUNK = 500  # rows per statement: within both databases' parameter limits


@dataclass(frozen=True)
class UpsertShape:
    """One table's upsert: `INSERT ... ON CONFLICT (key) DO UPDATE` of every column but
    `first_seen`, only where a value differs (an unchanged row is not rewritten, and is not
    returned: the statement's RETURNING lists exactly the rows inserted or changed)."""

    table: str
    key: tuple[str, ...]
    update: tuple[str, ...]

    @property
    def columns(self) -> list[str]:
        return [*self.key, *(name for name in self.update if name != "updated_at"),
                "first_seen", "updated_at"]

    @lru_cache(maxsize=128)  # noqa: B019 - a few module-level shapes, kept for the process
    def statement(self, rows: int, dialect: str) -> sql.Sql:
        columns = self.columns
        names = ", ".join(f'"{name}"' for name in columns)
        marks = "(" + ", ".join("?" for _ in columns) + ")"
        conflict = ", ".join(f'"{name}"' for name in self.key)
        changes = ", ".join(f'"{name}" = excluded."{name}"' for name in self.update)
        compared = [name for name in self.update if name != "updated_at"]
        old = ", ".join(f'"{self.table}"."{name}"' for name in compared)
        new = ", ".join(f'excluded."{name}"' for name in compared)
        natural = self.key[-1]
        # PostgreSQL: a row just inserted has no deleting transaction (xmax 0); SQLite has
        # no such column, so the caller reads which keys existed first (one writer at a time)
        distinct, returning = (("IS DISTINCT FROM", f'"{natural}", (xmax = 0) AS inserted')
                               if dialect == "postgres" else ("IS NOT", f'"{natural}"'))
        # built from the constant column lists below; values only ever go in as parameters
        return sql.Sql(
            f'INSERT INTO "{self.table}" ({names}) VALUES '  # noqa: S608
            f"{', '.join(marks for _ in range(rows))} "
            f"ON CONFLICT ({conflict}) DO UPDATE SET {changes} "
            f"WHERE ({old}) {distinct} ({new}) RETURNING {returning}")

    @lru_cache(maxsize=128)  # noqa: B019
    def existing(self, rows: int) -> sql.Sql:
        owner, natural = self.key
        marks = ", ".join("?" for _ in range(rows))
        return sql.Sql(f'SELECT "{natural}" FROM "{self.table}" '  # noqa: S608
                       f'WHERE "{owner}" = ? AND "{natural}" IN ({marks})')


ACTIVITIES = UpsertShape("activity", tuple(ACTIVITY_KEY), tuple(ACTIVITY_UPDATE))
DAYS = UpsertShape("daily_health", tuple(DAY_KEY), tuple(DAY_UPDATE))
ACTIVITY_COLUMNS, DAY_COLUMNS = ACTIVITIES.columns, DAYS.columns


@dataclass
class Changed:
    """The natural keys (Garmin activity ids, or dates) an upsert inserted and changed;
    rows written again with the same values are in neither."""

    inserted: list[Any] = field(default_factory=list)
    updated: list[Any] = field(default_factory=list)

    @property
    def keys(self) -> list[Any]:
        return [*self.inserted, *self.updated]


@dataclass(frozen=True)
class Upsert:
    """An upsert's parameter rows, built before its transaction begins."""

    shape: UpsertShape
    user_id: str
    values: list[list[Any]]

    async def run(self, connection: BaseDBAsyncClient) -> int:
        """Write the rows; how many were sent."""
        await self.apply(connection)
        return len(self.values)

    async def apply(self, connection: BaseDBAsyncClient) -> Changed:
        """Write the rows in a few multi-row statements; which rows were inserted or
        changed (run inside the job's transaction, under the user's lease)."""
        changed = Changed()
        dialect = connection.capabilities.dialect
        key_index = len(self.shape.key) - 1
        for start in range(0, len(self.values), UPSERT_CHUNK):
            chunk = self.values[start:start + UPSERT_CHUNK]
            existed: set[Any] | None = None
            if dialect != "postgres":
                keys = [row[key_index] for row in chunk]
                found = await sql.fetch(self.shape.existing(len(chunk)),
                                        [self.user_id, *keys], connection)
                existed = {str(row[self.shape.key[-1]]) for row in found}
            flat = [value for row in chunk for value in row]
            rows = await sql.fetch(self.shape.statement(len(chunk), dialect), flat, connection)
            for row in rows:
                key = row[self.shape.key[-1]]
                inserted = (bool(row["inserted"]) if existed is None
                            else str(key) not in existed)
                (changed.inserted if inserted else changed.updated).append(key)
        return changed


def _upsert(shape: UpsertShape, json_field: Any, user_id: str,
            rows: Iterable[dict[str, Any]], now: datetime) -> Upsert:
    """Rows as `service.sync.parsing` makes them; the raw JSON is encoded as Tortoise does."""
    columns = shape.columns
    values = []
    for row in rows:
        fields = {**row, "user_id": user_id, "first_seen": now, "updated_at": now,
                  "raw_json": json_field.to_db_value(row["raw_json"], json_field.model)}
        values.append([fields[name] for name in columns])
    return Upsert(shape, user_id, values)


def upsert_of(kind: SyncKind, user_id: str, rows: Iterable[dict[str, Any]],
              now: datetime) -> Upsert:
    """The activities or days of one job, ready to run inside its transaction."""
    if kind == SyncKind.ACTIVITIES:
        return _upsert(ACTIVITIES, Activity._meta.fields_map["raw_json"], user_id, rows, now)
    return _upsert(DAYS, DailyHealth._meta.fields_map["raw_json"], user_id, rows, now)


async def upsert_activities(
    user_id: str, rows: Iterable[dict[str, Any]], now: datetime, connection: BaseDBAsyncClient
) -> int:
    return await upsert_of(SyncKind.ACTIVITIES, user_id, rows, now).run(connection)


async def upsert_days(
    user_id: str, rows: Iterable[dict[str, Any]], now: datetime, connection: BaseDBAsyncClient
) -> int:
    return await upsert_of(SyncKind.HEALTH, user_id, rows, now).run(connection)
