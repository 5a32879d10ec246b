"""The `garmin` configuration section (how Garmin Connect is reached) and the checks of its
values, declared like every other in `service.config`, which assembles the sections into
`Config` and re-exports this one."""

from __future__ import annotations

import re
from dataclasses import dataclass

from service.settings import setting

# the DI engine's sign-in strategies (`service.garmin.di.engine.STRATEGIES`; a test keeps
# the two lists equal: the configuration sits below the engines and cannot import them)
DI_STRATEGIES = ("mobile+cffi", "mobile+requests", "portal+cffi", "portal+requests")
GARMIN_ENGINES = ("di", "garth")


def _di_strategies(names: tuple[str, ...]) -> tuple[str, ...]:
    unknown = [name for name in names if name not in DI_STRATEGIES]
    if unknown:
        raise ValueError(f"unknown strategies {', '.join(unknown)}; "
                         f"known: {', '.join(DI_STRATEGIES)}")
    if len(set(names)) != len(names):
        raise ValueError("names a strategy twice")
    return names


def _proxy_url(url: str) -> str:
    # the URL may carry the proxy's credentials: the message never repeats it
    url = url.strip()
    if url and not re.match(r"^https?://[^/\s]+(/[^\s]*)?$", url):
        raise ValueError("must be empty or an http(s):// URL (the value is not shown)")
    return url


def _base_url(url: str) -> str:
    url = url.strip().rstrip("/")
    if url and not re.match(r"^https?://[^/\s]+", url):
        raise ValueError("must be empty or an http(s):// URL")
    return url


@dataclass(frozen=True)
class GarminConfig:
    """How Garmin Connect is reached."""

    domain: str = setting("garmin.com", "Garmin's domain.")
    base_url: str = setting(
        "", "Empty: talk to Garmin. Set to the sandbox (`http://127.0.0.1:9090`) to route "
        "every `https://<sub>.<domain><path>` request to `<base_url>/<sub><path>`.",
        check=_base_url, check_doc="empty or an `http(s)://` URL")
    oauth_consumer_key: str = setting(
        "", "garth's OAuth consumer key. Empty (with the secret): garth downloads the "
        "consumer once from its published location. Set both or neither.")
    oauth_consumer_secret: str = setting(
        "", "garth's OAuth consumer secret (see `garmin.oauth_consumer_key`).")
    executor_threads: int = setting(
        16, "The bounded pool for garth's blocking calls: the most Garmin calls one replica "
        "runs at once.", minimum=1)
    thread_nice: int = setting(
        10, "The pool's threads run at this Linux nice, below the event loop, so a request "
        "waiting for the loop runs before the Garmin calls' Python work on a busy core. On a "
        "host shared with other CPU-bound processes at normal priority, those run first, so "
        "set 0 there; 0 keeps the process's priority.", minimum=0, maximum=19)
    timeout_seconds: float = setting(15.0, "Timeout of each Garmin request.", minimum=0.1)
    retries: int = setting(
        2, "Retries of connection errors and 502-504 on GET only (never a 429, never a "
        "login POST).", minimum=0)
    engine: str = setting(
        "di", "The engine of NEW logins: `di` (Garmin's DI tokens, what the Garmin Connect "
        "app uses) or `garth` (garth's OAuth1/OAuth2 tokens, which Garmin's sign-in refuses "
        "since March 2026). A stored session is always used by the engine that made it, "
        "whatever this says; the two token formats cannot be converted.",
        choices=GARMIN_ENGINES)
    proxy_url: str = setting(
        "", "Secret. Every Garmin request of both engines goes through this HTTP(S) proxy "
        "(`http://user:password@host:port`), whatever the environment says; empty: the "
        "environment's proxy variables (`HTTPS_PROXY`, `NO_PROXY`...) apply as the HTTP "
        "libraries read them; a change needs a restart (they are read once per host). Never "
        "logged nor shown in answers or errors.",
        check=_proxy_url, check_doc="empty or an `http(s)://` URL", secret=True)
    di_strategies: tuple[str, ...] = setting(
        (), "The DI sign-in strategies tried in order (`mobile` is the app's sign-in, "
        "`portal` the web one; `cffi` imitates a browser's TLS, `requests` does not). A "
        "failure moves on to the next; a 429 or Garmin's verdict on the credentials ends the "
        "login at once. Empty: ha-garmin's order for `garmin.domain`, the mobile strategies "
        "first (`mobile+cffi, mobile+requests, portal+cffi, portal+requests`), except on "
        "`garmin.cn`, whose sign-in has no mobile endpoint: the portal ones first there "
        "(`portal+cffi, portal+requests, mobile+cffi, mobile+requests`).",
        check=_di_strategies,
        check_doc=f"empty, or a list of {', '.join(f'`{n}`' for n in DI_STRATEGIES)}, "
                  "each at most once")
    di_login_delays: bool = setting(
        True, "Pause like a person between loading a DI sign-in page and posting it "
        "(2-5 s on the mobile strategies, 10-20 s on the portal ones, per strategy tried), "
        "as Garmin's firewall expects: a DI login with MFA can take a minute or more. "
        "Turn off only against the sandbox.")
    di_refresh_margin_seconds: float = setting(
        60.0, "A DI access token this close to its expiry is refreshed before a call.",
        minimum=0)
