"""One row per user: the encrypted Garmin session, the pending MFA challenge, bookkeeping."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from tortoise import fields
from tortoise.expressions import Case, Q, When
from tortoise.models import Model


class SessionStatus(StrEnum):
    """A user's session status. The row stores what we last knew of the session (MISSING,
    VALID or EXPIRED); what a user is reported as is derived by `status_of`, where an MFA
    challenge still running makes MFA_PENDING (never stored)."""

    MISSING = "MISSING"
    VALID = "VALID"
    EXPIRED = "EXPIRED"
    MFA_PENDING = "MFA_PENDING"


class GarminAuthenticationState(Model):
    """Encrypted garth session and MFA state for one user.

    `version` grows on every write; writers compare-and-set on it so a slower request never
    overwrites a newer login. `session_data` and `mfa_state` hold only ciphertext bound to
    `user_id` (see `service.crypto`).
    """

    id = fields.IntField(primary_key=True)
    user_id = fields.CharField(max_length=64, unique=True)
    session_data = fields.TextField(null=True)
    # the engine that made the stored session, written with it only and kept after Garmin
    # rejects it (an EXPIRED status names it); the status reads it without decrypting. NULL
    # while no session was ever stored, and on rows older than the column (garth's)
    engine = fields.CharField(max_length=16, null=True)
    status = fields.CharEnumField(SessionStatus, max_length=16, default=SessionStatus.MISSING)
    status_reason = fields.CharField(max_length=200, null=True)
    mfa_pending = fields.BooleanField(default=False)
    mfa_state = fields.TextField(null=True)
    # the pending challenge's engine, written and cleared with it: a login may wait for its
    # code beside a session of the other engine, which keeps its own `engine` meanwhile
    mfa_engine = fields.CharField(max_length=16, null=True)
    # the Garmin account the pending challenge signs in to, by its cooldown name (a keyed
    # hash, `service.sessions.cooldowns`), written and cleared with the challenge: the code
    # step waits for and starts that account's cooldown as a login does
    mfa_account = fields.CharField(max_length=64, null=True)
    mfa_expires_at = fields.DatetimeField(null=True)
    mfa_attempts = fields.IntField(default=0)
    connected_at = fields.DatetimeField(null=True)
    last_validated = fields.DatetimeField(null=True)
    # the login cooldown per user of the previous release: cooldowns are per Garmin account
    # now (`AccountCooldown`); still honoured, so a rolling upgrade loses none that replicas
    # of that release set, cleared by a new session, never set, to be dropped by a later
    # migration
    login_cooldown_until = fields.DatetimeField(null=True)
    version = fields.IntField(default=0)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "garmin_authentication_state"

    def __str__(self) -> str:
        return f"GarminAuthenticationState(user_id={self.user_id!r}, version={self.version})"


# A user's reported status: the first rule whose lookups all hold, else MISSING (a row whose
# session was cleared, or never set). Written once as lookups so that the status view reads
# it from a row (`status_of`) and the metrics count it in SQL (`status_expression`) alike.
_NOW = object()  # stands for the moment the question is asked
_RULES: tuple[tuple[SessionStatus, dict[str, Any]], ...] = (
    (SessionStatus.VALID, {"session_data__isnull": False}),
    (SessionStatus.MFA_PENDING, {"mfa_pending": True, "mfa_expires_at__gt": _NOW}),
    (SessionStatus.EXPIRED, {"status": SessionStatus.EXPIRED}),
)
_MFA_LIVE = dict(_RULES)[SessionStatus.MFA_PENDING]


def _at(lookups: dict[str, Any], now: datetime) -> dict[str, Any]:
    return {lookup: now if wanted is _NOW else wanted for lookup, wanted in lookups.items()}


def _holds(row: GarminAuthenticationState, lookups: dict[str, Any], now: datetime) -> bool:
    for lookup, wanted in lookups.items():
        name, _, operator = lookup.partition("__")
        value = getattr(row, name)
        if wanted is _NOW:
            wanted = now
        if operator == "isnull":
            holds = (value is None) == wanted
        elif operator == "gt":
            holds = value is not None and value > wanted
        else:
            holds = value == wanted
        if not holds:
            return False
    return True


def status_of(row: GarminAuthenticationState, now: datetime) -> SessionStatus:
    """The status a user with this row is reported as at `now`."""
    for status, lookups in _RULES:
        if _holds(row, lookups, now):
            return status
    return SessionStatus.MISSING


def mfa_live(row: GarminAuthenticationState, now: datetime) -> bool:
    """An MFA challenge is waiting for its code (whatever else the row holds)."""
    return _holds(row, _MFA_LIVE, now)


def engine_shown(row: GarminAuthenticationState, status: SessionStatus) -> str | None:
    """The engine a status answer names: the pending MFA login's while it is what the user
    is reported as (MFA_PENDING), else the stored session's, or the rejected one's
    (EXPIRED); None when the user has neither (MISSING)."""
    if status is SessionStatus.MFA_PENDING:
        return row.mfa_engine
    if status in (SessionStatus.VALID, SessionStatus.EXPIRED):
        return row.engine or "garth"
    return None


def status_expression(now: datetime) -> Case:
    """`status_of` as a SQL expression over the table, for counting users by status."""
    return Case(*(When(Q(**_at(lookups, now)), then=status.value) for status, lookups in _RULES),
                default=SessionStatus.MISSING.value)
