"""The activity list and the sandbox clock: no listed activity starts after "now".

The clock is pinned to an early UTC morning. Then alice (who trains in Sao Paulo, UTC-3) and
mona (Denver, UTC-7) are before 05:00 local, so none of today's activities of theirs has
started; bob (Sydney, UTC+10) is in his afternoon, part of his day done.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from service.sandbox import SandboxState, expected_activities
from tests.support.sandbox import (
    ALICE,
    ALICE_PASSWORD,
    BOB,
    BOB_PASSWORD,
    MONA,
    MONA_PASSWORD,
    FakeClock,
    account,
    all_pages,
    bearer,
)

Http = TestClient[Any, Any]

EARLY = dt.datetime(2025, 3, 10, 6, 30, tzinfo=dt.UTC)
TODAY = EARLY.date()
YESTERDAY = TODAY - dt.timedelta(days=1)


@pytest.fixture
def clock() -> FakeClock:
    """Pin the sandbox clock (overrides conftest's real-time one) to an early morning."""
    return FakeClock(EARLY.timestamp())


def started_by(items: list[dict[str, Any]], moment: dt.datetime) -> list[dict[str, Any]]:
    return [item for item in items if item["beginTimestamp"] <= moment.timestamp() * 1000]


@pytest.mark.parametrize(
    ("username", "password", "unstarted"),
    [(ALICE, ALICE_PASSWORD, 3), (MONA, MONA_PASSWORD, 3), (BOB, BOB_PASSWORD, None)],
)
async def test_no_listed_activity_starts_after_the_sandbox_clock(
    sbx_http: Http,
    sbx_state: SandboxState,
    username: str,
    password: str,
    unstarted: int | None,
) -> None:
    sbx_state.update_account(
        username, {"activities_per_day": 3, "history_days": 5, "mfa_code": None}
    )
    headers = bearer(sbx_state, username, password)
    items = await all_pages(sbx_http, headers, limit=4)  # pages cut across the skipped ones

    assert items and started_by(items, EARLY) == items
    every_one = expected_activities(account(sbx_state, username), TODAY)  # the days complete
    assert items == started_by(every_one, EARLY)
    assert items == expected_activities(account(sbx_state, username), EARLY)
    if unstarted is not None:  # the whole local day is still ahead: it is what is left out
        assert len(every_one) - len(items) == unstarted
        assert items[0]["startTimeLocal"][:10] < every_one[0]["startTimeLocal"][:10]


async def test_an_activity_is_listed_once_it_has_started(
    sbx_http: Http, sbx_state: SandboxState, clock: FakeClock
) -> None:
    sbx_state.update_account(ALICE, {"oauth2_lifetime_seconds": 86_400})  # outlive the moves
    headers = bearer(sbx_state, ALICE, ALICE_PASSWORD)
    todays = expected_activities(account(sbx_state, ALICE), TODAY)[0]
    assert todays["startTimeLocal"].startswith(TODAY.isoformat())
    assert todays["beginTimestamp"] > EARLY.timestamp() * 1000

    assert await all_pages(sbx_http, headers, limit=10, startDate=TODAY.isoformat()) == []
    before = await all_pages(sbx_http, headers, limit=10)
    assert todays not in before
    clock.now = todays["beginTimestamp"] / 1000 - 1
    assert await all_pages(sbx_http, headers, limit=10) == before
    clock.advance(1)  # the very second it starts
    after = await all_pages(sbx_http, headers, limit=10)
    assert after == [todays, *before]
    until_yesterday = await all_pages(sbx_http, headers, limit=10, endDate=YESTERDAY.isoformat())
    assert until_yesterday == before


def test_expected_activities_needs_an_aware_moment(sbx_state: SandboxState) -> None:
    with pytest.raises(ValueError, match="aware"):
        expected_activities(account(sbx_state, ALICE), EARLY.replace(tzinfo=None))
