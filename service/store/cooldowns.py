"""Persistence of the per-account login cooldowns (`garmin_account_cooldown`).

The table only ever holds accounts Garmin throttled within the last cooldown, so it stays a
handful of rows: a login reads its account's rows by primary key, and every write also
deletes the rows that have expired (by the index on `until`), so rows of accounts no one
logs in to again do not pile up.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime

from service.models import AccountCooldown
from service.store import sql

# a later cooldown wins; an earlier one never shortens a running one
EXTEND = sql.Sql("""
    INSERT INTO garmin_account_cooldown (account, until) VALUES (?, ?)
    ON CONFLICT (account) DO UPDATE SET until = excluded.until
    WHERE excluded.until > garmin_account_cooldown.until
""")
PRUNE = sql.Sql("DELETE FROM garmin_account_cooldown WHERE until <= ?")


@functools.lru_cache(maxsize=8)
def _read_sql(count: int) -> sql.Sql:
    marks = ", ".join("?" for _ in range(count))
    return sql.Sql(f"SELECT account, until FROM garmin_account_cooldown "  # noqa: S608
                   f"WHERE account IN ({marks})")


@functools.lru_cache(maxsize=8)
def _forget_sql(count: int) -> sql.Sql:
    marks = ", ".join("?" for _ in range(count))
    return sql.Sql(f"DELETE FROM garmin_account_cooldown "  # noqa: S608
                   f"WHERE account IN ({marks}) AND until <= ?")


async def until(accounts: Sequence[str], now: datetime) -> datetime | None:
    """The latest running cooldown among `accounts` (one account's names under each
    configured key), or None. Expired rows found on the way are deleted."""
    connection = sql.connection_of(AccountCooldown)
    rows = [sql.model(AccountCooldown, row)
            for row in await sql.fetch(_read_sql(len(accounts)), list(accounts), connection)]
    if any(row.until <= now for row in rows):
        await sql.execute(_forget_sql(len(accounts)), [*accounts, now], connection)
    running = [row.until for row in rows if row.until > now]
    return max(running) if running else None


async def extend(account: str, until: datetime, now: datetime) -> None:
    """The account cools down until `until` at least; expired rows of any account go."""
    connection = sql.connection_of(AccountCooldown)
    await sql.execute(EXTEND, [account, until], connection)
    await sql.execute(PRUNE, [now], connection)
