"""Garmin adapter: the only package that knows garth exists."""

from service.garmin.endpoints import fetch_activities, fetch_days, profile
from service.garmin.errors import (
    AuthRejected,
    GarminError,
    GarminProtocolError,
    GarminUnavailable,
    InvalidCredentials,
    MfaChallengeLost,
    MfaCodeInvalid,
    RateLimited,
)
from service.garmin.garth.signin import GarminApi, GarminSettings, LoginResult, Usage
from service.garmin.gateway import GarminGateway, SessionCalls, configure_consumer

__all__ = [
    "AuthRejected",
    "GarminApi",
    "GarminError",
    "GarminGateway",
    "GarminProtocolError",
    "GarminSettings",
    "GarminUnavailable",
    "InvalidCredentials",
    "LoginResult",
    "MfaChallengeLost",
    "MfaCodeInvalid",
    "RateLimited",
    "SessionCalls",
    "Usage",
    "configure_consumer",
    "fetch_activities",
    "fetch_days",
    "profile",
]
