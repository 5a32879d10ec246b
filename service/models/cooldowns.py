"""Garmin accounts whose logins wait: Garmin throttled a sign-in to them recently."""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model


class AccountCooldown(Model):
    """One Garmin account's login cooldown, shared by every user id and every replica.

    `account` is a keyed hash of the normalised Garmin username (see
    `service.sessions.cooldowns`), never the username: the table tells nobody which
    accounts Garmin throttled. A row lives until `until`; expired rows are deleted when a
    login reads them or when another cooldown is written.
    """

    account = fields.CharField(max_length=64, primary_key=True)
    until = fields.DatetimeField()

    class Meta:
        table = "garmin_account_cooldown"
        indexes = (("until",),)

    def __str__(self) -> str:
        return f"AccountCooldown(until={self.until.isoformat()})"
