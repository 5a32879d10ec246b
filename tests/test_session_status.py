"""One rule for a user's status: the status view reads it from a row, the metrics count it
in SQL, and both give every row the same answer."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from service import db
from service.keys import DB_CONTEXT
from service.models import (
    GarminAuthenticationState,
    SessionStatus,
    engine_shown,
    status_expression,
    status_of,
)
from tests.support.app import Api

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


async def test_rows_get_the_same_status_in_python_and_in_sql(api: Api) -> None:
    db.activate(api.app[DB_CONTEXT])
    cases = list(itertools.product(
        (None, "gs1.sealed"),                                   # session_data
        (False, True),                                          # mfa_pending
        (None, NOW - timedelta(seconds=1), NOW, NOW + timedelta(minutes=5)),  # mfa_expires_at
        (SessionStatus.MISSING, SessionStatus.VALID, SessionStatus.EXPIRED),
    ))
    for number, (session, pending, expires, stored) in enumerate(cases):
        await GarminAuthenticationState.create(
            user_id=f"user-{number}", session_data=session, mfa_pending=pending,
            mfa_expires_at=expires, status=stored)

    in_sql = {row["user_id"]: row["state"] for row in
              await GarminAuthenticationState.annotate(state=status_expression(NOW))
              .values("user_id", "state")}
    in_python = {row.user_id: status_of(row, NOW).value
                 for row in await GarminAuthenticationState.all()}

    assert len(in_python) == len(cases)
    assert in_sql == in_python
    assert set(in_python.values()) == {status.value for status in SessionStatus}


def test_the_rule_in_words() -> None:
    def row(**fields: object) -> GarminAuthenticationState:
        return GarminAuthenticationState(user_id="u", **fields)

    later = NOW + timedelta(minutes=5)
    assert status_of(row(session_data="gs1.x", status=SessionStatus.EXPIRED), NOW) == "VALID"
    assert status_of(row(mfa_pending=True, mfa_expires_at=later), NOW) == "MFA_PENDING"
    assert status_of(row(mfa_pending=True, mfa_expires_at=NOW), NOW) == "MISSING"
    assert status_of(row(status=SessionStatus.EXPIRED, mfa_pending=True, mfa_expires_at=NOW),
                     NOW) == "EXPIRED"
    assert status_of(row(status=SessionStatus.VALID), NOW) == "MISSING"  # session cleared


def test_the_engine_named_follows_the_status() -> None:
    def row(**fields: object) -> GarminAuthenticationState:
        return GarminAuthenticationState(user_id="u", **fields)

    both = row(engine="garth", mfa_engine="di")
    assert engine_shown(both, SessionStatus.MFA_PENDING) == "di"
    assert engine_shown(both, SessionStatus.VALID) == "garth"
    assert engine_shown(both, SessionStatus.EXPIRED) == "garth"
    assert engine_shown(both, SessionStatus.MISSING) is None
    assert engine_shown(row(), SessionStatus.EXPIRED) == "garth"  # from before the column
