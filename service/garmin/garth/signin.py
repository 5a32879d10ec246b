"""Garmin SSO sign-in and MFA, as garth 0.8.0 does them, on a client of our own.

`login` signs in on a fresh client: a session, or a challenge to resume with the MFA code.
The challenge (`mfa_state`) is JSON holding the SSO cookies, which the caller seals before
storing it, so `resume_mfa` can finish the login in any replica. `_LoginClient` prepares each
of garth's SSO requests once and signs the OAuth1 steps itself instead of going through
requests' session layer. Every failure leaves here classified as a `GarminError`.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlencode, urljoin

import garth
import garth.sso
import requests
from garth.auth_tokens import OAuth2Token
from garth.exc import GarthException, GarthHTTPError
from requests.cookies import (
    create_cookie,
    extract_cookies_to_jar,
    get_cookie_header,
)
from requests.hooks import default_hooks
from requests.structures import CaseInsensitiveDict
from requests.utils import requote_uri

from service.garmin.engine import GarminSettings, LoginResult
from service.garmin.environment import OriginSettings
from service.garmin.errors import (
    MfaChallengeLost,
    MfaCodeInvalid,
    RateLimited,
)
from service.garmin.garth.api import _Client
from service.garmin.garth.classify import blocked_in_body, classify
from service.garmin.garth.transport import (
    Deadline,
    Transport,
    _oauth1_authorization,
    _OAuth1Credentials,
)

MFA_STATE_VERSION = 1
CODE_POST = "/mfa/verifyCode"


class _LoginClient(_Client):
    """A client for one login or MFA step: garth's SSO requests without requests' session
    layer.

    Through `requests.Session.request` each of a login's five requests paid for merging
    settings, copying the cookie jar twice, hooks and netrc, and the two OAuth1 steps each
    built a session of their own that scanned the environment for proxies on every
    request. Here a request is prepared once, as requests would prepare it (the same URL,
    headers, body, cookies of this client only, fresh headers every time), and handed to
    the client's adapter: routing, the shared transport, errors and the response are
    requests' own. Proxies, CA bundle and `~/.netrc` are read once per host per login. A
    redirect, which the SSO flow does not get, is followed by requests itself. Every
    request, retry and redirect of the client ends by `login_timeout_seconds` after it was
    built.
    """

    def __init__(self, settings: GarminSettings, caller: str,
                 transport: Transport | None = None) -> None:
        super().__init__(settings, caller, transport)
        # the whole login or MFA step, as a DI login is bounded: requests and their retries
        self._deadline = Deadline(settings.login_timeout_seconds)
        self.codes_posted = 0  # MFA codes sent to Garmin, each counted by Garmin
        self._environment = OriginSettings(self.sess)

    def request(
        self,
        method: str,
        subdomain: str,
        path: str,
        /,
        api: bool = False,
        referrer: str | bool = False,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> requests.Response:
        """garth's `Client.request` for the SSO steps (sign-in, login, MFA, embed)."""
        if api or not set(kwargs) <= {"params", "json"}:
            return super().request(method, subdomain, path, api=api, referrer=referrer,
                                   headers=headers, **kwargs)
        fresh = dict(headers or {})
        if referrer is True and self.last_resp:
            fresh["referer"] = self.last_resp.url
        url = urljoin(f"https://{subdomain}.{self.domain}", path)
        request = self._prepare(method, url, fresh, params=kwargs.get("params"),
                                json_body=kwargs.get("json"))
        self.last_resp = self._send(request, url, keep_cookies=True)
        try:
            self.last_resp.raise_for_status()
        except requests.HTTPError as exc:
            raise GarthHTTPError(msg="Error in request", error=exc) from exc
        return self.last_resp

    def _prepare(self, method: str, url: str, headers: dict[str, str], *,
                 params: dict[str, Any] | None = None, json_body: Any = None,
                 form: dict[str, str] | None = None,
                 oauth1: _OAuth1Credentials | None = None) -> requests.PreparedRequest:
        """The request `Session.prepare_request` would build, without its merges.

        Without `oauth1` it is garth's SSO step: `~/.netrc` applies, as it did. The
        OAuth1 steps are signed instead (OAuth1Session never consulted `~/.netrc`).
        """
        if params:
            url = f"{url}{'&' if '?' in url else '?'}{urlencode(params, doseq=True)}"
        request = requests.PreparedRequest()
        request.prepare_method(method)
        request.url = requote_uri(url)
        merged = CaseInsensitiveDict(self.sess.headers)
        merged.update(headers)
        request.prepare_headers({k: v for k, v in merged.items() if v is not None})
        form_body = urlencode(form) if form else None
        request.prepare_body(form_body, None, json_body)
        cookie = get_cookie_header(self.sess.cookies, request)  # type: ignore[no-untyped-call]
        if cookie is not None:
            request.headers["Cookie"] = cookie
        request.hooks = default_hooks()
        if oauth1 is not None:
            if form_body is not None:  # requests_oauthlib hands the form body on as bytes
                request.body = form_body.encode()
            request.headers["Authorization"] = _oauth1_authorization(
                request.method or method, request.url, form_body, oauth1)
        else:
            netrc = self._environment.netrc(url)
            if netrc is not None:
                request.prepare_auth(netrc)
        return request

    def _send(self, request: requests.PreparedRequest, url: str, *, keep_cookies: bool,
              redirects: Callable[[], requests.Session] | None = None) -> requests.Response:
        """`Session.send` for one prepared request: the adapter, cookies, redirects, body.

        `keep_cookies` False is an OAuth1 step: its session was a copy, so what Garmin
        set there never reached the client's cookies. `redirects` is that session.
        """
        settings = self._environment.settings(url)
        verify = settings["verify"]
        options: dict[str, Any] = {
            "timeout": self._deadline.timeout(self.timeout),
            "verify": True if verify is None else verify,
            "cert": settings["cert"], "proxies": settings["proxies"]}
        if request.method == "POST" and CODE_POST in url:
            self.codes_posted += 1
        response = self.sess.get_adapter(request.url or url).send(request, stream=False,
                                                                   **options)
        if keep_cookies:
            extract_cookies_to_jar(  # type: ignore[no-untyped-call]
                self.sess.cookies, request, response.raw)
        if response.is_redirect:
            session = self.sess if redirects is None else redirects()
            if not keep_cookies:
                extract_cookies_to_jar(  # type: ignore[no-untyped-call]
                    session.cookies, request, response.raw)
            # the jar `prepare_request` leaves on a request, which redirects start from
            request._cookies = session.cookies.copy()  # type: ignore[attr-defined]
            history = [response, *session.resolve_redirects(response, request, stream=False,
                                                             **options)]
            response = history.pop()
            response.history = history
        response.content  # noqa: B018 - read it all, which returns the connection to the pool
        return response

    def _oauth1(self, method: str, url: str, headers: dict[str, str], token: str | None,
                secret: str | None, form: dict[str, str] | None = None) -> requests.Response:
        """A request signed with garth's consumer (and `token`), as its OAuth1 session did."""
        consumer = self._consumer()
        credentials = _OAuth1Credentials(consumer["consumer_key"], consumer["consumer_secret"],
                                         token, secret)
        request = self._prepare(method, url, headers, form=form, oauth1=credentials)

        def session() -> requests.Session:
            return garth.sso.GarminOAuth1Session(
                resource_owner_key=token, resource_owner_secret=secret, parent=self.sess)

        response = self._send(request, url, keep_cookies=False, redirects=session)
        response.raise_for_status()
        return response

    def _consumer(self) -> dict[str, str]:
        """garth's OAuth consumer; garth itself fetches it when none is configured."""
        if not garth.sso.OAUTH_CONSUMER:
            garth.sso.GarminOAuth1Session(parent=self.sess)
        return garth.sso.OAUTH_CONSUMER


def _sso_login(client: _LoginClient, username: str, password: str) -> tuple[Any, Any]:
    """garth 0.8.0's `sso.login(..., return_on_mfa=True)`, step for step.

    Returns the OAuth1 and OAuth2 tokens, or ("needs_mfa", {"login_params", "mfa_method"}).
    """
    sso = garth.sso
    login_params = {
        "clientId": sso.CLIENT_ID,
        "locale": "en-US",
        "service": f"https://mobile.integration.{client.domain}/gcm/android",
    }
    client.get("sso", "/mobile/sso/en/sign-in", params={"clientId": sso.CLIENT_ID},
               headers={**sso.SSO_PAGE_HEADERS, "Sec-Fetch-Site": "none"})
    client.post("sso", "/mobile/api/login", params=login_params,
                headers=dict(sso.SSO_PAGE_HEADERS),
                json={"username": username, "password": password, "rememberMe": False,
                      "captchaToken": ""})
    answer = client.last_resp.json()
    if blocked_in_body(answer):
        raise RateLimited("Garmin rate limit (login)")
    kind = answer.get("responseStatus", {}).get("type")
    if kind == sso.SSO_SUCCESSFUL:
        return _complete_login(client, answer["serviceTicketId"])
    if kind == sso.SSO_MFA_REQUIRED:
        mfa_info = answer.get("customerMfaInfo") or {}
        return "needs_mfa", {"login_params": login_params,
                             "mfa_method": mfa_info.get("mfaLastMethodUsed") or "email"}
    sso._parse_sso_response(answer, sso.SSO_SUCCESSFUL)
    raise GarthException(msg="Unexpected SSO response")


def _verify_code(client: _LoginClient, login_params: dict[str, Any], code: str,
                 method: str) -> str:
    """garth 0.8.0's `sso.handle_mfa`, step for step: the service ticket for a right code.

    Garmin's block inside a 200 body is read here, as at the credential step; garth's own
    parsing takes it for an unexpected answer.
    """
    sso = garth.sso
    client.post("sso", "/mobile/api/mfa/verifyCode", params=login_params,
                headers=dict(sso.SSO_PAGE_HEADERS),
                json={"mfaMethod": method, "mfaVerificationCode": code,
                      "rememberMyBrowser": False, "reconsentList": [], "mfaSetup": False})
    answer = client.last_resp.json()
    if blocked_in_body(answer):
        raise RateLimited("Garmin rate limit (mfa)")
    return str(sso._parse_sso_response(answer, sso.SSO_SUCCESSFUL)["serviceTicketId"])


def _complete_login(client: _LoginClient, ticket: str) -> tuple[Any, Any]:
    """garth 0.8.0's `sso._complete_login`: the embed page, then the two OAuth1 steps."""
    sso = garth.sso
    # a load-balancer cookie, best effort: garth ignores Garmin's error answers here
    with contextlib.suppress(GarthException):
        client.get("sso", "/portal/sso/embed",
                   headers={**sso.SSO_PAGE_HEADERS, "Sec-Fetch-Site": "same-origin"},
                   referrer=True)
    base_url = f"https://connectapi.{client.domain}/oauth-service/oauth/"
    login_url = f"https://mobile.integration.{client.domain}/gcm/android"
    response = client._oauth1(
        "GET", f"{base_url}preauthorized?ticket={ticket}&login-url={login_url}"
               "&accepts-mfa-tokens=true",
        dict(sso.OAUTH_USER_AGENT), None, None)
    fields: dict[str, Any] = {key: values[0] for key, values in parse_qs(response.text).items()}
    oauth1 = garth.auth_tokens.OAuth1Token(domain=client.domain, **fields)
    form = {"audience": "GARMIN_CONNECT_MOBILE_ANDROID_DI"}
    if oauth1.mfa_token:
        form["mfa_token"] = oauth1.mfa_token
    response = client._oauth1(
        "POST", f"{base_url}exchange/user/2.0",
        {**sso.OAUTH_USER_AGENT, "Content-Type": "application/x-www-form-urlencoded"},
        oauth1.oauth_token, oauth1.oauth_token_secret, form=form)
    oauth2 = OAuth2Token(**sso.set_expirations(response.json()))
    return oauth1, oauth2


def _dump_cookies(client: _Client) -> list[dict[str, Any]]:
    return [
        {
            "name": cookie.name,
            "value": cookie.value,
            "domain": cookie.domain,
            "path": cookie.path,
            "expires": cookie.expires,
            "secure": cookie.secure,
        }
        for cookie in client.sess.cookies
    ]


def _dump_mfa_state(client: _Client, login_params: dict[str, Any], method: str) -> str:
    """Everything needed to finish the login in another process: the SSO cookies above all."""
    return json.dumps(
        {
            "v": MFA_STATE_VERSION,
            "domain": client.domain,
            "login_params": login_params,
            "mfa_method": method,
            "cookies": _dump_cookies(client),
        }
    )


def _restore_mfa_client(settings: GarminSettings, caller: str, state: dict[str, Any],
                        transport: Transport | None = None) -> _LoginClient:
    if state.get("v") != MFA_STATE_VERSION or state.get("domain") != settings.domain:
        raise MfaChallengeLost("the pending MFA challenge is from another configuration")
    client = _LoginClient(settings, caller, transport)
    for cookie in state["cookies"]:
        client.sess.cookies.set_cookie(create_cookie(**cookie))  # type: ignore[no-untyped-call]
    return client


def login(settings: GarminSettings, caller: str, username: str, password: str,
          transport: Transport | None = None) -> LoginResult:
    """Garmin SSO sign-in on a fresh client: a session, or a resumable MFA challenge."""
    client = _LoginClient(settings, caller, transport)
    try:
        result = _sso_login(client, username, password)
        if result[0] == "needs_mfa":
            details = result[1]
            method = str(details.get("mfa_method") or "email")
            return LoginResult(
                mfa_state=_dump_mfa_state(client, details["login_params"], method),
                mfa_method=method,
            )
        client.configure(oauth1_token=result[0], oauth2_token=result[1])
        return LoginResult(session=client.dumps())
    except Exception as exc:
        raise classify(exc) from None


def resume_mfa(settings: GarminSettings, caller: str, mfa_state: str, code: str,
               transport: Transport | None = None) -> str:
    """Finish a login with the MFA code; returns the session.

    A wrong code raises `MfaCodeInvalid` carrying the (possibly updated) challenge, so the
    user can try again from any replica.
    """
    try:
        state = json.loads(mfa_state)
    except ValueError:
        raise MfaChallengeLost("the pending MFA challenge cannot be read") from None
    client = _restore_mfa_client(settings, caller, state, transport)
    try:
        ticket = _verify_code(client, state["login_params"], code, state["mfa_method"])
        oauth1, oauth2 = _complete_login(client, ticket)
    except Exception as exc:
        error = classify(exc)
        if isinstance(error, MfaCodeInvalid):
            error.mfa_state = _dump_mfa_state(client, state["login_params"], state["mfa_method"])
        error.codes_posted = client.codes_posted
        raise error from None
    client.configure(oauth1_token=oauth1, oauth2_token=oauth2, domain=client.domain)
    return str(client.dumps())
