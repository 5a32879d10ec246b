"""The status answer cache: repeated polls cost no database read, writes show at once."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from service.clock import ManualClock
from service.config import Config
from service.keys import SESSIONS
from service.sessions.status_cache import StatusCache
from service.store import sessions as store
from tests.support.aliases import StartApi
from tests.support.app import Api, Sandbox, connect, sync_now
from tests.support.app import connect as _connected


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def loads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """User ids of every auth-row read the status path makes."""
    seen: list[str] = []
    original = store.load_for_status

    async def counting(user_id: str) -> object:
        seen.append(user_id)
        return await original(user_id)

    monkeypatch.setattr(store, "load_for_status", counting)
    return seen


async def _status(api: Api, user: str = "user-1") -> dict[str, object]:
    response = await api.status(user)
    assert response.status == 200
    body: dict[str, object] = await response.json()
    return body


# --- through the API --------------------------------------------------------------------


async def test_repeated_polls_read_the_database_once(
    api: Api, sandbox: Sandbox, loads: list[str]
) -> None:
    await _connected(api, sandbox)
    loads.clear()
    first = await _status(api)
    for _ in range(20):
        assert await _status(api) == first
    assert loads == ["user-1"]


async def test_polls_waiting_on_an_empty_entry_share_one_read(
    api: Api, sandbox: Sandbox, loads: list[str]
) -> None:
    await _connected(api, sandbox)
    loads.clear()
    bodies = await asyncio.gather(*(_status(api) for _ in range(16)))
    assert all(body["status"] == "VALID" for body in bodies)
    assert loads == ["user-1"]


async def test_a_disconnect_on_this_replica_shows_at_once(api: Api, sandbox: Sandbox) -> None:
    await _connected(api, sandbox)
    assert (await _status(api))["status"] == "VALID"
    assert (await api.delete("user-1")).status == 204
    assert (await _status(api))["status"] == "MISSING"


async def test_a_login_on_this_replica_shows_at_once(api: Api, sandbox: Sandbox) -> None:
    assert (await _status(api))["status"] == "MISSING"
    await _connected(api, sandbox)
    assert (await _status(api))["status"] == "VALID"


async def test_refresh_true_is_never_answered_from_the_cache(
    api: Api, sandbox: Sandbox
) -> None:
    await _connected(api, sandbox)
    assert (await _status(api))["checked"] == "cached"
    body = await (await api.status("user-1", refresh=True)).json()
    assert body["checked"] == "live"


async def test_another_replica_s_write_shows_once_the_entry_runs_out(
    sandbox: Sandbox, make_config: Callable[..., Config], start_api: StartApi
) -> None:
    one = await start_api(make_config(status={"cache_seconds": 5}))
    other = await start_api(make_config())
    clock = FakeClock()
    one.app[SESSIONS].status_cache = StatusCache(5, 100, clock=clock)
    await _connected(one, sandbox)
    assert (await _status(one))["status"] == "VALID"
    assert (await other.delete("user-1")).status == 204
    clock.now += 4.9
    assert (await _status(one))["status"] == "VALID"  # within cache_seconds: may lag
    clock.now += 0.2
    assert (await _status(one))["status"] == "MISSING"


async def test_cache_seconds_zero_reads_every_poll(
    sandbox: Sandbox, make_config: Callable[..., Config], start_api: StartApi,
    loads: list[str],
) -> None:
    api = await start_api(make_config(status={"cache_seconds": 0}))
    await _connected(api, sandbox)
    loads.clear()
    for _ in range(3):
        await _status(api)
    assert loads == ["user-1"] * 3


async def test_the_entry_never_outlives_the_validation_it_reports(
    sandbox: Sandbox, make_config: Callable[..., Config], start_api: StartApi
) -> None:
    """A cached VALID turns into a live check when the validation TTL ends, not later."""
    clock = ManualClock()
    api = await start_api(make_config(status={"cache_seconds": 3600,
                                              "validation_ttl_seconds": 1}), clock)
    await _connected(api, sandbox)
    assert (await _status(api))["checked"] == "cached"
    clock.advance(0.9)
    assert (await _status(api))["checked"] == "cached"
    clock.advance(0.1)
    assert (await _status(api))["checked"] == "live"


# --- the cache itself -------------------------------------------------------------------


def test_an_entry_lives_cache_seconds() -> None:
    clock = FakeClock()
    cache: StatusCache[str] = StatusCache(2, 10, clock=clock)
    cache.put("u", "answer", cache.ticket())
    clock.now += 1.9
    assert cache.get("u") == "answer"
    clock.now += 0.2
    assert cache.get("u") is None


def test_a_shorter_validity_wins() -> None:
    clock = FakeClock()
    cache: StatusCache[str] = StatusCache(10, 10, clock=clock)
    cache.put("u", "answer", cache.ticket(), valid_for=0.5)
    clock.now += 0.6
    assert cache.get("u") is None


def test_an_answer_read_before_a_write_is_not_kept() -> None:
    cache: StatusCache[str] = StatusCache(10, 10, clock=FakeClock())
    ticket = cache.ticket()
    cache.forget("u")  # a write lands while the read is in flight
    cache.put("u", "old answer", ticket)
    assert cache.get("u") is None


def test_a_full_cache_drops_its_oldest_entry() -> None:
    cache: StatusCache[str] = StatusCache(10, 2, clock=FakeClock())
    for user in ("a", "b", "c"):
        cache.put(user, user, cache.ticket())
    assert len(cache) == 2
    assert cache.get("a") is None and cache.get("c") == "c"


def test_zero_seconds_keeps_nothing() -> None:
    cache: StatusCache[str] = StatusCache(0, 10, clock=FakeClock())
    cache.put("u", "answer", cache.ticket())
    assert cache.get("u") is None and len(cache) == 0


async def test_status_reads_do_not_wait_for_transactions_holding_every_main_connection(
    make_config: Callable[..., Config], start_api: Callable[[Config], Awaitable[Api]],
    sandbox: Sandbox,
) -> None:
    """Sync transactions can hold the main connection (SQLite's only writer, or every
    connection of a PostgreSQL pool of one here); status reads have their own."""
    from tortoise.transactions import in_transaction

    from service import db
    from service.keys import DB_CONTEXT

    api = await start_api(make_config(database={"pool_max_size": 1}))
    await _connected(api, sandbox)
    db.activate(api.app[DB_CONTEXT])
    assert db.reads() is not None
    release = asyncio.Event()
    entered = asyncio.Event()

    async def long_transaction() -> None:
        async with in_transaction("default"):
            entered.set()
            await release.wait()

    holder = asyncio.ensure_future(long_transaction())
    await entered.wait()
    try:
        body = await asyncio.wait_for(_status(api), timeout=5)
        assert body["status"] == "VALID"
    finally:
        release.set()
        await holder


async def test_a_sync_finished_on_this_replica_shows_at_once(api: Api, sandbox: Sandbox) -> None:
    await connect(api, sandbox, "user-1", "alice@example.com")
    before = await _status(api)
    assert before["sync"]["activities"]["last_success_at"] is None  # type: ignore[index]
    jobs = await sync_now(api, "user-1", "activities")
    assert [job["status"] for job in jobs] == ["SUCCESS"]
    after = await _status(api)
    assert after["sync"]["activities"]["last_success_at"] is not None  # type: ignore[index]


async def test_a_shared_read_that_fails_after_its_only_poll_went_away_is_not_logged_unseen(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gc

    release = asyncio.Event()

    async def failing(user_id: str) -> object:
        await release.wait()
        raise ConnectionError("the database went away")

    monkeypatch.setattr(store, "load_for_status", failing)
    unseen: list[dict[str, object]] = []
    loop = asyncio.get_running_loop()
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: unseen.append(context))
    try:
        poll = asyncio.ensure_future(api.app[SESSIONS].status("user-9"))
        for _ in range(3):  # the poll waits for the shared read, which waits for the database
            await asyncio.sleep(0)
        poll.cancel()
        release.set()
        for _ in range(5):
            await asyncio.sleep(0)
        assert poll.cancelled()
        del poll  # its cancellation's traceback holds the shared read alive
        gc.collect()
        await asyncio.sleep(0)
    finally:
        loop.set_exception_handler(previous)
    assert [context.get("message") for context in unseen] == []
