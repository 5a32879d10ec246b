"""Refreshes around failed sync jobs, and logins during a job, with sessions of both engines.

A refresh that worked is written back even when the job then fails, a failed one never is,
and a login that lands during a job wins over the job's refreshed copy. garth refreshes by
exchanging its OAuth1 token (sandbox scope `exchange`); DI posts its refresh token to the DI
token endpoint (`di_refresh`), which rotates it, so the stored refresh token must be the one
Garmin issued last."""

from __future__ import annotations

import base64
import json
from typing import Any

from service.keys import CIPHER, METRICS, SCHEDULER
from service.models import GarminAuthenticationState, SyncJob
from service.sandbox import Account, Fault
from service.sandbox.issued import PREFIXES
from tests.support.aliases import MakeConfig, StartApi
from tests.support.app import (
    REFRESH_SCOPE,
    SHORT_LIVED,
    Api,
    Sandbox,
    both_engines,
    connect,
    drain,
    raw_rows,
    refreshes,
    sync_now,
    token_grants,
    use_db,
)
from tests.support.faults import problem
from tests.support.waiting import eventually

USER = "user-1"
ACCOUNT = "alice@example.com"


engine = both_engines


def _account(sandbox: Sandbox) -> Account:
    return sandbox.state.require_account(ACCOUNT)


async def _row(api: Api) -> dict[str, Any]:
    rows = await raw_rows(api)
    assert len(rows) == 1, rows
    return rows[0]


async def _post_sync(api: Api, *kinds: str) -> Any:
    body = {"kinds": list(kinds)} if kinds else {}
    return await api.client.post("/api/v1/garmin/sync", headers=api.headers(USER), json=body)


def _counted(api: Api, counter: str) -> float:
    """A counter of the instance's Prometheus registry (absent before its first increment)."""
    value = api.app[METRICS].registry.get_sample_value(f"garmin_sync_{counter}_total")
    return value or 0.0


def _tokens_of(api: Api, sealed: str, engine: str) -> tuple[str, str]:
    """The (access, refresh) credential a row's session refreshes with: garth's OAuth2 access
    token and its OAuth1 token (which never changes), DI's access and refresh tokens."""
    plain = api.app[CIPHER].decrypt(sealed, user_id=USER, purpose="session_data")
    if engine == "di":
        session: dict[str, Any] = json.loads(plain)
        return session["access_token"], session["refresh_token"]
    oauth1, oauth2 = json.loads(base64.b64decode(plain))
    return oauth2["access_token"], oauth1["oauth_token"]


def _newest_access_token(sandbox: Sandbox, engine: str) -> str:
    """The access token the sandbox issued last: garth's are opaque, DI's are JWTs."""
    issued = sandbox.state.issued_secrets()
    if engine == "di":
        return [value for value in issued if value.count(".") == 2][-1]
    return [value for value in issued if value.startswith(PREFIXES["access"])][-1]


# --- refreshes around failures ------------------------------------------------------------


async def test_refresh_before_a_failed_data_call_is_persisted(
    api: Api, sandbox: Sandbox, engine: str
) -> None:
    await connect(api, sandbox, USER, ACCOUNT, **SHORT_LIVED[engine])
    before = await _row(api)
    granted = refreshes(sandbox, engine, ACCOUNT)
    persisted = _counted(api, "session_refreshes_persisted")
    # lifetime 0: the job refreshes (and succeeds), then its first data call fails
    sandbox.state.set_fault(ACCOUNT, "api", Fault(status=503, times=1))

    jobs = await sync_now(api, USER, "activities")

    assert jobs[0]["status"] == "FAILED", jobs
    assert refreshes(sandbox, engine, ACCOUNT) == granted + 1
    after = await _row(api)
    assert after["version"] == before["version"] + 1
    assert after["session_data"] != before["session_data"]
    newest = _newest_access_token(sandbox, engine)
    access, refresh = _tokens_of(api, after["session_data"], engine)
    old_access, old_refresh = _tokens_of(api, before["session_data"], engine)
    assert (access, old_access != newest) == (newest, True)
    # DI rotated the refresh token, and the used one is dead: only the stored one refreshes
    # again; garth's OAuth1 token is the same before and after
    assert (refresh != old_refresh) is {"di": True, "garth": False}[engine]
    if engine == "di":
        assert sandbox.state.di.live_refresh_tokens(ACCOUNT) == 1
    assert _counted(api, "session_refreshes_persisted") == persisted + 1


async def test_failed_refresh_is_never_persisted(
    api: Api, sandbox: Sandbox, engine: str
) -> None:
    await connect(api, sandbox, USER, ACCOUNT, **SHORT_LIVED[engine])
    before = await _row(api)
    grants, granted = token_grants(sandbox, engine, ACCOUNT), refreshes(sandbox, engine, ACCOUNT)
    sandbox.state.set_fault(ACCOUNT, REFRESH_SCOPE[engine], Fault(status=503))

    jobs = await sync_now(api, USER, "activities")

    assert jobs[0]["status"] == "FAILED", jobs
    assert token_grants(sandbox, engine, ACCOUNT) > grants
    assert refreshes(sandbox, engine, ACCOUNT) == granted
    after = await _row(api)
    assert (after["session_data"], after["version"]) == (before["session_data"],
                                                         before["version"])
    assert after["status"] == "VALID"


# --- concurrency with logins and other syncs ---------------------------------------------


async def test_login_during_a_job_wins_over_the_jobs_refreshed_session(
    sandbox: Sandbox, make_config: MakeConfig, start_api: StartApi, engine: str
) -> None:
    first = await start_api(make_config())
    second = await start_api(make_config())
    await connect(first, sandbox, USER, ACCOUNT, **SHORT_LIVED[engine])
    account = _account(sandbox)
    account.latency_ms = 300
    dropped = _counted(first, "stale_session_writes_dropped")
    persisted = _counted(first, "session_refreshes_persisted")
    grants, logins = token_grants(sandbox, engine, ACCOUNT), account.login_attempts

    response = await _post_sync(first, "activities")
    assert response.status == 202, await response.text()
    job_id = (await response.json())["jobs"][0]["id"]
    # the job has loaded the row and is refreshing at Garmin
    await eventually(lambda: token_grants(sandbox, engine, ACCOUNT) > grants)

    # the lease is in the database: a login on either instance is refused while it runs
    for instance in (first, second):
        await problem(await instance.login(USER, ACCOUNT), 409, "user-busy")
    assert account.login_attempts == logins

    # a login that finished during the job: new ciphertext, next version
    use_db(first)
    row = await GarminAuthenticationState.get(user_id=USER)
    cipher = first.app[CIPHER]
    plain = cipher.decrypt(row.session_data, user_id=USER, purpose="session_data")
    sealed = cipher.encrypt(plain, user_id=USER, purpose="session_data")
    assert await GarminAuthenticationState.filter(user_id=USER, version=row.version).update(
        version=row.version + 1, session_data=sealed) == 1
    assert first.app[SCHEDULER].active_jobs == 1  # the job had not written back yet

    await drain(first)

    use_db(first)
    job = await SyncJob.get(id=job_id)
    assert job.status == "SUCCESS", job.error
    assert refreshes(sandbox, engine, ACCOUNT) > 0
    after = await _row(first)
    assert (after["session_data"], after["version"]) == (sealed, row.version + 1)
    assert _counted(first, "stale_session_writes_dropped") == dropped + 1
    assert _counted(first, "session_refreshes_persisted") == persisted


async def test_second_sync_while_a_job_runs_is_refused_as_busy(
    api: Api, sandbox: Sandbox
) -> None:
    await connect(api, sandbox, USER, ACCOUNT)
    account = _account(sandbox)
    account.latency_ms = 300
    calls = account.api_calls

    response = await _post_sync(api, "activities")
    assert response.status == 202, await response.text()
    job_id = (await response.json())["jobs"][0]["id"]
    await eventually(lambda: account.api_calls > calls)  # the job is at Garmin

    await problem(await _post_sync(api, "activities"), 409, "user-busy")

    await drain(api)
    use_db(api)
    jobs = await SyncJob.filter(user_id=USER)
    assert [(job.id, job.status) for job in jobs] == [(job_id, "SUCCESS")]
