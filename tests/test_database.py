"""How the service opens its embedded database."""

from __future__ import annotations

import pytest

from service.db import READS
from service.keys import DB_CONTEXT
from tests.support.app import PG_URL, Api

pytestmark = pytest.mark.skipif(bool(PG_URL), reason="SQLite pragmas need the SQLite backend")

WAL, NORMAL = "wal", 1


async def test_both_sqlite_connections_use_wal_without_an_fsync_per_commit(api: Api) -> None:
    context = api.app[DB_CONTEXT]
    for name in ("default", READS):
        connection = context.db(name)
        _, journal = await connection.execute_query("PRAGMA journal_mode")
        _, synchronous = await connection.execute_query("PRAGMA synchronous")
        assert journal[0][0] == WAL, name
        assert synchronous[0][0] == NORMAL, name
