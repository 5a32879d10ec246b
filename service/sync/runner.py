"""One sync job on the Load-Use-Update cycle.

Load the encrypted session and its `version`; Use it on a fresh per-user engine client, each
Garmin call of the job in the thread pool (up to `sync.calls_per_user` of them at once);
Update: the gateway writes a refreshed session back with compare-and-set before the use ends
(a login that happened meanwhile wins and the job's stale copy is dropped), also when the job
fails or is cancelled; then upsert the data and move the cursor inside one transaction fenced
by the user's lease.

A user's jobs run one after another under one lease, and share what the lease makes
stable: the user's cursors are read once, after the lease is claimed (every writer of a
cursor's progress holds the lease). The session is loaded again by every job, after the
lease is held (every use that may refresh it holds the lease, so none rotates it under
us); a rejected session that another use replaced meanwhile is reloaded and used once more
instead of expired (`SessionVault.moved_on`), if the lease is still held. A job's fenced
write proves the lease, so the same transaction also marks the next job RUNNING (or, after
the last job, releases the lease); after any other ending, the lease is renewed (and
checked) before the next job starts, and released at the end.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from tortoise.backends.base.client import BaseDBAsyncClient

from service import logs
from service.clock import Now, utcnow
from service.config import SyncConfig
from service.crypto import Cipher, DecryptionError
from service.garmin import (
    AuthRejected,
    GarminError,
    GarminGateway,
    RateLimited,
    SessionCalls,
)
from service.models import (
    GarminAuthenticationState,
    JobStatus,
    SessionStatus,
    SyncCursor,
    SyncJob,
    SyncKind,
)
from service.store import sessions as session_store
from service.store import sql
from service.store import sync as store
from service.store.leases import Lease, LeaseLost, UserLeases
from service.store.vault import SESSION, SessionVault
from service.sync import reports
from service.sync.joblog import JobNote, log_job_end
from service.sync.work import Plan, fetch_activities_of, fetch_days_of, parse
from service.webhooks.config import WebhooksConfig
from service.webhooks.outbox import Outbox

if TYPE_CHECKING:
    from service.metrics import Metrics

log = logging.getLogger(__name__)

# the most a Retry-After backoff is lengthened, as a fraction of Garmin's Retry-After
RETRY_AFTER_JITTER = 0.1


@dataclass
class _Run:
    """One user's run of jobs under one lease."""

    lease: Lease
    cursors: _UserCursors
    note: JobNote = field(default_factory=JobNote)  # of the job running now
    proven: bool = True  # the lease was just claimed, or proven by the last job's write
    started: SyncJob | None = None  # the next job, marked RUNNING by the last job's write
    released: bool = False  # the last job's write released the lease


class _UserCursors:
    """A user's cursors, read once per run of their jobs (under the lease) when the first
    job needs one, with the kinds whose failure streak a success must clear."""

    def __init__(self, user_id: str) -> None:
        self._user_id = user_id
        self._by_kind: dict[SyncKind, SyncCursor] | None = None
        self._streaks: set[SyncKind] = set()

    async def get(self, kind: SyncKind) -> SyncCursor | None:
        if self._by_kind is None:
            self._by_kind = {}
            for cursor, streak in await store.cursors_of(self._user_id):
                self._by_kind[cursor.kind] = cursor
                if streak:
                    self._streaks.add(cursor.kind)
        return self._by_kind.get(kind)

    def streak(self, kind: SyncKind) -> bool:
        """Whether a success of `kind` may have a failure streak to clear (when the cursor
        was not read here, it may)."""
        return kind in self._streaks or self._by_kind is None or kind not in self._by_kind

    def failed(self, kind: SyncKind) -> None:
        self._streaks.add(kind)


class SyncRunner:
    """Runs jobs for one worker; shared by the scheduler and the manual-sync API."""

    def __init__(
        self,
        config: SyncConfig,
        gateway: GarminGateway,
        cipher: Cipher,
        leases: UserLeases,
        clock: Now = utcnow,
        metrics: Metrics | None = None,
        outbox: Outbox | None = None,
    ) -> None:
        self._config = config
        self._outbox = outbox or Outbox(WebhooksConfig())
        self._gateway = gateway
        self._vault = SessionVault(cipher, metrics)
        self._leases = leases
        self._clock = clock
        self.metrics = metrics
        # told the user id after their jobs ran (the status cache drops its entry)
        self.on_user_changed: Callable[[str], None] | None = None

    # --- scheduling helpers -------------------------------------------------------------

    def interval(self, kind: SyncKind) -> timedelta:
        minutes = (self._config.activities_interval_minutes if kind == SyncKind.ACTIVITIES
                   else self._config.health_interval_minutes)
        return timedelta(minutes=minutes)

    def next_due(self, kind: SyncKind, now: datetime) -> datetime:
        """Now plus the interval, +/- jitter, so users drift apart instead of firing together."""
        interval = self.interval(kind)
        spread = interval.total_seconds() * self._config.jitter_fraction
        return now + interval + timedelta(seconds=random.uniform(-spread, spread))  # noqa: S311

    def backoff(self, failures: int, retry_after: int | None) -> timedelta:
        """How long a cursor waits after its `failures`-th failure in a row.

        A Retry-After from Garmin sets the wait: at least that long (a call before it ends
        meets another 429 and extends the block), plus at most `RETRY_AFTER_JITTER` of it so
        users throttled together do not all return in the same second. Without one the
        wait is base * 2^(failures-1), drawn from its upper half. Both are capped at
        `sync.backoff_max_seconds`.
        """
        cap = self._config.backoff_max_seconds
        if retry_after:
            spread = random.uniform(1.0, 1.0 + RETRY_AFTER_JITTER)  # noqa: S311
            return timedelta(seconds=min(cap, retry_after * spread))
        exp = self._config.backoff_base_seconds * 2 ** min(failures - 1, 30)
        return timedelta(seconds=min(cap, exp) * random.uniform(0.5, 1.0))  # noqa: S311

    def plan(self, cursor: SyncCursor, today: date) -> Plan:
        """Backfill on the first sync; later, re-fetch the last `overlap_days` synced days."""
        if cursor.last_synced_date is None:
            first = today - timedelta(days=self._config.backfill_days - 1)
        else:
            overlap = max(self._config.overlap_days, 1)
            first = min(cursor.last_synced_date - timedelta(days=overlap - 1), today)
        return Plan(first, today)

    # --- the job ------------------------------------------------------------------------

    async def run_for_user(self, jobs: list[SyncJob], lease: Lease | None = None) -> None:
        """Run one user's jobs in order under one lease (claimed here unless given).

        When the user is busy (another job, a login or an MFA on any replica) every job is
        recorded SKIPPED, not queued. The lease is renewed while the jobs run and released
        at the end, also on cancellation.
        """
        if lease is None:
            lease = await self._leases.acquire(jobs[0].user_id, "sync")
        if lease is None:
            for job in jobs:
                await self._finish(job, JobStatus.SKIPPED, "another job, login or MFA is running")
                log_job_end(job, JobNote(reason="busy"), self._clock())
            return
        keep_alive = asyncio.ensure_future(self._keep_alive(lease))
        run = _Run(lease, _UserCursors(lease.user_id))
        try:
            for index, job in enumerate(jobs):
                if not run.proven and not await self._leases.renew(lease):
                    log.warning("lease of user %s lost; %d queued job(s) not started",
                                lease.user_id, len(jobs) - index)
                    for rest in jobs[index:]:
                        await self._finish(rest, JobStatus.FAILED, "lease lost; not started")
                        log_job_end(rest, JobNote(reason="lease_lost"), self._clock())
                    break
                run.proven = False
                await self._run_one(job, run, jobs[index + 1] if index + 1 < len(jobs) else None)
        finally:
            keep_alive.cancel()
            if run.released:
                self._leases.forget(lease)
            else:
                await asyncio.shield(self._leases.release(lease))
            if self.on_user_changed is not None:
                self.on_user_changed(lease.user_id)

    async def _run_one(self, job: SyncJob, run: _Run, following: SyncJob | None) -> None:
        """Run one job to a final status (`following` is the user's next job, if any)."""
        logs.user_id.set(job.user_id)
        logs.job_id.set(job.id)
        note = run.note = JobNote()
        try:
            await self._run_leased(job, run, following)
        except asyncio.CancelledError:
            note.reason = "cancelled"
            await asyncio.shield(self._finish(job, JobStatus.FAILED, "cancelled at shutdown"))
            raise
        except LeaseLost:
            note.reason = "lease_lost"
            log.warning("job %s: lease of user %s lost; results dropped", job.id, job.user_id)
            await self._finish(job, JobStatus.FAILED, "lease lost; results dropped")
        except Exception:
            note.reason = "internal_error"
            log.exception("job %s for user %s failed unexpectedly", job.id, job.user_id)
            await asyncio.shield(self._finish(job, JobStatus.FAILED, "internal error"))
        finally:
            if self.metrics is not None:
                self.metrics.sync_job_ran(job.kind.value, time.perf_counter() - note.started)
            log_job_end(job, note, self._clock())

    async def release(self, lease: Lease) -> None:
        await self._leases.release(lease)

    async def lease_users(self, user_ids: list[str]) -> dict[str, Lease]:
        """The leases of a claim pass's users, in one statement; where that fails, each run
        claims its own lease."""
        try:
            return await self._leases.acquire_many(user_ids, "sync")
        except Exception:
            log.exception("leases of %d user(s) could not be claimed together", len(user_ids))
            return {}

    async def _keep_alive(self, lease: Lease) -> None:
        period = max(self._leases_ttl() / 3, 0.05)
        while True:
            await asyncio.sleep(period)
            if not await self._leases.renew(lease):
                log.warning("lease of user %s lost while its job runs", lease.user_id)
                return

    def _leases_ttl(self) -> float:
        return float(self._config.lease_seconds)

    async def _finish(self, job: SyncJob, status: JobStatus, error: str | None = None) -> None:
        await store.finish_job(job, status, self._clock(), error)
        self._count(job, status)

    def _count(self, job: SyncJob, status: JobStatus) -> None:
        if self.metrics is not None:
            self.metrics.sync_job(job.kind.value, status.value)

    async def _run_leased(self, job: SyncJob, run: _Run, following: SyncJob | None) -> None:
        lease = run.lease
        if run.started is not job:
            await store.start_job(job, self._clock(), self._leases.worker_id, lease.token)
        row = await session_store.load(job.user_id)
        if row is None or not row.session_data:
            expired = row is not None and row.status == SessionStatus.EXPIRED
            run.note.reason = "no_session"
            await store.pause_cursors(job.user_id, "no valid session")
            await self._finish(job, JobStatus.AUTH_EXPIRED if expired else JobStatus.SKIPPED,
                               "no valid Garmin session")
            return
        try:
            session = self._vault.open(job.user_id, SESSION, row.session_data)
        except DecryptionError:
            run.note.reason = "undecryptable_session"
            await store.pause_cursors(job.user_id, "session cannot be decrypted")
            await self._finish(job, JobStatus.AUTH_EXPIRED, "stored session cannot be decrypted")
            return
        cursor = await run.cursors.get(job.kind) or await self._cursor(job.user_id, job.kind)
        plan = self.plan(cursor, self._clock().date())
        work = self._work(job.kind, plan, run.note)
        try:
            try:
                value = await self._gateway.use(job.user_id, session, work,
                                                functools.partial(self._vault.write_back, row),
                                                parallel=self._config.calls_per_user,
                                                background=True)
            except AuthRejected:
                # a rotated refresh token another use already replaced: go on with the newer
                newer = await self._vault.moved_on(row)
                if newer is None:
                    raise
                # the newer session may be refreshed in turn, and only the lease's holder
                # may rotate it: a worker that stalled past its lease stops here
                if not await self._leases.renew(lease):
                    raise LeaseLost(f"lease of user {job.user_id} was lost") from None
                row, session = newer
                value = await self._gateway.use(job.user_id, session, work,
                                                functools.partial(self._vault.write_back, row),
                                                parallel=self._config.calls_per_user,
                                                background=True)
        except AuthRejected as exc:
            run.note.reason = exc.outcome
            if not await self._leases.renew(lease):
                raise LeaseLost(f"lease of user {job.user_id} was lost") from None
            await self._expire(row, exc.detail)
            await self._finish(job, JobStatus.AUTH_EXPIRED, exc.detail)
            return
        except GarminError as exc:
            run.note.reason = exc.outcome
            await self._failed(job, cursor, exc)
            run.cursors.failed(job.kind)
            run.note.backoff_until = cursor.backoff_until
            return
        await self._store_results(job, run, cursor, plan, value, following)

    async def _expire(self, row: GarminAuthenticationState, reason: str) -> None:
        """Clear the rejected session; the write that expired it reports `session.expired`
        (another replica's, or a status check's, expiry came first otherwise)."""
        emitted: list[str | None] = []

        async def report(connection: BaseDBAsyncClient) -> None:
            emitted.append(await reports.session_expired(self._outbox, connection,
                                                         row.user_id, reason, self._clock()))

        await self._vault.expire(row, reason, report)
        self._outbox.committed(*emitted)

    def _work(self, kind: SyncKind, plan: Plan,
              note: JobNote) -> Callable[[SessionCalls], Awaitable[Any]]:
        fetch: Callable[[SessionCalls], Awaitable[Any]] = (
            functools.partial(fetch_activities_of, plan=plan, page_size=self._config.page_size)
            if kind == SyncKind.ACTIVITIES else functools.partial(fetch_days_of, plan=plan))

        async def work(api: SessionCalls) -> Any:
            note.calls = api
            return await fetch(api)

        return work

    async def _cursor(self, user_id: str, kind: SyncKind) -> SyncCursor:
        """The cursor of a kind the user had none of yet (created here)."""
        cursor = await store.cursor_of(user_id, kind)
        if cursor is None:
            await SyncCursor.bulk_create([SyncCursor(user_id=user_id, kind=kind)],
                                         ignore_conflicts=True)
            cursor = await SyncCursor.get(user_id=user_id, kind=kind)
        return cursor

    async def _failed(self, job: SyncJob, cursor: SyncCursor, error: GarminError) -> None:
        failures = cursor.consecutive_failures + 1
        retry_after = error.retry_after if isinstance(error, RateLimited) else None
        now = self._clock()
        until = now + self.backoff(failures, retry_after)
        status = JobStatus.RATE_LIMITED if isinstance(error, RateLimited) else JobStatus.FAILED
        async with sql.transaction(SyncJob) as connection:
            await store.cursor_failed(cursor, failures, until, error.detail, connection)
            await store.finish_job(job, status, now, error.detail, connection)
            emitted = await reports.job_failed(self._outbox, connection, job, now,
                                               status == JobStatus.RATE_LIMITED)
        self._outbox.committed(emitted)
        self._count(job, status)

    async def _store_results(self, job: SyncJob, run: _Run, cursor: SyncCursor, plan: Plan,
                             raw: Any, following: SyncJob | None) -> None:
        """Upsert, move the cursor and finish the job in one transaction fenced by the lease;
        the same transaction starts the user's next job, or releases the lease after the
        last one (fewer statements and commits on every user's critical path)."""
        rows, skipped = parse(job.kind, raw)
        now = self._clock()
        job.items_fetched = len(rows) + skipped
        job.items_skipped = skipped
        upsert = store.upsert_of(job.kind, job.user_id, rows, now)
        lease, worker = run.lease, self._leases.worker_id
        async with sql.transaction(SyncJob) as connection:
            await self._leases.fence(lease, connection, release=following is None)
            changed = await upsert.apply(connection)
            job.items_upserted = len(upsert.values)
            # before the job's last statements, on which PostgreSQL's event writes ride
            emitted = await reports.job_stored(self._outbox, connection, job, changed, now,
                                               run.cursors.streak(job.kind))
            await store.cursor_succeeded(cursor, plan.last_day, now, connection)
            await store.finish_job(job, JobStatus.SUCCESS, now, None, connection)
            if following is not None:
                await store.start_job(following, now, worker, lease.token, connection)
        self._outbox.committed(*emitted)
        run.proven = True
        if following is None:
            run.released = True
        else:
            store.started(following, now, worker, lease.token)
            run.started = following
        self._count(job, JobStatus.SUCCESS)
        if self.metrics is not None:
            self.metrics.items_upserted(job.kind.value, job.items_upserted)
        if skipped:
            log.warning("job %s for user %s skipped %d malformed item(s)", job.id,
                        job.user_id, skipped)
