"""The in-process scheduler: APScheduler ticks, claims due users, runs their jobs.

Each tick claims due cursors with a compare-and-set on `next_sync_at`, so among several
replicas on one PostgreSQL exactly one runs a user's sync per interval; the per-user lease
keeps a user's jobs (and logins) from ever overlapping. A claim pass only claims as many
users as there are free job slots, so nothing claimed waits long. When a pass filled every
free slot (more users may be due), a slot that frees up starts another pass at once instead
of idling until the next tick. A pass costs four statements however many users it claims:
read the due cursors, claim them (one conditional UPDATE), create their jobs (one INSERT),
claim their users' leases (one upsert).

APScheduler's asyncio executor cannot wait for running jobs on shutdown, so the jobs run as
tasks this class owns: on shutdown it stops claiming, gives them
`sync.shutdown_grace_seconds`, then cancels the rest (each marks itself FAILED and releases
its lease).
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from tortoise.context import TortoiseContext

from service import db
from service.clock import Now, utcnow
from service.config import ConfigError, SyncConfig
from service.models import JobStatus, JobTrigger, SyncCursor, SyncJob
from service.store import sync as store
from service.store.leases import Lease
from service.sync.joblog import JobNote, log_job_end
from service.sync.runner import SyncRunner

log = logging.getLogger(__name__)


class SqliteSchedulerLock:
    """On SQLite only one process may run the scheduler: an exclusive lock file says who."""

    def __init__(self, database_url: str) -> None:
        path = database_url.removeprefix("sqlite://").split("?", 1)[0]
        self.path = Path(f"{path}.scheduler.lock")
        self._handle: IO[str] | None = None

    def acquire(self) -> None:
        """Take the lock or raise `ConfigError`. The file, beside the database, is readable
        by this user only, like the database and the key file."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        if os.fstat(fd).st_mode & 0o077:
            os.fchmod(fd, 0o600)  # a file left by a build that created it world-readable
        handle = os.fdopen(fd, "r+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise ConfigError(
                "sync.enabled",
                f"another process already runs the scheduler on this SQLite database "
                f"({self.path}); run one scheduler per SQLite file (sync.enabled=false "
                "elsewhere) or use PostgreSQL for several replicas",
            ) from None
        handle.truncate(0)
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._handle = handle

    def release(self) -> None:
        if self._handle is not None:
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None


class SyncScheduler:
    """Owns the job tasks of this replica, scheduled and manual alike."""

    def __init__(
        self,
        config: SyncConfig,
        runner: SyncRunner,
        db_context: TortoiseContext,
        clock: Now = utcnow,
    ) -> None:
        self._config = config
        self._runner = runner
        self._db = db_context
        self._clock = clock
        self._tasks: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(config.max_concurrent_users)
        self._accepting = True
        self._aps: AsyncIOScheduler | None = None
        self._tick_task: asyncio.Task[object] | None = None
        self.ticks = 0
        # one claim pass at a time, whether a tick or a freed slot started it
        self._claiming = asyncio.Lock()
        # the last pass filled every free slot: more users may be due right now
        self._more_due = False
        self._slot_freed = asyncio.Event()
        self._refill_task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._aps is not None and bool(self._aps.running)

    @property
    def active_jobs(self) -> int:
        return len(self._tasks)

    async def start(self) -> None:
        """Recover what a previous run left RUNNING, then tick every `sync.tick_seconds`."""
        recovered = await self._recover()
        if recovered:
            log.warning("marked %d stale sync job(s) FAILED", recovered)
        self._aps = AsyncIOScheduler(timezone=UTC)
        self._aps.add_job(self.tick, "interval", seconds=self._config.tick_seconds,
                          coalesce=True, max_instances=1, next_run_time=datetime.now(UTC),
                          id="sync-tick", misfire_grace_time=None)
        self._aps.start()
        self._refill_task = asyncio.get_running_loop().create_task(self._refill())

    async def _recover(self) -> int:
        pending_timeout = timedelta(seconds=self._config.lease_seconds)
        return await store.recover_stale_jobs(self._clock(), pending_timeout)

    async def tick(self) -> None:
        """Fail stale jobs, claim due users (at most the free slots), start their jobs."""
        db.activate(self._db)
        if not self._accepting:
            return
        self._tick_task = asyncio.current_task()
        self.ticks += 1
        try:
            recovered = await self._recover()
            if recovered:
                log.warning("marked %d stale sync job(s) FAILED", recovered)
            claimed = await self._claim_due()
            # each claimed job logs its own INFO line when it ends: a tick itself is DEBUG
            log.debug("sync tick %d: %d job(s) claimed, %d user(s) running", self.ticks,
                      claimed, len(self._tasks))
        except Exception:
            log.exception("sync tick failed; the next tick retries")

    async def _claim_due(self) -> int:
        """One claim pass: the due cursors of at most `free` users, claimed and started;
        returns how many jobs it created."""
        async with self._claiming:
            free = self._config.max_concurrent_users - len(self._tasks)
            if free <= 0 or not self._accepting:
                self._more_due = free <= 0
                return 0
            now = self._clock()
            # enough rows to fill every slot: more may free up while the query waits (users
            # started together finish together), and the pass then takes them too
            limit = min(self._config.claim_batch, self._config.max_concurrent_users * 2)
            due = await store.due_cursors(now, limit)
            free = max(free, self._config.max_concurrent_users - len(self._tasks))
            users: set[str] = set()
            wanted = []
            for cursor in due:
                if len(users) >= free and cursor.user_id not in users:
                    break
                users.add(cursor.user_id)
                wanted.append(cursor)
            self._more_due = len(wanted) < len(due) or len(due) >= limit
            claimed = await store.claim_cursors(
                wanted, [self._runner.next_due(cursor.kind, now) for cursor in wanted])
            jobs = await store.create_jobs([(cursor.user_id, cursor.kind) for cursor in claimed],
                                           JobTrigger.SCHEDULED, now)
            by_user: dict[str, list[SyncJob]] = defaultdict(list)
            for job in jobs:
                by_user[job.user_id].append(job)
            leases = await self._runner.lease_users(list(by_user)) if self._accepting else {}
            for user, user_jobs in by_user.items():
                if self._accepting:
                    # a user whose lease is held elsewhere is tried again by the runner
                    # (and recorded SKIPPED if still busy)
                    self.spawn(user_jobs, leases.get(user))
                else:
                    for job in user_jobs:
                        await store.finish_job(job, JobStatus.FAILED, self._clock(),
                                               "service shutting down")
                        await self._retry_soon(job)
                        log_job_end(job, JobNote(reason="shutdown"), self._clock())
                        if self._runner.metrics is not None:
                            self._runner.metrics.sync_job(job.kind.value,
                                                          JobStatus.FAILED.value)
            return len(jobs)

    def spawn(self, jobs: Sequence[SyncJob], lease: Lease | None = None) -> None:
        """Run one user's jobs one after another in a task this scheduler will drain.

        A manual sync passes the lease it already claimed, so a second request for the
        same user is refused at once instead of racing to a SKIPPED job.
        """
        task = asyncio.get_running_loop().create_task(self._run(list(jobs), lease))
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        """A slot is free: when the last pass left due users behind, claim again now."""
        self._tasks.discard(task)
        if self._more_due:
            self._slot_freed.set()

    async def _refill(self) -> None:
        """Claim passes between ticks, one per batch of freed slots (stale jobs are left to
        the ticks); ends, never in the middle of a pass, once shutdown began."""
        db.activate(self._db)
        while self._accepting:
            await self._slot_freed.wait()
            self._slot_freed.clear()
            try:
                await self._claim_due()
            except Exception:
                log.exception("sync claim failed; the next tick retries")

    async def _run(self, jobs: list[SyncJob], lease: Lease | None) -> None:
        db.activate(self._db)
        started = False
        try:
            async with self._slots:
                if self._accepting:
                    started = True
                    await self._runner.run_for_user(jobs, lease)
            for job in jobs:
                if job.status == JobStatus.SKIPPED and job.trigger == JobTrigger.SCHEDULED:
                    await self._retry_soon(job)
        except Exception:
            log.exception("sync jobs of user %s could not be recorded", jobs[0].user_id)
        finally:
            if lease is not None and not started:
                await asyncio.shield(self._runner.release(lease))
            for job in jobs:
                if job.status == JobStatus.PENDING:
                    await asyncio.shield(store.finish_job(job, JobStatus.FAILED, self._clock(),
                                                          "service shutting down"))
                    log_job_end(job, JobNote(reason="shutdown"), self._clock())
                    if self._runner.metrics is not None:
                        self._runner.metrics.sync_job(job.kind.value, JobStatus.FAILED.value)

    async def _retry_soon(self, job: SyncJob) -> None:
        """A busy user is not queued; its cursor comes due again shortly instead."""
        soon = self._clock() + timedelta(seconds=max(self._config.tick_seconds * 2, 5))
        await SyncCursor.filter(user_id=job.user_id, kind=job.kind,
                                next_sync_at__isnull=False).update(next_sync_at=soon)

    async def shutdown(self) -> None:
        """Stop claiming; let jobs finish within the grace period; cancel the rest cleanly."""
        self._accepting = False
        # the tick in progress finishes first: APScheduler's shutdown cancels it, and a tick
        # cancelled between claiming cursors and spawning their jobs would strand them PENDING
        self._slot_freed.set()  # the refill loop sees the shutdown and ends
        passes = [task for task in (self._tick_task, self._refill_task)
                  if task is not None and not task.done()]
        if passes:
            await asyncio.wait(passes, timeout=self._config.shutdown_grace_seconds)
        if self._refill_task is not None and not self._refill_task.done():
            self._refill_task.cancel()
        if self._aps is not None and self._aps.running:
            self._aps.shutdown(wait=False)
        if not self._tasks:
            return
        pending = set(self._tasks)
        log.info("waiting up to %.0fs for %d sync job(s)", self._config.shutdown_grace_seconds,
                 len(pending))
        _done, still = await asyncio.wait(pending, timeout=self._config.shutdown_grace_seconds)
        for task in still:
            task.cancel()
        if still:
            await asyncio.gather(*still, return_exceptions=True)
            log.warning("cancelled %d sync job(s) at shutdown", len(still))
