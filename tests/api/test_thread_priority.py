"""Garmin calls run in pool threads below the event loop's CPU priority."""

from __future__ import annotations

import os
from typing import Any

import pytest

from service.garmin import LoginResult
from service.garmin.garth import signin
from tests.support.aliases import MakeConfig, StartApi
from tests.support.app import Sandbox


def _record_priority(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The nice value of the thread each login runs in."""
    seen: list[int] = []
    original = signin.login

    def login(*args: Any, **kwargs: Any) -> LoginResult:
        seen.append(os.getpriority(os.PRIO_PROCESS, 0))
        return original(*args, **kwargs)

    monkeypatch.setattr(signin, "login", login)
    return seen


async def test_a_login_runs_in_a_thread_at_the_configured_nice(
    make_config: MakeConfig, start_api: StartApi, sandbox: Sandbox,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loop_priority = os.getpriority(os.PRIO_PROCESS, 0)
    seen = _record_priority(monkeypatch)
    api = await start_api(make_config(garmin={"thread_nice": 7}))
    sandbox.add("alice@example.com")
    response = await api.login("user-1", "alice@example.com")
    assert response.status == 200, await response.text()
    assert seen == [max(7, loop_priority)]
    assert os.getpriority(os.PRIO_PROCESS, 0) == loop_priority  # the loop's own is kept


async def test_a_thread_nice_of_zero_keeps_the_loops_priority(
    make_config: MakeConfig, start_api: StartApi, sandbox: Sandbox,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen = _record_priority(monkeypatch)
    api = await start_api(make_config(garmin={"thread_nice": 0}))
    sandbox.add("alice@example.com")
    response = await api.login("user-1", "alice@example.com")
    assert response.status == 200, await response.text()
    assert seen == [os.getpriority(os.PRIO_PROCESS, 0)]
