"""Tortoise models; every module listed here is part of the `models` app and its migrations."""

from service.models.cooldowns import AccountCooldown
from service.models.garmin_auth_state import (
    GarminAuthenticationState,
    SessionStatus,
    engine_shown,
    mfa_live,
    status_expression,
    status_of,
)
from service.models.sync import (
    Activity,
    DailyHealth,
    JobStatus,
    JobTrigger,
    SyncCursor,
    SyncJob,
    SyncKind,
    UserLease,
)
from service.models.webhooks import (
    DeliveryStatus,
    WebhookDelivery,
    WebhookEvent,
    WebhookSyncHealth,
    WebhookUserSequence,
)

__all__ = [
    "AccountCooldown",
    "Activity",
    "DailyHealth",
    "DeliveryStatus",
    "GarminAuthenticationState",
    "JobStatus",
    "JobTrigger",
    "SessionStatus",
    "SyncCursor",
    "SyncJob",
    "SyncKind",
    "UserLease",
    "WebhookDelivery",
    "WebhookEvent",
    "WebhookSyncHealth",
    "WebhookUserSequence",
    "engine_shown",
    "mfa_live",
    "status_expression",
    "status_of",
]
