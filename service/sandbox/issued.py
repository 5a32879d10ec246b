"""Every value the sandbox hands out, and the memory of the secret ones for leak checks.

Credentials (tickets, OAuth1 tokens and secrets, MFA tokens, access and refresh tokens) are
opaque random strings with a recognisable prefix, remembered so a test can grep logs and
databases for leaks. DI access tokens are JWTs (see `diauth.py`): they cannot carry the
prefix, so they are remembered through `remember`. The SSO session cookie and token ids are
issued the same way but not remembered: clients legitimately keep them (for example to
resume an MFA challenge later).
"""

from __future__ import annotations

import re
import secrets
from typing import Final

PREFIXES: Final = {
    "ticket": "ST-sbx-tk-",
    "oauth1": "sbx-o1-",
    "oauth1_secret": "sbx-o1s-",
    "mfa": "sbx-mfa-",
    "access": "sbx-at-",
    "refresh": "sbx-rt-",
    "jti": "sbx-jti-",
    "sso_session": "sbx-sso-",
    "di_refresh": "sbx-drt-",
    "di_jti": "sbx-djti-",
}
"""Prefix of each kind of value the sandbox issues; a leak check can grep for "sbx-"."""
ISSUED_VALUE_PATTERN: Final = re.compile(r"(?:ST-)?sbx-[a-z0-9]+-[0-9a-f]{32}")
"""Matches anything `Issuer.issue` produces (secrets and the non-secret jti/SSO ids alike)."""


class Issuer:
    """Mints prefixed random values; remembers the secret ones for as long as it lives."""

    def __init__(self) -> None:
        self._secrets: list[str] = []

    def issue(self, kind: str, *, secret: bool = True) -> str:
        """A fresh value of `kind` (a key of PREFIXES)."""
        value = f"{PREFIXES[kind]}{secrets.token_hex(16)}"
        if secret:
            self._secrets.append(value)
        return value

    def remember(self, value: str) -> None:
        """Remember a secret minted elsewhere (a signed DI access token)."""
        self._secrets.append(value)

    def secrets(self) -> list[str]:
        """Every secret issued so far, oldest first."""
        return list(self._secrets)
