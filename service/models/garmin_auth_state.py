"""One row per user: the encrypted Garmin session, the pending MFA challenge, bookkeeping."""

from __future__ import annotations

from enum import StrEnum

from tortoise import fields
from tortoise.models import Model


class SessionStatus(StrEnum):
    """What we last knew of the stored session (MFA_PENDING is derived, never stored)."""

    MISSING = "MISSING"
    VALID = "VALID"
    EXPIRED = "EXPIRED"


class GarminAuthenticationState(Model):
    """Encrypted garth session and MFA state for one user.

    `version` grows on every write; writers compare-and-set on it so a slower request never
    overwrites a newer login. `session_data` and `mfa_state` hold only ciphertext bound to
    `user_id` (see `service.crypto`).
    """

    id = fields.IntField(primary_key=True)
    user_id = fields.CharField(max_length=64, unique=True)
    session_data = fields.TextField(null=True)
    status = fields.CharEnumField(SessionStatus, max_length=16, default=SessionStatus.MISSING)
    status_reason = fields.CharField(max_length=200, null=True)
    mfa_pending = fields.BooleanField(default=False)
    mfa_state = fields.TextField(null=True)
    mfa_expires_at = fields.DatetimeField(null=True)
    mfa_attempts = fields.IntField(default=0)
    connected_at = fields.DatetimeField(null=True)
    last_validated = fields.DatetimeField(null=True)
    login_cooldown_until = fields.DatetimeField(null=True)
    version = fields.IntField(default=0)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "garmin_authentication_state"

    def __str__(self) -> str:
        return f"GarminAuthenticationState(user_id={self.user_id!r}, version={self.version})"
