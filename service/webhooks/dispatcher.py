"""The dispatcher: claims due deliveries from the outbox and POSTs them, signed.

One runs in every replica where webhooks are enabled; the claim (`outbox.claim`) keeps
replicas off each other's deliveries and each user's events in order per endpoint. At most
`concurrency` POSTs run at once, each bounded by connect and total timeouts, on an HTTP
client of the dispatcher's own: a slow receiver holds a dispatcher slot, never a request
or a sync job.

Claims and outcomes go in batches, because each statement costs more than sending one
delivery: a claim takes up to `depth` x `concurrency` deliveries, which then wait their turn
for a POST slot, and outcomes are written together (`_write_outcomes`). Every claimed
delivery is sent within its claim: at most `depth - 1` rounds of `timeout_seconds` wait
ahead of it, and `depth` x `timeout_seconds` is at most half of `lease_seconds`.

A 2xx answer is success; anything else (another status, a redirect, which is never
followed, a timeout, a refused address) is retried with exponential backoff and jitter
until `max_attempts` attempts were made or the next one would fall past `max_age_seconds`
after the delivery was queued; then the delivery is dead.

The dispatcher also prunes the outbox (`service.webhooks.retention`): when it starts, then
every `retention_interval_seconds`, as a task of its own beside the deliveries, so a long
prune never holds up a claim.

Two clocks: `clock` schedules (due times, claim expiry, backoff, pruning and its cutoffs;
tests inject one to skip hours or days), `wall_clock` stamps `webhook-timestamp`, which
receivers compare with their own clock to refuse replays.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from tortoise.context import TortoiseContext

from service import db
from service.models.webhooks import DeliveryStatus
from service.webhooks import outbox, retention
from service.webhooks.config import Endpoint, WebhooksConfig
from service.webhooks.metrics import WebhookMetrics, attempt_outcome
from service.webhooks.outbox import Claimed, utcnow
from service.webhooks.retention import Pruned
from service.webhooks.sender import ConnectionFailed, Sender, TargetRefused
from service.webhooks.signing import Signer

log = logging.getLogger(__name__)

USER_AGENT = "garmin-sync-webhooks/1"
# the headers every delivery sends as they are; the rest is encoded per delivery
STATIC_HEADERS = f"content-type: application/json\r\nuser-agent: {USER_AGENT}\r\n".encode()
JITTER = 0.2  # each backoff is drawn from +-20% around its nominal value
GAUGES_EVERY_SECONDS = 5.0
# A commit's wake-up claims this much later: the events of the commits meanwhile (a sync
# pass commits one job after another) go out in one claim and their outcomes in one write,
# instead of a claim and a write per event.
GATHER_SECONDS = 0.1
# Outcomes wait at most this long for the POSTs still running to join their write.
OUTCOMES_GATHER_SECONDS = 0.05
MAX_DEPTH = 4


def claim_depth(config: WebhooksConfig) -> int:
    """How many rounds of `concurrency` deliveries one claim may take: as many as can be
    sent, one timed-out round after another, within half the claim's lease."""
    return max(1, min(MAX_DEPTH, int(config.lease_seconds // (2 * config.timeout_seconds))))


class Dispatcher:
    def __init__(self, config: WebhooksConfig, worker_id: str, *,
                 clock: Callable[[], datetime] = utcnow,
                 wall_clock: Callable[[], datetime] = utcnow,
                 metrics: WebhookMetrics | None = None,
                 rng: random.Random | None = None) -> None:
        self.config = config
        self.worker_id = worker_id
        self._clock = clock
        self._wall_clock = wall_clock
        self._metrics = metrics
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not a secret
        self._signers = {e.id: Signer(tuple(e.secrets)) for e in config.endpoints}
        self._sender: Sender | None = None
        self._inflight: set[asyncio.Task[None]] = set()
        self._capacity = config.concurrency * claim_depth(config)
        self._slots = asyncio.Semaphore(config.concurrency)  # POSTs running at once
        self._sending = 0
        self._wakeup = asyncio.Event()
        self._committed = False  # the wake-up came from a commit (`wake`)
        # due deliveries may be waiting: the last claim took all the room there was, or a
        # delivery ended that had a later one of its user behind it
        self._backlog = False
        self._task: asyncio.Task[None] | None = None
        self._gauges_at = float("-inf")
        self._prune_task: asyncio.Task[None] | None = None
        self._prune_due: datetime | None = None  # None: at the first look
        # outcomes waiting for `_write_outcomes`, which records them in batches
        self._outcomes: list[tuple[outbox.Outcome, asyncio.Future[bool]]] = []
        self._writer: asyncio.Task[None] | None = None
        self._flush = asyncio.Event()  # write the queued outcomes now

    # --- lifecycle ----------------------------------------------------------------------

    def open(self) -> None:
        """The HTTP client (`service.webhooks.sender`): every new connection resolves, and
        is checked, anew; no proxy, no redirect; at most `concurrency` connections."""
        if self._sender is not None:
            return
        self._sender = Sender(allow_private=self.config.allow_private_targets,
                              connect_timeout=self.config.connect_timeout_seconds,
                              timeout=self.config.timeout_seconds,
                              max_connections=self.config.concurrency)

    def start(self, ctx: TortoiseContext | None = None) -> None:
        """Run the claim loop as a task (with `ctx` as its Tortoise context)."""
        self.open()

        async def loop() -> None:
            if ctx is not None:
                db.activate(ctx)
            await self.run()

        self._task = asyncio.get_running_loop().create_task(loop())

    async def close(self) -> None:
        """Stop claiming; deliveries being sent are interrupted and queued again at once."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._prune_task is not None:
            self._prune_task.cancel()  # its open batch rolls back; the next prune redoes it
            with contextlib.suppress(asyncio.CancelledError):
                await self._prune_task
            self._prune_task = None
        for task in list(self._inflight):
            task.cancel()
        await asyncio.gather(*self._inflight, return_exceptions=True)
        if self._writer is not None:
            await asyncio.gather(self._writer, return_exceptions=True)
            self._writer = None
        if self._sender is not None:
            await self._sender.close()
            self._sender = None

    def wake(self) -> None:
        """Claim soon (`GATHER_SECONDS`) rather than at the next poll (call after
        committing an event)."""
        self._committed = True
        self._wakeup.set()

    # --- the loop -----------------------------------------------------------------------

    async def run(self) -> None:
        while True:
            claimed = 0
            free = self._capacity - len(self._inflight)
            if free > 0:
                self._backlog = False  # unless a delivery ends meanwhile (`_finish`)
                try:
                    claimed = self._launch(await self._claim(free))
                    # a full claim may have left due deliveries behind
                    self._backlog = self._backlog or claimed == free
                except Exception:
                    log.exception("claiming webhook deliveries failed; retrying at next poll")
            await self._refresh_gauges()
            self._start_prune_when_due()
            if claimed and claimed == free:
                continue  # there may be more due already
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), self.config.poll_seconds)
            if self._committed:
                await asyncio.sleep(GATHER_SECONDS)
            self._committed = False
            self._wakeup.clear()

    async def run_once(self) -> int:
        """Claim what is due now and send it all; the number of deliveries attempted."""
        self.open()
        claimed = await self._claim(self.config.concurrency)
        await asyncio.gather(*(self.deliver(c) for c in claimed))
        return len(claimed)

    async def _claim(self, limit: int) -> list[Claimed]:
        owner = f"{self.worker_id}/{secrets.token_hex(6)}"
        return await outbox.claim(owner, self._clock(), self.config.lease_seconds, limit)

    def _launch(self, claimed: list[Claimed]) -> int:
        for item in claimed:
            task = asyncio.get_running_loop().create_task(self.deliver(item))
            self._inflight.add(task)
            task.add_done_callback(self._done)
        if self._metrics is not None:
            self._metrics.in_flight.set(len(self._inflight))
        return len(claimed)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        if self._metrics is not None:
            self._metrics.in_flight.set(len(self._inflight))
        # with a backlog, claim again once half the room is free, not after every delivery:
        # one claim then fills several places. Without one nothing is waiting that commits
        # since (`wake`) or the poll will not claim
        if self._backlog and len(self._inflight) <= self._capacity // 2:
            self._wakeup.set()

    async def _refresh_gauges(self) -> None:
        if self._metrics is None:
            return
        now = time.monotonic()
        if now - self._gauges_at < GAUGES_EVERY_SECONDS:
            return
        self._gauges_at = now
        try:
            await self.refresh_gauges()
        except Exception:
            log.warning("webhook backlog gauges not refreshed", exc_info=True)

    async def refresh_gauges(self) -> None:
        if self._metrics is None:
            return
        oldest, dead = await outbox.backlog()
        lag = (self._clock() - oldest).total_seconds() if oldest is not None else 0.0
        self._metrics.backlog(lag, dead)

    # --- retention ----------------------------------------------------------------------

    def _start_prune_when_due(self) -> None:
        if not retention.enabled(self.config):
            return
        if self._prune_task is not None and not self._prune_task.done():
            return
        now = self._clock()
        if self._prune_due is not None and now < self._prune_due:
            return
        self._prune_due = now + timedelta(seconds=self.config.retention_interval_seconds)
        self._prune_task = asyncio.get_running_loop().create_task(self._prune_logged())

    async def _prune_logged(self) -> None:
        try:
            await self.prune()
        except Exception:
            log.warning("pruning the webhook outbox failed; trying again in %g s",
                        self.config.retention_interval_seconds, exc_info=True)

    async def prune(self) -> Pruned:
        """Delete what is past its retention now (by the scheduling clock)."""
        pruned = await retention.prune(self.config, self._clock(), self._metrics)
        if pruned.total:
            log.info("webhook outbox pruned: %d delivered and %d dead deliveries, %d events",
                     pruned.delivered, pruned.dead, pruned.events)
        return pruned

    # --- one delivery -------------------------------------------------------------------

    def backoff(self, attempts: int) -> timedelta:
        """The wait after the `attempts`-th failed attempt: base x 2^(attempts-1), capped,
        with jitter."""
        nominal = min(self.config.backoff_base_seconds * 2 ** min(attempts - 1, 62),
                      self.config.backoff_max_seconds)
        return timedelta(seconds=nominal * self._rng.uniform(1 - JITTER, 1 + JITTER))

    async def deliver(self, claimed: Claimed) -> None:
        """Send one claimed delivery and record the outcome (never raises but on cancel)."""
        endpoint = self.config.endpoint(claimed.endpoint)
        deadline = claimed.created_at + timedelta(seconds=self.config.max_age_seconds)
        if endpoint is None:
            await self._finish(claimed, DeliveryStatus.DEAD, None, "endpoint not configured")
            return
        if claimed.attempts > self.config.max_attempts or self._clock() >= deadline:
            await self._finish(claimed, DeliveryStatus.DEAD, None, "retries exhausted")
            return
        try:
            async with self._slots:
                self._sending += 1
                try:
                    status, error = await self._post(endpoint, claimed)
                finally:
                    self._sending -= 1
        except asyncio.CancelledError:
            # shutting down: hand it back now instead of after the claim expires
            await asyncio.shield(self._finish(claimed, DeliveryStatus.PENDING, None,
                                              "interrupted at shutdown", self._clock()))
            raise
        if status is not None and 200 <= status < 300:
            await self._finish(claimed, DeliveryStatus.DELIVERED, status, None)
            return
        now = self._clock()
        retry_at = now + self.backoff(claimed.attempts)
        if claimed.attempts >= self.config.max_attempts or retry_at > deadline:
            await self._finish(claimed, DeliveryStatus.DEAD, status, error)
        else:
            await self._finish(claimed, DeliveryStatus.PENDING, status, error, retry_at)

    async def _post(self, endpoint: Endpoint, claimed: Claimed) -> tuple[int | None, str | None]:
        """(HTTP status or None, error); errors name a category, never the URL."""
        assert self._sender is not None, "open() the dispatcher first"
        started = time.perf_counter()
        status: int | None = None
        error: str | None = None
        try:
            timestamp = self._wall_clock()
            signature = self._signers[endpoint.id].header(claimed.message_id, timestamp,
                                                          claimed.body)
            # message ids and signatures are the service's own (no line breaks to escape)
            headers = STATIC_HEADERS + (
                f"webhook-id: {claimed.message_id}\r\n"
                f"webhook-timestamp: {int(timestamp.timestamp())}\r\n"
                f"webhook-signature: {signature}\r\n").encode()
            status = await self._sender.post(endpoint.url, headers, claimed.body.encode())
            if not 200 <= status < 300:
                error = f"HTTP {status}" + (" (redirects are not followed)"
                                            if 300 <= status < 400 else "")
        except TargetRefused as exc:
            error = "refused"
            log.warning("webhook %s to endpoint %s refused: %s", claimed.message_id,
                        endpoint.id, exc)
        except TimeoutError:
            error = "timeout"
        except ConnectionFailed as exc:
            error = "connection"
            log.info("webhook %s to endpoint %s failed: %s", claimed.message_id, endpoint.id,
                     exc)
        except OSError as exc:
            error = "connection"
            log.info("webhook %s to endpoint %s failed: %s", claimed.message_id, endpoint.id,
                     type(exc).__name__)
        if self._metrics is not None:
            self._metrics.attempted(attempt_outcome(status, error),
                                    time.perf_counter() - started)
        return status, error

    async def _finish(self, claimed: Claimed, status: DeliveryStatus, http_status: int | None,
                      error: str | None, retry_at: datetime | None = None) -> None:
        now = self._clock()
        try:
            kept = await self._record(outbox.Outcome(claimed, status, retry_at or now,
                                                     http_status, error, now))
        except Exception:
            log.exception("webhook delivery %s: outcome not recorded; it is sent again after "
                          "its claim expires", claimed.id)
            return
        if not kept:
            log.warning("webhook delivery %s: claim lost before its outcome was recorded",
                        claimed.id)
            return
        if claimed.has_next and status != DeliveryStatus.PENDING:
            self._backlog = True  # the user's next delivery is claimable now
        if self._metrics is not None and error != "interrupted at shutdown":
            self._metrics.delivery({DeliveryStatus.DELIVERED: "delivered",
                                    DeliveryStatus.DEAD: "dead"}.get(status, "retry"))
        if status == DeliveryStatus.DEAD:
            log.warning("webhook delivery %s (%s) to endpoint %s is dead after %d attempt(s): %s",
                        claimed.id, claimed.message_id, claimed.endpoint, claimed.attempts,
                        error)

    async def _record(self, outcome: outbox.Outcome) -> bool:
        """Queue an outcome for the writer; whether its claim still held when written."""
        loop = asyncio.get_running_loop()
        written: asyncio.Future[bool] = loop.create_future()
        self._outcomes.append((outcome, written))
        if len(self._outcomes) >= self._capacity or not self._sending:
            self._flush.set()
        if self._writer is None or self._writer.done():
            self._writer = loop.create_task(self._write_outcomes())
        return await written

    async def _write_outcomes(self) -> None:
        """Record queued outcomes, all that are queued in one statement: a write waits for
        the POSTs still running (up to a claim's worth of outcomes, at most
        `OUTCOMES_GATHER_SECONDS`), and deliveries that end while one is being written go
        together in the next."""
        while self._outcomes:
            if self._flush.is_set():
                await asyncio.sleep(0)  # outcomes of the same moment join this batch
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._flush.wait(), OUTCOMES_GATHER_SECONDS)
            self._flush.clear()
            batch, self._outcomes = self._outcomes, []
            try:
                kept = await outbox.finish_many([outcome for outcome, _ in batch])
            except Exception as exc:
                for _, written in batch:
                    if not written.done():
                        written.set_exception(exc)
                continue
            for outcome, written in batch:
                if not written.done():
                    written.set_result(outcome.claimed.id in kept)
