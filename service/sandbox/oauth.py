"""Garmin's OAuth tokens, as a model: OAuth1 pairs bought with a ticket, OAuth2 access tokens.

garth trades a fresh service ticket for a long-lived OAuth1 pair (`preauthorized`), then
signs with it to get short-lived OAuth2 access tokens (`exchange`, at login and at every
refresh). Revoking the OAuth1 pairs (a password change at Garmin) stops refreshes; expiring
the access tokens forces one. The HTTP face is `oauth_routes.py`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from .accounts import Account
from .errors import SandboxError
from .issued import Issuer
from .sso import TICKET_TTL_SECONDS, FindAccount, Ticket

logger = logging.getLogger(__name__)

REFRESH_TOKEN_LIFETIME_SECONDS: Final = 7_776_000
ACCESS_TOKEN_GRACE_SECONDS: Final = 5.0
"""How long past its stated expiry an access token is still accepted (clock-skew tolerance).

garth refreshes as soon as `expires_at` passes, so it never relies on the grace; it is what
lets a token from an account with `oauth2_lifetime_seconds: 0` work right after the refresh
garth makes for it (every call refreshes, and every fresh token works).
"""


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


class OAuthDesk:
    """The OAuth1 pairs and OAuth2 access tokens of one sandbox."""

    def __init__(
        self,
        find: FindAccount,
        clock: Callable[[], float],
        issuer: Issuer,
        *,
        grace_seconds: float = ACCESS_TOKEN_GRACE_SECONDS,
    ) -> None:
        self._find = find
        self._clock = clock
        self._issuer = issuer
        self.grace_seconds = grace_seconds
        self._oauth1: dict[str, OAuth1Grant] = {}
        self._access: dict[str, AccessGrant] = {}

    def clear(self) -> None:
        """Forget every token."""
        self._oauth1.clear()
        self._access.clear()

    # OAuth1 ------------------------------------------------------------------------------

    def redeem(self, ticket: Ticket | None) -> OAuth1Grant:
        """Trade a fresh, unused ticket for an OAuth1 token pair (the ticket is burnt)."""
        if ticket is None or ticket.used:
            raise SandboxError(401, "INVALID_TICKET", "ticket unknown or already used")
        ticket.used = True
        if self._clock() - ticket.issued_at > TICKET_TTL_SECONDS:
            raise SandboxError(401, "INVALID_TICKET", "ticket expired")
        mfa_token = self._issuer.issue("mfa") if ticket.via_mfa else None
        grant = OAuth1Grant(
            token=self._issuer.issue("oauth1"),
            secret=self._issuer.issue("oauth1_secret"),
            username=ticket.username,
            mfa_token=mfa_token,
        )
        self._oauth1[grant.token] = grant
        return grant

    def oauth1_owner(self, token: str | None) -> str | None:
        """The account an OAuth1 token belongs to (even if revoked), for attribution."""
        grant = self._oauth1.get(token) if token else None
        return grant.username if grant else None

    def revoke_oauth1(self, account: Account) -> int:
        """Revoke every OAuth1 token of the account, so no refresh works; returns how many."""
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
        account = self._find(grant.username) if grant else None
        if grant is None or account is None:
            raise SandboxError(401, "INVALID_TOKEN", "OAuth1 token unknown")
        if grant.revoked or account.oauth1_revoked:
            raise SandboxError(401, "TOKEN_REVOKED", "OAuth1 token revoked")
        now = self._clock()
        access = AccessGrant(
            token=self._issuer.issue("access"),
            refresh_token=self._issuer.issue("refresh"),
            jti=self._issuer.issue("jti", secret=False),
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
        account = self._find(grant.username) if grant else None
        if grant is None or account is None:
            raise SandboxError(401, "INVALID_TOKEN", "access token unknown")
        if grant.revoked or self._clock() > grant.expires_at + self.grace_seconds:
            raise SandboxError(401, "TOKEN_EXPIRED", "access token expired")
        return account

    def expire_access_tokens(self, account: Account) -> int:
        """Make every access token of the account answer 401 from now on; returns how many."""
        expired = 0
        for grant in self._access.values():
            if grant.username == account.username and not grant.revoked:
                grant.revoked = True
                expired += 1
        logger.info("sandbox expired %d access token(s) of %s", expired, account.username)
        return expired
