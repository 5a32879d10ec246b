"""The sandbox's own tests: their seeded accounts, a clock they move by hand, and the
helpers that read the data endpoints as a syncer would."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from service.sandbox import Account, SandboxState
from tests.support.aliases import Http

ACTIVITIES = "/connectapi/activitylist-service/activities/search/activities"

ALICE = "alice@example.com"
ALICE_PASSWORD = "alice-pw"
BOB = "bob@example.com"
BOB_PASSWORD = "bob-pw"
MONA = "mona@example.com"
MONA_PASSWORD = "mona-pw"
MFA_CODE = "123456"


@dataclass
class FakeClock:
    """The sandbox's clock, movable by tests (garth keeps using the real one)."""

    now: float

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def bearer(state: SandboxState, username: str, password: str) -> dict[str, str]:
    """Headers with a live access token straight from the state (no HTTP login needed)."""
    session_id = state.open_sso_session()
    grant = state.redeem_ticket(state.login(session_id, username, password).ticket)
    return {"Authorization": f"Bearer {state.exchange(grant.token, refresh=False).token}"}


def account(state: SandboxState, username: str) -> Account:
    found = state.get_account(username)
    assert found is not None
    return found


async def get_json(
    http: Http, path: str, headers: dict[str, str], expect: int = 200, **params: Any
) -> Any:
    response = await http.get(path, headers=headers, params={k: str(v) for k, v in params.items()})
    assert response.status == expect, await response.text()
    return await response.json() if response.status != 204 else None


async def all_pages(http: Http, headers: dict[str, str], limit: int, **params: Any) -> list[Any]:
    """Page like a syncer: until a short page."""
    items: list[Any] = []
    while True:
        page = await get_json(http, ACTIVITIES, headers, start=len(items), limit=limit, **params)
        items.extend(page)
        if len(page) < limit:
            return items
