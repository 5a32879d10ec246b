"""What requests reads from the process environment, read once per origin for both engines.

A requests session that trusts the environment (`trust_env`, the default) scans every
environment variable for proxy settings twice on each request (the proxies, then
`no_proxy`), which costs more CPU than the rest of a Garmin data call. `EnvironmentSession`
does what `trust_env` did, with the same results: the proxies (`HTTPS_PROXY`, `NO_PROXY` &
co., resolved once per scheme://host for the process), the CA bundle and `~/.netrc`, on
redirects too. A proxy given with the request (`garmin.proxy_url`) still wins over the
environment's, as it does with requests.
"""

from __future__ import annotations

import functools
import os
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.utils import get_environ_proxies, get_netrc_auth


def origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


@functools.lru_cache(maxsize=64)
def _origin_proxies(origin_url: str) -> tuple[tuple[str, str], ...]:
    return tuple(get_environ_proxies(origin_url).items())


def environment_proxies(url: str, no_proxy: str | None = None) -> dict[str, str]:
    """requests' `get_environ_proxies(url, no_proxy)`; without an explicit `no_proxy`, read
    once per origin for the process (only the host and port decide it)."""
    if no_proxy is not None:
        return get_environ_proxies(url, no_proxy=no_proxy)
    return dict(_origin_proxies(origin(url)))


def forget_environment() -> None:
    """Read the environment's proxies afresh on the next request (after changing them)."""
    _origin_proxies.cache_clear()


def ca_bundle() -> str | None:
    return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")


class EnvironmentSession(requests.Session):
    """A requests session that reads the environment's proxies once per origin.

    `trust_env` is off, and each place where requests would have read the environment does
    it here instead, with requests' own rules: ~/.netrc for a request without credentials,
    the proxies and CA bundle when settings are merged, and both again on a redirect.
    """

    def __init__(self) -> None:
        super().__init__()
        self.trust_env = False

    def prepare_request(self, request: requests.Request) -> requests.PreparedRequest:
        if not request.auth and not self.auth:
            request.auth = get_netrc_auth(request.url)
        return super().prepare_request(request)

    def merge_environment_settings(self, url: str | bytes | None, proxies: Any, stream: Any,
                                   verify: Any, cert: Any) -> Any:
        text = url.decode() if isinstance(url, bytes) else str(url)
        if proxies is not None:
            for key, value in environment_proxies(text, proxies.get("no_proxy")).items():
                proxies.setdefault(key, value)
        if verify is True or verify is None:
            verify = ca_bundle() or verify
        return super().merge_environment_settings(url, proxies, stream, verify, cert)

    def rebuild_proxies(self, prepared_request: requests.PreparedRequest,
                        proxies: dict[str, str] | None) -> dict[str, str]:
        """requests' `resolve_proxies` for a redirect's target, the environment cached."""
        given = dict(proxies or {})
        url = str(prepared_request.url)
        found = environment_proxies(url, given.get("no_proxy"))
        scheme = urlsplit(url).scheme
        proxy = found.get(scheme, found.get("all"))
        if proxy:
            given.setdefault(scheme, proxy)
        rebuilt: dict[str, str] = super().rebuild_proxies(  # type: ignore[no-untyped-call]
            prepared_request, given)
        return rebuilt

    def rebuild_auth(self, prepared_request: requests.PreparedRequest,
                     response: requests.Response) -> None:
        super().rebuild_auth(prepared_request, response)  # type: ignore[no-untyped-call]
        found = get_netrc_auth(str(prepared_request.url))
        if found is not None:
            prepared_request.prepare_auth(found)


class OriginSettings:
    """What requests takes from the environment for a request, looked up once per origin
    for one login or use: `~/.netrc` credentials, and the proxies (`proxies` first), CA
    bundle and certificate merged by `session` as `Session.request` merges them."""

    def __init__(self, session: requests.Session, proxies: dict[str, str] | None = None) -> None:
        self._session = session
        self._proxies = proxies or {}
        self._settings: dict[str, dict[str, Any]] = {}
        self._netrc: dict[str, Any] = {}

    def settings(self, url: str) -> dict[str, Any]:
        """The merged proxies, `verify` and `cert` for `url`'s origin."""
        key = origin(url)
        found = self._settings.get(key)
        if found is None:
            merged = self._session.merge_environment_settings(url, dict(self._proxies), None,
                                                              None, None)
            found = self._settings[key] = dict(merged)
        return found

    def netrc(self, url: str) -> Any:
        """`~/.netrc` credentials for `url`'s origin, or None."""
        key = origin(url)
        if key not in self._netrc:
            self._netrc[key] = get_netrc_auth(url)
        return self._netrc[key]
