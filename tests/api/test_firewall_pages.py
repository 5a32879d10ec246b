"""Cloudflare's 403 challenge page is no verdict on the credentials, for both engines.

Garmin's firewall answers some requests from cloud addresses with an HTML 403 page before
Garmin itself sees them. Read as Garmin's 403, it would expire a session that is fine, or
tell a user their password is wrong. Whichever request meets it (the sign-in, a data call, a
token refresh), the answer is "Garmin unavailable" and what was stored is kept.
"""

from __future__ import annotations

from service.sandbox import Fault
from tests.support.app import (
    ALICE,
    REFRESH_SCOPE,
    SHORT_LIVED,
    SIGN_IN_SCOPES,
    Api,
    Sandbox,
    both_engines,
    connect,
    raw_rows,
    sync_now,
)
from tests.support.faults import problem

USER = "user-1"


engine = both_engines


def cloudflare(sandbox: Sandbox, scope: str) -> None:
    sandbox.state.set_fault(ALICE, scope, Fault(cloudflare=True))


async def stored(api: Api) -> tuple[str, str]:
    row = (await raw_rows(api))[0]
    return row["session_data"], row["status"]


async def test_a_firewall_page_on_the_sign_in_is_no_wrong_password(
    api: Api, sandbox: Sandbox, engine: str
) -> None:
    await connect(api, sandbox, USER, ALICE)
    before = await stored(api)
    for scope in SIGN_IN_SCOPES["login"]:
        cloudflare(sandbox, scope)

    await problem(await api.login(USER, ALICE), 503, "garmin-unavailable")

    assert await stored(api) == before
    again = await api.login(USER, ALICE)  # no cooldown: Garmin never answered
    await problem(again, 503, "garmin-unavailable")


async def test_a_firewall_page_on_a_data_call_keeps_the_session(
    api: Api, sandbox: Sandbox, engine: str
) -> None:
    await connect(api, sandbox, USER, ALICE)
    before = await stored(api)
    cloudflare(sandbox, "api")

    body = await (await api.status(USER, refresh=True)).json()
    assert (body["status"], body["checked"]) == ("VALID", "unavailable"), body
    jobs = await sync_now(api, USER, "activities")
    assert [job["status"] for job in jobs] == ["FAILED"], jobs

    assert await stored(api) == before


async def test_a_firewall_page_on_a_token_refresh_keeps_the_session(
    api: Api, sandbox: Sandbox, engine: str
) -> None:
    await connect(api, sandbox, USER, ALICE, **SHORT_LIVED[engine])
    before = await stored(api)
    cloudflare(sandbox, REFRESH_SCOPE[engine])

    body = await (await api.status(USER, refresh=True)).json()
    assert (body["status"], body["checked"]) == ("VALID", "unavailable"), body
    jobs = await sync_now(api, USER, "health")
    assert [job["status"] for job in jobs] == ["FAILED"], jobs

    assert await stored(api) == before
    del sandbox.state.require_account(ALICE).faults[REFRESH_SCOPE[engine]]
    body = await (await api.status(USER, refresh=True)).json()
    assert (body["status"], body["checked"]) == ("VALID", "live"), body
