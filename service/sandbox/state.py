"""In-memory model of the Garmin side: accounts, SSO, tokens, faults, and a request record.

Pure Python on purpose (no aiohttp): tests can script and inspect it directly, and the HTTP
layer stays a thin translation of this model into Garmin-shaped answers. `SandboxState` is
the one object tests talk to; it keeps the accounts, the faults and the record itself and
hands SSO to `sso.SsoDesk`, garth's tokens to `oauth.OAuthDesk` and DI tokens to
`diauth.DiDesk` (reachable as `state.di`), which share its clock, its accounts and its
`Issuer` (so `issued_secrets()` lists every credential, see `issued.py`).

The state is not thread-safe: the sandbox app runs on one event loop and only touches it
from there.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from . import faults as fault_tables
from .accounts import MAX_LATENCY_MS, Account
from .diauth import DiDesk
from .errors import AccountExists, UnknownAccount, ValidationError
from .faults import Fault, validate_scope
from .fields import int_in
from .issued import PREFIXES as PREFIXES
from .issued import Issuer
from .oauth import ACCESS_TOKEN_GRACE_SECONDS, AccessGrant, OAuth1Grant, OAuthDesk
from .sso import LoginResult, SsoDesk

logger = logging.getLogger(__name__)


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


def day_end_clock(clock: Callable[[], float] = time.time) -> Callable[[], float]:
    """A sandbox clock that reads the last moment of `clock`'s current UTC day.

    For tests that compare complete days with the activity list, which holds only activities
    that have started: by the end of the UTC day every activity of today has, for accounts
    east of UTC and for those west of it whose local evening activities start before UTC
    midnight (a UTC-3 account with up to three a day, for one). "Today" stays the caller's.
    """

    def read() -> float:
        today = dt.datetime.fromtimestamp(clock(), tz=dt.UTC).date()
        return dt.datetime.combine(today, dt.time.max, tzinfo=dt.UTC).timestamp()

    return read


class SandboxState:
    """Everything the fake Garmin knows; one instance per sandbox app.

    The accounts passed in are the seed: `reset()` restores copies of them. `clock` drives
    every expiry (tickets, access tokens) and the data endpoints' "now", so tests can move
    time without sleeping; it may be replaced on a live state.
    """

    def __init__(
        self,
        accounts: Iterable[Account] = (),
        *,
        clock: Callable[[], float] = time.time,
        access_token_grace_seconds: float = ACCESS_TOKEN_GRACE_SECONDS,
    ) -> None:
        self.clock = clock
        self._seed = [copy.deepcopy(account) for account in accounts]
        self.accounts: dict[str, Account] = {}
        self.global_faults: dict[str, Fault] = {}
        self.requests: list[RecordedRequest] = []
        self._issuer = Issuer()
        self.sso = SsoDesk(self.get_account, self._now, self._issuer)
        self.oauth = OAuthDesk(
            self.get_account, self._now, self._issuer, grace_seconds=access_token_grace_seconds
        )
        self.di = DiDesk(self.get_account, self._now, self._issuer, access_token_grace_seconds)
        # the latency of requests attributed to no account: the sign-in and embed pages
        # carry no username, yet at Garmin they take as long as any other call
        self.latency_ms = 0
        self._load_seed()

    def _now(self) -> float:
        return self.clock()  # read at each call: tests swap `clock` on a live state

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
            self.latency_ms = int_in(changes["latency_ms"], "latency_ms", 0, MAX_LATENCY_MS)
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
        return fault_tables.take(self._fault_sources(scope, username), scope)

    def _fault_sources(self, scope: str, username: str | None) -> list[dict[str, Fault]]:
        account = self.get_account(username) if username else None
        if account is not None:
            return [account.faults, self.global_faults]
        if scope in ("signin", "portal_signin"):
            return [self.global_faults, *(a.faults for a in self.accounts.values())]
        return [self.global_faults]

    # secrets -----------------------------------------------------------------------------

    def issued_secrets(self) -> list[str]:
        """Every credential issued so far, oldest first; survives reset() on purpose."""
        return self._issuer.secrets()

    # SSO (see sso.py) ----------------------------------------------------------------------

    def open_sso_session(self) -> str:
        """A new sign-in session id (the value of the SSO cookie)."""
        return self.sso.open_session()

    def has_sso_session(self, session_id: str | None) -> bool:
        """True if `session_id` is a cookie this sandbox issued."""
        return self.sso.has_session(session_id)

    def mfa_username(self, session_id: str | None) -> str | None:
        """The account whose MFA challenge is bound to this SSO session, if any."""
        return self.sso.mfa_username(session_id)

    def login(
        self, session_id: str | None, username: str, password: str, service: str | None = None
    ) -> LoginResult:
        """Check credentials inside an SSO session: a ticket for `service`, or an MFA
        challenge."""
        return self.sso.login(session_id, username, password, service)

    def verify_mfa(self, session_id: str | None, code: str, service: str | None = None) -> str:
        """Check an MFA code against the challenge of this SSO session; returns a ticket."""
        return self.sso.verify_mfa(session_id, code, service)

    def ticket_owner(self, ticket: str | None) -> str | None:
        """The account a ticket was issued to (even if used or expired), for attribution."""
        found = self.sso.ticket(ticket)
        return found.username if found else None

    # tokens (see oauth.py) -----------------------------------------------------------------

    @property
    def access_token_grace_seconds(self) -> float:
        """How long past its expiry an access token is still accepted."""
        return self.oauth.grace_seconds

    @access_token_grace_seconds.setter
    def access_token_grace_seconds(self, seconds: float) -> None:
        self.oauth.grace_seconds = seconds
        self.di.grace_seconds = seconds

    def redeem_ticket(self, ticket: str | None) -> OAuth1Grant:
        """Trade a fresh, unused ticket for an OAuth1 token pair (the ticket is burnt)."""
        return self.oauth.redeem(self.sso.ticket(ticket))

    def oauth1_owner(self, token: str | None) -> str | None:
        """The account an OAuth1 token belongs to (even if revoked), for attribution."""
        return self.oauth.oauth1_owner(token)

    def revoke_oauth1(self, username: str) -> int:
        """A Garmin password change: revoke every OAuth1 token and every DI refresh token of
        the account, so no refresh works with either engine; returns how many.

        Tokens issued by later logins work again. Access tokens stay live until they expire.
        """
        account = self.require_account(username)
        return self.oauth.revoke_oauth1(account) + self.di.revoke_refresh_tokens(account)

    revoke = revoke_oauth1

    def exchange(self, oauth_token: str | None, *, refresh: bool) -> AccessGrant:
        """Issue a new access token for a valid OAuth1 token; older ones stay valid."""
        return self.oauth.exchange(oauth_token, refresh=refresh)

    def access_owner(self, token: str | None) -> str | None:
        """The account an OAuth2 or DI access token belongs to (even if expired)."""
        return self.oauth.access_owner(token) or self.di.access_owner(token)

    def authorize(self, token: str | None) -> Account:
        """The account behind a valid OAuth2 or DI access token; SandboxError(401) otherwise."""
        if self.di.issued(token):
            return self.di.authorize(token)
        return self.oauth.authorize(token)

    def expire_access_tokens(self, username: str) -> int:
        """Make every access token of the account (OAuth2 and DI) answer 401 from now on;
        returns how many. The refresh credentials stay good."""
        account = self.require_account(username)
        return self.oauth.expire_access_tokens(account) + self.di.expire_access_tokens(account)

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
        self.sso.clear()
        self.oauth.clear()
        self.di.clear()
        self.latency_ms = 0
        if keep_seed:
            self._load_seed()
        logger.info("sandbox reset (seed %s)", "reloaded" if keep_seed else "dropped")
