"""Garmin adapter: the only package that knows garth exists.

The rest of the service imports from here only; the engine behind the gateway
(`service.garmin.garth`) stays inside.
"""

from service.garmin.calls import SessionCalls
from service.garmin.endpoints import fetch_activities, fetch_days, profile
from service.garmin.engine import GarminSettings, LoginResult, engine_of
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
from service.garmin.garth import DEPRECATION_NOTICE as GARTH_DEPRECATION_NOTICE
from service.garmin.gateway import GarminGateway, WriteBack, configure_consumer

__all__ = [
    "GARTH_DEPRECATION_NOTICE",
    "AuthRejected",
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
    "WriteBack",
    "configure_consumer",
    "engine_of",
    "fetch_activities",
    "fetch_days",
    "profile",
]
