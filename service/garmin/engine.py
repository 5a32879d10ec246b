"""The engine boundary: what the gateway needs from a library that talks to Garmin.

An engine does the blocking work (HTTP to Garmin) and is only ever called in the gateway's
thread pool, never on the event loop; the one exception is building a `LoadedSession`, which
must stay cheap. It raises nothing but `service.garmin.errors.GarminError`: every exception of
its library is classified inside the engine. The settings and results below are the
engine's whole vocabulary, so the rest of the service never learns which library runs.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

# requests one call of a stored session may make: a refresh, the call, the call again after
# a 401
REQUESTS_PER_CALL = 3


@dataclass(frozen=True)
class GarminSettings:
    """What the adapter needs from configuration (kept free of the config module's types)."""

    domain: str = "garmin.com"
    base_url: str = ""
    timeout_seconds: float = 15.0
    retries: int = 2
    # told of every OAuth2 refresh (True when it worked), e.g. to count them
    on_refresh: Callable[[bool], None] | None = field(default=None, compare=False)
    # the engine of new logins; a stored session or MFA challenge names its own
    engine: str = "di"
    # a whole login (every strategy, pause and request) ends by then
    login_timeout_seconds: float = 90.0
    # every request of both engines goes through this HTTP(S) proxy (may hold credentials)
    proxy_url: str | None = field(default=None, repr=False)
    # DI sign-in strategies, in order (empty: ha-garmin's order for `domain`); a 429 or a
    # verdict on the credentials ends the login
    di_strategies: tuple[str, ...] = ()
    # ha-garmin's anti-WAF pauses between loading a sign-in page and posting it
    di_login_delays: bool = True
    # a DI access token this close to its expiry is refreshed before a call
    di_refresh_margin_seconds: float = 60.0

    @property
    def call_seconds(self) -> float:
        """The longest one call of a stored session runs: each of its requests, every
        retry included, ends within `timeout_seconds` (plus the retries' short backoff)."""
        return REQUESTS_PER_CALL * (self.retries + 1) * (self.timeout_seconds + 1)


def engine_of(stored: str) -> str:
    """The engine that made a stored session or MFA challenge: the `engine` of its JSON.

    garth's sessions (base64, not JSON) and challenges (JSON without the key) predate the
    key: anything without it is garth's.
    """
    if not stored.startswith("{"):
        return "garth"
    try:
        named = json.loads(stored).get("engine")
    except (ValueError, AttributeError):
        return "garth"
    return named if isinstance(named, str) else "garth"


@dataclass(frozen=True)
class LoginResult:
    """Either `session` (logged in) or `mfa_state` + `mfa_method` (a code is needed)."""

    session: str | None = None
    mfa_state: str | None = None
    mfa_method: str | None = None


class LoadedSession(Protocol):
    """One user's stored session in use, by one job: calls that several pool threads may
    make at once, each carrying this user's token only."""

    def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        """GET a Garmin Connect API path (blocking); refreshes the token when needed."""

    @property
    def refreshed(self) -> bool:
        """A refresh succeeded; cheap enough to read on the event loop."""

    def refreshed_session(self) -> str | None:
        """The session to write back (blocking): only after a successful refresh, never
        after a failed one."""


class Engine(Protocol):
    """Login, MFA and stored sessions for one gateway; every method but `session` blocks."""

    def login(self, caller: str, username: str, password: str) -> LoginResult:
        """Sign in: a session, or a resumable MFA challenge."""

    def resume_mfa(self, caller: str, mfa_state: str, code: str) -> str:
        """Finish a login with the MFA code; a wrong code raises `MfaCodeInvalid` carrying
        the challenge to keep."""

    def session(self, caller: str, session: str) -> LoadedSession:
        """A stored session to use; loaded on its first call, in the pool."""

    def close(self) -> None:
        """Release the engine's connections; calls still running finish."""
