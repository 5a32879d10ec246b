"""Synced Garmin data, sync bookkeeping, and the per-user lease that spans replicas."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from tortoise import fields
from tortoise.models import Model


class SyncKind(StrEnum):
    ACTIVITIES = "activities"
    HEALTH = "health"


class JobTrigger(StrEnum):
    SCHEDULED = "scheduled"
    MANUAL = "manual"


class JobStatus(StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"
    AUTH_EXPIRED = "AUTH_EXPIRED"
    RATE_LIMITED = "RATE_LIMITED"
    SKIPPED = "SKIPPED"


class Activity(Model):
    """One Garmin activity summary; (user_id, garmin_activity_id) is the natural key."""

    id = fields.BigIntField(primary_key=True)
    user_id = fields.CharField(max_length=64)
    garmin_activity_id = fields.BigIntField()
    activity_type = fields.CharField(max_length=64, null=True)
    name = fields.CharField(max_length=255, null=True)
    start_time_utc = fields.DatetimeField()
    start_time_local = fields.CharField(max_length=19, null=True)
    duration_seconds = fields.FloatField(null=True)
    distance_meters = fields.FloatField(null=True)
    calories = fields.FloatField(null=True)
    average_hr = fields.FloatField(null=True)
    max_hr = fields.FloatField(null=True)
    elevation_gain = fields.FloatField(null=True)
    raw_json: Any = fields.JSONField()
    first_seen = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "activity"
        unique_together = (("user_id", "garmin_activity_id"),)
        indexes = (("user_id", "start_time_utc"),)


class DailyHealth(Model):
    """One calendar day of a user's health summary, with each source's raw JSON."""

    id = fields.BigIntField(primary_key=True)
    user_id = fields.CharField(max_length=64)
    calendar_date = fields.DateField()
    steps = fields.IntField(null=True)
    resting_hr = fields.IntField(null=True)
    sleep_seconds = fields.IntField(null=True)
    sleep_score = fields.IntField(null=True)
    average_stress = fields.IntField(null=True)
    body_battery_high = fields.IntField(null=True)
    body_battery_low = fields.IntField(null=True)
    hrv_last_night = fields.IntField(null=True)
    raw_json: Any = fields.JSONField()
    first_seen = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "daily_health"
        unique_together = (("user_id", "calendar_date"),)


class SyncCursor(Model):
    """Where a user's sync of one kind stands and when it is due again.

    `next_sync_at` NULL means paused (no valid session): the scheduler ignores the cursor
    until a new login resumes it.
    """

    id = fields.IntField(primary_key=True)
    user_id = fields.CharField(max_length=64)
    kind = fields.CharEnumField(SyncKind, max_length=16)
    last_synced_date = fields.DateField(null=True)
    last_success_at = fields.DatetimeField(null=True)
    next_sync_at = fields.DatetimeField(null=True)
    backoff_until = fields.DatetimeField(null=True)
    consecutive_failures = fields.IntField(default=0)
    last_error = fields.CharField(max_length=200, null=True)

    class Meta:
        table = "sync_cursor"
        unique_together = (("user_id", "kind"),)
        indexes = (("next_sync_at",),)


class SyncJob(Model):
    """One run (or skipped run) of one kind of sync for one user."""

    id = fields.BigIntField(primary_key=True)
    user_id = fields.CharField(max_length=64)
    kind = fields.CharEnumField(SyncKind, max_length=16)
    trigger = fields.CharEnumField(JobTrigger, max_length=16)
    status = fields.CharEnumField(JobStatus, max_length=16, default=JobStatus.PENDING)
    created_at = fields.DatetimeField(auto_now_add=True)
    started_at = fields.DatetimeField(null=True)
    finished_at = fields.DatetimeField(null=True)
    items_fetched = fields.IntField(default=0)
    items_upserted = fields.IntField(default=0)
    items_skipped = fields.IntField(default=0)
    error = fields.CharField(max_length=200, null=True)
    worker = fields.CharField(max_length=128, null=True)
    lease_token = fields.BigIntField(null=True)

    class Meta:
        table = "sync_job"
        indexes = (("user_id", "id"), ("status",))


class UserLease(Model):
    """Cross-replica per-user mutual exclusion: owner, expiry and a fencing token.

    Claimed by one atomic conditional UPDATE (free or expired); `token` grows on every
    claim so a worker that lost its lease can be told apart from the new holder.
    """

    user_id = fields.CharField(max_length=64, primary_key=True)
    owner = fields.CharField(max_length=128, null=True)
    token = fields.BigIntField(default=0)
    expires_at = fields.DatetimeField(null=True)
    purpose = fields.CharField(max_length=32, null=True)

    class Meta:
        table = "user_lease"
