"""The webhook outbox: events, one delivery per (event, endpoint), per-user ordering state.

An event row and its delivery rows are written in the transaction of the change they
report (`service.webhooks.outbox.emit`), so a change is never committed without them and
never reported when it rolls back. `webhook_user_sequence` numbers each user's events in
commit order: its row is locked by the emitting transaction until it commits, so a later
event of the same user always gets a larger `sequence`.
"""

from __future__ import annotations

from enum import StrEnum

from tortoise import fields
from tortoise.models import Model


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    DEAD = "dead"


class WebhookEvent(Model):
    """One event; `body` is the exact JSON every endpoint receives (and every signature covers)."""

    id = fields.BigIntField(primary_key=True)
    message_id = fields.CharField(max_length=40, unique=True)
    user_id = fields.CharField(max_length=64)
    type = fields.CharField(max_length=40)
    sequence = fields.BigIntField()
    body = fields.TextField()
    created_at = fields.DatetimeField()

    class Meta:
        table = "webhook_event"
        indexes = (("user_id", "sequence"),)


class WebhookDelivery(Model):
    """One event on its way to one endpoint.

    PENDING until a 2xx answer (DELIVERED) or until retries run out (DEAD). A dispatcher
    owns a delivery while `claimed_by` is set and `claim_expires_at` lies ahead; a claim
    left behind by a crashed dispatcher simply expires. `user_id` and `sequence` repeat the
    event's so the claim can keep each user's events in order per endpoint.
    """

    id = fields.BigIntField(primary_key=True)
    event_id = fields.BigIntField()
    endpoint = fields.CharField(max_length=64)
    user_id = fields.CharField(max_length=64)
    sequence = fields.BigIntField()
    status = fields.CharEnumField(DeliveryStatus, max_length=16, default=DeliveryStatus.PENDING)
    attempts = fields.IntField(default=0)
    next_attempt_at = fields.DatetimeField()
    claimed_by = fields.CharField(max_length=128, null=True)
    claim_expires_at = fields.DatetimeField(null=True)
    last_status = fields.IntField(null=True)
    last_error = fields.CharField(max_length=200, null=True)
    created_at = fields.DatetimeField()
    finished_at = fields.DatetimeField(null=True)

    class Meta:
        table = "webhook_delivery"
        unique_together = (("event_id", "endpoint"),)
        indexes = (("status", "next_attempt_at"), ("endpoint", "user_id", "sequence"))


class WebhookUserSequence(Model):
    """The last event number given to a user (see the module docstring)."""

    user_id = fields.CharField(max_length=64, primary_key=True)
    sequence = fields.BigIntField(default=0)

    class Meta:
        table = "webhook_user_sequence"


class WebhookSyncHealth(Model):
    """A user's consecutive failed syncs of one kind (429 backoffs not counted); the row
    exists only while the latest job of that kind failed. `failing` once `sync.failing` was
    emitted, so `sync.recovered` follows the next success."""

    id = fields.BigIntField(primary_key=True)
    user_id = fields.CharField(max_length=64)
    kind = fields.CharField(max_length=16)
    failures = fields.IntField(default=0)
    failing = fields.BooleanField(default=False)

    class Meta:
        table = "webhook_sync_health"
        unique_together = (("user_id", "kind"),)
