"""Tortoise models; every module listed here is part of the `models` app and its migrations."""

from service.models.garmin_auth_state import GarminAuthenticationState, SessionStatus
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

__all__ = [
    "Activity",
    "DailyHealth",
    "GarminAuthenticationState",
    "JobStatus",
    "JobTrigger",
    "SessionStatus",
    "SyncCursor",
    "SyncJob",
    "SyncKind",
    "UserLease",
]
