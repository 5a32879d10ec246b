"""Test-only glue: make a real garth Client talk to the sandbox instead of Garmin."""

from __future__ import annotations

import re
from typing import Any

import garth
import requests
from requests.adapters import HTTPAdapter

CALLER_HEADER = "X-Sandbox-Caller"
_GARMIN_URL = re.compile(r"^https://([a-z0-9.-]+)\.garmin\.com(?::443)?(/.*)?$")


class SandboxAdapter(HTTPAdapter):
    """Rewrites `https://<sub>.garmin.com<path>` to `<sandbox>/<sub><path>` and tags the caller.

    Only the copy sent on the wire is rewritten, so requests keeps cookies for the original
    Garmin host, as it would in production.
    """

    def __init__(self, base_url: str, caller: str | None) -> None:
        super().__init__()
        self.base_url = base_url.rstrip("/")
        self.caller = caller

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> Any:
        match = _GARMIN_URL.match(request.url or "")
        if match is None:
            raise requests.ConnectionError(f"test refused to route {request.url!r}")
        routed = request.copy()
        routed.url = f"{self.base_url}/{match.group(1)}{match.group(2) or '/'}"
        if self.caller is not None:
            routed.headers[CALLER_HEADER] = self.caller
        return super().send(routed, *args, **kwargs)


def route(client: garth.Client, base_url: str, caller: str | None) -> garth.Client:
    """(Re)mount the sandbox adapter; needed again after configure()/loads()."""
    client.sess.mount("https://", SandboxAdapter(base_url, caller))
    return client


def sandbox_client(base_url: str, caller: str | None = None, timeout: int = 5) -> garth.Client:
    """A fresh garth client routed to the sandbox, without retries (tests count requests)."""
    client = garth.Client()
    client.configure(timeout=timeout, retries=0, telemetry_enabled=False)
    return route(client, base_url, caller)
