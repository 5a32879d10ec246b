"""Schemathesis against the service's own OpenAPI document, served by the real app.

The app and the Garmin sandbox run on this test's event loop (loopback ports); the
Schemathesis engine (the one `schemathesis run` drives) runs in a worker thread and talks to
the app over HTTP. Its phases produce the scenarios the checks need: coverage (missing
required headers, undeclared methods, boundary and invalid values) and fuzzing (valid and
invalid data), with a fixed seed and a bounded number of examples per operation.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest
import schemathesis

# Imported here, in the main thread: `from_url` would otherwise import it lazily inside the
# worker thread, where pytest's assertion rewriting of it can hit CPython 3.11's
# "AST constructor recursion depth mismatch" (ast.parse racing another thread).
import schemathesis.specs.openapi.schemas
from schemathesis.engine import Status, StopReason, events, from_schema
from schemathesis.engine.recorder import ScenarioRecorder
from schemathesis.generation.meta import CoveragePhaseData, CoverageScenario

from service.api.v1.openapi import build_spec
from service.config import Config
from service.models.webhooks import DeliveryStatus, WebhookDelivery, WebhookEvent
from tests.support.app import API_KEY, Api, Sandbox, connect, sync_now, use_db

SPEC_PATH = "/api/v1/openapi.json"
SEED = 20_260_101
MAX_EXAMPLES = 40
# the conformance checks hold every documented answer to its schema, media type and headers
CHECKS = ("not_a_server_error", "ignored_auth", "negative_data_rejection",
          "missing_required_header", "unsupported_method", "response_schema_conformance",
          "content_type_conformance", "response_headers_conformance")
# Whose data each operation works on: a synced user for the reads, sync and login; a user
# with an MFA challenge pending for the MFA call; a separate one for disconnect, so the
# fuzzer deleting a session does not empty what the other operations read.
SYNCED_USER = "user-1"
MFA_USER = "user-2"
DISCONNECT_USER = "user-3"


@dataclass(frozen=True)
class Finding:
    operation: str
    check: str
    message: str
    reproduce: str

    def __str__(self) -> str:
        return f"{self.operation} [{self.check}]\n{self.message}\n{self.reproduce}"


def schemathesis_config() -> schemathesis.Config:
    return schemathesis.Config.from_dict({
        "seed": SEED,
        "continue-on-failure": True,
        "workers": 1,
        "request-timeout": 10,
        "generation": {"mode": "all", "max-examples": MAX_EXAMPLES, "deterministic": True,
                       "database": "none"},
        "checks": {"enabled": False, **{name: {"enabled": True} for name in CHECKS}},
        "auth": {"openapi": {"apiKey": {"bearer": API_KEY}}},
        "headers": {"X-User-Id": SYNCED_USER},
        "operations": [
            {"include-path": "/api/v1/garmin/session/mfa", "headers": {"X-User-Id": MFA_USER}},
            {"include-path": "/api/v1/garmin/session", "include-method": "DELETE",
             "headers": {"X-User-Id": DISCONNECT_USER}},
        ],
    })


@dataclass(repr=False)
class Run:
    findings: list[Finding] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    stop_reason: StopReason | None = None
    # (operation, check) pairs that ran, operations that answered 2xx at least once, and
    # (operation, coverage scenario, parameter) of the generated cases
    checked: set[tuple[str, str]] = field(default_factory=set)
    accepted: set[str] = field(default_factory=set)
    scenarios: set[tuple[str, CoverageScenario, str | None]] = field(default_factory=set)

    def record(self, recorder: ScenarioRecorder) -> None:
        label = recorder.label
        for case_id, node in recorder.cases.items():
            data = node.value.meta.phase.data if node.value.meta else None
            if isinstance(data, CoveragePhaseData):
                self.scenarios.add((label, data.scenario, data.parameter))
            response = recorder.interactions.get(case_id)
            if response and response.response and 200 <= response.response.status_code < 300:
                self.accepted.add(label)
        for checks in recorder.checks.values():
            for check in checks:
                self.checked.add((label, check.name))
                if check.status == Status.FAILURE and check.failure_info is not None:
                    failure = check.failure_info.failure
                    self.findings.append(Finding(label, check.name,
                                                 f"{failure.title}: {failure.message}",
                                                 check.failure_info.code_sample))


def run_schemathesis(spec_url: str) -> Run:
    """Load the document from the app and run every phase; blocking, so run it in a thread."""
    schema = schemathesis.openapi.from_url(spec_url, config=schemathesis_config())
    run = Run()
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            run.record(event.recorder)
        elif isinstance(event, events.NonFatalError):
            run.errors.append(f"{event.label}: {event.info.format()}")
        elif isinstance(event, events.FatalError):
            run.errors.append(repr(event.exception))
        elif isinstance(event, events.EngineFinished):
            run.stop_reason = event.stop_reason
    return run


@pytest.fixture
async def served(make_config: Callable[..., Config],
                 start_api: Callable[[Config], Awaitable[Api]], sandbox: Sandbox) -> Api:
    """The app with a synced user, a user mid-MFA, a connected user to disconnect and dead
    webhook deliveries for the operator to retry."""
    api = await start_api(make_config(mfa={"max_attempts": 1000}))
    await connect(api, sandbox, SYNCED_USER, "alice@example.com", activities_per_day=2,
                  history_days=14)
    jobs = await sync_now(api, SYNCED_USER)
    assert {job["status"] for job in jobs} == {"SUCCESS"}, jobs
    sandbox.add("mfa@example.com", mfa_code="123456")
    pending = await api.login(MFA_USER, "mfa@example.com")
    assert (await pending.json())["status"] == "MFA_REQUIRED"
    await connect(api, sandbox, DISCONNECT_USER, "carol@example.com")
    await dead_deliveries(api, 3)
    return api


async def dead_deliveries(api: Api, count: int) -> None:
    """Dead webhook deliveries with the lowest ids, for the operator's retry to accept."""
    use_db(api)
    now = datetime.now(UTC)
    for sequence in range(1, count + 1):
        event = await WebhookEvent.create(message_id=f"msg_dead{sequence}",
                                          user_id=SYNCED_USER, type="session.connected",
                                          sequence=sequence, body="{}", created_at=now)
        await WebhookDelivery.create(event_id=event.id, endpoint="ops", user_id=SYNCED_USER,
                                     sequence=sequence, status=DeliveryStatus.DEAD,
                                     attempts=14, next_attempt_at=now, created_at=now,
                                     finished_at=now, last_error="connection refused")


async def test_api_passes_schemathesis_checks_against_its_own_document(served: Api) -> None:
    run = await asyncio.to_thread(run_schemathesis,
                                  str(served.client.server.make_url(SPEC_PATH)))
    assert not run.findings, "\n\n".join(map(str, run.findings))
    assert not run.errors, "\n".join(run.errors)
    assert run.stop_reason == StopReason.COMPLETED
    # the run was not vacuous: every documented operation was exercised by every check, with
    # the coverage scenarios missing_required_header and unsupported_method judge, and the
    # configured credentials got past auth (login and MFA cannot succeed with made-up input)
    operations = {f"{method.upper()} {path}" for path, item in build_spec()["paths"].items()
                  for method in item}
    # (the deliveries listing links to the retry by id, so a stateful phase runs too)
    per_operation = {(label, check) for label, check in run.checked
                     if label != "Stateful tests"}
    assert per_operation == {(operation, check) for operation in operations
                             for check in CHECKS}
    for operation in operations:
        # the operator routes act on no one user: the key alone
        headers = (("Authorization",) if " /api/v1/webhooks/" in operation
                   else ("Authorization", "X-User-Id"))
        for header in headers:
            assert (operation, CoverageScenario.MISSING_PARAMETER, header) in run.scenarios
        assert (operation, CoverageScenario.UNSPECIFIED_HTTP_METHOD, None) in run.scenarios
    assert run.accepted - {"Stateful tests"} == operations - {"POST /api/v1/garmin/session/login",
                                         "POST /api/v1/garmin/session/mfa"}
