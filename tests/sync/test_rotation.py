"""Rotating DI refresh tokens are never lost and never used twice.

A DI refresh token rotates on every refresh and a retired one answers `invalid_grant`: a
refresh that is not written back, or two refreshes of one token, kill the session. Every use
that may refresh (sync jobs, live status checks) holds the user's lease and writes the
refresh back with compare-and-set; a use whose refresh was rejected while the stored session
moved on reloads it and goes on instead of expiring the session.
"""

from __future__ import annotations

import asyncio
import functools
from types import SimpleNamespace
from typing import Any

import pytest

from service import app as app_module
from service.garmin import GarminSettings
from service.keys import CIPHER, GATEWAY, LEASES, SESSIONS
from service.models import GarminAuthenticationState, JobStatus, SyncJob
from service.store import sessions as session_store
from service.store.leases import Lease, UserLeases
from service.store.vault import SESSION, SessionVault
from service.sync import runner as runner_module
from tests.support.aliases import MakeConfig, StartApi
from tests.support.app import ALICE, PG_URL, Api, Sandbox, connect, drain, sync_now, use_db
from tests.support.uses import written_to
from tests.support.waiting import eventually

USER = "user-1"


def di_logins(monkeypatch: pytest.MonkeyPatch, margin_seconds: float) -> None:
    """New logins of the apps started from now on use the DI engine, refreshing
    `margin_seconds` before the access token's expiry."""

    def settings(**values: Any) -> GarminSettings:
        return GarminSettings(**{**values, "engine": "di",
                                 "di_refresh_margin_seconds": margin_seconds})

    monkeypatch.setattr(app_module, "GarminSettings", settings)


async def status_lease(api: Api) -> Lease:
    lease = await api.app[LEASES].acquire(USER, "status")
    assert lease is not None
    return lease


async def lease_lost(self: UserLeases, lease: Lease) -> bool:
    """`UserLeases.renew` once the lease expired and another worker took it."""
    return False


async def stored_row(api: Api) -> GarminAuthenticationState:
    use_db(api)
    row = await session_store.load(USER)
    assert row is not None and row.session_data
    return row


async def refresh_elsewhere(api: Api, row: GarminAuthenticationState) -> None:
    """Another use refreshes `row`'s session (rotating its refresh token) without writing
    the new one back: what a replica does before its write-back lands."""
    session = SessionVault(api.app[CIPHER]).open(USER, SESSION, row.session_data or "")
    written: list[str] = []
    await api.app[GATEWAY].validate(USER, session, written_to(written))
    assert written


# --- a rejected refresh while the stored session moved on ------------------------------------


@pytest.fixture
async def di_api(make_config: MakeConfig, start_api: StartApi, sandbox: Sandbox,
                 monkeypatch: pytest.MonkeyPatch) -> Api:
    # every use refreshes first: the margin is longer than the access token lives
    di_logins(monkeypatch, margin_seconds=3600)
    api = await start_api(make_config())
    await connect(api, sandbox, USER, ALICE, di_access_lifetime_seconds=600)
    return api


async def test_a_live_check_rejected_after_another_refresh_goes_on_with_the_newer_session(
    di_api: Api, sandbox: Sandbox,
) -> None:
    stale = await stored_row(di_api)
    live = (await (await di_api.status(USER, refresh=True)).json())
    assert (live["status"], live["checked"]) == ("VALID", "live")  # refreshed and stored
    assert (await stored_row(di_api)).version > stale.version

    # used the retired refresh token
    view = await di_api.app[SESSIONS]._validate(stale, await status_lease(di_api))

    assert (view.status, view.checked) == ("VALID", "live")
    assert (await stored_row(di_api)).status == "VALID"
    alice = sandbox.state.require_account(ALICE)
    assert (alice.di_refresh_reuses, alice.di_refreshes) == (1, 2)


async def test_a_live_check_rejected_with_the_stored_session_unchanged_expires_it(
    di_api: Api, sandbox: Sandbox,
) -> None:
    row = await stored_row(di_api)
    await refresh_elsewhere(di_api, row)  # the rotated token is lost: the session is dead

    view = await di_api.app[SESSIONS]._validate(row, await status_lease(di_api))

    assert view.status == "EXPIRED"
    use_db(di_api)
    after = await session_store.load(USER)
    assert after is not None and after.session_data is None and after.status == "EXPIRED"


async def test_a_live_check_that_lost_its_lease_does_not_go_on_with_the_newer_session(
    di_api: Api, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Only the lease's holder may refresh (rotate) the stored session: a check that stalled
    past its lease answers from the row instead of using the newer session."""
    stale = await stored_row(di_api)
    assert (await (await di_api.status(USER, refresh=True)).json())["checked"] == "live"
    lease = await status_lease(di_api)
    monkeypatch.setattr(UserLeases, "renew", lease_lost)
    alice = sandbox.state.require_account(ALICE)
    calls = alice.api_calls

    view = await di_api.app[SESSIONS]._validate(stale, lease)

    assert (view.status, view.checked) == ("VALID", "unavailable")
    assert (alice.di_refresh_reuses, alice.di_refreshes, alice.api_calls) == (1, 1, calls)
    assert (await stored_row(di_api)).status == "VALID"


def load_stale_once(monkeypatch: pytest.MonkeyPatch, stale: GarminAuthenticationState,
                    ) -> list[int]:
    """The next sync job's Load reads `stale`: it ran just before another use's write-back
    landed. Returns the versions handed out so (one, once it happened)."""
    handed_out: list[int] = []

    async def load(user_id: str) -> GarminAuthenticationState | None:
        handed_out.append(stale.version)
        return stale

    monkeypatch.setattr(runner_module, "session_store", SimpleNamespace(load=load))
    return handed_out


async def test_a_sync_job_rejected_after_another_refresh_goes_on_with_the_newer_session(
    di_api: Api, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch,
) -> None:
    stale = await stored_row(di_api)
    assert (await (await di_api.status(USER, refresh=True)).json())["checked"] == "live"
    handed_out = load_stale_once(monkeypatch, stale)

    jobs = await sync_now(di_api, USER, "activities")

    assert [job["status"] for job in jobs] == ["SUCCESS"], jobs
    assert handed_out == [stale.version]
    monkeypatch.undo()
    row = await stored_row(di_api)
    assert row.status == "VALID"
    assert sandbox.state.require_account(ALICE).di_refresh_reuses == 1  # the stale try only


async def test_without_the_reload_a_job_rejected_after_another_refresh_ends_auth_expired(
    di_api: Api, monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def never_moved_on(self: SessionVault, row: GarminAuthenticationState) -> None:
        return None

    stale = await stored_row(di_api)
    assert (await (await di_api.status(USER, refresh=True)).json())["checked"] == "live"
    monkeypatch.setattr(SessionVault, "moved_on", never_moved_on)
    load_stale_once(monkeypatch, stale)

    jobs = await sync_now(di_api, USER, "activities")

    assert [job["status"] for job in jobs] == ["AUTH_EXPIRED"], jobs  # a valid session


async def test_a_sync_job_rejected_with_the_stored_session_unchanged_expires_it(
    di_api: Api,
) -> None:
    await refresh_elsewhere(di_api, await stored_row(di_api))

    jobs = await sync_now(di_api, USER, "activities")

    assert [job["status"] for job in jobs] == ["AUTH_EXPIRED"], jobs
    use_db(di_api)
    after = await session_store.load(USER)
    assert after is not None and after.session_data is None


async def test_a_sync_job_that_lost_its_lease_does_not_go_on_with_the_newer_session(
    di_api: Api, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A job that stalled past its lease while another use refreshed: its refresh is refused
    (the token was rotated) and it stops there, without the lease to refresh the newer one."""
    stale = await stored_row(di_api)
    assert (await (await di_api.status(USER, refresh=True)).json())["checked"] == "live"
    newer = await stored_row(di_api)
    load_stale_once(monkeypatch, stale)
    monkeypatch.setattr(UserLeases, "renew", lease_lost)
    alice = sandbox.state.require_account(ALICE)
    calls = alice.api_calls

    jobs = await sync_now(di_api, USER, "activities")

    assert [(job["status"], job["error"]) for job in jobs] == [
        ("FAILED", "lease lost; results dropped")], jobs
    assert (alice.di_refresh_reuses, alice.di_refreshes, alice.api_calls) == (1, 1, calls)
    monkeypatch.undo()
    after = await stored_row(di_api)
    assert (after.version, after.session_data, after.status) == (
        newer.version, newer.session_data, "VALID")


# --- two replicas and a status poller on one rotating session ---------------------------------

REFRESHES = 30
ACCESS_LIFETIME = 3
MARGIN = 2.5  # a token older than about half a second is refreshed before the next use


async def test_two_replicas_and_a_status_poller_lose_no_session_and_reuse_no_refresh_token(
    make_config: MakeConfig, start_api: StartApi, sandbox: Sandbox,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    di_logins(monkeypatch, margin_seconds=MARGIN)
    config = make_config(sync={
        "enabled": True, "tick_seconds": 0.1, "lease_seconds": 5, "initial_spread_seconds": 0,
        "jitter_fraction": 0, "activities_interval_minutes": 0.01,
        "health_interval_minutes": 0.01, "backfill_days": 1, "overlap_days": 1,
    })
    # a SQLite file has one scheduler: there the second replica syncs on request only
    second = config if PG_URL else make_config(sync={"enabled": False, "lease_seconds": 5,
                                                     "backfill_days": 1})
    replicas = [await start_api(config), await start_api(second)]
    await connect(replicas[0], sandbox, USER, ALICE, di_access_lifetime_seconds=ACCESS_LIFETIME)
    alice = functools.partial(sandbox.state.require_account, ALICE)
    answers: list[dict[str, Any]] = []
    stop = asyncio.Event()

    async def poll() -> None:
        turn = 0
        while not stop.is_set():
            replica = replicas[turn % len(replicas)]
            turn += 1
            response = await replica.status(USER, refresh=True)
            assert response.status == 200, await response.text()
            answers.append(await response.json())

    async def healthy() -> bool:
        """Enough refreshes, and jobs among them: the live checks alone could make them."""
        assert alice().di_refresh_reuses == 0, "a refresh token was used twice"
        assert all(answer["status"] == "VALID" for answer in answers), answers[-5:]
        if alice().di_refreshes < REFRESHES:
            return False
        use_db(replicas[0])
        return await SyncJob.filter(status=JobStatus.SUCCESS).count() >= 2

    def answered_since(seen: int) -> bool:
        return len(answers) > seen or stop.is_set()

    def alive() -> None:
        for task in pollers:
            if task.done():
                task.result()

    async def sync_on_request() -> None:
        replica = replicas[1]
        while not stop.is_set():
            response = await replica.client.post("/api/v1/garmin/sync",
                                                 headers=replica.headers(USER), json={})
            if response.status == 409:  # busy: a job or a live check holds the lease
                await eventually(functools.partial(answered_since, len(answers)), 30,
                                 "the next status answer")
                continue
            assert response.status == 202, await response.text()
            await drain(replica)

    pollers = [asyncio.ensure_future(poll()) for _ in range(2)]
    pollers.append(asyncio.ensure_future(sync_on_request()))
    try:
        await eventually(healthy, 180, f"{REFRESHES} DI refreshes and 2 jobs", interval=0.1,
                         alive=alive)
    finally:
        stop.set()
        await asyncio.gather(*pollers, return_exceptions=True)

    use_db(replicas[0])
    jobs = [job.status for job in await SyncJob.all()]
    assert JobStatus.AUTH_EXPIRED not in jobs
    assert sum(status == JobStatus.SUCCESS for status in jobs) >= 2, jobs
    assert sum(answer["checked"] == "live" for answer in answers) >= 2
    final = await (await replicas[1].status(USER, refresh=True)).json()
    assert final["status"] == "VALID", final
    assert alice().di_refresh_reuses == 0
    print(f"refreshes={alice().di_refreshes} reuses={alice().di_refresh_reuses} "
          f"jobs={len(jobs)} status_answers={len(answers)}")
