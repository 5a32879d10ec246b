"""How the garth engine's requests reach Garmin: one shared transport, routing, signing.

A gateway's clients share one `Transport`: a urllib3 connection pool and nothing else.
Credentials never live in it: each client keeps its own requests session (cookies, tokens),
every request carries its own fresh headers, and a pooled socket carries no state from one
request to the next. The environment's proxy settings are read once per host instead of on
every request (`service.garmin.environment`). A login's two OAuth1 steps are signed here
(`_oauth1_authorization`) instead of by requests_oauthlib's session layer. A login's
requests, retries included, end by its `Deadline`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
from oauthlib.common import (  # type: ignore[import-untyped]
    generate_nonce,
    generate_timestamp,
    urldecode,
)
from oauthlib.oauth1.rfc5849 import (  # type: ignore[import-untyped]
    signature as oauth_signature,
)
from oauthlib.oauth1.rfc5849.utils import (  # type: ignore[import-untyped]
    escape as oauth_escape,
)
from oauthlib.oauth1.rfc5849.utils import unescape as oauth_unescape
from requests.adapters import BaseAdapter, HTTPAdapter
from urllib3.util import Timeout

from service.garmin.errors import GarminUnavailable
from service.garmin.routing import SANDBOX_CALLER_HEADER, retry_policy
from service.garmin.routing import host_pattern as _host_pattern


class Transport:
    """Connection pools shared by many clients: sockets to Garmin, never credentials.

    One per gateway (sized to its thread pool, so no thread waits for or discards a
    connection). A job then reuses a warm connection instead of opening one; cookies and
    tokens stay in each client's own session, and each request carries its own headers.
    """

    def __init__(self, retries: int, pool_size: int = 10) -> None:
        self.adapter = HTTPAdapter(pool_connections=10, pool_maxsize=max(pool_size, 1),
                                   max_retries=retry_policy(retries))

    def close(self) -> None:
        self.adapter.close()


class _ClientAdapter(BaseAdapter):
    """One client's adapter: routes (sandbox), tags the caller, sends over a transport.

    With `base_url` set, `https://<sub>.<domain><path>` goes to `<base_url>/<sub><path>` (the
    sandbox) and the caller header lets the sandbox prove that no request carried another
    user's token. Mounted on the client's session, so garth's OAuth1 sessions (which reuse
    the parent's adapter) are routed too. Closing it leaves a shared transport open.
    """

    def __init__(self, transport: Transport, owned: bool, base_url: str, domain: str,
                 caller: str, proxy_url: str | None = None) -> None:
        super().__init__()
        # the configured proxy replaces the environment's for every request of the client
        self._proxies = {"http": proxy_url, "https": proxy_url} if proxy_url else None
        self._transport = transport
        self._owned = owned
        self._base_url = base_url.rstrip("/")
        self._host = _host_pattern(domain) if base_url else None
        self._caller = caller

    def send(self, request: requests.PreparedRequest, stream: bool = False,
             timeout: Any = None, verify: bool | str = True, cert: Any = None,
             proxies: Any = None) -> requests.Response:
        if self._host is not None:
            match = self._host.match(request.url or "")
            if match is None:
                raise requests.ConnectionError(
                    f"refusing to route {urlsplit(str(request.url)).netloc}")
            request = request.copy()
            request.url = f"{self._base_url}/{match.group(1)}{match.group(2) or '/'}"
            request.headers[SANDBOX_CALLER_HEADER] = self._caller
        return self._transport.adapter.send(request, stream=stream, timeout=timeout,
                                            verify=verify, cert=cert,
                                            proxies=self._proxies or proxies)

    def close(self) -> None:
        if self._owned:
            self._transport.close()


class Deadline:
    """The end of a whole login or MFA step (`login_timeout_seconds`): every request's
    timeout is cut to what is left of it, and nothing is sent once it has passed."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._end = clock() + seconds

    def left(self) -> float:
        return self._end - self._clock()

    def timeout(self, per_request: float) -> Timeout:
        """The timeout to send a request with (raises once the deadline has passed)."""
        return _DeadlineTimeout(per_request, self)


class _DeadlineTimeout(Timeout):
    """A request's timeout, cut to what is left of a `Deadline`.

    urllib3 clones the timeout it is given for every attempt of a request, so each retry
    (a GET's connection errors and 502-504) is cut again, and none starts after the
    deadline: the whole login ends by then, not each attempt.
    """

    def __init__(self, per_request: float, deadline: Deadline) -> None:
        left = deadline.left()
        if left <= 0:
            raise GarminUnavailable("the Garmin sign-in took too long", timeout=True)
        cut = min(per_request, left)
        super().__init__(connect=cut, read=cut)
        self._per_request = per_request
        self._deadline = deadline

    def clone(self) -> Timeout:
        return _DeadlineTimeout(self._per_request, self._deadline)


@dataclass(frozen=True)
class _OAuth1Credentials:
    consumer_key: str
    consumer_secret: str
    token: str | None
    token_secret: str | None

    def __repr__(self) -> str:  # never the secrets
        return f"_OAuth1Credentials(consumer_key={self.consumer_key!r}, token=...)"


def _oauth1_authorization(method: str, url: str, form_body: str | None,
                          credentials: _OAuth1Credentials, nonce: str | None = None,
                          timestamp: str | None = None) -> str:
    """The `Authorization: OAuth ...` header requests_oauthlib's `OAuth1` puts on a request
    (HMAC-SHA1, in the header, RFC 5849 section 3.4), computed directly.

    oauthlib renders the header, parses it back to collect the parameters and escapes each
    one several times; this builds the same parameters once, in the same order, with the
    same nonce and timestamp and oauthlib's own escaping and base string.
    """
    oauth = [
        ("oauth_nonce", nonce or generate_nonce()),
        ("oauth_timestamp", timestamp or generate_timestamp()),
        ("oauth_version", "1.0"),
        ("oauth_signature_method", "HMAC-SHA1"),
        ("oauth_consumer_key", credentials.consumer_key),
    ]
    if credentials.token:
        oauth.append(("oauth_token", credentials.token))
    # the query's and the form body's parameters, as oauthlib collects them
    query = urlsplit(url).query
    carried = [
        (key, oauth_unescape(value) if key.startswith("oauth_") else value)
        for key, value in [*(urldecode(query) if query else []),
                           *(urldecode(form_body) if form_body else [])]
        if key != "oauth_signature"
    ]
    pairs = sorted((oauth_escape(key), oauth_escape(value)) for key, value in [*carried, *oauth])
    base = oauth_signature.signature_base_string(
        method.upper(), oauth_signature.base_string_uri(url),
        "&".join(f"{key}={value}" for key, value in pairs))
    key = (f"{oauth_escape(credentials.consumer_secret or '')}&"
           f"{oauth_escape(credentials.token_secret or '')}")
    digest = hmac.new(key.encode(), base.encode(), hashlib.sha1).digest()
    oauth.append(("oauth_signature", base64.b64encode(digest).decode()))
    return "OAuth " + ", ".join(f'{oauth_escape(k)}="{oauth_escape(v)}"' for k, v in oauth)
