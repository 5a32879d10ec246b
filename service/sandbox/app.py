"""The sandbox's HTTP face: Garmin's SSO and connectapi endpoints as garth 0.8.0 uses them.

Clients reach it by rewriting `https://<sub>.garmin.com<path>` to `<base_url>/<sub><path>`,
so routes live under `/sso/...` and `/connectapi/...`. A JSON control API under
`/_sandbox/...` scripts accounts and faults when the sandbox runs as its own process.

Each Garmin handler follows the same shape, so faults and the record behave alike
everywhere: attribute the request to an account (without consuming anything), bump the
account's counter, apply latency and any fault, then run the real logic from `state.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import re
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Final, NoReturn
from urllib.parse import parse_qs, unquote, urlencode

from aiohttp import web

from .accounts import Account
from .data import data_answer, data_family
from .errors import AccountExists, SandboxError, UnknownAccount, ValidationError
from .faults import Fault, validate_scope
from .issued import ISSUED_VALUE_PATTERN
from .oauth import REFRESH_TOKEN_LIFETIME_SECONDS
from .state import RecordedRequest, SandboxState

logger = logging.getLogger(__name__)

SANDBOX_CONSUMER_KEY: Final = "sandbox-consumer-key"
SANDBOX_CONSUMER_SECRET: Final = "sandbox-consumer-secret"  # noqa: S105 - public test value
SANDBOX_STATE: Final = web.AppKey("sandbox_state", SandboxState)

SSO_COOKIE: Final = "SANDBOX_SSO"
CALLER_HEADER: Final = "X-Sandbox-Caller"
CONTROL_PREFIX: Final = "/_sandbox"
SSO_SCOPES: Final = frozenset({"signin", "login", "mfa"})

_STOPPING: Final = web.AppKey("sandbox_stopping", asyncio.Event)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class _Attribution:
    """Who a request is about; filled in by the handler, written to the record afterwards."""

    scope: str
    account: str | None = None
    token_account: str | None = None
    delay_ms: int = 0


_ATTRIBUTION: Final = web.RequestKey("sandbox_attribution", _Attribution)


class _ConnectionDropped(Exception):
    """Raised after aborting the transport: there is no response to send."""


# --- small response helpers ---------------------------------------------------------------


def _state(request: web.Request) -> SandboxState:
    return request.app[SANDBOX_STATE]


def _json_error(status: int, error: str, message: str) -> web.Response:
    return web.json_response({"error": error, "message": message}, status=status)


def _bad_request(message: str) -> web.HTTPBadRequest:
    """A 400 with a JSON body (the error middleware leaves JSON errors alone)."""
    body = json.dumps({"error": "bad_request", "message": message})
    return web.HTTPBadRequest(text=body, content_type="application/json")


def _sso_answer(kind: str, message: str = "", status: int = 200, **extra: Any) -> web.Response:
    """Garmin's SSO JSON shape: everything hangs off `responseStatus.type`."""
    body: dict[str, Any] = {"responseStatus": {"type": kind, "message": message}, **extra}
    return web.json_response(body, status=status)


def _sso_error(error: SandboxError) -> web.Response:
    return _sso_answer(error.kind, error.message, status=error.status)


def _connect_error(error: SandboxError) -> web.Response:
    return _json_error(error.status, error.kind, error.message)


async def _read_json_object(request: web.Request) -> dict[str, Any]:
    """The request body as a JSON object, or a 400 that says what is wrong."""
    raw = await request.read()
    try:
        data = json.loads(raw.decode("utf-8")) if raw else None
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise _bad_request("body is not valid JSON") from None
    if not isinstance(data, dict):
        raise _bad_request("body must be a JSON object")
    return data


async def _form_fields(request: web.Request) -> dict[str, str]:
    """A urlencoded body as a dict; parsed by hand so odd content types cannot crash it."""
    raw = await request.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _bad_request("form body is not UTF-8") from None
    return {key: values[-1] for key, values in parse_qs(text, keep_blank_values=True).items()}


def _body_str(body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str):
        raise _bad_request(f"{key} must be a string")
    return value


def _attribute(
    request: web.Request,
    scope: str,
    account: str | None = None,
    token_account: str | None = None,
) -> None:
    """Tag the request for the record and bump the account's counter for this scope."""
    attribution = request[_ATTRIBUTION]
    attribution.scope = scope
    attribution.account = account
    attribution.token_account = token_account
    _state(request).count(account, scope)


# --- latency and faults --------------------------------------------------------------------


async def _pause(app: web.Application, seconds: float) -> None:
    """Sleep, but wake up early when the app shuts down, so hangs never block a test's exit."""
    if seconds <= 0:
        return
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await app[_STOPPING].wait()


def _drop_connection(request: web.Request) -> NoReturn:
    """Close the socket without answering: the client sees a connection error."""
    transport = request.transport
    if transport is not None:
        transport.abort()
    raise _ConnectionDropped


def _fault_headers(fault: Fault) -> dict[str, str]:
    return {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}


def _html_page(status: int, fault: Fault) -> web.Response:
    reason = _reason(status)
    text = (
        f"<!DOCTYPE html><html><head><title>{status} {reason}</title></head>"
        f"<body><h1>{status} {reason}</h1><p>Sandbox error page.</p></body></html>"
    )
    return web.Response(
        status=status, text=text, content_type="text/html", headers=_fault_headers(fault)
    )


def _truncated_json(status: int, fault: Fault) -> web.Response:
    text = '{"responseStatus": {"type": "SUCCESSFUL", "mess'
    return web.Response(
        status=status, text=text, content_type="application/json", headers=_fault_headers(fault)
    )


def _status_answer(scope: str, status: int, fault: Fault) -> web.Response:
    """A JSON error shaped like the real endpoint's (SSO `responseStatus`, or connectapi)."""
    reason = _reason(status)
    kind = reason.upper().replace(" ", "_").replace("-", "_")
    response = (
        _sso_answer(kind, f"{status} {reason}", status=status)
        if scope in SSO_SCOPES
        else _json_error(status, kind, f"{status} {reason}")
    )
    response.headers.update(_fault_headers(fault))
    return response


def _reason(status: int) -> str:
    with contextlib.suppress(ValueError):
        return HTTPStatus(status).phrase
    return "Error"


async def _perform(request: web.Request, scope: str, fault: Fault) -> web.Response | None:
    """Carry out a fault; None means "now answer normally" (a hang-only fault)."""
    if fault.hang_seconds:
        await _pause(request.app, fault.hang_seconds)
    if fault.reset:
        _drop_connection(request)
    status = fault.status if fault.status is not None else 200
    if fault.html:
        return _html_page(status, fault)
    if fault.truncated:
        return _truncated_json(status, fault)
    if fault.status is not None:
        return _status_answer(scope, fault.status, fault)
    return None


async def _interfere(request: web.Request) -> web.Response | None:
    """Apply the attributed account's latency (or the sandbox-wide one for a request
    attributed to no account), then a matching fault, if any."""
    attribution = request[_ATTRIBUTION]
    state = _state(request)
    fault = state.take_fault(attribution.scope, attribution.account)
    attribution.delay_ms = state.latency_for(attribution.account)
    await _pause(request.app, attribution.delay_ms / 1000)
    if fault is None:
        return None
    logger.debug("sandbox fault on %s for %s", attribution.scope, attribution.account)
    return await _perform(request, attribution.scope, fault)


# --- OAuth helpers -------------------------------------------------------------------------

_OAUTH_PARAM: Final = re.compile(r'([A-Za-z_]+)="([^"]*)"')


def _oauth_params(request: web.Request) -> dict[str, str]:
    """The parameters of an `Authorization: OAuth k="v", ...` header ({} if absent)."""
    header = request.headers.get("Authorization", "")
    scheme, _, rest = header.partition(" ")
    if scheme.lower() != "oauth":
        return {}
    return {key: unquote(value) for key, value in _OAUTH_PARAM.findall(rest)}


def _check_consumer(oauth: dict[str, str]) -> None:
    """Our consumer key and some signature must be present (the HMAC is not verified)."""
    if oauth.get("oauth_consumer_key") != SANDBOX_CONSUMER_KEY or not oauth.get("oauth_signature"):
        raise SandboxError(401, "INVALID_SIGNATURE", "OAuth consumer or signature invalid")


def _bearer(request: web.Request) -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


# --- SSO handlers --------------------------------------------------------------------------

_SIGN_IN_HTML: Final = (
    "<!DOCTYPE html><html><head><title>GARMIN Authentication Application</title></head>"
    "<body><div id='sandbox-sign-in'>Garmin sandbox sign-in</div></body></html>"
)
_EMBED_HTML: Final = (
    "<!DOCTYPE html><html><head><title>GARMIN SSO Embed</title></head>"
    "<body>sandbox embed</body></html>"
)


async def sign_in(request: web.Request) -> web.StreamResponse:
    """Step 1: the sign-in page; sets the SSO session cookie later steps require."""
    _attribute(request, "signin")
    if (interference := await _interfere(request)) is not None:
        return interference
    session_id = _state(request).open_sso_session()
    response = web.Response(text=_SIGN_IN_HTML, content_type="text/html")
    response.set_cookie(SSO_COOKIE, session_id, path="/", httponly=True, samesite="Lax")
    return response


async def login(request: web.Request) -> web.StreamResponse:
    """Step 2: username + password inside the SSO session; a ticket or MFA_REQUIRED."""
    body = await _read_json_object(request)
    username, password = _body_str(body, "username"), _body_str(body, "password")
    state = _state(request)
    account = state.get_account(username)
    _attribute(request, "login", account.username if account else None)
    if (interference := await _interfere(request)) is not None:
        return interference
    try:
        result = state.login(request.cookies.get(SSO_COOKIE), username, password)
    except SandboxError as error:
        return _sso_error(error)
    if result.mfa_required:
        return _sso_answer("MFA_REQUIRED", customerMfaInfo={"mfaLastMethodUsed": "email"})
    return _sso_answer("SUCCESSFUL", serviceTicketId=result.ticket)


async def verify_mfa(request: web.Request) -> web.StreamResponse:
    """Step 3: the MFA code, accepted only with the cookie that got MFA_REQUIRED."""
    body = await _read_json_object(request)
    code = _body_str(body, "mfaVerificationCode")
    state = _state(request)
    session_id = request.cookies.get(SSO_COOKIE)
    _attribute(request, "mfa", state.mfa_username(session_id))
    if (interference := await _interfere(request)) is not None:
        return interference
    try:
        ticket = state.verify_mfa(session_id, code)
    except SandboxError as error:
        return _sso_error(error)
    return _sso_answer("SUCCESSFUL", serviceTicketId=ticket)


async def embed(request: web.Request) -> web.StreamResponse:
    """Step 4: garth fetches this for a load-balancer cookie; nothing to check."""
    _attribute(request, "embed")
    if (interference := await _interfere(request)) is not None:
        return interference
    return web.Response(text=_EMBED_HTML, content_type="text/html")


# --- OAuth handlers ------------------------------------------------------------------------


def _mfa_expiry(state: SandboxState) -> str:
    moment = dt.datetime.fromtimestamp(state.clock() + 365 * 86_400, tz=dt.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S.000")


async def preauthorized(request: web.Request) -> web.StreamResponse:
    """Step 5: a signed request trades the service ticket for an OAuth1 token pair."""
    state = _state(request)
    oauth = _oauth_params(request)
    ticket = request.query.get("ticket")
    _attribute(
        request,
        "preauthorized",
        state.ticket_owner(ticket),
        state.oauth1_owner(oauth.get("oauth_token")),
    )
    if (interference := await _interfere(request)) is not None:
        return interference
    try:
        _check_consumer(oauth)
        grant = state.redeem_ticket(ticket)
    except SandboxError as error:
        return _connect_error(error)
    fields = {"oauth_token": grant.token, "oauth_token_secret": grant.secret}
    if grant.mfa_token is not None:
        fields["mfa_token"] = grant.mfa_token
        fields["mfa_expiration_timestamp"] = _mfa_expiry(state)
    return web.Response(text=urlencode(fields), content_type="text/plain")


async def exchange(request: web.Request) -> web.StreamResponse:
    """Step 6 and every refresh: a request signed with the OAuth1 token gets a new OAuth2."""
    state = _state(request)
    oauth = _oauth_params(request)
    owner = state.oauth1_owner(oauth.get("oauth_token"))
    _attribute(request, "exchange", owner, owner)
    if (interference := await _interfere(request)) is not None:
        return interference
    form = await _form_fields(request)
    try:
        _check_consumer(oauth)
        grant = state.exchange(oauth.get("oauth_token"), refresh="audience" not in form)
    except SandboxError as error:
        return _connect_error(error)
    lifetime = int(grant.expires_at - grant.issued_at)
    return web.json_response(
        {
            "scope": "CONNECT_READ CONNECT_WRITE",
            "jti": grant.jti,
            "token_type": "Bearer",
            "access_token": grant.token,
            "refresh_token": grant.refresh_token,
            "expires_in": lifetime,
            "refresh_token_expires_in": REFRESH_TOKEN_LIFETIME_SECONDS,
        }
    )


# --- connectapi ----------------------------------------------------------------------------


def _social_profile(account: Account) -> dict[str, Any]:
    """Enough of Garmin's socialProfile for garth's UserProfile model."""
    visibility = "private"
    return {
        "id": account.profile_id,
        "profileId": account.profile_id,
        "garminGUID": f"{account.profile_id:08d}-0000-4000-8000-000000000000",
        "displayName": account.display_name,
        "fullName": account.full_name,
        "userName": account.username,
        "profileImageType": None,
        "profileImageUrlLarge": None,
        "profileImageUrlMedium": None,
        "profileImageUrlSmall": None,
        "location": None,
        "facebookUrl": None,
        "twitterUrl": None,
        "personalWebsite": None,
        "motivation": None,
        "bio": None,
        "primaryActivity": None,
        "favoriteActivityTypes": [],
        "runningTrainingSpeed": 0.0,
        "cyclingTrainingSpeed": 0.0,
        "favoriteCyclingActivityTypes": [],
        "cyclingClassification": None,
        "cyclingMaxAvgPower": 0.0,
        "swimmingTrainingSpeed": 0.0,
        "profileVisibility": visibility,
        "activityStartVisibility": visibility,
        "activityMapVisibility": visibility,
        "courseVisibility": visibility,
        "activityHeartRateVisibility": visibility,
        "activityPowerVisibility": visibility,
        "badgeVisibility": visibility,
        "showAge": False,
        "showWeight": False,
        "showHeight": False,
        "showWeightClass": False,
        "showAgeRange": False,
        "showGender": False,
        "showActivityClass": False,
        "showVO2Max": False,
        "showPersonalRecords": False,
        "showLast12Months": False,
        "showLifetimeTotals": False,
        "showUpcomingEvents": False,
        "showRecentFavorites": False,
        "showRecentDevice": False,
        "showRecentGear": False,
        "showBadges": False,
        "otherActivity": None,
        "otherPrimaryActivity": None,
        "otherMotivation": None,
        "userRoles": ["SCOPE_CONNECT_READ", "SCOPE_CONNECT_WRITE"],
        "nameApproved": True,
        "userProfileFullName": account.full_name,
        "makeGolfScorecardsPrivate": True,
        "allowGolfLiveScoring": False,
        "allowGolfScoringByConnections": True,
        "userLevel": 1,
        "userPoint": 0,
        "levelUpdateDate": "2024-01-01T00:00:00.0",
        "levelIsViewed": True,
        "levelPointThreshold": 20,
        "userPointOffset": 0,
        "userPro": False,
    }


def _number_format(format_id: int, key: str, fraction: int) -> dict[str, Any]:
    return {
        "formatId": format_id,
        "formatKey": key,
        "minFraction": fraction,
        "maxFraction": fraction,
        "groupingUsed": True,
        "displayFormat": None,
    }


def _user_data() -> dict[str, Any]:
    return {
        "gender": "FEMALE",
        "weight": 60000.0,
        "height": 168.0,
        "timeFormat": "time_twenty_four_hr",
        "birthDate": "1990-01-01",
        "measurementSystem": "metric",
        "activityLevel": None,
        "handedness": "RIGHT",
        "powerFormat": _number_format(30, "watt", 0),
        "heartRateFormat": _number_format(21, "bpm", 0),
        "firstDayOfWeek": {
            "dayId": 2,
            "dayName": "monday",
            "sortOrder": 2,
            "isPossibleFirstDay": True,
        },
        "vo2MaxRunning": None,
        "vo2MaxCycling": None,
        "lactateThresholdSpeed": None,
        "lactateThresholdHeartRate": None,
        "diveNumber": None,
        "intensityMinutesCalcMethod": "AUTO",
        "moderateIntensityMinutesHrZone": 3,
        "vigorousIntensityMinutesHrZone": 4,
        "hydrationMeasurementUnit": "milliliter",
        "hydrationContainers": [],
        "hydrationAutoGoalEnabled": True,
        "firstbeatMaxStressScore": None,
        "firstbeatCyclingLtTimestamp": None,
        "firstbeatRunningLtTimestamp": None,
        "thresholdHeartRateAutoDetected": True,
        "ftpAutoDetected": None,
        "trainingStatusPausedDate": None,
        "weatherLocation": None,
        "golfDistanceUnit": "statute_us",
        "golfElevationUnit": None,
        "golfSpeedUnit": None,
        "externalBottomTime": None,
    }


def _user_settings(account: Account) -> dict[str, Any]:
    """Enough of Garmin's user-settings for garth's UserSettings model."""
    return {
        "id": account.profile_id,
        "userData": _user_data(),
        "userSleep": {
            "sleepTime": 79200,
            "defaultSleepTime": False,
            "wakeTime": 25200,
            "defaultWakeTime": False,
        },
        "connectDate": None,
        "sourceType": None,
        "userSleepWindows": [
            {
                "sleepWindowFrequency": "DAILY",
                "startSleepTimeSecondsFromMidnight": 79200,
                "endSleepTimeSecondsFromMidnight": 25200,
            }
        ],
    }


_DAILY_STEPS: Final = re.compile(
    r"/usersummary-service/stats/steps/daily/(\d{4}-\d{2}-\d{2})/(\d{4}-\d{2}-\d{2})"
)


def _daily_steps(account: Account, start_text: str, end_text: str) -> list[dict[str, Any]]:
    """Deterministic daily steps (same account and day, same numbers) for sync tests."""
    try:
        start, end = dt.date.fromisoformat(start_text), dt.date.fromisoformat(end_text)
    except ValueError:
        raise _bad_request("dates must be YYYY-MM-DD") from None
    if not 0 <= (end - start).days < 366:
        raise _bad_request("the range must be 1 to 366 days, start before end")
    days = [start + dt.timedelta(days=offset) for offset in range((end - start).days + 1)]
    rows = []
    for day in days:
        steps = 2000 + zlib.crc32(f"{account.profile_id}:{day}".encode()) % 14000
        rows.append(
            {
                "calendarDate": day.isoformat(),
                "values": {"totalSteps": steps, "totalDistance": steps * 3 // 4, "stepGoal": 8000},
            }
        )
    return rows


def _api_answer(account: Account, path: str) -> Any:
    """The JSON for a known profile/stats GET path, or None when the path is not one."""
    if path == "/userprofile-service/socialProfile":
        return _social_profile(account)
    if path == "/userprofile-service/userprofile/user-settings":
        return _user_settings(account)
    if match := _DAILY_STEPS.fullmatch(path):
        return _daily_steps(account, match.group(1), match.group(2))
    return None


def _get_answer(request: web.Request, account: Account, path: str) -> web.Response:
    """A GET for an authorized account: profile paths, then the data endpoints (data.py)."""
    answer = _api_answer(account, path)
    if answer is not None:
        return web.json_response(answer)
    try:
        data = data_answer(account, path, request.query, _state(request).utc_now())
    except SandboxError as error:
        return _connect_error(error)
    if data is None:
        return _json_error(404, "NotFound", f"no sandbox data for GET {path}")
    if data.body is None:
        return web.Response(status=204)  # e.g. a night without HRV, as Garmin answers it
    return web.json_response(data.body)


async def connectapi(request: web.Request) -> web.StreamResponse:
    """Every Bearer API call: 401 unless the access token is live, then the known GET paths.

    The data endpoints go through here too, so token checks, faults, latency and the record
    apply to them exactly as to the profile calls; they also bump the account's data_calls.
    """
    state = _state(request)
    token = _bearer(request)
    owner = state.access_owner(token)
    path = "/" + request.match_info["tail"]
    _attribute(request, "api", owner, owner)
    family = data_family(path) if request.method == "GET" else None
    if family is not None:
        state.count_data(owner, family)
    if (interference := await _interfere(request)) is not None:
        return interference
    try:
        account = state.authorize(token)
    except SandboxError as error:
        return _connect_error(error)
    if request.method != "GET":
        return _json_error(404, "NotFound", f"no sandbox data for {request.method} {path}")
    return _get_answer(request, account, path)


# --- control API ---------------------------------------------------------------------------


async def create_account(request: web.Request) -> web.StreamResponse:
    """POST /_sandbox/accounts: add an account (no secrets are issued)."""
    account = _state(request).add_account(Account.from_dict(await _read_json_object(request)))
    return web.json_response(account.to_dict(), status=201)


async def list_accounts(request: web.Request) -> web.StreamResponse:
    """GET /_sandbox/accounts: every account with its counters."""
    return web.json_response([a.to_dict() for a in _state(request).accounts.values()])


async def get_account(request: web.Request) -> web.StreamResponse:
    """GET /_sandbox/accounts/{username}: one account with its counters."""
    account = _state(request).require_account(request.match_info["username"])
    return web.json_response(account.to_dict())


async def patch_account(request: web.Request) -> web.StreamResponse:
    """PATCH /_sandbox/accounts/{username}: change password, MFA, lifetimes, latency..."""
    changes = await _read_json_object(request)
    account = _state(request).update_account(request.match_info["username"], changes)
    return web.json_response(account.to_dict())


def _fault_target(request: web.Request) -> tuple[str | None, str]:
    username = request.match_info.get("username")
    if username is not None:
        _state(request).require_account(username)
    return username, validate_scope(request.match_info["scope"])


async def put_fault(request: web.Request) -> web.StreamResponse:
    """PUT .../faults/{scope}: install a fault (account-wide, or global without account)."""
    username, scope = _fault_target(request)
    fault = Fault.from_dict(await _read_json_object(request))
    _state(request).set_fault(username, scope, fault)
    return web.Response(status=204)


async def delete_fault(request: web.Request) -> web.StreamResponse:
    """DELETE .../faults/{scope}: remove the fault."""
    username, scope = _fault_target(request)
    _state(request).clear_fault(username, scope)
    return web.Response(status=204)


async def revoke(request: web.Request) -> web.StreamResponse:
    """POST /_sandbox/accounts/{username}/revoke: revoke all OAuth1 tokens (no refreshes)."""
    count = _state(request).revoke_oauth1(request.match_info["username"])
    return web.json_response({"revoked": count})


async def expire_access_tokens(request: web.Request) -> web.StreamResponse:
    """POST .../expire-access-tokens: Garmin drops the OAuth2 tokens, OAuth1 stays good."""
    count = _state(request).expire_access_tokens(request.match_info["username"])
    return web.json_response({"expired": count})


async def get_settings(request: web.Request) -> web.StreamResponse:
    """GET /_sandbox/settings: the sandbox-wide settings."""
    return web.json_response(_state(request).settings())


async def patch_settings(request: web.Request) -> web.StreamResponse:
    """PATCH /_sandbox/settings: `latency_ms` for requests attributed to no account."""
    changes = await _read_json_object(request)
    return web.json_response(_state(request).update_settings(changes))


async def list_requests(request: web.Request) -> web.StreamResponse:
    """GET /_sandbox/requests: the request record, oldest first."""
    return web.json_response([r.to_dict() for r in _state(request).requests])


async def clear_requests(request: web.Request) -> web.StreamResponse:
    """DELETE /_sandbox/requests: forget the record."""
    _state(request).clear_requests()
    return web.Response(status=204)


async def issued_secrets(request: web.Request) -> web.StreamResponse:
    """GET /_sandbox/issued-secrets: every credential issued, for leak checks out of process."""
    return web.json_response(_state(request).issued_secrets())


async def reset(request: web.Request) -> web.StreamResponse:
    """POST /_sandbox/reset: drop everything and reload the seed (`{"keep_seed": false}`: empty)."""
    options = await _read_json_object(request) if request.can_read_body else {}
    if set(options) - {"keep_seed"}:
        raise _bad_request("reset accepts only keep_seed")
    keep_seed = options.get("keep_seed", True)
    if not isinstance(keep_seed, bool):
        raise _bad_request("keep_seed must be true or false")
    _state(request).reset(keep_seed=keep_seed)
    return web.Response(status=204)


# --- middlewares ---------------------------------------------------------------------------


def _initial_scope(path: str) -> str:
    if path.startswith("/sso/"):
        return "sso"
    if path.startswith("/connectapi/"):
        return "api"
    return "unknown"


def _is_control(path: str) -> bool:
    return path == CONTROL_PREFIX or path.startswith(CONTROL_PREFIX + "/")


@web.middleware
async def record_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Record every non-control request with its final status, whatever happened.

    Control calls are the test harness talking, not traffic to "Garmin", so they stay out.
    """
    if _is_control(request.path):
        return await handler(request)
    state = _state(request)
    attribution = _Attribution(_initial_scope(request.path))
    request[_ATTRIBUTION] = attribution
    started = state.clock()
    status: int | None = None
    try:
        response = await handler(request)
        status = response.status
        return response
    except _ConnectionDropped:
        return web.Response(status=499)  # never reaches the client: the transport is gone
    finally:
        state.record(_recorded(request, attribution, status, started))


def _recorded(
    request: web.Request, attribution: _Attribution, status: int | None, started: float
) -> RecordedRequest:
    logger.debug(
        "sandbox %s %s scope=%s account=%s status=%s",
        request.method,
        request.path,
        attribution.scope,
        attribution.account,
        status,
    )
    return RecordedRequest(
        method=request.method,
        path=request.path,
        scope=attribution.scope,
        account=attribution.account,
        token_account=attribution.token_account,
        caller=request.headers.get(CALLER_HEADER),
        status=status,
        at=started,
        delay_ms=attribution.delay_ms,
    )


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn every error into a JSON answer (4xx for bad input), never a bare 500 page."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.content_type == "application/json":
            raise
        headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        response = _json_error(exc.status, exc.reason.lower().replace(" ", "_"), exc.reason)
        if headers:
            response.headers.update(headers)
        return response
    except AccountExists as exc:
        return _json_error(409, "conflict", str(exc))
    except ValidationError as exc:
        return _json_error(400, "bad_request", str(exc))
    except UnknownAccount as exc:
        return _json_error(404, "not_found", f"no account {exc.args[0]!r}")
    except _ConnectionDropped:
        raise
    except Exception:
        logger.exception("sandbox handler failed on %s %s", request.method, request.path)
        return _json_error(500, "internal_error", "sandbox bug; see the sandbox log")


# --- assembly ------------------------------------------------------------------------------


def _add_garmin_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/sso/mobile/sso/en/sign-in", sign_in)
    router.add_post("/sso/mobile/api/login", login)
    router.add_post("/sso/mobile/api/mfa/verifyCode", verify_mfa)
    router.add_get("/sso/portal/sso/embed", embed)
    router.add_get("/connectapi/oauth-service/oauth/preauthorized", preauthorized)
    router.add_post("/connectapi/oauth-service/oauth/exchange/user/2.0", exchange)
    router.add_route("*", "/connectapi/{tail:.*}", connectapi)


def _add_control_routes(router: web.UrlDispatcher) -> None:
    account = CONTROL_PREFIX + "/accounts/{username}"
    router.add_post(CONTROL_PREFIX + "/accounts", create_account)
    router.add_get(CONTROL_PREFIX + "/accounts", list_accounts)
    router.add_get(account, get_account)
    router.add_patch(account, patch_account)
    router.add_put(account + "/faults/{scope}", put_fault)
    router.add_delete(account + "/faults/{scope}", delete_fault)
    router.add_post(account + "/revoke", revoke)
    router.add_post(account + "/expire-access-tokens", expire_access_tokens)
    router.add_put(CONTROL_PREFIX + "/faults/{scope}", put_fault)
    router.add_delete(CONTROL_PREFIX + "/faults/{scope}", delete_fault)
    router.add_get(CONTROL_PREFIX + "/settings", get_settings)
    router.add_patch(CONTROL_PREFIX + "/settings", patch_settings)
    router.add_get(CONTROL_PREFIX + "/requests", list_requests)
    router.add_delete(CONTROL_PREFIX + "/requests", clear_requests)
    router.add_get(CONTROL_PREFIX + "/issued-secrets", issued_secrets)
    router.add_post(CONTROL_PREFIX + "/reset", reset)


class RedactIssuedValues(logging.Filter):
    """Masks sandbox-issued values in log records (the message and any string extras).

    Garmin sends the service ticket in a query string, so aiohttp's access log line for
    `preauthorized` would otherwise print it; leak checks must find no secret in any log.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "sbx-" in message:
            record.msg = ISSUED_VALUE_PATTERN.sub("sbx-[redacted]", message)
            record.args = ()
        for key, value in list(vars(record).items()):
            if key != "msg" and isinstance(value, str) and "sbx-" in value:
                setattr(record, key, ISSUED_VALUE_PATTERN.sub("sbx-[redacted]", value))
        return True


def _redact_access_log() -> None:
    """Install RedactIssuedValues on aiohttp's access logger, once per process."""
    access = logging.getLogger("aiohttp.access")
    if not any(isinstance(existing, RedactIssuedValues) for existing in access.filters):
        access.addFilter(RedactIssuedValues())


async def _wake_sleepers(app: web.Application) -> None:
    """On shutdown, end every latency/hang sleep so the server can close promptly."""
    app[_STOPPING].set()


def create_sandbox_app(state: SandboxState | None = None) -> web.Application:
    """The sandbox as an aiohttp app; its state is reachable as `app[SANDBOX_STATE]`.

    Also masks sandbox-issued values in the process's `aiohttp.access` log (see
    RedactIssuedValues), whatever runner ends up serving the app.
    """
    app = web.Application(middlewares=[record_middleware, error_middleware])
    app[SANDBOX_STATE] = state if state is not None else SandboxState()
    app[_STOPPING] = asyncio.Event()
    app.on_shutdown.append(_wake_sleepers)
    _redact_access_log()
    _add_garmin_routes(app.router)
    _add_control_routes(app.router)
    return app
