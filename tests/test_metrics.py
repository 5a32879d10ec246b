"""GET /metrics: Prometheus counters, histograms and gauges of one app instance."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from service.errors import PROBLEM_CONTENT_TYPE
from service.keys import GATEWAY, METRICS, SESSIONS
from service.models import GarminAuthenticationState
from service.sandbox import Fault
from tests.support.aliases import MakeConfig, StartApi
from tests.support.app import API_KEY, Api, Sandbox, connect, sync_now, use_db
from tests.support.waiting import eventually

USER = "user-7f3a9c"
ACCOUNT = "alice@example.com"
LOGIN_ROUTE = "/api/v1/garmin/session/login"
METRIC_NAMES = (
    "garmin_sync_http_requests_total",
    "garmin_sync_http_request_duration_seconds",
    "garmin_sync_garmin_calls_total",
    "garmin_sync_garmin_call_duration_seconds",
    "garmin_sync_garmin_executor_busy_threads",
    "garmin_sync_garmin_executor_queue_depth",
    "garmin_sync_sync_jobs_total",
    "garmin_sync_sync_job_duration_seconds",
    "garmin_sync_sync_items_upserted_total",
    "garmin_sync_sync_jobs_running",
    "garmin_sync_session_refreshes_persisted_total",
    "garmin_sync_stale_session_writes_dropped_total",
    "garmin_sync_sessions",
    "garmin_sync_event_loop_lag_seconds",
    "garmin_sync_event_loop_lag_last_seconds",
    "garmin_sync_event_loop_lag_max_seconds",
)

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


# --- helpers ----------------------------------------------------------------------------


async def exposition(api: Api) -> str:
    response = await api.client.get("/metrics")
    assert response.status == 200, await response.text()
    return str(await response.text())


def parse(text: str) -> Samples:
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


async def scrape(api: Api) -> Samples:
    return parse(await exposition(api))


def value(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value; 0 when the labelled child does not exist (yet)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def session_counts(samples: Samples) -> dict[str, float]:
    return {status: value(samples, "garmin_sync_sessions", status=status)
            for status in ("VALID", "MFA_PENDING", "EXPIRED", "MISSING")}


def label_values(samples: Samples) -> set[str]:
    return {label for _name, labels in samples for _key, label in labels}


# --- the endpoint -----------------------------------------------------------------------


async def test_metrics_answers_the_text_exposition_with_every_metric(api: Api) -> None:
    response = await api.client.get("/metrics")
    assert response.status == 200
    assert response.content_type == "text/plain"
    assert "version=0.0.4" in response.headers["Content-Type"]
    text = await response.text()
    for name in METRIC_NAMES:
        assert f"# TYPE {name} " in text, name
    families = {family.name for family in text_string_to_metric_families(text)}
    assert {"garmin_sync_http_requests", "garmin_sync_sessions"} <= families


async def test_metrics_needs_no_key_by_default(api: Api) -> None:
    response = await api.client.get("/metrics")
    assert response.status == 200


async def test_require_auth_refuses_a_scrape_without_the_key(
    make_config: MakeConfig, start_api: StartApi
) -> None:
    api = await start_api(make_config(metrics={"require_auth": True}))
    response = await api.client.get("/metrics")
    assert response.status == 401
    assert response.content_type == PROBLEM_CONTENT_TYPE
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    wrong = await api.client.get("/metrics", headers={"Authorization": "Bearer not-the-key-0000"})
    assert wrong.status == 401


async def test_require_auth_accepts_the_api_key_without_a_user_id(
    make_config: MakeConfig, start_api: StartApi
) -> None:
    api = await start_api(make_config(metrics={"require_auth": True}))
    response = await api.client.get("/metrics", headers={"Authorization": f"Bearer {API_KEY}"})
    assert response.status == 200, await response.text()
    assert "garmin_sync_sessions" in await response.text()


async def test_disabled_metrics_are_not_served(
    make_config: MakeConfig, start_api: StartApi
) -> None:
    api = await start_api(make_config(metrics={"enabled": False}))
    response = await api.client.get("/metrics")
    assert response.status == 404


async def test_metrics_stay_out_of_the_openapi_document(api: Api) -> None:
    spec = await (await api.client.get("/api/v1/openapi.json")).json()
    assert "/metrics" not in spec["paths"]


# --- HTTP -------------------------------------------------------------------------------


async def test_a_login_counts_the_login_route_with_status_200(api: Api, sandbox: Sandbox) -> None:
    sandbox.add(ACCOUNT)
    assert (await api.login(USER, ACCOUNT)).status == 200
    samples = await scrape(api)
    assert value(samples, "garmin_sync_http_requests_total",
                 route=LOGIN_ROUTE, method="POST", status="200") == 1
    assert value(samples, "garmin_sync_http_request_duration_seconds_count",
                 route=LOGIN_ROUTE) == 1


async def test_problem_responses_count_with_their_real_status(api: Api) -> None:
    unauthorized = await api.client.get("/api/v1/garmin/session/status")
    assert unauthorized.status == 401
    samples = await scrape(api)
    assert value(samples, "garmin_sync_http_requests_total",
                 route="/api/v1/garmin/session/status", method="GET", status="401") == 1


async def test_unknown_paths_count_as_unmatched_without_the_raw_path(api: Api) -> None:
    response = await api.client.get(f"/api/v1/garmin/users/{USER}",
                                    headers=api.headers(USER))
    assert response.status == 404
    text = await exposition(api)
    samples = parse(text)
    assert value(samples, "garmin_sync_http_requests_total",
                 route="unmatched", method="GET", status="404") == 1
    assert USER not in text
    assert "/users/" not in text


async def test_an_unknown_method_counts_as_other_with_its_problem_status(api: Api) -> None:
    response = await api.client.request("PURGE", "/healthz")
    assert response.status == 405
    assert response.content_type == PROBLEM_CONTENT_TYPE
    samples = await scrape(api)
    assert value(samples, "garmin_sync_http_requests_total",
                 route="unmatched", method="OTHER", status="405") == 1
    assert "PURGE" not in label_values(samples)


async def test_an_unhandled_error_counts_with_status_500(api: Api) -> None:
    async def boom(user_id: str, refresh: bool = False) -> None:
        raise RuntimeError("boom")

    api.client.server.app[SESSIONS].status = boom  # type: ignore[assignment,method-assign]
    response = await api.client.get("/api/v1/garmin/session/status", headers=api.headers(USER))
    assert response.status == 500
    samples = await scrape(api)
    assert value(samples, "garmin_sync_http_requests_total",
                 route="/api/v1/garmin/session/status", method="GET", status="500") == 1


async def test_a_refused_scrape_counts_with_status_401(
    make_config: MakeConfig, start_api: StartApi
) -> None:
    api = await start_api(make_config(metrics={"require_auth": True}))
    assert (await api.client.get("/metrics")).status == 401
    response = await api.client.get("/metrics", headers={"Authorization": f"Bearer {API_KEY}"})
    samples = parse(await response.text())
    assert value(samples, "garmin_sync_http_requests_total",
                 route="/metrics", method="GET", status="401") == 1


async def test_repeated_requests_add_up_in_one_labelled_series(api: Api) -> None:
    for _ in range(3):
        assert (await api.client.get("/healthz")).status == 200
    samples = await scrape(api)
    assert value(samples, "garmin_sync_http_requests_total",
                 route="/healthz", method="GET", status="200") == 3
    assert value(samples, "garmin_sync_http_request_duration_seconds_count",
                 route="/healthz") == 3


# --- Garmin calls -----------------------------------------------------------------------


async def test_a_login_counts_a_garmin_login_with_outcome_ok(api: Api, sandbox: Sandbox) -> None:
    sandbox.add(ACCOUNT)
    assert (await api.login(USER, ACCOUNT)).status == 200
    samples = await scrape(api)
    assert value(samples, "garmin_sync_garmin_calls_total",
                 operation="login", outcome="ok") == 1
    assert value(samples, "garmin_sync_garmin_call_duration_seconds_count",
                 operation="login") == 1


async def test_a_wrong_password_counts_outcome_invalid_credentials(
    api: Api, sandbox: Sandbox
) -> None:
    sandbox.add(ACCOUNT)
    assert (await api.login(USER, ACCOUNT, password="wrong-password")).status == 422
    samples = await scrape(api)
    assert value(samples, "garmin_sync_garmin_calls_total",
                 operation="login", outcome="invalid_credentials") == 1
    assert value(samples, "garmin_sync_garmin_calls_total", operation="login", outcome="ok") == 0
    assert value(samples, "garmin_sync_http_requests_total",
                 route=LOGIN_ROUTE, method="POST", status="422") == 1


async def test_a_garmin_429_counts_outcome_rate_limited(api: Api, sandbox: Sandbox) -> None:
    sandbox.add(ACCOUNT)
    sandbox.state.set_fault(ACCOUNT, "login", Fault(status=429, times=1))
    assert (await api.login(USER, ACCOUNT)).status == 429
    samples = await scrape(api)
    assert value(samples, "garmin_sync_garmin_calls_total",
                 operation="login", outcome="rate_limited") == 1


async def test_a_wrong_mfa_code_counts_outcome_mfa_invalid(api: Api, sandbox: Sandbox) -> None:
    sandbox.add(ACCOUNT, mfa_code="123456")
    assert (await (await api.login(USER, ACCOUNT)).json())["status"] == "MFA_REQUIRED"
    assert (await api.mfa(USER, "654321")).status == 422
    assert (await api.mfa(USER, "123456")).status == 200
    samples = await scrape(api)
    assert value(samples, "garmin_sync_garmin_calls_total",
                 operation="resume_mfa", outcome="mfa_invalid") == 1
    assert value(samples, "garmin_sync_garmin_calls_total",
                 operation="resume_mfa", outcome="ok") == 1


async def test_a_live_status_check_counts_a_validate_call(api: Api, sandbox: Sandbox) -> None:
    sandbox.add(ACCOUNT)
    assert (await api.login(USER, ACCOUNT)).status == 200
    assert (await api.status(USER, refresh=True)).status == 200
    samples = await scrape(api)
    assert value(samples, "garmin_sync_garmin_calls_total",
                 operation="validate", outcome="ok") == 1


async def test_token_refreshes_are_counted_by_outcome(api: Api, sandbox: Sandbox) -> None:
    from service.sandbox import Fault

    sandbox.add(ACCOUNT, oauth2_lifetime_seconds=0)
    assert (await api.login(USER, ACCOUNT)).status == 200
    assert (await api.status(USER, refresh=True)).status == 200
    sandbox.state.set_fault(ACCOUNT, "exchange", Fault(status=503))
    assert (await api.status(USER, refresh=True)).status == 200
    samples = await scrape(api)
    assert value(samples, "garmin_sync_token_refreshes_total", outcome="ok") == 1
    assert value(samples, "garmin_sync_token_refreshes_total", outcome="failed") == 1


async def test_the_pool_reports_busy_threads_and_queued_calls(
    make_config: MakeConfig, start_api: StartApi, sandbox: Sandbox
) -> None:
    api = await start_api(make_config(garmin={"executor_threads": 1}))
    sandbox.add(ACCOUNT)
    sandbox.add("bob@example.com")
    sandbox.state.set_fault(ACCOUNT, "login", Fault(hang_seconds=1.0, times=1))
    first = asyncio.ensure_future(api.login(USER, ACCOUNT))

    async def pool(busy: int, queued: int) -> bool:
        samples = await scrape(api)
        return (value(samples, "garmin_sync_garmin_executor_busy_threads") == busy
                and value(samples, "garmin_sync_garmin_executor_queue_depth") == queued)

    # the hanging login holds the only thread before the second one asks for it (started
    # together, the second could reach the pool first and be done before the first began)
    await eventually(lambda: pool(busy=1, queued=0))
    second = asyncio.ensure_future(api.login("user-2", "bob@example.com"))
    await eventually(lambda: pool(busy=1, queued=1))
    assert [(await call).status for call in (first, second)] == [200, 200]
    samples = await scrape(api)
    assert value(samples, "garmin_sync_garmin_executor_busy_threads") == 0
    assert value(samples, "garmin_sync_garmin_executor_queue_depth") == 0
    gateway = api.app[GATEWAY]
    assert (gateway.busy_threads, gateway.queue_depth) == (0, 0)


# --- sync jobs --------------------------------------------------------------------------


async def test_a_manual_sync_counts_jobs_by_kind_and_status_and_items_upserted(
    api: Api, sandbox: Sandbox
) -> None:
    await connect(api, sandbox, USER, ACCOUNT, history_days=3, activities_per_day=2)
    jobs = await sync_now(api, USER)
    assert {job["kind"]: job["status"] for job in jobs} == {
        "activities": "SUCCESS", "health": "SUCCESS"}
    upserted = {job["kind"]: job["items_upserted"] for job in jobs}
    assert all(count > 0 for count in upserted.values()), upserted
    samples = await scrape(api)
    for kind in ("activities", "health"):
        assert value(samples, "garmin_sync_sync_jobs_total", kind=kind, status="SUCCESS") == 1
        assert value(samples, "garmin_sync_sync_job_duration_seconds_count", kind=kind) == 1
        assert value(samples, "garmin_sync_sync_items_upserted_total",
                     kind=kind) == upserted[kind]
    data_calls = [r for r in sandbox.state.requests if r.scope == "api"]
    assert len(data_calls) > 2  # a page, the profile and three sources per backfilled day
    assert value(samples, "garmin_sync_garmin_calls_total",
                 operation="use", outcome="ok") == len(data_calls)
    assert value(samples, "garmin_sync_sync_jobs_running") == 0


async def test_a_refreshed_session_written_back_is_counted(api: Api, sandbox: Sandbox) -> None:
    await connect(api, sandbox, USER, ACCOUNT, oauth2_lifetime_seconds=0, history_days=1)
    jobs = await sync_now(api, USER, "activities")
    assert [job["status"] for job in jobs] == ["SUCCESS"]
    samples = await scrape(api)
    assert value(samples, "garmin_sync_session_refreshes_persisted_total") == 1
    assert value(samples, "garmin_sync_stale_session_writes_dropped_total") == 0


# --- sessions by status -----------------------------------------------------------------


async def test_sessions_gauge_reports_valid_after_a_login(api: Api, sandbox: Sandbox) -> None:
    before = await scrape(api)
    assert value(before, "garmin_sync_sessions", status="VALID") == 0
    await connect(api, sandbox, USER, ACCOUNT)
    assert session_counts(await scrape(api)) == {
        "VALID": 1, "MFA_PENDING": 0, "EXPIRED": 0, "MISSING": 0}


async def test_sessions_gauge_reports_mfa_pending_during_an_mfa_login(
    api: Api, sandbox: Sandbox
) -> None:
    sandbox.add(ACCOUNT, mfa_code="123456")
    assert (await (await api.login(USER, ACCOUNT)).json())["status"] == "MFA_REQUIRED"
    samples = await scrape(api)
    assert value(samples, "garmin_sync_sessions", status="MFA_PENDING") == 1
    assert value(samples, "garmin_sync_sessions", status="VALID") == 0


async def test_sessions_gauge_reports_expired_after_revocation(
    api: Api, sandbox: Sandbox
) -> None:
    await connect(api, sandbox, USER, ACCOUNT, oauth2_lifetime_seconds=0)
    sandbox.state.revoke_oauth1(ACCOUNT)
    jobs = await sync_now(api, USER)
    assert {job["status"] for job in jobs} == {"AUTH_EXPIRED"}
    samples = await scrape(api)
    assert value(samples, "garmin_sync_sessions", status="EXPIRED") == 1
    assert value(samples, "garmin_sync_sessions", status="VALID") == 0
    assert value(samples, "garmin_sync_sync_jobs_total",
                 kind="activities", status="AUTH_EXPIRED") == 1
    assert value(samples, "garmin_sync_garmin_calls_total",
                 operation="use", outcome="auth_rejected") >= 1


async def test_sessions_gauge_drops_a_disconnected_session(api: Api, sandbox: Sandbox) -> None:
    await connect(api, sandbox, USER, ACCOUNT)
    assert (await api.delete(USER)).status == 204
    assert session_counts(await scrape(api)) == {
        "VALID": 0, "MFA_PENDING": 0, "EXPIRED": 0, "MISSING": 0}


async def test_sessions_gauge_counts_a_lapsed_mfa_challenge_as_missing(
    api: Api, sandbox: Sandbox
) -> None:
    sandbox.add(ACCOUNT, mfa_code="123456")
    assert (await (await api.login(USER, ACCOUNT)).json())["status"] == "MFA_REQUIRED"
    use_db(api)
    await GarminAuthenticationState.filter(user_id=USER).update(
        mfa_expires_at=datetime.now(UTC) - timedelta(seconds=1))
    assert (await (await api.status(USER)).json())["status"] == "MISSING"
    assert session_counts(await scrape(api)) == {
        "VALID": 0, "MFA_PENDING": 0, "EXPIRED": 0, "MISSING": 1}


# --- privacy and isolation ----------------------------------------------------------------


async def test_no_label_carries_a_user_id_or_a_secret(api: Api, sandbox: Sandbox) -> None:
    sandbox.add(ACCOUNT, mfa_code="123456", oauth2_lifetime_seconds=0, history_days=1)
    assert (await api.login(USER, ACCOUNT, password="wrong-password")).status == 422
    assert (await api.login(USER, ACCOUNT)).status == 200
    assert (await api.mfa(USER, "654321")).status == 422
    assert (await api.mfa(USER, "123456")).status == 200
    assert (await api.status(USER, refresh=True)).status == 200
    await sync_now(api, USER)
    await api.client.get(f"/api/v1/garmin/sync/jobs/{USER}", headers=api.headers(USER))
    text = await exposition(api)
    secrets = sandbox.state.issued_secrets()
    assert secrets, "the sandbox issued no credentials"
    forbidden = [USER, ACCOUNT, "pw-correct-horse", "wrong-password", API_KEY, *secrets]
    labels = label_values(parse(text))
    assert "/api/v1/garmin/session/mfa" in labels
    for label in labels:
        for secret in [*forbidden, "123456", "654321"]:
            assert secret not in label, f"label {label!r} carries {secret!r}"
    for secret in forbidden:  # not the MFA codes: digits can occur in sample values
        assert secret not in text


async def test_two_app_instances_have_independent_registries(
    make_config: MakeConfig, start_api: StartApi, sandbox: Sandbox
) -> None:
    first = await start_api(make_config())
    second = await start_api(make_config())
    assert first.app[METRICS].registry is not second.app[METRICS].registry
    sandbox.add(ACCOUNT)
    assert (await first.login(USER, ACCOUNT)).status == 200
    in_first = await scrape(first)
    in_second = await scrape(second)
    assert value(in_first, "garmin_sync_garmin_calls_total",
                 operation="login", outcome="ok") == 1
    assert value(in_second, "garmin_sync_garmin_calls_total",
                 operation="login", outcome="ok") == 0
    assert value(in_second, "garmin_sync_http_requests_total",
                 route=LOGIN_ROUTE, method="POST", status="200") == 0
    assert not any(family.name.startswith("garmin_sync_") for family in REGISTRY.collect())


# --- event loop -------------------------------------------------------------------------


async def test_event_loop_lag_is_measured(api: Api) -> None:
    async def sampled() -> bool:
        samples = await scrape(api)
        return value(samples, "garmin_sync_event_loop_lag_seconds_count") >= 2

    await eventually(sampled)
    samples = await scrape(api)
    last = value(samples, "garmin_sync_event_loop_lag_last_seconds")
    largest = value(samples, "garmin_sync_event_loop_lag_max_seconds")
    assert 0 <= last <= largest
    assert value(samples, "garmin_sync_event_loop_lag_seconds_sum") >= 0
