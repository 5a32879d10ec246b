"""The claim statement finds every row it reads through an index on SQLite's schema, as the
migrations create it: a subquery on the table being updated that SQLite cannot serve from an
index (in RETURNING, say) scans the whole outbox once per claimed row."""

from __future__ import annotations

import asyncio
import importlib.util
import sqlite3
from pathlib import Path
from types import SimpleNamespace

from service.webhooks import outbox

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations" / "models"


def _schema() -> sqlite3.Connection:
    """The migrations' SQLite statements on an in-memory database, without Aerich: it keeps
    per-process state, and the suite's PostgreSQL run has migrated PostgreSQL already."""
    database = sqlite3.connect(":memory:")
    fake = SimpleNamespace(capabilities=SimpleNamespace(dialect="sqlite"))
    for path in sorted(MIGRATIONS.glob("[0-9]*_*.py"), key=lambda p: int(p.name.split("_")[0])):
        spec = importlib.util.spec_from_file_location(path.stem, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        database.executescript(asyncio.run(module.upgrade(fake)))
    return database


def test_the_sqlite_claim_scans_no_table() -> None:
    database = _schema()
    statement = outbox.CLAIM["sqlite"].render("sqlite")
    plan = [row[3] for row in database.execute("EXPLAIN QUERY PLAN " + statement,
                                               ["t", "t", 10, "owner", "t", "t"])]
    assert any("MATERIALIZE picked" in step for step in plan), plan
    # the picked rows, materialized once, are read as a whole by design
    scans = [step for step in plan if step.startswith("SCAN") and step not in
             ("SCAN picked", "SCAN p")]
    assert scans == [], plan
