"""ha-garmin (DI tokens) as the gateway's engine (`service.garmin.engine.Engine`).

The sign-in runs ha-garmin's own strategy steps (`_do_mobile_login`, `_do_portal_web_login`)
for the configured strategies only (by default ha-garmin's order for the domain), one
session each, instead of `GarminAuth.login`: that moves on after a 429 to other
fingerprints and strategies, up to ten credential POSTs, and each re-arms Garmin's block on
the account. Here a 429 anywhere ends the login, as does Garmin's verdict on the
credentials and the login's deadline (`login_timeout_seconds`); another failure (a
firewall page, a 5xx, a refused ticket) moves on to the next strategy.

An MFA code goes through `_complete_mfa` on a new instance restored from the sealed
challenge (`mfa_state`), not `complete_mfa` (which clears the challenge whatever happens).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from ha_garmin.auth import MOBILE_IMPERSONATIONS, PORTAL_IMPERSONATIONS
from ha_garmin.exceptions import GarminMFARequired
from requests.adapters import HTTPAdapter

from service.garmin.di import classify, mfa_state
from service.garmin.di import session as stored
from service.garmin.di.instance import new_auth
from service.garmin.di.session import DiSession
from service.garmin.di.wire import Wire
from service.garmin.engine import GarminSettings, LoginResult
from service.garmin.errors import (
    GarminError,
    GarminProtocolError,
    InvalidCredentials,
    MfaCodeInvalid,
    RateLimited,
)
from service.garmin.routing import retry_policy

log = logging.getLogger(__name__)

# strategy -> (ha-garmin's flow, HTTP library, TLS fingerprint): one session per strategy,
# with ha-garmin's first fingerprint (rotating fingerprints after a 429 is what re-arms
# the block)
STRATEGIES: dict[str, tuple[str, str, str | None]] = {
    "mobile+cffi": ("mobile", "cffi", MOBILE_IMPERSONATIONS[0]),
    "mobile+requests": ("mobile", "requests", None),
    "portal+cffi": ("portal", "cffi", PORTAL_IMPERSONATIONS[0]),
    "portal+requests": ("portal", "requests", None),
}
# ha-garmin's order (`GarminAuth.login`) without its widget strategy: the app's mobile
# sign-in first, which passes Garmin's firewall more reliably, except on garmin.cn, whose
# SSO has no mobile sign-in
DEFAULT_ORDER = ("mobile+cffi", "mobile+requests", "portal+cffi", "portal+requests")
CN_ORDER = ("portal+cffi", "portal+requests", "mobile+cffi", "mobile+requests")
CREDENTIAL_POST = "/api/login"  # the mobile and the portal sign-in
CODE_POST = "/mfa/verifyCode"  # the mobile and the portal code check


def strategies_for(settings: GarminSettings) -> tuple[str, ...]:
    """The configured strategies, or the domain's order when none are configured."""
    if settings.di_strategies:
        return settings.di_strategies
    return CN_ORDER if settings.domain == "garmin.cn" else DEFAULT_ORDER


def _codes_posted(error: GarminError, count: int) -> GarminError:
    """How many times this attempt sent the code to Garmin (ha-garmin posts it to both the
    mobile and the portal URL), so MFA attempts are counted as Garmin counts them."""
    error.codes_posted = count
    return error


class DiEngine:
    """Login, MFA and stored sessions through ha-garmin's DI tokens, for one gateway.

    Nothing of ha-garmin is shared between calls: each login, code attempt and session use
    builds its own `GarminAuth` and HTTP sessions. What is shared is the connection pool
    of the data calls (sockets only; every request carries its own headers).
    """

    def __init__(self, settings: GarminSettings, pool_size: int = 10, *,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self._strategies = strategies_for(settings)
        unknown = [name for name in self._strategies if name not in STRATEGIES]
        if unknown:
            raise ValueError(f"unknown DI sign-in strategies {unknown}; "
                             f"known: {sorted(STRATEGIES)}")
        self._settings = settings
        self._sleep = sleep
        self._adapter = HTTPAdapter(pool_connections=10, pool_maxsize=max(pool_size, 1),
                                    max_retries=retry_policy(settings.retries))

    def _wire(self, caller: str) -> Wire:
        return Wire(self._settings, caller, sleep=self._sleep,
                    budget_seconds=self._settings.login_timeout_seconds)

    def login(self, caller: str, username: str, password: str) -> LoginResult:
        wire = self._wire(caller)
        with wire.active():
            return self._login(wire, username, password)

    def _login(self, wire: Wire, username: str, password: str) -> LoginResult:
        last: GarminError = GarminProtocolError("no sign-in strategy ran")
        for name in self._strategies:
            flow, kind, impersonate = STRATEGIES[name]
            auth = new_auth(self._settings)
            session = wire.session(kind, impersonate)
            mark = wire.mark()
            try:
                if flow == "mobile":
                    auth._do_mobile_login(session, username, password)
                else:
                    auth._do_portal_web_login(session, username, password)
            except GarminMFARequired:
                state = mfa_state.dump(auth, self._settings)
                return LoginResult(mfa_state=state, mfa_method=mfa_state.method(state))
            except Exception as exc:
                last = classify.failure(exc, wire.since(mark))
                log.debug("DI sign-in strategy %s failed: %s", name, type(last).__name__)
                if isinstance(last, RateLimited | InvalidCredentials) or wire.expired:
                    raise last from None
                continue
            finally:
                session.close()
            return LoginResult(session=stored.dump(auth))
        raise last

    def resume_mfa(self, caller: str, mfa_state_text: str, code: str) -> str:
        wire = self._wire(caller)
        auth = new_auth(self._settings)
        with wire.active():
            session = mfa_state.restore(auth, mfa_state_text, wire, self._settings)
            try:
                auth._complete_mfa(code)
            except Exception as exc:
                error = classify.mfa_failure(exc, wire.seen)
                if isinstance(error, MfaCodeInvalid):  # its cookies may have changed
                    error.mfa_state = mfa_state.dump(auth, self._settings)
                raise _codes_posted(error, wire.posts(CODE_POST)) from None
            finally:
                session.close()
        return stored.dump(auth)

    def session(self, caller: str, session: str) -> DiSession:
        return DiSession(self._settings, caller, session, self._adapter)

    def close(self) -> None:
        """Idle pooled connections close now; one still in use closes when its call returns."""
        self._adapter.close()
