"""A pending DI MFA challenge, out of one `GarminAuth` and into another: the only module
that knows ha-garmin's private `_mfa_*` attributes.

ha-garmin keeps the challenge on the instance that signed in, and `complete_mfa` clears it
whatever happens, so a wrong code would lose it. Here the challenge is dumped right after
the sign-in (the caller seals it), and every code attempt restores it into a new instance
with a new HTTP session carrying the SSO cookies: a wrong code loses nothing, and the
attempt may run in any replica. `tests/garmin/test_di_mfa_state.py` fails when an
ha-garmin upgrade renames or adds what `_clear_mfa_state` resets.
"""

from __future__ import annotations

import json
from typing import Any

from ha_garmin.auth import GarminAuth
from requests.cookies import create_cookie

from service.garmin.di.wire import Wire, WiredSession
from service.garmin.engine import GarminSettings
from service.garmin.errors import GarminProtocolError, MfaChallengeLost

VERSION = 1

# what `_do_mobile_login` / `_do_portal_web_login` set when Garmin asks for a code, beside
# the session and `_mfa_pending`; `_clear_mfa_state` also resets `_widget_last_resp` (the
# widget flow, which this engine does not run)
CARRIED = ("_mfa_login_params", "_mfa_post_headers", "_mfa_service_url", "_mfa_flow",
           "_mfa_method")
SESSION = "_mfa_session"
PENDING = "_mfa_pending"
WIDGET_ONLY = ("_widget_last_resp",)
FLOWS = frozenset({"ios", "portal"})


def _jar(cookies: Any) -> Any:
    """The http.cookiejar behind requests' jar (itself) or curl_cffi's `Cookies` (`.jar`)."""
    return getattr(cookies, "jar", cookies)


def dump(auth: GarminAuth, settings: GarminSettings) -> str:
    """The challenge `auth` holds after `GarminMFARequired`, as JSON for the caller to seal."""
    session = getattr(auth, SESSION, None)
    flow = getattr(auth, "_mfa_flow", None)
    if not isinstance(session, WiredSession) or flow not in FLOWS:
        raise GarminProtocolError("Garmin asked for a code in a flow this engine cannot resume")
    return json.dumps({
        "engine": "di",
        "v": VERSION,
        "domain": settings.domain,
        "attributes": {name: getattr(auth, name, None) for name in CARRIED},
        "session": {"kind": session.kind, "impersonate": session.impersonate},
        "cookies": [
            {"name": c.name, "value": c.value, "domain": c.domain, "path": c.path,
             "expires": c.expires, "secure": c.secure}
            for c in _jar(session.cookies)
        ],
    })


def method(state: str) -> str:
    """The MFA method Garmin named (email, sms, totp...), for the user's prompt."""
    return str(_load(state)["attributes"].get("_mfa_method") or "email")


def _load(state: str) -> dict[str, Any]:
    try:
        loaded = json.loads(state)
    except ValueError:
        raise MfaChallengeLost("the pending MFA challenge cannot be read") from None
    if (not isinstance(loaded, dict) or loaded.get("engine") != "di"
            or loaded.get("v") != VERSION or not isinstance(loaded.get("attributes"), dict)
            or loaded["attributes"].get("_mfa_flow") not in FLOWS):
        raise MfaChallengeLost("the pending MFA challenge is of another version")
    return loaded


def restore(auth: GarminAuth, state: str, wire: Wire, settings: GarminSettings) -> WiredSession:
    """Put the challenge into a fresh `auth`, with a new session on `wire` holding its
    cookies; `auth._complete_mfa(code)` then posts the code as the original would have."""
    loaded = _load(state)
    if loaded.get("domain") != settings.domain:
        raise MfaChallengeLost("the pending MFA challenge is from another configuration")
    kind = loaded["session"].get("kind")
    session = wire.session("cffi" if kind == "cffi" else "requests",
                           loaded["session"].get("impersonate"))
    jar = _jar(session.cookies)
    for cookie in loaded["cookies"]:
        jar.set_cookie(create_cookie(**cookie))  # type: ignore[no-untyped-call]
    for name, value in loaded["attributes"].items():
        if name in CARRIED:
            setattr(auth, name, value)
    setattr(auth, SESSION, session)
    setattr(auth, PENDING, True)
    return session
