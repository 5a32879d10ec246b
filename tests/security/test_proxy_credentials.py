"""`garmin.proxy_url` carries both engines' Garmin traffic, and its credentials never show.

The service's own address for Garmin (`garmin.base_url`) is unreachable here; only the proxy
(the sandbox, which also answers requests in a proxy's absolute form) reaches it. Then the
proxy dies. Through both, every log line (DEBUG, the real handler), every answer (API,
/healthz, /readyz, /metrics, the OpenAPI document), every stored row and the configuration's
repr are searched for the proxy's password and user.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

import service.models
from service import db, logs
from service.keys import DB_CONTEXT
from tests.support.aliases import MakeConfig, StartApi
from tests.support.app import ALICE, Api, Sandbox, both_engines, sync_now

PROXY_USER = "proxyuser-Kestrel"
PROXY_PASSWORD = "proxypw-Marmot-5531"
UNREACHABLE = "http://127.0.0.1:9"


engine = both_engines


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    tuned = ("", *logs.NOISY_LIBRARIES, "aiohttp.access")
    levels = {name: logging.getLogger(name).level for name in tuned}
    handler = logs.configure("DEBUG", "json", stream=stream)
    try:
        yield stream
    finally:
        logging.getLogger().removeHandler(handler)
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


def _proxy(address: str) -> str:
    host = address.split("://", 1)[1]
    return f"http://{PROXY_USER}:{PROXY_PASSWORD}@{host}"


async def _everything_answered(api: Api, user: str) -> list[str]:
    answers = []
    for path in ("/healthz", "/readyz", "/metrics", "/api/v1/openapi.json"):
        answers.append(await (await api.client.get(path)).text())
    for path in ("/api/v1/garmin/session/status", "/api/v1/garmin/sync/jobs"):
        answers.append(await (await api.client.get(path, headers=api.headers(user))).text())
    db.activate(api.app[DB_CONTEXT])
    for model in (service.models.GarminAuthenticationState, service.models.SyncJob,
                  service.models.SyncCursor):
        answers.append(repr(await model.all().values()))
    return answers


async def test_the_proxy_carries_both_engines_and_its_credentials_never_show(
    sandbox: Sandbox, make_config: MakeConfig, start_api: StartApi, engine: str,
    log_stream: io.StringIO,
) -> None:
    sandbox.add(ALICE)
    seen: list[str] = []

    # through a working proxy: login, live check, sync
    config = make_config(garmin={"base_url": UNREACHABLE, "proxy_url": _proxy(sandbox.url)})
    seen.append(repr(config))
    api = await start_api(config)
    login = await api.login("user-1", ALICE)
    seen.append(await login.text())
    assert login.status == 200, await login.text()
    status = await (await api.status("user-1", refresh=True)).json()
    assert (status["status"], status["checked"], status["engine"]) == ("VALID", "live", engine)
    assert [job["status"] for job in await sync_now(api, "user-1", "activities")] == ["SUCCESS"]
    assert any(r.caller == "user-1" and r.scope == "api" for r in sandbox.state.requests)
    seen += await _everything_answered(api, "user-1")
    await api.client.close()

    # the proxy is gone: every Garmin call fails, nothing says where it was going
    dead = make_config(garmin={"base_url": UNREACHABLE, "proxy_url": _proxy(UNREACHABLE)})
    api = await start_api(dead)
    failed = await api.login("user-2", ALICE)
    seen.append(await failed.text())
    assert failed.status == 503, seen[-1]
    status = await (await api.status("user-1", refresh=True)).json()
    assert (status["status"], status["checked"]) == ("VALID", "unavailable")
    assert [job["status"] for job in await sync_now(api, "user-1", "activities")] == ["FAILED"]
    seen += await _everything_answered(api, "user-1")

    log_text = log_stream.getvalue()
    assert '"user_id": "user-1"' in log_text and "WARNING" in log_text
    for text in (*seen, log_text):
        assert PROXY_PASSWORD not in text and PROXY_USER not in text
