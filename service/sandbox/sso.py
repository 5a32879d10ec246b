"""Garmin's SSO, as a model: sign-in sessions, password and MFA checks, service tickets.

An MFA challenge is bound to the sign-in session (the SSO cookie) that got MFA_REQUIRED, as
at Garmin, whichever flow (mobile or portal URL) posts the code; a wrong code leaves it
usable for the right one, up to the account's `mfa_max_attempts`. A ticket is single use,
bound to one account and short-lived, and issued for the `service` named by the request that
got it (the credential POST, or the MFA POST when one was needed), as CAS does: the DI token
endpoint accepts it only with that `service_url`. The HTTP face is `sso_routes.py`; tickets
are redeemed for OAuth1 tokens in `oauth.py` and for DI tokens in `diauth.py`.

A wrong MFA code raises SandboxError with the account's `mfa_invalid_status` (Garmin's status
for it is undocumented; clients have seen 200 and 4xx) and kind INVALID_MFA_CODE.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from .accounts import Account
from .errors import SandboxError
from .issued import Issuer

TICKET_TTL_SECONDS: Final = 300

FindAccount = Callable[[str], Account | None]


@dataclass
class SsoSession:
    """The sign-in page's cookie; an MFA challenge is bound to it, as at Garmin."""

    session_id: str
    created_at: float
    mfa_username: str | None = None
    mfa_service: str | None = None
    wrong_codes: int = 0


@dataclass
class Ticket:
    """A CAS service ticket: single use, bound to one account, short-lived."""

    value: str
    username: str
    issued_at: float
    via_mfa: bool
    service: str | None = None
    used: bool = False


@dataclass(frozen=True)
class LoginResult:
    """Outcome of a correct password: a ticket, or an MFA challenge bound to the session."""

    ticket: str | None
    mfa_required: bool


class SsoDesk:
    """The SSO sessions and tickets of one sandbox."""

    def __init__(self, find: FindAccount, clock: Callable[[], float], issuer: Issuer) -> None:
        self._find = find
        self._clock = clock
        self._issuer = issuer
        self._sessions: dict[str, SsoSession] = {}
        self._tickets: dict[str, Ticket] = {}

    def clear(self) -> None:
        """Forget every session and ticket."""
        self._sessions.clear()
        self._tickets.clear()

    def open_session(self) -> str:
        """A new sign-in session id (the value of the SSO cookie)."""
        session_id = self._issuer.issue("sso_session", secret=False)
        self._sessions[session_id] = SsoSession(session_id, self._clock())
        return session_id

    def has_session(self, session_id: str | None) -> bool:
        """True if `session_id` is a cookie this sandbox issued."""
        return session_id is not None and session_id in self._sessions

    def mfa_username(self, session_id: str | None) -> str | None:
        """The account whose MFA challenge is bound to this SSO session, if any."""
        session = self._sessions.get(session_id) if session_id else None
        return session.mfa_username if session else None

    def login(
        self, session_id: str | None, username: str, password: str, service: str | None = None
    ) -> LoginResult:
        """Check credentials inside an SSO session: a ticket for `service`, or an MFA
        challenge (a new one: earlier wrong codes no longer count)."""
        session = self._sessions.get(session_id) if session_id else None
        if session is None:
            raise SandboxError(403, "INVALID_SESSION", "sign-in session cookie missing")
        account = self._find(username)
        if account is None or not hmac.compare_digest(account.password.encode(), password.encode()):
            session.mfa_username = None
            raise SandboxError(401, "INVALID_USERNAME_PASSWORD", "Invalid username or password")
        if account.mfa_code is not None:
            session.mfa_username = account.username
            session.mfa_service = service
            session.wrong_codes = 0
            return LoginResult(ticket=None, mfa_required=True)
        session.mfa_username = None
        ticket = self._new_ticket(account, via_mfa=False, service=service)
        return LoginResult(ticket=ticket, mfa_required=False)

    def verify_mfa(self, session_id: str | None, code: str, service: str | None = None) -> str:
        """Check an MFA code against the challenge of this SSO session; returns a ticket
        for `service` (the login's service when the MFA POST names none).

        A wrong code leaves the challenge usable (Garmin allows retries) until the account's
        `mfa_max_attempts` wrong codes, after which the session has no challenge. A right
        code consumes the challenge.
        """
        username = self.mfa_username(session_id)
        account = self._find(username) if username else None
        if account is None or account.mfa_code is None or session_id is None:
            raise SandboxError(400, "INVALID_SESSION", "No MFA challenge for this session")
        session = self._sessions[session_id]
        if not hmac.compare_digest(account.mfa_code.encode(), code.encode()):
            session.wrong_codes += 1
            limit = account.mfa_max_attempts
            if limit is not None and session.wrong_codes >= limit:
                session.mfa_username = None
            raise SandboxError(
                account.mfa_invalid_status, "INVALID_MFA_CODE", "Invalid verification code"
            )
        session.mfa_username = None
        return self._new_ticket(account, via_mfa=True, service=service or session.mfa_service)

    def _new_ticket(self, account: Account, *, via_mfa: bool, service: str | None) -> str:
        ticket = Ticket(
            self._issuer.issue("ticket"), account.username, self._clock(), via_mfa, service
        )
        self._tickets[ticket.value] = ticket
        return ticket.value

    def ticket(self, value: str | None) -> Ticket | None:
        """The ticket issued as `value` (used or expired ones too), if any."""
        return self._tickets.get(value) if value else None
