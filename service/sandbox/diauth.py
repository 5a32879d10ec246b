"""Garmin's DI OAuth2 tokens, as a model: a service ticket buys an access + refresh token
pair, and every refresh rotates the refresh token.

DI clients (the Garmin Connect apps, and libraries like ha-garmin that pose as them) trade a
fresh service ticket from an SSO login for a short-lived access token (a signed JWT they can
read `exp` and `client_id` from) and a refresh token, at
`diauth.garmin.com/di-oauth2-service/oauth/token`. The invariants the sandbox enforces:

- a ticket is validated once, whatever the outcome (as CAS does): it must be fresh, unused,
  and issued for the `service_url` the exchange names; a refused client id leaves it alone;
- a refresh token works once: each refresh answers a NEW refresh token and retires the one
  presented. Presenting a retired one again is a reuse: answered `invalid_grant`, counted in
  the account's `di_refresh_reuses`, and, if the account's `di_reuse_revokes_family` is set,
  it also revokes every refresh token descended from the same login;
- a refresh token is bound to the client id it was issued to;
- revoking (a password change) kills the account's refresh tokens; expiring kills its access
  tokens; an access token is live until its `exp` (plus the clock-skew grace).

The HTTP face is `diauth_routes.py`; connectapi checks DI access tokens via `authorize`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from .accounts import Account, garmin_guid
from .errors import SandboxError
from .issued import Issuer
from .sso import TICKET_TTL_SECONDS, FindAccount, Ticket

logger = logging.getLogger(__name__)

DI_CLIENT_IDS: Final = (
    "GARMIN_CONNECT_MOBILE_ANDROID_DI_2025Q2",
    "GARMIN_CONNECT_MOBILE_ANDROID_DI_2024Q4",
    "GARMIN_CONNECT_MOBILE_ANDROID_DI",
    "GARMIN_CONNECT_MOBILE_IOS_DI",
)
"""The DI client ids the token endpoint accepts (those the Connect apps have used)."""
SERVICE_TICKET_GRANT: Final = (
    "https://connectapi.garmin.com/di-oauth2-service/oauth/grant/service_ticket"
)
SANDBOX_DI_SIGNING_KEY: Final = b"sandbox-di-signing-key"
"""HS256 key of the sandbox's DI access tokens, so a test can check a signature."""
DI_ISSUER: Final = "https://diauth.garmin.com"
DI_SCOPES: Final = ("CONNECT_READ", "CONNECT_WRITE", "DI_OAUTH_2_AUTHORIZATION_CODE_CREATE")


@dataclass
class DiAccess:
    """A DI access token (a JWT); refused once past `expires_at` or expired by control."""

    token: str
    jti: str
    username: str
    client_id: str
    issued_at: float
    expires_at: float
    revoked: bool = False


@dataclass
class DiRefresh:
    """A DI refresh token; `family` is the login it descends from (for reuse revocation)."""

    value: str
    username: str
    client_id: str
    family: str
    issued_at: float
    expires_at: float
    rotated: bool = False
    revoked: bool = False


@dataclass(frozen=True)
class DiTokens:
    """What one successful grant hands out."""

    access: DiAccess
    refresh: DiRefresh


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def sign_jwt(payload: dict[str, Any], key: bytes = SANDBOX_DI_SIGNING_KEY) -> str:
    """An HS256 JWT over `payload` (compact, base64url without padding)."""
    header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    body = _b64url(json.dumps(payload, separators=(",", ":")).encode())
    signature = hmac.new(key, f"{header}.{body}".encode(), hashlib.sha256).digest()
    return f"{header}.{body}.{_b64url(signature)}"


def looks_like_jwt(token: str | None) -> bool:
    """True for a three-part dotted token, the shape of a DI access token."""
    return token is not None and token.count(".") == 2


def _invalid_grant(message: str) -> SandboxError:
    return SandboxError(400, "invalid_grant", message)


class DiDesk:
    """The DI access and refresh tokens of one sandbox."""

    def __init__(
        self, find: FindAccount, clock: Callable[[], float], issuer: Issuer, grace_seconds: float
    ) -> None:
        self._find = find
        self._clock = clock
        self._issuer = issuer
        self.grace_seconds = grace_seconds
        self._access: dict[str, DiAccess] = {}
        self._refresh: dict[str, DiRefresh] = {}

    def clear(self) -> None:
        """Forget every token."""
        self._access.clear()
        self._refresh.clear()

    # grants ------------------------------------------------------------------------------

    def exchange_ticket(self, ticket: Ticket | None, service_url: str, client_id: str) -> DiTokens:
        """The service-ticket grant: validate (and so burn) the ticket, issue a token pair."""
        if ticket is None or ticket.used:
            raise _invalid_grant("service ticket unknown or already used")
        ticket.used = True
        if self._clock() - ticket.issued_at > TICKET_TTL_SECONDS:
            raise _invalid_grant("service ticket expired")
        if ticket.service is None or not hmac.compare_digest(ticket.service, service_url):
            raise _invalid_grant("service ticket was not issued for this service_url")
        account = self._find(ticket.username)
        if account is None:
            raise _invalid_grant("service ticket unknown or already used")
        return self._issue(account, client_id, family=uuid.uuid4().hex)

    def refresh(self, value: str, client_id: str) -> DiTokens:
        """The refresh grant: rotate `value` into a new pair; a retired token is a reuse."""
        grant = self._refresh.get(value)
        account = self._find(grant.username) if grant else None
        if grant is None or account is None:
            raise _invalid_grant("refresh token unknown")
        if grant.rotated:
            account.di_refresh_reuses += 1
            logger.info("sandbox DI refresh token reused by %s", account.username)
            if account.di_reuse_revokes_family:
                self._revoke_refresh(lambda t: t.family == grant.family)
            raise _invalid_grant("refresh token already used")
        if grant.revoked:
            raise _invalid_grant("refresh token revoked")
        if self._clock() > grant.expires_at:
            raise _invalid_grant("refresh token expired")
        if not hmac.compare_digest(grant.client_id, client_id):
            raise _invalid_grant("refresh token was issued to another client")
        grant.rotated = True
        account.di_refreshes += 1
        return self._issue(account, client_id, family=grant.family)

    def _issue(self, account: Account, client_id: str, family: str) -> DiTokens:
        now = self._clock()
        jti = self._issuer.issue("di_jti", secret=False)
        expires_at = now + account.di_access_lifetime_seconds
        payload = {
            "iss": DI_ISSUER,
            "sub": garmin_guid(account),
            "garmin_guid": garmin_guid(account),
            "user_id": account.profile_id,
            "client_id": client_id,
            "scope": list(DI_SCOPES),
            "iat": int(now),
            "exp": int(expires_at),
            "jti": jti,
        }
        token = sign_jwt(payload)
        self._issuer.remember(token)
        access = DiAccess(token, jti, account.username, client_id, now, expires_at)
        refresh = DiRefresh(
            value=self._issuer.issue("di_refresh"),
            username=account.username,
            client_id=client_id,
            family=family,
            issued_at=now,
            expires_at=now + account.di_refresh_lifetime_seconds,
        )
        self._access[token] = access
        self._refresh[refresh.value] = refresh
        return DiTokens(access, refresh)

    # lookups -----------------------------------------------------------------------------

    def refresh_owner(self, value: str | None) -> str | None:
        """The account a refresh token belongs to (even if retired), for attribution."""
        grant = self._refresh.get(value) if value else None
        return grant.username if grant else None

    def access_owner(self, token: str | None) -> str | None:
        """The account a DI access token belongs to (even if expired), for attribution."""
        grant = self._access.get(token) if token else None
        return grant.username if grant else None

    def issued(self, token: str | None) -> bool:
        """True if `token` is a DI access token this sandbox issued."""
        return token is not None and token in self._access

    def authorize(self, token: str | None) -> Account:
        """The account behind a live DI access token; SandboxError(401) otherwise."""
        grant = self._access.get(token) if token else None
        account = self._find(grant.username) if grant else None
        if grant is None or account is None or grant.revoked:
            raise SandboxError(401, "invalid_token", "Token is not active")
        if self._clock() > grant.expires_at + self.grace_seconds:
            raise SandboxError(401, "invalid_token", "Token is not active")
        return account

    # control -----------------------------------------------------------------------------

    def expire_access_tokens(self, account: Account) -> int:
        """Make every DI access token of the account answer 401; returns how many."""
        expired = 0
        for grant in self._access.values():
            if grant.username == account.username and not grant.revoked:
                grant.revoked = True
                expired += 1
        return expired

    def revoke_refresh_tokens(self, account: Account) -> int:
        """Revoke every live DI refresh token of the account; returns how many."""
        return self._revoke_refresh(lambda t: t.username == account.username)

    def _revoke_refresh(self, selected: Callable[[DiRefresh], bool]) -> int:
        revoked = 0
        for grant in self._refresh.values():
            if selected(grant) and not grant.revoked and not grant.rotated:
                grant.revoked = True
                revoked += 1
        return revoked

    def live_refresh_tokens(self, username: str) -> int:
        """How many refresh tokens of the account would still refresh (ignoring expiry)."""
        return sum(
            1
            for grant in self._refresh.values()
            if grant.username == username and not grant.rotated and not grant.revoked
        )
