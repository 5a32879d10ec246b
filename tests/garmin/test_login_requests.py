"""A login's requests, prepared without requests' session layer, are the ones garth sends.

`service.garmin.garth.signin.login` and `resume_mfa` run garth 0.8.0's SSO flow on a client that
prepares each request once and hands it to the shared transport. These tests record what
reaches the transport and compare it with garth's own flow (`garth.Client.login` on the
same kind of client), check the OAuth1 signatures, and pin the environment handling.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import re
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from oauthlib.common import Request as OAuthRequest
from oauthlib.oauth1.rfc5849 import signature
from requests.adapters import HTTPAdapter
from requests_oauthlib import OAuth1
from urllib3.util import Timeout

from service.clock import ManualClock
from service.garmin import (
    GarminSettings,
    GarminUnavailable,
    LoginResult,
    configure_consumer,
    environment,
)
from service.garmin.environment import EnvironmentSession
from service.garmin.garth import signin as garmin_client
from service.garmin.garth.api import _Client
from service.garmin.garth.signin import login, resume_mfa
from service.garmin.garth.transport import (
    Deadline,
    Transport,
    _oauth1_authorization,
    _OAuth1Credentials,
)
from service.sandbox import SANDBOX_CONSUMER_KEY, SANDBOX_CONSUMER_SECRET
from tests.support.app import Sandbox

PASSWORD = "pw-correct-horse"
VARYING = re.compile(r"((?:ticket|mfa_token)=)[^&]+")  # differ from login to login


class Recorder(HTTPAdapter):
    """The shared transport's adapter, remembering every request and its send options."""

    def __init__(self) -> None:
        super().__init__(max_retries=0)
        self.sent: list[tuple[requests.PreparedRequest, dict[str, Any]]] = []

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        self.sent.append((request.copy(), dict(kwargs)))
        return super().send(request, **kwargs)


def recording_transport(recorder: Recorder) -> Transport:
    transport = Transport(retries=0)
    transport.adapter = recorder
    return transport


def settings_for(sandbox: Sandbox) -> GarminSettings:
    configure_consumer(SANDBOX_CONSUMER_KEY, SANDBOX_CONSUMER_SECRET)
    return GarminSettings(base_url=sandbox.url, timeout_seconds=5, retries=0)


def garths_own_login(settings: GarminSettings, caller: str, username: str,
                     transport: Transport) -> None:
    client = _Client(settings, caller, transport)
    client.login(username, PASSWORD, return_on_mfa=True)


def shape(request: requests.PreparedRequest, options: dict[str, Any]) -> dict[str, Any]:
    """What must match between two logins: everything but per-login values, as sent
    (requests_oauthlib leaves header values as bytes, which go out as the same text)."""
    headers = {name: text(value) for name, value in request.headers.items()}
    cookie = headers.pop("Cookie", None)
    authorization = headers.pop("Authorization", None)
    oauth = None
    if authorization is not None:
        oauth = sorted(part.split("=", 1)[0] for part in authorization[6:].split(", "))
    return {
        "method": request.method,
        "url": VARYING.sub(r"\1T", request.url or ""),
        "headers": list(headers.items()),
        "cookie_names": sorted(c.split("=", 1)[0] for c in cookie.split("; ")) if cookie else [],
        "oauth_parameters": oauth,
        "body": VARYING.sub(r"\1T", request.body.decode())
        if isinstance(request.body, bytes) else request.body,
        "options": {**options, "timeout": seconds(options.get("timeout"))},
    }


def seconds(timeout: Any) -> Any:
    """A request's timeout in seconds: ours is cut to the login's deadline (a urllib3
    `Timeout`), garth's own is a number."""
    return timeout.read_timeout if isinstance(timeout, Timeout) else timeout


def garmin_url(sandbox: Sandbox, request: requests.PreparedRequest) -> str:
    """The Garmin URL the client signed (the transport sees the sandbox's)."""
    path = (request.url or "")[len(sandbox.url) + 1:]
    subdomain, _, rest = path.partition("/")
    return f"https://{subdomain}.garmin.com/{rest}"


def signature_is_valid(sandbox: Sandbox, request: requests.PreparedRequest,
                       token_secret: str | None) -> bool:
    uri = garmin_url(sandbox, request)
    body = request.body.decode() if isinstance(request.body, bytes) else request.body
    headers = {"Authorization": text(request.headers["Authorization"])}
    if body is not None:
        headers["Content-Type"] = text(request.headers["Content-Type"])
    oauth_request = OAuthRequest(uri, request.method or "", body, headers)
    oauth_request.params = signature.collect_parameters(
        uri_query=urlsplit(uri).query, body=body, headers=headers)
    oauth_request.signature = dict(signature.collect_parameters(
        headers=headers, exclude_oauth_signature=False))["oauth_signature"]
    return bool(signature.verify_hmac_sha1(oauth_request, SANDBOX_CONSUMER_SECRET,
                                           token_secret))


def text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def tokens_of(session: str) -> tuple[dict[str, Any], dict[str, Any]]:
    oauth1, oauth2 = json.loads(base64.b64decode(session))
    return oauth1, oauth2


async def test_login_sends_the_requests_garths_own_flow_sends(sandbox: Sandbox) -> None:
    sandbox.add("same@example.com", PASSWORD)
    settings = settings_for(sandbox)
    theirs, ours = Recorder(), Recorder()
    await asyncio.to_thread(garths_own_login, settings, "user-1", "same@example.com",
                            recording_transport(theirs))
    result = await asyncio.to_thread(login, settings, "user-1", "same@example.com", PASSWORD,
                                     recording_transport(ours))
    assert result.session is not None
    assert len(ours.sent) == 5
    assert [shape(*sent) for sent in ours.sent] == [shape(*sent) for sent in theirs.sent]


async def test_mfa_login_sends_the_requests_garths_own_flow_sends(sandbox: Sandbox) -> None:
    sandbox.add("mfa@example.com", PASSWORD, mfa_code="123456")
    settings = settings_for(sandbox)
    theirs, ours = Recorder(), Recorder()

    def garths_own() -> None:
        client = _Client(settings, "user-1", recording_transport(theirs))
        _, state = client.login("mfa@example.com", PASSWORD, return_on_mfa=True)
        garmin_client.garth.sso.resume_login(state, "123456")

    def ours_() -> str:
        transport = recording_transport(ours)
        pending = login(settings, "user-1", "mfa@example.com", PASSWORD, transport)
        assert pending.mfa_state is not None
        return resume_mfa(settings, "user-1", pending.mfa_state, "123456", transport)

    await asyncio.to_thread(garths_own)
    session = await asyncio.to_thread(ours_)
    assert tokens_of(session)[0]["mfa_token"]
    assert [shape(*sent) for sent in ours.sent] == [shape(*sent) for sent in theirs.sent]


async def test_oauth1_steps_carry_a_valid_hmac_sha1_signature(sandbox: Sandbox) -> None:
    sandbox.add("signed@example.com", PASSWORD)
    recorder = Recorder()
    result = await asyncio.to_thread(login, settings_for(sandbox), "user-1",
                                     "signed@example.com", PASSWORD,
                                     recording_transport(recorder))
    assert result.session is not None
    oauth1, _ = tokens_of(result.session)
    preauthorized, exchange = (request for request, _ in recorder.sent[-2:])
    assert "/oauth/preauthorized" in (preauthorized.url or "")
    assert signature_is_valid(sandbox, preauthorized, None)
    assert "/oauth/exchange/" in (exchange.url or "")
    assert f'oauth_token="{oauth1["oauth_token"]}"' in text(exchange.headers["Authorization"])
    assert signature_is_valid(sandbox, exchange, oauth1["oauth_token_secret"])
    assert not signature_is_valid(sandbox, exchange, "another-secret")


@pytest.mark.parametrize(("method", "url", "form", "token", "secret"), [
    ("GET", "https://connectapi.garmin.com/oauth-service/oauth/preauthorized?ticket=ST-1-a"
            "&login-url=https://mobile.integration.garmin.com/gcm/android"
            "&accepts-mfa-tokens=true", None, None, None),
    ("POST", "https://connectapi.garmin.com/oauth-service/oauth/exchange/user/2.0",
     "audience=GARMIN_CONNECT_MOBILE_ANDROID_DI&mfa_token=a%2Bb%20c~d", "tok/en+1", "s&c=r et"),
])
def test_oauth1_header_is_the_one_requests_oauthlib_signs(
    method: str, url: str, form: str | None, token: str | None, secret: str | None
) -> None:
    """Same nonce and timestamp, same header, byte for byte."""
    credentials = _OAuth1Credentials("consumer key", "consumer&secret", token, secret)
    request = requests.Request(method, url, data=form, headers={
        "Content-Type": "application/x-www-form-urlencoded"} if form else {}).prepare()
    signer = OAuth1(credentials.consumer_key, client_secret=credentials.consumer_secret,
                    resource_owner_key=token, resource_owner_secret=secret)
    signer.client.nonce, signer.client.timestamp = "19876543210123456789", "1700000000"
    expected = text(signer(request).headers["Authorization"])
    assert _oauth1_authorization(method, url, form, credentials,
                                 nonce="19876543210123456789",
                                 timestamp="1700000000") == expected


async def test_login_reads_proxies_and_netrc_once_per_host(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    sandbox.add("env@example.com", PASSWORD)
    merged: list[str] = []
    netrc: list[str] = []
    original_merge = EnvironmentSession.merge_environment_settings

    def count_merge(self: EnvironmentSession, url: Any, *args: Any) -> Any:
        merged.append(urlsplit(str(url)).netloc)
        return original_merge(self, url, *args)

    def count_netrc(url: str, raise_errors: bool = False) -> None:
        netrc.append(urlsplit(url).netloc)

    monkeypatch.setattr(EnvironmentSession, "merge_environment_settings", count_merge)
    monkeypatch.setattr(environment, "get_netrc_auth", count_netrc)
    result = await asyncio.to_thread(login, settings_for(sandbox), "user-1", "env@example.com",
                                     PASSWORD, Transport(retries=0))
    assert result.session is not None
    assert sorted(merged) == ["connectapi.garmin.com", "sso.garmin.com"]
    assert netrc == ["sso.garmin.com"]  # the signed steps never used ~/.netrc


async def test_netrc_credentials_reach_the_sso_pages_not_the_signed_steps(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    sandbox.add("netrc@example.com", PASSWORD)
    netrc = tmp_path / "netrc"
    netrc.write_text("machine sso.garmin.com login someone password secret\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    recorder = Recorder()
    await asyncio.to_thread(login, settings_for(sandbox), "user-1", "netrc@example.com",
                            PASSWORD, recording_transport(recorder))
    schemes = [text(request.headers.get("Authorization", "")).split(" ", 1)[0]
               for request, _ in recorder.sent]
    assert schemes == ["Basic"] * 3 + ["OAuth"] * 2


class RedirectOnce(Recorder):
    """Answers the first sign-in page with a redirect that sets a cookie."""

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        if "/sign-in" in (request.url or "") and not self.sent:
            self.sent.append((request.copy(), dict(kwargs)))
            response = requests.Response()
            response.status_code = 302
            response.headers["Location"] = (
                "https://sso.garmin.com/mobile/sso/en/sign-in?clientId=GCM_ANDROID_DARK&hop=1")
            response.url = request.url or ""
            response.request = request
            response.raw = io.BytesIO(b"")
            response._content = b""
            return response
        return super().send(request, **kwargs)


async def test_a_redirect_of_an_sso_page_is_followed(sandbox: Sandbox) -> None:
    sandbox.add("hop@example.com", PASSWORD)
    recorder = RedirectOnce()
    result: LoginResult = await asyncio.to_thread(
        login, settings_for(sandbox), "user-1", "hop@example.com", PASSWORD,
        recording_transport(recorder))
    assert result.session is not None
    urls = [request.url or "" for request, _ in recorder.sent]
    assert "hop=1" in urls[1]
    assert len(urls) == 6


async def test_the_configured_proxy_carries_garths_requests(sandbox: Sandbox) -> None:
    """The base URL is unreachable; only the proxy (the sandbox itself) answers."""
    sandbox.add("proxied@example.com")
    settings = replace(settings_for(sandbox), base_url="http://127.0.0.1:9",
                       proxy_url=sandbox.url)
    result = await asyncio.to_thread(login, settings, "u1", "proxied@example.com", PASSWORD)
    assert result.session is not None


async def test_a_login_or_code_past_its_deadline_sends_nothing(sandbox: Sandbox) -> None:
    """`login_timeout_seconds` bounds a garth login and its MFA step as it bounds a DI
    login: once it has passed, no request goes out, and the failure is a timeout."""
    sandbox.add("late@example.com", PASSWORD, mfa_code="123456")
    settings = settings_for(sandbox)
    pending = await asyncio.to_thread(login, settings, "u1", "late@example.com", PASSWORD)
    assert pending.mfa_state is not None
    expired = replace(settings, login_timeout_seconds=0)
    recorder = Recorder()
    with pytest.raises(GarminUnavailable) as caught:
        await asyncio.to_thread(login, expired, "u1", "late@example.com", PASSWORD,
                                recording_transport(recorder))
    assert caught.value.timeout
    with pytest.raises(GarminUnavailable) as caught:
        await asyncio.to_thread(resume_mfa, expired, "u1", pending.mfa_state, "123456",
                                recording_transport(recorder))
    assert caught.value.timeout and recorder.sent == []


def test_every_attempt_of_a_request_is_cut_to_what_is_left_of_the_deadline() -> None:
    """urllib3 clones a request's timeout for each attempt (retries included): each clone
    is cut to what is left, and none is made once the deadline has passed."""
    clock = ManualClock()
    deadline = Deadline(10, clock.monotonic)
    timeout = deadline.timeout(4)
    assert (timeout.connect_timeout, timeout.read_timeout) == (4, 4)
    clock.advance(7.5)
    retry = timeout.clone()
    assert (retry.connect_timeout, retry.read_timeout) == (2.5, 2.5)
    clock.advance(2.5)
    with pytest.raises(GarminUnavailable) as caught:
        timeout.clone()
    assert caught.value.timeout
