"""A stand-in for the Garmin endpoints garth uses, the way moto stands in for AWS.

Tests (and local runs) route garth's `https://<sub>.garmin.com<path>` traffic to
`<sandbox>/<sub><path>`; the sandbox plays SSO sign-in, MFA, the OAuth1/OAuth2 exchanges and
a few connectapi endpoints, injects faults on demand, and records every request so tests can
prove which user's token each request carried.
"""

from __future__ import annotations

from .app import (
    CALLER_HEADER,
    SANDBOX_CONSUMER_KEY,
    SANDBOX_CONSUMER_SECRET,
    SANDBOX_STATE,
    SSO_COOKIE,
    create_sandbox_app,
)
from .state import (
    ISSUED_VALUE_PATTERN,
    SCOPES,
    Account,
    AccountExists,
    Fault,
    RecordedRequest,
    SandboxError,
    SandboxState,
    UnknownAccount,
    ValidationError,
    accounts_from_seed,
    load_seed,
)

__all__ = [
    "CALLER_HEADER",
    "ISSUED_VALUE_PATTERN",
    "SANDBOX_CONSUMER_KEY",
    "SANDBOX_CONSUMER_SECRET",
    "SANDBOX_STATE",
    "SCOPES",
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
    "create_sandbox_app",
    "load_seed",
]
