"""The DI engine: Garmin's DI OAuth2 tokens through ha-garmin (`ha_garmin.auth.GarminAuth`).

Garmin stopped accepting garth's sign-in in March 2026; new logins exchange the SSO service
ticket at `diauth.<domain>` for a JWT access token and a refresh token that rotates on
every refresh. ha-garmin's protocol code is used as it is (upgrading it stays a one-line
change); what this package overrides, and why:

- the strategy chain: the configured strategies' steps run one at a time and a 429 ends the
  login after one credential POST (`engine`);
- the MFA challenge: sealed after the sign-in and restored into a new instance for every
  code, since `complete_mfa` clears it even after a wrong code (`mfa_state`);
- errors: decided from Garmin's recorded answers, since ha-garmin's exceptions merge a wrong
  code with a lost challenge, a 503 with an `invalid_grant`, and drop Retry-After
  (`classify`);
- refresh: decided here (before expiry and once after a 401), never by
  `refresh_session()`, which turns every failure into False (`session`);
- its module-level `_http_post` and `time.sleep`: per-context shims that route, proxy,
  bound and record the token calls and skip the pauses when configured (`wire`).
"""

from service.garmin.di.engine import DiEngine

__all__ = ["DiEngine"]
