"""The `webhooks` configuration section, declared like every other in `service.config`,
which assembles the sections into `Config` and re-exports this one; checks of the endpoints
and of rules between the section's keys are in `service.webhooks.config`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from service.settings import setting


@dataclass(frozen=True)
class WebhooksConfig:
    """Signed event webhooks to the calling services (see docs/webhooks.md)."""

    enabled: bool = setting(
        False, "Write events to the outbox and run a dispatcher in this process (every "
        "replica may; they never send one delivery at once).")
    endpoints: tuple[dict[str, Any], ...] = setting(
        (), "Receivers: a list of `{url, secrets, events, id}`; `secrets` are `whsec_` "
        "secrets (several while rotating), `events` the types sent (absent: all), `id` "
        "names the endpoint in the outbox (default: derived from the URL). The environment "
        "takes the same list as JSON. Secrets are never logged nor stored.")
    failing_after: int = setting(
        3, "`sync.failing` after this many failed jobs of one kind in a row (Garmin 429 "
        "backoffs do not count).", minimum=1)
    max_attempts: int = setting(14, "Attempts per delivery before it is dead.", minimum=1)
    max_age_seconds: float = setting(
        86_400.0, "No attempt is made this long after the event; the delivery is dead.",
        minimum=1)
    backoff_base_seconds: float = setting(
        30.0, "The wait after the first failed attempt, doubled after each failure.",
        minimum=0.01)
    backoff_max_seconds: float = setting(14_400.0, "The longest wait between attempts.",
                                         minimum=0.01)
    connect_timeout_seconds: float = setting(5.0, "Connection timeout of an attempt.",
                                             minimum=0.01)
    timeout_seconds: float = setting(
        10.0, "A receiver must answer 2xx within this long, else the attempt failed.",
        minimum=0.01)
    concurrency: int = setting(8, "Requests this replica's dispatcher sends at once.",
                               minimum=1)
    allow_private_targets: bool = setting(
        False, "Allow endpoints on loopback, private, link-local and other non-public "
        "addresses (checked when connecting).")
    poll_seconds: float = setting(
        1.0, "How often the dispatcher looks for due deliveries (it is also woken by this "
        "replica's commits).", minimum=0.01)
    lease_seconds: float = setting(
        60.0, "How long a dispatcher owns a claimed delivery before another may send it "
        "(at least 2 x `webhooks.timeout_seconds`).", minimum=0.02)
    max_ids_per_event: int = setting(
        100, "At most this many Garmin activity ids in one `activities.synced`.", minimum=1)
    retention_delivered_days: float = setting(
        7.0, "A delivered delivery is deleted this long after it was delivered; its event "
        "goes with the last of its deliveries. Long enough to answer a receiver's question "
        "about last week; a receiver deduplicates by `webhook-id` and never needs the row. "
        "0 keeps them forever.", minimum=0)
    retention_dead_days: float = setting(
        30.0, "A dead delivery is deleted this long after it gave up: until then an operator "
        "can see it and retry it (`POST /api/v1/webhooks/deliveries/{id}/retry`). 0 keeps "
        "them forever.", minimum=0)
    retention_interval_seconds: float = setting(
        600.0, "How often each dispatcher deletes what is past its retention (several "
        "replicas may at once; a row is deleted once).", minimum=1)
    retention_batch_size: int = setting(
        1000, "Rows deleted per statement (each a short transaction of its own) until none "
        "is left past its retention.", minimum=1, maximum=5000)
