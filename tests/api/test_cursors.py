"""Paging cursors: only one this API issued, for this listing, is taken back; anything else
is a 400 problem, never a 500; replicas sharing the keys share cursors."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.api.cursors import MAX_INT, Cursors
from service.crypto import generate_key
from service.errors import BadCursor
from service.models import Activity, JobTrigger, SyncJob, SyncKind
from tests.support.aliases import MakeConfig, StartApi
from tests.support.app import Api, use_db
from tests.support.properties import check_property

JOBS = "/api/v1/garmin/sync/jobs"
ACTIVITIES = "/api/v1/garmin/activities"
PROBLEM_JSON = "application/problem+json"
KEY = b"k" * 32


def _b64(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


async def _seed(api: Api, user: str = "user-1", count: int = 5) -> None:
    use_db(api)
    now = datetime.now(UTC)
    for index in range(count):
        await SyncJob.create(user_id=user, kind=SyncKind.HEALTH, trigger=JobTrigger.MANUAL)
        await Activity.create(user_id=user, garmin_activity_id=index, activity_type="running",
                              start_time_utc=now - timedelta(hours=index), raw_json={},
                              first_seen=now, updated_at=now)


async def _page(api: Api, path: str, user: str = "user-1", **query: str) -> Any:
    return await api.client.get(path, headers=api.headers(user), params={"limit": "2", **query})


async def _next_cursor(api: Api, path: str, user: str = "user-1") -> str:
    response = await _page(api, path, user)
    assert response.status == 200, await response.text()
    cursor: str = (await response.json())["next_cursor"]
    assert cursor
    return cursor


async def _refused(response: Any) -> None:
    assert response.status == 400, await response.text()
    assert response.content_type == PROBLEM_JSON
    assert (await response.json())["type"].endswith("/bad-cursor")


big_ints = st.one_of(st.integers(min_value=2**63 - 8, max_value=2**70), st.integers(max_value=-1),
                     st.integers())
# what a forger sends: the old unsigned encodings with any number in them, any text, and
# this API's own format with payloads it never signed
forged = st.one_of(
    st.text(min_size=1, max_size=250),
    big_ints.map(lambda n: _b64(str(n))),
    st.tuples(st.datetimes(), big_ints).map(lambda p: _b64(f"{p[0].isoformat()}|{p[1]}")),
    st.lists(st.one_of(big_ints, st.text(max_size=30), st.none(), st.floats()), max_size=3)
    .map(lambda v: _b64(json.dumps(v)) + "." + "A" * 22),
)


@pytest.mark.parametrize("path", [JOBS, ACTIVITIES])
async def test_forged_cursors_are_refused_with_a_400_problem(api: Api, path: str) -> None:
    await _seed(api)

    async def refused(cursor: str) -> None:
        await _refused(await _page(api, path, cursor=cursor))

    await check_property(refused, max_examples=150, cursor=forged)


@pytest.mark.parametrize("path", [JOBS, ACTIVITIES])
async def test_an_issued_cursor_with_any_character_changed_is_refused(api: Api,
                                                                      path: str) -> None:
    await _seed(api)
    cursor = await _next_cursor(api, path)

    async def refused(position: int, char: str) -> None:
        index = position % len(cursor)
        if cursor[index] == char:
            return
        await _refused(await _page(api, path, cursor=cursor[:index] + char + cursor[index + 1:]))

    await check_property(refused, max_examples=60, position=st.integers(0, 10_000),
                         char=st.sampled_from("AZaz09-_.=+/%"))


async def test_a_cursor_is_refused_on_another_listing_and_pages_only_the_callers_rows(
        api: Api) -> None:
    await _seed(api, "user-1")
    jobs_cursor = await _next_cursor(api, JOBS)
    activities_cursor = await _next_cursor(api, ACTIVITIES)
    await _refused(await _page(api, ACTIVITIES, cursor=jobs_cursor))
    await _refused(await _page(api, JOBS, cursor=activities_cursor))
    assert (await _page(api, JOBS, cursor=jobs_cursor)).status == 200
    # a position, not a grant: another user's cursor pages through that user's own rows
    for path, cursor in ((JOBS, jobs_cursor), (ACTIVITIES, activities_cursor)):
        response = await _page(api, path, "user-2", cursor=cursor)
        assert response.status == 200
        assert await response.json() == {"items": [], "next_cursor": None}


async def test_a_cursor_pages_on_every_replica_with_the_same_keys_and_no_other(
        make_config: MakeConfig, start_api: StartApi, encryption_key: str) -> None:
    first = await start_api(make_config())
    await _seed(first)
    cursor = await _next_cursor(first, JOBS)
    replica = await start_api(make_config())
    response = await _page(replica, JOBS, cursor=cursor)
    assert response.status == 200, await response.text()
    assert len((await response.json())["items"]) == 2
    rotated = await start_api(make_config(security={"encryption_keys": [generate_key(),
                                                                        encryption_key]}))
    assert (await _page(rotated, JOBS, cursor=cursor)).status == 200
    stranger = await start_api(make_config(security={"encryption_keys": [generate_key()]}))
    await _refused(await _page(stranger, JOBS, cursor=cursor))


values = st.one_of(st.integers(0, MAX_INT), st.text(max_size=20),
                   st.datetimes(timezones=st.just(UTC)))


@settings(max_examples=200, deadline=None, database=None)
@given(drawn=st.lists(values, max_size=3), scope=st.text(max_size=10))
def test_cursors_open_to_what_they_were_issued_with(drawn: list[Any], scope: str) -> None:
    cursors = Cursors([KEY])
    token = cursors.issue(scope, *drawn)
    if len(token) > 200:
        return
    shape = [type(value) for value in drawn]
    assert list(cursors.open(scope, token, shape)) == drawn
    with pytest.raises(BadCursor):
        Cursors([b"x" * 32]).open(scope, token, shape)
    with pytest.raises(BadCursor):
        cursors.open(scope + "x", token, shape)
