"""No request ever carries another user's token, however many users run at once, with
either engine (the DI engine's own twin at the gateway: `test_di_sandbox.py`).

garth 0.8.0's `Client.request` shares one mutable default `headers` dict between all
clients and writes the Authorization header into it. The sandbox records, for every
request, which user the service sent it for (X-Sandbox-Caller) and whose token it carried.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

from service.garmin import GarminSettings, configure_consumer
from service.garmin.garth.api import _Client
from service.sandbox import SANDBOX_CONSUMER_KEY, SANDBOX_CONSUMER_SECRET
from tests.support.app import SHORT_LIVED, Api, Sandbox, both_engines

USERS = 16


def _cross_user_requests(sandbox: Sandbox, owner_of: dict[str, str]) -> list[object]:
    return [
        request for request in sandbox.state.requests
        if request.caller is not None and request.token_account is not None
        and request.token_account.casefold() != owner_of[request.caller].casefold()
    ]


engine = both_engines


async def test_concurrent_logins_and_validations_never_cross_tokens(
    api: Api, sandbox: Sandbox, engine: str
) -> None:
    """16 users log in and check their session live (refreshing first, every time) at once,
    on the app's pool of 8 threads."""
    owner_of = {f"user-{i}": f"athlete{i}@example.com" for i in range(USERS)}
    for username in owner_of.values():
        sandbox.add(username, **SHORT_LIVED[engine])

    async def connect_and_check(user: str) -> None:
        assert (await api.login(user, owner_of[user])).status == 200
        for _ in range(3):
            body = await (await api.status(user, refresh=True)).json()
            assert body["status"] == "VALID", body

    await asyncio.gather(*(connect_and_check(user) for user in owner_of))
    bearer_calls = [r for r in sandbox.state.requests if r.scope == "api"]
    assert len(bearer_calls) >= USERS * 3
    assert _cross_user_requests(sandbox, owner_of) == []


def _hammer(client: _Client, rounds: int, barrier: threading.Barrier) -> None:
    barrier.wait()
    for _ in range(rounds):
        client.connectapi("/userprofile-service/socialProfile")


async def test_garths_shared_default_headers_do_cross_tokens(sandbox: Sandbox) -> None:
    """The guard above is needed: with garth's own `request`, tokens do cross users.

    Same clients, same threads, only the fresh-headers override bypassed.
    """
    import garth

    configure_consumer(SANDBOX_CONSUMER_KEY, SANDBOX_CONSUMER_SECRET)
    owner_of = {f"raw-{i}": f"raw{i}@example.com" for i in range(8)}
    settings = GarminSettings(base_url=sandbox.url, timeout_seconds=5, retries=0)
    clients = []
    for caller, username in owner_of.items():
        sandbox.add(username)
        client = _Client(settings, caller)
        await asyncio.to_thread(client.login, username, "pw-correct-horse")
        client.request = garth.Client.request.__get__(client)  # garth's original method
        clients.append(client)
    sandbox.state.clear_requests()
    barrier = threading.Barrier(len(clients), timeout=30)
    loop = asyncio.get_running_loop()
    with ThreadPoolExecutor(max_workers=len(clients)) as pool:
        await asyncio.gather(*(loop.run_in_executor(pool, _hammer, c, 40, barrier)
                               for c in clients))
    assert _cross_user_requests(sandbox, owner_of), "expected garth's shared headers to leak"
