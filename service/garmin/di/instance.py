"""A `GarminAuth` for one user and one use, pointed at the configured Garmin domain.

ha-garmin's instance holds one user's tokens, MFA state and a token lock; nothing of it is
shared between users (its module-level state is the two names `wire` shims, and its
constants). So every login, code attempt and stored-session use builds its own instance
here and drops it afterwards.
"""

from __future__ import annotations

from ha_garmin.auth import GarminAuth

from service.garmin.engine import GarminSettings

# the instance attributes holding Garmin's URLs; `tests/garmin/test_di_engine.py` checks
# that a fresh instance still has each of them
URL_ATTRIBUTES = ("_sso", "_connect", "_connectapi", "_portal_service_url", "_di_token_url")


def new_auth(settings: GarminSettings) -> GarminAuth:
    """ha-garmin knows garmin.com and garmin.cn; any other configured domain (a Garmin
    stand-in) gets its URLs here. Routing to the sandbox happens later, per request."""
    domain = settings.domain
    auth = GarminAuth(is_cn=domain == "garmin.cn")
    if domain not in ("garmin.com", "garmin.cn"):
        auth._sso = f"https://sso.{domain}"
        auth._connect = f"https://connect.{domain}"
        auth._connectapi = f"https://connectapi.{domain}"
        auth._portal_service_url = f"https://connect.{domain}/app"
        auth._di_token_url = f"https://diauth.{domain}/di-oauth2-service/oauth/token"
    return auth
