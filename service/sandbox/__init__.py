"""A stand-in for the Garmin endpoints garth and DI clients use, the way moto stands in for
AWS.

Tests (and local runs) route `https://<sub>.garmin.com<path>` traffic to
`<sandbox>/<sub><path>`; the sandbox plays SSO sign-in (mobile and portal flows), MFA, the
OAuth1/OAuth2 exchanges garth makes, the DI token endpoint (service ticket and rotating
refresh grants), and the connectapi profile and data endpoints a sync uses (activities,
daily summary, sleep, HRV, stress, Body Battery; generated per account and date, see
`data.py`), injects faults on demand, and records every request so tests can prove which
user's token each carried. `expected_activities` and `generated_day` tell a test what the
sandbox serves, so it can compare a sync's result with the source without fixtures.

Modules by Garmin's parts, each a pure model beside its HTTP face: SSO (`sso.py`,
`sso_routes.py`), OAuth tokens (`oauth.py`, `oauth_routes.py`), DI tokens (`diauth.py`,
`diauth_routes.py`), connectapi (`connectapi.py` with `profile.py` and the generated data:
`data.py`, `activities.py`, `wellness.py`, `draw.py`), faults and latency (`faults.py`,
`interference.py`), accounts and state (`accounts.py`, `state.py`, `issued.py`), the control
API (`control.py`); `app.py` assembles. `docs/sandbox.md` describes the endpoints, the
answers assumed where Garmin's are undocumented, and the control API.
"""

from __future__ import annotations

from .accounts import DATA_FAMILIES, Account, accounts_from_seed, load_seed
from .activities import ACTIVITY_TYPES, activity_is_malformed, expected_activities
from .app import create_sandbox_app
from .diauth import DI_CLIENT_IDS, SANDBOX_DI_SIGNING_KEY, SERVICE_TICKET_GRANT
from .errors import AccountExists, SandboxError, UnknownAccount, ValidationError
from .faults import SCOPES, Fault
from .handling import CALLER_HEADER, SANDBOX_STATE
from .issued import ISSUED_VALUE_PATTERN
from .oauth_routes import SANDBOX_CONSUMER_KEY, SANDBOX_CONSUMER_SECRET
from .sso_routes import SSO_COOKIE
from .state import RecordedRequest, SandboxState, day_end_clock
from .wellness import generated_day

__all__ = [
    "ACTIVITY_TYPES",
    "CALLER_HEADER",
    "DATA_FAMILIES",
    "DI_CLIENT_IDS",
    "ISSUED_VALUE_PATTERN",
    "SANDBOX_CONSUMER_KEY",
    "SANDBOX_CONSUMER_SECRET",
    "SANDBOX_DI_SIGNING_KEY",
    "SANDBOX_STATE",
    "SCOPES",
    "SERVICE_TICKET_GRANT",
    "SSO_COOKIE",
    "Account",
    "AccountExists",
    "Fault",
    "RecordedRequest",
    "SandboxError",
    "SandboxState",
    "UnknownAccount",
    "ValidationError",
    "accounts_from_seed",
    "activity_is_malformed",
    "create_sandbox_app",
    "day_end_clock",
    "expected_activities",
    "generated_day",
    "load_seed",
]
