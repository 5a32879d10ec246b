"""Tortoise models; every module listed here is part of the `models` app and its migrations."""

from service.models.garmin_auth_state import GarminAuthenticationState, SessionStatus

__all__ = ["GarminAuthenticationState", "SessionStatus"]
