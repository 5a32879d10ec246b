"""In-memory model of the Garmin side: accounts, SSO sessions, tickets, tokens, and a record.

Pure Python on purpose (no aiohttp): tests can script and inspect it directly, and the HTTP
layer in `app.py` stays a thin translation of this model into Garmin-shaped answers.

Everything the sandbox hands out as a credential (tickets, OAuth1 tokens and secrets, MFA
tokens, access and refresh tokens) is an opaque random string with a recognisable prefix and
is remembered in `issued_secrets()`, so a test can grep logs and databases for leaks. The
SSO session cookie is deliberately not in that list: clients legitimately keep it (for
example to resume an MFA challenge later).

The state is not thread-safe: the sandbox app runs on one event loop and only touches it
from there.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import hmac
import json
import logging
import os
import re
import secrets
import time
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import yaml

logger = logging.getLogger(__name__)

SCOPES: Final = ("signin", "login", "mfa", "preauthorized", "exchange", "api")
"""Where a fault can be injected; one per step of garth's login, plus every API call."""

TICKET_TTL_SECONDS: Final = 300
REFRESH_TOKEN_LIFETIME_SECONDS: Final = 7_776_000
DEFAULT_OAUTH2_LIFETIME_SECONDS: Final = 3600
ACCESS_TOKEN_GRACE_SECONDS: Final = 5.0
"""How long past its stated expiry an access token is still accepted (clock-skew tolerance).

garth refreshes as soon as `expires_at` passes, so it never relies on the grace; it is what
lets a token from an account with `oauth2_lifetime_seconds: 0` work right after the refresh
garth makes for it (every call refreshes, and every fresh token works).
"""
MAX_HANG_SECONDS: Final = 3600.0
MAX_LATENCY_MS: Final = 600_000
DEFAULT_HISTORY_DAYS: Final = 60
MAX_HISTORY_DAYS: Final = 3650
MAX_ACTIVITIES_PER_DAY: Final = 20
"""Upper bound of `activities_per_day`; activity ids reserve this many slots per day."""

DATA_FAMILIES: Final = ("activities", "summary", "sleep", "hrv", "stress", "body_battery")
"""The connectapi data endpoints, by family; keys of `Account.data_calls`."""

PREFIXES: Final = {
    "ticket": "ST-sbx-tk-",
    "oauth1": "sbx-o1-",
    "oauth1_secret": "sbx-o1s-",
    "mfa": "sbx-mfa-",
    "access": "sbx-at-",
    "refresh": "sbx-rt-",
    "jti": "sbx-jti-",
    "sso_session": "sbx-sso-",
}
"""Prefix of each kind of value the sandbox issues; a leak check can grep for "sbx-"."""
ISSUED_VALUE_PATTERN: Final = re.compile(r"(?:ST-)?sbx-[a-z0-9]+-[0-9a-f]{32}")
"""Matches anything `_issue` produces (secrets and the non-secret jti/SSO ids alike)."""

_COUNTER_OF_SCOPE: Final = {
    "login": "login_attempts",
    "mfa": "mfa_attempts",
    "exchange": "exchanges",
    "api": "api_calls",
}


class SandboxError(Exception):
    """A refusal the HTTP layer turns into a Garmin-shaped answer.

    `kind` is Garmin's `responseStatus.type` for SSO steps (e.g. INVALID_USERNAME_PASSWORD)
    and a short reason elsewhere; `status` is the HTTP status Garmin would use.
    """

    def __init__(self, status: int, kind: str, message: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.status = status
        self.kind = kind
        self.message = message


class ValidationError(ValueError):
    """Bad input from the control API or a seed file (mapped to HTTP 400)."""


class AccountExists(ValidationError):
    """An account with that username is already present (mapped to HTTP 409)."""


class UnknownAccount(KeyError):
    """No account with that username (mapped to HTTP 404)."""


# --- validation helpers ------------------------------------------------------------------


def _require_str(data: Mapping[str, Any], key: str, *, allow_empty: bool = False) -> str:
    value = data.get(key)
    if not isinstance(value, str) or (not allow_empty and not value):
        raise ValidationError(f"{key} must be a non-empty string")
    return value


def _optional_str(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise ValidationError(f"{key} must be a non-empty string or null (quote it in YAML)")
    return value


def _int_in(value: Any, key: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValidationError(f"{key} must be an integer between {low} and {high}")
    return value


def _number_in(value: Any, key: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise ValidationError(f"{key} must be a number between {low} and {high}")
    return float(value)


def _bool(value: Any, key: str) -> bool:
    if not isinstance(value, bool):
        raise ValidationError(f"{key} must be true or false")
    return value


def _reject_unknown_keys(data: Mapping[str, Any], allowed: Iterable[str], what: str) -> None:
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise ValidationError(f"unknown {what} field(s): {', '.join(unknown)}")


def validate_scope(scope: str) -> str:
    """Return `scope` if faults can be injected there, else raise ValidationError."""
    if scope not in SCOPES:
        raise ValidationError(f"unknown scope {scope!r}; expected one of {', '.join(SCOPES)}")
    return scope


# --- faults ------------------------------------------------------------------------------


@dataclass
class Fault:
    """A scripted misbehaviour for one scope, like Garmin's outages and rate limits.

    Effects, in order: sleep `hang_seconds`, then drop the connection (`reset`), or answer
    an HTML page (`html`), or truncated JSON (`truncated`), or a JSON error with `status`.
    A fault with only `hang_seconds` delays the real answer. `times` limits the fault to the
    next N matching requests; None keeps it until removed.
    """

    status: int | None = None
    retry_after: int | None = None
    hang_seconds: float | None = None
    reset: bool = False
    truncated: bool = False
    html: bool = False
    times: int | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Fault:
        """Build a validated fault from JSON/YAML input."""
        if not isinstance(data, Mapping):
            raise ValidationError("a fault must be an object")
        _reject_unknown_keys(data, (f.name for f in dataclasses.fields(cls)), "fault")
        fault = cls(
            status=_optional_status(data.get("status")),
            retry_after=_optional_int(data.get("retry_after"), "retry_after", 0, 86_400),
            hang_seconds=_optional_number(data.get("hang_seconds"), "hang_seconds"),
            reset=_bool(data.get("reset", False), "reset"),
            truncated=_bool(data.get("truncated", False), "truncated"),
            html=_bool(data.get("html", False), "html"),
            times=_optional_int(data.get("times"), "times", 1, 1_000_000),
        )
        fault.check()
        return fault

    def check(self) -> None:
        """Refuse faults that would do nothing, so a typo does not silently pass a test."""
        has_effect = (
            self.status is not None
            or self.hang_seconds is not None
            or self.reset
            or self.truncated
            or self.html
        )
        if not has_effect:
            raise ValidationError(
                "a fault needs at least one of status, hang_seconds, reset, truncated, html"
            )
        if self.retry_after is not None and self.status is None:
            raise ValidationError("retry_after needs a status (e.g. 429 or 503)")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view (used by the control API and the seed format)."""
        return dataclasses.asdict(self)


def _optional_status(value: Any) -> int | None:
    if value is None:
        return None
    status = _int_in(value, "status", 200, 599)
    if status in (204, 304):
        raise ValidationError("status must allow a body (not 204 or 304)")
    return status


def _optional_int(value: Any, key: str, low: int, high: int) -> int | None:
    return None if value is None else _int_in(value, key, low, high)


def _optional_number(value: Any, key: str) -> float | None:
    return None if value is None else _number_in(value, key, 0.0, MAX_HANG_SECONDS)


# --- accounts ----------------------------------------------------------------------------


def default_profile_id(username: str) -> int:
    """A stable 8-digit id derived from the username: same account, same id, every run."""
    return 10_000_000 + zlib.crc32(username.casefold().encode()) % 90_000_000


_PATCHABLE_FIELDS: Final = (
    "password",
    "mfa_code",
    "display_name",
    "full_name",
    "oauth2_lifetime_seconds",
    "latency_ms",
    "oauth1_revoked",
    "history_days",
    "activities_per_day",
    "malformed_activity_every",
)
_CREATABLE_FIELDS: Final = ("username", "profile_id", "faults", *_PATCHABLE_FIELDS)


@dataclass
class Account:
    """A Garmin Connect user as the sandbox sees it, with its faults and usage counters.

    Counters count every request attributed to the account in that scope, including those
    answered by a fault or refused: they show what the client attempted. `refreshes`
    counts successful exchanges without an `audience` (garth's refresh, not its login).
    `data_calls` splits the GETs to the data endpoints (see `data.py`) by family, so a test
    can check how many pages a sync fetched or which days a second sync fetched again.

    The data options shape what `data.py` generates: `history_days` of activities before
    today, `activities_per_day` per day, and every `malformed_activity_every`-th activity
    broken (so a client can prove it skips a bad item instead of aborting the sync).
    """

    username: str
    password: str
    mfa_code: str | None = None
    display_name: str = ""
    full_name: str = ""
    profile_id: int = 0
    oauth2_lifetime_seconds: int = DEFAULT_OAUTH2_LIFETIME_SECONDS
    oauth1_revoked: bool = False
    faults: dict[str, Fault] = field(default_factory=dict)
    latency_ms: int = 0
    history_days: int = DEFAULT_HISTORY_DAYS
    activities_per_day: int = 1
    malformed_activity_every: int | None = None
    login_attempts: int = 0
    mfa_attempts: int = 0
    exchanges: int = 0
    refreshes: int = 0
    api_calls: int = 0
    data_calls: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DATA_FAMILIES, 0))

    def __post_init__(self) -> None:
        if not self.display_name:
            self.display_name = self.username.split("@", 1)[0]
        if not self.full_name:
            self.full_name = self.display_name.replace(".", " ").title()
        if not self.profile_id:
            self.profile_id = default_profile_id(self.username)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Account:
        """Build a validated account from control-API JSON or a seed entry."""
        if not isinstance(data, Mapping):
            raise ValidationError("an account must be an object")
        _reject_unknown_keys(data, _CREATABLE_FIELDS, "account")
        account = cls(
            username=_require_str(data, "username"),
            password=_require_str(data, "password"),
            profile_id=_int_in(data.get("profile_id", 0), "profile_id", 0, 2**53),
            faults=_faults_from(data.get("faults")),
        )
        account.apply_changes({k: v for k, v in data.items() if k in _PATCHABLE_FIELDS})
        return account

    def apply_changes(self, changes: Mapping[str, Any]) -> None:
        """Validate and apply a PATCH; all-or-nothing so a bad field changes nothing."""
        _reject_unknown_keys(changes, _PATCHABLE_FIELDS, "account")
        staged = _validated_changes(changes)
        for key, value in staged.items():
            setattr(self, key, value)

    def to_dict(self) -> dict[str, Any]:
        """Public view with counters; the password is never echoed back."""
        view = dataclasses.asdict(self)
        view.pop("password")
        view["faults"] = {scope: fault.to_dict() for scope, fault in self.faults.items()}
        view["mfa_enabled"] = self.mfa_code is not None
        return view

    def count(self, scope: str) -> None:
        """Bump the counter that belongs to `scope`, if that scope has one."""
        counter = _COUNTER_OF_SCOPE.get(scope)
        if counter is not None:
            setattr(self, counter, getattr(self, counter) + 1)

    def count_data(self, family: str) -> None:
        """Bump the data-call counter of one endpoint family (a key of DATA_FAMILIES)."""
        self.data_calls[family] = self.data_calls.get(family, 0) + 1


def _validated_changes(changes: Mapping[str, Any]) -> dict[str, Any]:
    staged: dict[str, Any] = {}
    for key, value in changes.items():
        if key == "password":
            staged[key] = _require_str(changes, key)
        elif key == "mfa_code":
            staged[key] = _optional_str(changes, key)
        elif key in ("display_name", "full_name"):
            staged[key] = _require_str(changes, key)
        elif key == "oauth2_lifetime_seconds":
            staged[key] = _int_in(value, key, 0, 10 * 365 * 86_400)
        elif key == "latency_ms":
            staged[key] = _int_in(value, key, 0, MAX_LATENCY_MS)
        elif key == "oauth1_revoked":
            staged[key] = _bool(value, key)
        elif key == "history_days":
            staged[key] = _int_in(value, key, 0, MAX_HISTORY_DAYS)
        elif key == "activities_per_day":
            staged[key] = _int_in(value, key, 0, MAX_ACTIVITIES_PER_DAY)
        elif key == "malformed_activity_every":
            staged[key] = _optional_int(value, key, 2, 1000)
    return staged


def _faults_from(data: Any) -> dict[str, Fault]:
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ValidationError("faults must be an object of scope -> fault")
    return {validate_scope(str(scope)): Fault.from_dict(f) for scope, f in data.items()}


# --- issued credentials ------------------------------------------------------------------


@dataclass
class SsoSession:
    """The sign-in page's cookie; an MFA challenge is bound to it, as at Garmin."""

    session_id: str
    created_at: float
    mfa_username: str | None = None


@dataclass
class Ticket:
    """A CAS service ticket: single use, bound to one account, short-lived."""

    value: str
    username: str
    issued_at: float
    via_mfa: bool
    used: bool = False


@dataclass
class OAuth1Grant:
    """A long-lived OAuth1 token pair; garth exchanges it for access tokens."""

    token: str
    secret: str
    username: str
    mfa_token: str | None
    revoked: bool = False


@dataclass
class AccessGrant:
    """An OAuth2 access token; valid until its own expiry unless expired by the control API."""

    token: str
    refresh_token: str
    jti: str
    username: str
    issued_at: float
    expires_at: float
    revoked: bool = False


@dataclass(frozen=True)
class LoginResult:
    """Outcome of a correct password: a ticket, or an MFA challenge bound to the session."""

    ticket: str | None
    mfa_required: bool


@dataclass(frozen=True)
class RecordedRequest:
    """One request the sandbox received, attributed to the accounts and tokens involved.

    `account` is the account the request resolved to (login username, ticket owner, token
    owner); `token_account` is the owner of the credential it presented (access token for
    API calls, OAuth1 token for signed calls). `caller` is the `X-Sandbox-Caller` header;
    `status` is None when the sandbox dropped the connection or the client went away.
    `delay_ms` is the latency the sandbox added before answering.
    The path carries no query string, so the record never holds a ticket.
    """

    method: str
    path: str
    scope: str
    account: str | None
    token_account: str | None
    caller: str | None
    status: int | None
    at: float
    delay_ms: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view for `GET /_sandbox/requests`."""
        return dataclasses.asdict(self)


# --- the state ---------------------------------------------------------------------------


class SandboxState:
    """Everything the fake Garmin knows; one instance per sandbox app.

    The accounts passed in are the seed: `reset()` restores copies of them. `clock` drives
    every expiry (tickets, access tokens) so tests can move time without sleeping.
    """

    def __init__(
        self,
        accounts: Iterable[Account] = (),
        *,
        clock: Callable[[], float] = time.time,
        access_token_grace_seconds: float = ACCESS_TOKEN_GRACE_SECONDS,
    ) -> None:
        self.clock = clock
        self.access_token_grace_seconds = access_token_grace_seconds
        self._seed = [copy.deepcopy(account) for account in accounts]
        self.accounts: dict[str, Account] = {}
        self.global_faults: dict[str, Fault] = {}
        self.requests: list[RecordedRequest] = []
        self._sso_sessions: dict[str, SsoSession] = {}
        self._tickets: dict[str, Ticket] = {}
        self._oauth1: dict[str, OAuth1Grant] = {}
        self._access: dict[str, AccessGrant] = {}
        self._issued: list[str] = []
        # the latency of requests attributed to no account: the sign-in and embed pages
        # carry no username, yet at Garmin they take as long as any other call
        self.latency_ms = 0
        self._load_seed()

    # accounts ----------------------------------------------------------------------------

    def _load_seed(self) -> None:
        for account in self._seed:
            self.add_account(copy.deepcopy(account))

    def add_account(self, account: Account) -> Account:
        """Register an account; AccountExists if the username (any case) is taken."""
        key = account.username.casefold()
        if key in self.accounts:
            raise AccountExists(f"account {account.username!r} already exists")
        self.accounts[key] = account
        logger.info("sandbox account added: %s", account.username)
        return account

    def get_account(self, username: str) -> Account | None:
        """The account for `username` (case-insensitive, like Garmin's e-mail logins)."""
        return self.accounts.get(username.casefold())

    def require_account(self, username: str) -> Account:
        """Like get_account, but UnknownAccount if missing."""
        account = self.get_account(username)
        if account is None:
            raise UnknownAccount(username)
        return account

    def update_account(self, username: str, changes: Mapping[str, Any]) -> Account:
        """Apply a validated PATCH to an account."""
        account = self.require_account(username)
        account.apply_changes(changes)
        return account

    # settings ----------------------------------------------------------------------------

    def settings(self) -> dict[str, Any]:
        """The sandbox-wide settings, as `GET /_sandbox/settings` shows them."""
        return {"latency_ms": self.latency_ms}

    def update_settings(self, changes: Mapping[str, Any]) -> dict[str, Any]:
        """Apply a validated PATCH of the sandbox-wide settings; all or nothing."""
        unknown = sorted(set(changes) - {"latency_ms"})
        if unknown:
            raise ValidationError(f"unknown settings: {', '.join(unknown)}")
        if "latency_ms" in changes:
            self.latency_ms = _int_in(changes["latency_ms"], "latency_ms", 0, MAX_LATENCY_MS)
        return self.settings()

    def latency_for(self, username: str | None) -> int:
        """Milliseconds to wait before answering: the account's own latency, or the
        sandbox-wide one for a request attributed to no known account."""
        account = self.get_account(username) if username else None
        return account.latency_ms if account is not None else self.latency_ms

    def count(self, username: str | None, scope: str) -> None:
        """Bump the per-scope counter of `username`'s account, if any."""
        account = self.get_account(username) if username else None
        if account is not None:
            account.count(scope)

    def count_data(self, username: str | None, family: str) -> None:
        """Bump `username`'s data-call counter for one endpoint family, if the account exists."""
        account = self.get_account(username) if username else None
        if account is not None:
            account.count_data(family)

    # clock -------------------------------------------------------------------------------

    def utc_now(self) -> dt.datetime:
        """The sandbox clock as an aware UTC datetime; its date is the data endpoints' today."""
        return dt.datetime.fromtimestamp(self.clock(), tz=dt.UTC)

    # faults ------------------------------------------------------------------------------

    def set_fault(self, username: str | None, scope: str, fault: Fault) -> None:
        """Install a fault for one account, or for everyone when `username` is None."""
        fault.check()
        target = self.global_faults if username is None else self.require_account(username).faults
        target[validate_scope(scope)] = dataclasses.replace(fault)  # own copy: `times` counts down

    def clear_fault(self, username: str | None, scope: str) -> None:
        """Remove a fault (no error if none was set)."""
        target = self.global_faults if username is None else self.require_account(username).faults
        target.pop(validate_scope(scope), None)

    def take_fault(self, scope: str, username: str | None) -> Fault | None:
        """The fault that applies to this request, consuming one of its `times`.

        The account's own fault wins over a global one. Sign-in requests carry no username,
        so an account's "signin" fault applies to every sign-in (documented limitation).
        """
        for faults in self._fault_sources(scope, username):
            fault = faults.get(scope)
            if fault is not None:
                self._consume(faults, scope, fault)
                return fault
        return None

    def _fault_sources(self, scope: str, username: str | None) -> list[dict[str, Fault]]:
        account = self.get_account(username) if username else None
        if account is not None:
            return [account.faults, self.global_faults]
        if scope == "signin":
            return [self.global_faults, *(a.faults for a in self.accounts.values())]
        return [self.global_faults]

    @staticmethod
    def _consume(faults: dict[str, Fault], scope: str, fault: Fault) -> None:
        if fault.times is None:
            return
        fault.times -= 1
        if fault.times <= 0:
            del faults[scope]

    # secrets -----------------------------------------------------------------------------

    def _issue(self, prefix: str, *, secret: bool = True) -> str:
        value = f"{prefix}{secrets.token_hex(16)}"
        if secret:
            self._issued.append(value)
        return value

    def issued_secrets(self) -> list[str]:
        """Every credential issued so far, oldest first; survives reset() on purpose."""
        return list(self._issued)

    # SSO ---------------------------------------------------------------------------------

    def open_sso_session(self) -> str:
        """A new sign-in session id (the value of the SSO cookie)."""
        session_id = self._issue(PREFIXES["sso_session"], secret=False)
        self._sso_sessions[session_id] = SsoSession(session_id, self.clock())
        return session_id

    def has_sso_session(self, session_id: str | None) -> bool:
        """True if `session_id` is a cookie this sandbox issued."""
        return session_id is not None and session_id in self._sso_sessions

    def mfa_username(self, session_id: str | None) -> str | None:
        """The account whose MFA challenge is bound to this SSO session, if any."""
        session = self._sso_sessions.get(session_id) if session_id else None
        return session.mfa_username if session else None

    def login(self, session_id: str | None, username: str, password: str) -> LoginResult:
        """Check credentials inside an SSO session: a ticket, or an MFA challenge."""
        session = self._sso_sessions.get(session_id) if session_id else None
        if session is None:
            raise SandboxError(403, "INVALID_SESSION", "sign-in session cookie missing")
        account = self.get_account(username)
        if account is None or not hmac.compare_digest(account.password.encode(), password.encode()):
            session.mfa_username = None
            raise SandboxError(401, "INVALID_USERNAME_PASSWORD", "Invalid username or password")
        if account.mfa_code is not None:
            session.mfa_username = account.username
            return LoginResult(ticket=None, mfa_required=True)
        session.mfa_username = None
        return LoginResult(ticket=self._new_ticket(account, via_mfa=False), mfa_required=False)

    def verify_mfa(self, session_id: str | None, code: str) -> str:
        """Check an MFA code against the challenge of this SSO session; returns a ticket.

        A wrong code leaves the challenge usable (Garmin allows retries; the sandbox only
        counts them). A right code consumes the challenge.
        """
        username = self.mfa_username(session_id)
        account = self.get_account(username) if username else None
        if account is None or account.mfa_code is None or session_id is None:
            raise SandboxError(400, "INVALID_SESSION", "No MFA challenge for this session")
        if not hmac.compare_digest(account.mfa_code.encode(), code.encode()):
            raise SandboxError(200, "INVALID_MFA_CODE", "Invalid verification code")
        self._sso_sessions[session_id].mfa_username = None
        return self._new_ticket(account, via_mfa=True)

    def _new_ticket(self, account: Account, *, via_mfa: bool) -> str:
        ticket = Ticket(self._issue(PREFIXES["ticket"]), account.username, self.clock(), via_mfa)
        self._tickets[ticket.value] = ticket
        return ticket.value

    # OAuth1 ------------------------------------------------------------------------------

    def ticket_owner(self, ticket: str | None) -> str | None:
        """The account a ticket was issued to (even if used or expired), for attribution."""
        found = self._tickets.get(ticket) if ticket else None
        return found.username if found else None

    def redeem_ticket(self, ticket: str | None) -> OAuth1Grant:
        """Trade a fresh, unused ticket for an OAuth1 token pair (the ticket is burnt)."""
        found = self._tickets.get(ticket) if ticket else None
        if found is None or found.used:
            raise SandboxError(401, "INVALID_TICKET", "ticket unknown or already used")
        found.used = True
        if self.clock() - found.issued_at > TICKET_TTL_SECONDS:
            raise SandboxError(401, "INVALID_TICKET", "ticket expired")
        mfa_token = self._issue(PREFIXES["mfa"]) if found.via_mfa else None
        grant = OAuth1Grant(
            token=self._issue(PREFIXES["oauth1"]),
            secret=self._issue(PREFIXES["oauth1_secret"]),
            username=found.username,
            mfa_token=mfa_token,
        )
        self._oauth1[grant.token] = grant
        return grant

    def oauth1_owner(self, token: str | None) -> str | None:
        """The account an OAuth1 token belongs to (even if revoked), for attribution."""
        grant = self._oauth1.get(token) if token else None
        return grant.username if grant else None

    def revoke_oauth1(self, username: str) -> int:
        """Revoke every OAuth1 token of the account, so no refresh works; returns how many.

        Tokens issued by later logins work again, as after a Garmin password change.
        """
        account = self.require_account(username)
        revoked = 0
        for grant in self._oauth1.values():
            if grant.username == account.username and not grant.revoked:
                grant.revoked = True
                revoked += 1
        logger.info("sandbox revoked %d OAuth1 token(s) of %s", revoked, account.username)
        return revoked

    # OAuth2 ------------------------------------------------------------------------------

    def exchange(self, oauth_token: str | None, *, refresh: bool) -> AccessGrant:
        """Issue a new access token for a valid OAuth1 token; older ones stay valid."""
        grant = self._oauth1.get(oauth_token) if oauth_token else None
        account = self.get_account(grant.username) if grant else None
        if grant is None or account is None:
            raise SandboxError(401, "INVALID_TOKEN", "OAuth1 token unknown")
        if grant.revoked or account.oauth1_revoked:
            raise SandboxError(401, "TOKEN_REVOKED", "OAuth1 token revoked")
        now = self.clock()
        access = AccessGrant(
            token=self._issue(PREFIXES["access"]),
            refresh_token=self._issue(PREFIXES["refresh"]),
            jti=self._issue(PREFIXES["jti"], secret=False),
            username=account.username,
            issued_at=now,
            expires_at=now + account.oauth2_lifetime_seconds,
        )
        self._access[access.token] = access
        if refresh:
            account.refreshes += 1
        return access

    def access_owner(self, token: str | None) -> str | None:
        """The account an access token belongs to (even if expired), for attribution."""
        grant = self._access.get(token) if token else None
        return grant.username if grant else None

    def authorize(self, token: str | None) -> Account:
        """The account behind a valid access token; SandboxError(401) otherwise."""
        grant = self._access.get(token) if token else None
        account = self.get_account(grant.username) if grant else None
        if grant is None or account is None:
            raise SandboxError(401, "INVALID_TOKEN", "access token unknown")
        if grant.revoked or self.clock() > grant.expires_at + self.access_token_grace_seconds:
            raise SandboxError(401, "TOKEN_EXPIRED", "access token expired")
        return account

    def expire_access_tokens(self, username: str) -> int:
        """Make every access token of the account answer 401 from now on; returns how many."""
        account = self.require_account(username)
        expired = 0
        for grant in self._access.values():
            if grant.username == account.username and not grant.revoked:
                grant.revoked = True
                expired += 1
        logger.info("sandbox expired %d access token(s) of %s", expired, account.username)
        return expired

    # record and reset ---------------------------------------------------------------------

    def record(self, request: RecordedRequest) -> None:
        """Append to the request record."""
        self.requests.append(request)

    def clear_requests(self) -> None:
        """Forget the request record (accounts and tokens stay)."""
        self.requests.clear()

    def reset(self, *, keep_seed: bool = True) -> None:
        """Drop accounts, faults, sessions, tokens, the record and the sandbox-wide latency;
        reload the seed if asked.

        `issued_secrets()` is kept: a leak check must still find secrets issued before.
        """
        self.accounts.clear()
        self.global_faults.clear()
        self.requests.clear()
        self._sso_sessions.clear()
        self._tickets.clear()
        self._oauth1.clear()
        self._access.clear()
        self.latency_ms = 0
        if keep_seed:
            self._load_seed()
        logger.info("sandbox reset (seed %s)", "reloaded" if keep_seed else "dropped")


# --- seed files --------------------------------------------------------------------------


def load_seed(path: str | os.PathLike[str]) -> list[Account]:
    """Read accounts from a YAML or JSON seed file: `{"accounts": [{username, ...}, ...]}`.

    Lets a sandbox started as its own process come up with known users; invalid content
    raises ValidationError naming the problem (a missing file raises OSError).
    """
    source = Path(path)
    text = source.read_text(encoding="utf-8")
    try:
        data = json.loads(text) if source.suffix.lower() == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise ValidationError(f"seed file {source.name} is not valid YAML/JSON") from exc
    return accounts_from_seed(data)


def accounts_from_seed(data: Any) -> list[Account]:
    """Validate parsed seed data and build its accounts (usernames must be unique)."""
    if not isinstance(data, Mapping) or not isinstance(data.get("accounts"), list):
        raise ValidationError("a seed must be an object with an 'accounts' list")
    _reject_unknown_keys(data, ("accounts",), "seed")
    accounts: list[Account] = []
    seen: set[str] = set()
    for index, item in enumerate(data["accounts"]):
        try:
            account = Account.from_dict(item)
        except ValidationError as exc:
            raise ValidationError(f"seed account #{index + 1}: {exc}") from exc
        key = account.username.casefold()
        if key in seen:
            raise ValidationError(f"seed account #{index + 1}: duplicate {account.username!r}")
        seen.add(key)
        accounts.append(account)
    return accounts
