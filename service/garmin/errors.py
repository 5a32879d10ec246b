"""What can go wrong when talking to Garmin, in the service's own words.

The rest of the service never sees a Garmin library's exceptions: each engine's classifier
(`service.garmin.garth.classify` for garth) turns all of them into these, in one place.
The split that matters is *definitive* (the session or credentials are rejected: act on
it) versus *transient* (network, 5xx, 429: keep everything and try later).

Each kind also names its `outcome` (the label of the Garmin-call metrics) and the
`problem()` an API caller gets when the failure ends a request.
"""

from __future__ import annotations

from service import errors


class GarminError(Exception):
    """Base class. `codes_posted` says how many times an MFA attempt sent the code to
    Garmin, whatever the attempt's outcome (a 5xx or a timeout after a post counts too),
    since Garmin counts every one of them against the challenge. None: the engine did not
    count; a wrong code then reads as one, another failure as none.

    A session refreshed before the failure is not carried here: the gateway writes it back
    itself, before the error reaches the caller (`GarminGateway.use`).
    """

    transient = False
    outcome = "protocol"
    codes_posted: int | None = None

    def problem(self) -> errors.Problem:
        """How the failure reads to our callers (never the raw upstream text)."""
        return errors.GarminFailed(self.detail)

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class InvalidCredentials(GarminError):
    """Garmin refused the username or password (or the account cannot sign in)."""

    outcome = "invalid_credentials"


class MfaCodeInvalid(GarminError):
    """The MFA code was wrong; `mfa_state` is the challenge to keep (cookies may change)."""

    outcome = "mfa_invalid"

    def __init__(self, detail: str, *, mfa_state: str | None = None) -> None:
        super().__init__(detail)
        self.mfa_state = mfa_state


class MfaChallengeLost(GarminError):
    """Garmin no longer knows the pending challenge: the user must log in again."""

    outcome = "mfa_challenge_lost"


class AuthRejected(GarminError):
    """Garmin definitively rejected the stored session: a new login is required."""

    outcome = "auth_rejected"


class RateLimited(GarminError):
    """Garmin answered 429. Never retried at once: a retried 429 extends the block."""

    transient = True
    outcome = "rate_limited"

    def __init__(self, detail: str, *, retry_after: int | None = None) -> None:
        super().__init__(detail)
        self.retry_after = retry_after

    def problem(self) -> errors.Problem:
        return errors.GarminThrottled(self.retry_after or 60)


class GarminUnavailable(GarminError):
    """Garmin could not be reached, timed out, or answered 5xx."""

    transient = True

    def __init__(self, detail: str, *, timeout: bool = False) -> None:
        super().__init__(detail)
        self.timeout = timeout
        self.outcome = "timeout" if timeout else "unavailable"

    def problem(self) -> errors.Problem:
        return errors.GarminUnavailableProblem(self.timeout)


class GarminProtocolError(GarminError):
    """Garmin answered something we do not understand (changed API, truncated body)."""

    transient = True

    def problem(self) -> errors.Problem:
        return errors.GarminBadResponse()
