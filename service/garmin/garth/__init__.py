"""The garth engine: the only package of the service that imports garth.

garth 0.8.0 is deprecated upstream, so everything it does for us lives here behind
`GarthEngine`, which the gateway calls in its thread pool; another engine is another
package beside this one. What this package guards against:

- `Client.request(headers={})` shares one mutable default dict between all clients and
  writes the Authorization header into it, so parallel threads send each other's tokens:
  our client always passes a fresh dict (`client`).
- garth auto-loads sessions from `GARTH_HOME`/`GARTH_TOKEN` and writes plaintext tokens
  there: both are removed from the environment below, before garth is first imported, and
  the client's `_auto_resume` is disabled.
- garth downloads its OAuth consumer from the internet unless one is set:
  `configure_consumer`.
- Errors arrive as `GarthHTTPError`, `GarthException`, raw `requests.HTTPError` (the OAuth1
  steps are not wrapped) and raw connection/timeout errors: `classify` maps them all.
- A client whose refresh failed may hold cleared or half-updated tokens: it is never dumped.

Cost per job matters (a sync job builds a client and makes a handful of calls), so a client
is built without garth's per-instance extras, and a gateway's clients share one `Transport`
(`transport`): sockets, never credentials. A login runs garth's SSO steps on a client that
prepares each request once and signs the OAuth1 steps itself (`signin`).
"""

import os
import warnings

for _variable in ("GARTH_HOME", "GARTH_TOKEN"):
    os.environ.pop(_variable, None)

# garth warns on import; `serve` logs `DEPRECATION_NOTICE` once instead, which also says
# what the deprecation means for this service's logins and stored sessions
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Garth is deprecated", category=DeprecationWarning)
    import garth  # noqa: F401

from service.garmin.garth.api import configure_consumer  # noqa: E402
from service.garmin.garth.engine import GarthEngine  # noqa: E402

DEPRECATION_NOTICE = (
    "garth is deprecated upstream and 0.8.0 is its final release; Garmin has refused "
    "garth's sign-in since March 2026: stored garth sessions keep syncing until Garmin "
    "rejects them, and new logins use the DI-token engine where configured"
)

__all__ = ["DEPRECATION_NOTICE", "GarthEngine", "configure_consumer"]
