"""Where an engine's requests go: Garmin itself, or the sandbox standing in for it.

Both engines address Garmin by its real URLs (`https://<sub>.<domain><path>`). With a
`base_url` configured, every such URL is sent to `<base_url>/<sub><path>` instead and
carries the caller header, so the sandbox can prove that no request carried another user's
token. A URL of any other host is refused rather than sent to the internet.
"""

from __future__ import annotations

import functools
import re
from urllib.parse import urlsplit

from urllib3.util.retry import Retry

SANDBOX_CALLER_HEADER = "X-Sandbox-Caller"


@functools.lru_cache(maxsize=16)
def host_pattern(domain: str) -> re.Pattern[str]:
    """`https://<sub>.<domain>[:443]<path>`: group 1 the subdomain, group 2 the rest."""
    return re.compile(rf"^https://([a-z0-9.-]+)\.{re.escape(domain)}(?::443)?(/.*)?$")


class RoutingRefused(ValueError):
    """A URL outside Garmin's domain while routing to the sandbox."""


def routed_url(url: str, base_url: str, domain: str) -> str:
    """The URL to send to: `url` itself without `base_url`, else its sandbox twin."""
    if not base_url:
        return url
    match = host_pattern(domain).match(url)
    if match is None:
        raise RoutingRefused(f"refusing to route {urlsplit(url).netloc}")
    return f"{base_url.rstrip('/')}/{match.group(1)}{match.group(2) or '/'}"


def retry_policy(retries: int) -> Retry:
    """Retry connection failures and idempotent 502-504 a few times, nothing else.

    Never 429 (urllib3 would otherwise sleep on Retry-After and retry, which extends
    Garmin's block) and never a POST (a login or a token refresh must not be sent twice).
    """
    return Retry(
        total=retries,
        connect=retries,
        read=0,
        status=retries,
        status_forcelist=(502, 503, 504),
        allowed_methods=frozenset({"GET"}),
        backoff_factor=0.2,
        respect_retry_after_header=False,
        raise_on_status=False,
    )
