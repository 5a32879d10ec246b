"""The OpenAPI document is precise enough for typed clients: listing items are documented by
the declarations that render them, the Problem schema names every member a problem carries,
Retry-After is declared wherever it is sent, and each answer allows only what it can be."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service import errors
from service.api.shapes import Shape
from service.api.v1.openapi import build_spec
from service.api.v1.sync import ACTIVITY, DAY, JOB
from service.models import Activity, DailyHealth, JobStatus, JobTrigger, SyncJob, SyncKind
from tests.api.test_openapi import schema_errors
from tests.support.app import Api

SPEC = build_spec()
NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def _items_schema(path: str, method: str, status: str, member: str) -> dict[str, Any]:
    schema = SPEC["paths"][path][method]["responses"][status]["content"]["application/json"]
    items: dict[str, Any] = schema["schema"]["properties"][member]["items"]
    return items


def _problem_classes(kind: type[errors.Problem] = errors.Problem) -> list[type[errors.Problem]]:
    found = []
    for sub in kind.__subclasses__():
        found += [sub, *_problem_classes(sub)]
    return found


ROWS = [
    (ACTIVITY, "/api/v1/garmin/activities", "get", "200", "items", Activity(
        id=1, user_id="u", garmin_activity_id=7, activity_type=None, name="Run",
        start_time_utc=NOW, start_time_local="2026-01-02T04:04:05", duration_seconds=61.5,
        distance_meters=None, calories=300.0, average_hr=None, max_hr=171.0,
        elevation_gain=None, raw_json={}, first_seen=NOW, updated_at=NOW)),
    (DAY, "/api/v1/garmin/health/daily", "get", "200", "items", DailyHealth(
        id=1, user_id="u", calendar_date=date(2026, 1, 2), steps=1234, resting_hr=None,
        sleep_seconds=None, sleep_score=80, average_stress=None, body_battery_high=90,
        body_battery_low=None, hrv_last_night=None, raw_json={}, first_seen=NOW,
        updated_at=NOW)),
    (JOB, "/api/v1/garmin/sync/jobs", "get", "200", "items", SyncJob(
        id=3, user_id="u", kind=SyncKind.HEALTH, trigger=JobTrigger.MANUAL,
        status=JobStatus.SUCCESS, created_at=NOW, started_at=NOW, finished_at=None,
        items_fetched=2, items_upserted=2, items_skipped=0, error=None)),
    (JOB, "/api/v1/garmin/sync", "post", "202", "jobs", SyncJob(
        id=3, user_id="u", kind=SyncKind.ACTIVITIES, trigger=JobTrigger.SCHEDULED,
        status=JobStatus.PENDING, created_at=NOW, started_at=None, finished_at=None,
        items_fetched=0, items_upserted=0, items_skipped=0, error=None)),
]


@pytest.mark.parametrize(("shape", "path", "method", "status", "member", "row"), ROWS,
                         ids=["activities", "health", "jobs", "sync"])
def test_listed_items_are_documented_by_the_shape_that_renders_them(
        shape: Shape, path: str, method: str, status: str, member: str, row: Any) -> None:
    documented = _items_schema(path, method, status, member)
    assert documented == shape.schema()
    rendered = shape.render(row)
    assert set(rendered) == set(documented["properties"]) == set(documented["required"])
    assert schema_errors(rendered, documented, SPEC) == []


texts = st.text(max_size=40)
BUILDERS: dict[type[errors.Problem], st.SearchStrategy[errors.Problem]] = {
    errors.ValidationFailed: st.builds(errors.ValidationFailed, texts, st.lists(
        st.fixed_dictionaries({"field": texts, "problem": texts}), max_size=3)),
    errors.Unauthorized: st.builds(errors.Unauthorized, texts),
    errors.MethodNotAllowed: st.builds(errors.MethodNotAllowed, st.one_of(
        st.none(), st.lists(st.sampled_from(["GET", "POST", "DELETE"])))),
    errors.HttpError: st.builds(errors.HttpError, st.integers(400, 599),
                                st.one_of(st.none(), texts)),
    errors.NoSession: st.builds(errors.NoSession, st.booleans()),
    errors.WrongMfaCode: st.builds(errors.WrongMfaCode, st.integers(0, 10)),
    errors.LoginCooldown: st.builds(errors.LoginCooldown, st.integers(1, 10**6)),
    errors.GarminThrottled: st.builds(errors.GarminThrottled, st.integers(1, 10**6),
                                      st.one_of(st.none(), texts)),
    errors.GarminUnavailableProblem: st.builds(errors.GarminUnavailableProblem, st.booleans()),
    errors.NotReady: st.builds(errors.NotReady, st.lists(texts, max_size=3)),
    errors.DatabaseUnavailable: st.builds(errors.DatabaseUnavailable),
}
problems = st.sampled_from(_problem_classes()).flatmap(
    lambda kind: BUILDERS[kind] if kind in BUILDERS
    else st.builds(kind, st.one_of(st.none(), texts)))


@settings(max_examples=300, deadline=None, database=None)
@given(problem=problems, instance=st.one_of(st.none(), st.just("/api/v1/garmin/sync")))
def test_every_problem_body_is_a_documented_problem(problem: errors.Problem,
                                                    instance: str | None) -> None:
    schema = SPEC["components"]["schemas"]["Problem"]
    body = problem.body(instance)
    assert set(body) <= set(schema["properties"]), set(body) - set(schema["properties"])
    assert schema_errors(body, schema, SPEC) == []
    # a class says whether its answers carry Retry-After, so the document can say it too
    assert ("Retry-After" in problem.headers) == type(problem).sends_retry_after


def test_retry_after_is_declared_wherever_it_is_sent() -> None:
    for path, item in SPEC["paths"].items():
        for method, operation in item.items():
            for status, response in operation["responses"].items():
                if status in ("429", "503"):
                    header = response.get("headers", {}).get("Retry-After")
                    assert header is not None, (method, path, status)
                    assert header["required"] is True
                    assert header["schema"]["type"] == "integer"


def test_the_mfa_answer_can_only_be_a_success() -> None:
    schema = SPEC["paths"]["/api/v1/garmin/session/mfa"]["post"]["responses"]["200"]
    answer = schema["content"]["application/json"]["schema"]
    assert schema_errors({"status": "SUCCESS"}, answer, SPEC) == []
    assert schema_errors({"status": "MFA_REQUIRED", "mfa_method": "email",
                          "expires_at": NOW.isoformat()}, answer, SPEC)


async def test_every_json_answer_names_its_charset(api: Api) -> None:
    for path in ("/api/v1/garmin/session/status", "/api/v1/garmin/sync/jobs",
                 "/api/v1/openapi.json"):
        response = await api.client.get(path, headers=api.headers("user-1"))
        assert response.status == 200
        assert response.headers["Content-Type"] == "application/json; charset=utf-8", path
