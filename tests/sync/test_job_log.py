"""What the log shows of sync work: one INFO line per finished job, structured, with no
Garmin text or token in it, and scheduler ticks that stay quiet below DEBUG."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Awaitable, Callable, Iterator

import pytest

from service import logs
from service.keys import SCHEDULER
from service.sandbox import Fault
from service.sync.scheduler import SyncScheduler
from tests.support.aliases import MakeConfig, StartApi
from tests.support.app import ENGINES, Sandbox, connect, raw_rows, sync_now
from tests.support.waiting import eventually

USER = "user-1"
ACCOUNT = "alice@example.com"
JOB_LOGGER = "service.sync.joblog"
PAIR = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S+)')
ALWAYS = ["user", "kind", "trigger", "status", "items", "fetched", "skipped", "garmin_calls",
          "duration_ms"]


@pytest.fixture
def output() -> Iterator[io.StringIO]:
    """The service's own logging set-up (as `serve` installs it), writing to a buffer;
    undone afterwards so other tests see the logging they started with."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    names = [*logs.NOISY_LIBRARIES, "aiohttp.access", "apscheduler.executors.default"]
    levels = {name: logging.getLogger(name).level for name in names}
    stream = io.StringIO()
    yield stream
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)
    for name, old in levels.items():
        logging.getLogger(name).setLevel(old)


def _pairs(message: str) -> dict[str, str]:
    """The key=value pairs after the line's first words, in order."""
    return {key: json.loads(value) if value.startswith('"') else value
            for key, value in PAIR.findall(message)}


def _ticked(scheduler: SyncScheduler, target: int) -> Callable[[], Awaitable[bool]]:
    async def done() -> bool:
        return scheduler.ticks >= target

    return done


def _job_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.name == JOB_LOGGER]


def _sync_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """Every INFO-or-higher line of the sync package."""
    return [record for record in caplog.records
            if record.name.startswith("service.sync") and record.levelno >= logging.INFO]


async def test_a_finished_job_logs_one_info_line_with_what_it_did(
    sandbox: Sandbox, make_config: MakeConfig, start_api: StartApi,
    caplog: pytest.LogCaptureFixture,
) -> None:
    api = await start_api(make_config(sync={"initial_spread_seconds": 0}))
    await connect(api, sandbox, USER, ACCOUNT)
    account = sandbox.state.get_account(ACCOUNT)
    assert account is not None
    calls = account.api_calls
    caplog.set_level(logging.INFO)

    [job] = await sync_now(api, USER, "health")

    assert job["status"] == "SUCCESS" and job["items_upserted"] > 0
    assert _sync_lines(caplog) == _job_lines(caplog)
    [line] = _job_lines(caplog)
    assert line.levelno == logging.INFO
    assert line.getMessage().startswith("sync job finished user=")
    pairs = _pairs(line.getMessage())
    assert list(pairs) == ALWAYS  # no reason on a success
    assert pairs["user"] == USER and pairs["kind"] == "health"
    assert pairs["trigger"] == "manual" and pairs["status"] == "SUCCESS"
    assert int(pairs["items"]) == job["items_upserted"]
    assert int(pairs["fetched"]) == job["items_fetched"]
    assert int(pairs["skipped"]) == job["items_skipped"] == 0
    assert int(pairs["garmin_calls"]) == account.api_calls - calls > 0
    assert int(pairs["duration_ms"]) >= 0


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize(("fault", "status", "reason"), [
    (Fault(status=429, retry_after=60), "RATE_LIMITED", "rate_limited"),
    (Fault(status=503), "FAILED", "unavailable"),
])
async def test_a_failed_job_logs_one_line_with_its_reason_and_backoff_and_no_garmin_text(
    sandbox: Sandbox, make_config: MakeConfig, start_api: StartApi,
    caplog: pytest.LogCaptureFixture, fault: Fault, status: str, reason: str,
) -> None:
    api = await start_api(make_config(sync={"initial_spread_seconds": 0,
                                            "backoff_base_seconds": 1000}))
    await connect(api, sandbox, USER, ACCOUNT)
    sandbox.state.set_fault(ACCOUNT, "api", fault)
    caplog.set_level(logging.INFO)

    [job] = await sync_now(api, USER, "health")

    assert job["status"] == status
    assert _sync_lines(caplog) == _job_lines(caplog)  # the failure is told once
    [line] = _job_lines(caplog)
    assert line.levelno == logging.INFO
    pairs = _pairs(line.getMessage())
    assert list(pairs) == [*ALWAYS, "reason", "backoff_s"]
    assert (pairs["status"], pairs["reason"]) == (status, reason)
    assert int(pairs["garmin_calls"]) >= 1
    backoff = int(pairs["backoff_s"])
    assert 60 <= backoff <= 66 if fault.retry_after else 500 <= backoff <= 1000
    [row] = await raw_rows(api)
    text = line.getMessage()
    assert row["session_data"] not in text and "Garmin" not in text
    assert job["error"] is None or job["error"] not in text


async def test_the_json_output_carries_each_pair_as_a_key(
    sandbox: Sandbox, make_config: MakeConfig, start_api: StartApi, output: io.StringIO,
) -> None:
    api = await start_api(make_config(sync={"initial_spread_seconds": 0}))
    await connect(api, sandbox, USER, ACCOUNT)
    logs.configure("INFO", "json", output)

    [job] = await sync_now(api, USER, "activities")

    entries = [json.loads(line) for line in output.getvalue().splitlines()]
    [entry] = [entry for entry in entries if entry["logger"] == JOB_LOGGER]
    assert entry["level"] == "INFO"
    assert (entry["user"], entry["kind"], entry["status"]) == (USER, "activities", "SUCCESS")
    assert entry["items"] == job["items_upserted"]
    assert entry["job_id"] == job["id"] and entry["user_id"] == USER
    assert entry["message"].startswith("sync job finished user=user-1 kind=activities ")


def test_a_value_with_spaces_or_quotes_is_quoted() -> None:
    values: dict[str, logs.Field] = {"user": 'a b="c"', "items": 3, "reason": None}
    line = logs.fields(values)
    assert line == 'user="a b=\\"c\\"" items=3 reason=-'
    assert _pairs(line) == {"user": 'a b="c"', "items": "3", "reason": "-"}


async def test_idle_scheduler_ticks_log_nothing_at_info_and_one_debug_line_each(
    make_config: MakeConfig, start_api: StartApi, caplog: pytest.LogCaptureFixture,
    output: io.StringIO,
) -> None:
    logs.configure("INFO", "text", output)
    caplog.set_level(logging.INFO)
    api = await start_api(make_config(sync={"enabled": True, "tick_seconds": 0.05}))
    scheduler = api.app[SCHEDULER]

    await eventually(_ticked(scheduler, 4), 30, "four scheduler ticks")
    noisy = [record for record in caplog.records
             if record.levelno >= logging.INFO
             and record.name.startswith(("apscheduler", "service.sync"))]
    assert noisy == [], [record.getMessage() for record in noisy]
    assert "Running job" not in output.getvalue()

    caplog.set_level(logging.DEBUG)
    logs.configure("DEBUG", "text", output)
    seen = scheduler.ticks
    await eventually(_ticked(scheduler, seen + 2), 30, "two more ticks")
    ticks = [record for record in caplog.records
             if record.name == "service.sync.scheduler" and "sync tick" in record.getMessage()]
    assert ticks and all(record.levelno == logging.DEBUG for record in ticks)
    assert "0 job(s) claimed" in ticks[-1].getMessage()

