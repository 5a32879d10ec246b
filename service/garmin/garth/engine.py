"""garth as the gateway's engine (`service.garmin.engine.Engine`)."""

from __future__ import annotations

from service.garmin.engine import GarminSettings, LoginResult
from service.garmin.garth import signin
from service.garmin.garth.api import GarminApi
from service.garmin.garth.transport import Transport


class GarthEngine:
    """Login, MFA and stored sessions through garth, for one gateway."""

    name = "garth"

    def __init__(self, settings: GarminSettings, pool_size: int) -> None:
        self._settings = settings
        # one connection pool for every client of this gateway (sized to its thread pool): a
        # job reuses a warm connection instead of opening its own (sockets only; credentials
        # stay per client)
        self._transport = Transport(settings.retries, pool_size=pool_size)

    def login(self, caller: str, username: str, password: str) -> LoginResult:
        return signin.login(self._settings, caller, username, password,
                            transport=self._transport)

    def resume_mfa(self, caller: str, mfa_state: str, code: str) -> str:
        return signin.resume_mfa(self._settings, caller, mfa_state, code,
                                 transport=self._transport)

    def session(self, caller: str, session: str) -> GarminApi:
        return GarminApi(self._settings, caller, session, self._transport)

    def close(self) -> None:
        """Idle pooled connections close now; one still in use closes when its call returns."""
        self._transport.close()
