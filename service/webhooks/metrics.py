"""Webhook metrics, registered in the app instance's own registry (see `service.metrics`).

Labels are bounded: attempt outcomes and final delivery outcomes, never an endpoint URL,
a user id or a message id.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from service.metrics import PREFIX

ATTEMPT_OUTCOMES = ("2xx", "3xx", "4xx", "5xx", "timeout", "connection", "refused")
DELIVERY_OUTCOMES = ("delivered", "retry", "dead")
PRUNED_KINDS = ("delivered", "dead", "event")  # finished deliveries by status, and events
ATTEMPT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def attempt_outcome(status: int | None, error: str | None) -> str:
    """The `outcome` label of one attempt: an HTTP status class, or why none came back."""
    if status is not None:
        return f"{min(max(status // 100, 1), 5)}xx" if status >= 200 else "connection"
    if error in ATTEMPT_OUTCOMES:
        return error
    return "connection"


class WebhookMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.attempts = Counter(
            f"{PREFIX}_webhook_attempts", "Webhook POSTs made, by outcome.",
            ["outcome"], registry=r)
        self.deliveries = Counter(
            f"{PREFIX}_webhook_deliveries",
            "Webhook attempts by what followed: delivered, retry scheduled, or dead.",
            ["outcome"], registry=r)
        self.attempt_duration = Histogram(
            f"{PREFIX}_webhook_attempt_duration_seconds", "Time one webhook POST took.",
            buckets=ATTEMPT_BUCKETS, registry=r)
        self.outbox_lag = Gauge(
            f"{PREFIX}_webhook_outbox_lag_seconds",
            "Age of the oldest undelivered webhook delivery (0 when none waits).", registry=r)
        self.dead = Gauge(
            f"{PREFIX}_webhook_dead_deliveries", "Webhook deliveries that gave up.",
            registry=r)
        self.in_flight = Gauge(
            f"{PREFIX}_webhook_deliveries_in_flight",
            "Webhook deliveries this replica is sending now.", registry=r)
        self.pruned_rows = Counter(
            f"{PREFIX}_webhook_pruned_rows",
            "Outbox rows deleted after their retention: delivered and dead deliveries, and "
            "events.", ["kind"], registry=r)
        for outcome in ATTEMPT_OUTCOMES:
            self.attempts.labels(outcome)
        for outcome in DELIVERY_OUTCOMES:
            self.deliveries.labels(outcome)
        for kind in PRUNED_KINDS:
            self.pruned_rows.labels(kind)

    def attempted(self, outcome: str, seconds: float) -> None:
        self.attempts.labels(outcome).inc()
        self.attempt_duration.observe(seconds)

    def delivery(self, outcome: str) -> None:
        self.deliveries.labels(outcome).inc()

    def pruned(self, kind: str, rows: int) -> None:
        if rows:
            self.pruned_rows.labels(kind).inc(rows)

    def backlog(self, lag_seconds: float, dead: int) -> None:
        self.outbox_lag.set(max(lag_seconds, 0.0))
        self.dead.set(dead)
