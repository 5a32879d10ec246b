"""Helpers for the production-readiness replica tests, on top of `tests.support.replicas`.

`ProductionCluster` is the sync tests' `Cluster` plus worker settings outside `sync` (the
Garmin thread pool) and decrypted session snapshots; the rest turns the database's job history into
findings: overlapping jobs, intervals missed or doubled, sessions that went backwards. Each
check returns what is wrong (an empty list when all is well) so a failing assertion shows
every offender at once, and `measure()` keeps the numbers the terminal summary prints (see
`conftest.py`).
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import os
from collections import defaultdict
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from service.crypto import Cipher
from service.store.vault import SESSION
from tests.support.replicas import Cluster

T = TypeVar("T")

RUNNING_STATES = ("PENDING", "RUNNING")

# What the tests measured, printed by this folder's conftest at the end of the run.
MEASUREMENTS: list[tuple[str, dict[str, Any]]] = []


def measure(test: str, **values: Any) -> None:
    MEASUREMENTS.append((test, values))


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a live process (all its threads) has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def bounded(limit: int, calls: Iterable[Awaitable[T]]) -> list[T]:
    """Await `calls` with at most `limit` in flight; results in the order given."""
    gate = asyncio.Semaphore(limit)

    async def one(call: Awaitable[T]) -> T:
        async with gate:
            return await call

    return list(await asyncio.gather(*(one(call) for call in calls)))


class ProductionCluster(Cluster):
    """A `Cluster` whose workers also take `GARMIN_SYNC_<SECTION>_<KEY>` settings outside
    `sync` (`extra`, e.g. {"GARMIN_EXECUTOR_THREADS": "16"})."""

    extra: dict[str, str]

    def __init__(self, *args: Any, extra: dict[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.extra = dict(extra or {})

    def worker_env(self, worker_id: str, **sync: str) -> dict[str, str]:
        env = super().worker_env(worker_id, **sync)
        env.update({f"GARMIN_SYNC_{key}": value for key, value in self.extra.items()})
        return env

    # --- sessions as stored -------------------------------------------------------------

    async def session_snapshot(self) -> dict[str, Snapshot]:
        """Every user's auth row now: version, whether a session is stored, and the expiry
        of the OAuth2 access token inside it (decrypted with the cluster's key)."""
        cipher = Cipher([self.key])
        snapshot = {}
        for row in await self.rows(
            "SELECT user_id, version, session_data, status FROM garmin_authentication_state"
        ):
            expires_at = None
            if row["session_data"]:
                plain = cipher.decrypt(row["session_data"], user_id=row["user_id"],
                                       purpose=SESSION)
                _oauth1, oauth2 = json.loads(base64.b64decode(plain))
                expires_at = int(oauth2["expires_at"])
            snapshot[row["user_id"]] = Snapshot(row["version"], expires_at, row["status"])
        return snapshot


@dataclass(frozen=True)
class Snapshot:
    version: int
    token_expires_at: int | None
    status: str


def sessions_gone_backwards(samples: list[dict[str, Snapshot]],
                            users: Iterable[str]) -> list[tuple[str, str]]:
    """Users whose row lost its session, or whose version or stored access token went back
    in time between two samples (what a stale copy written over a newer one looks like)."""
    wrong = []
    for user in users:
        seen = [sample.get(user) for sample in samples]
        if any(snap is None or snap.token_expires_at is None for snap in seen):
            wrong.append((user, f"session missing in a sample: {seen}"))
            continue
        for before, after in itertools.pairwise(seen):
            assert before is not None and after is not None
            if after.version < before.version:
                wrong.append((user, f"version {before.version} -> {after.version}"))
            assert before.token_expires_at is not None and after.token_expires_at is not None
            if after.token_expires_at < before.token_expires_at:
                wrong.append((user, f"access token expiring {before.token_expires_at} "
                                    f"replaced by one expiring {after.token_expires_at}"))
    return wrong


# --- the job history --------------------------------------------------------------------


def by_user(jobs: Iterable[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for job in jobs:
        grouped[job["user_id"]].append(job)
    return grouped


def ran_until(job: dict[str, Any], died: dict[str, datetime]) -> datetime:
    """When a job stopped running: its finish, or the death of its worker when that came
    first (a SIGKILLed worker's job is marked FAILED later, by whoever recovers it)."""
    end: datetime = job["finished_at"]
    worker_died = died.get(job["worker"])
    return min(end, worker_died) if worker_died is not None else end


def overlapping_jobs(jobs: Iterable[dict[str, Any]],
                     died: dict[str, datetime]) -> list[tuple[Any, ...]]:
    """Pairs of one user's jobs (any kind, any worker) that ran at the same time."""
    overlaps = []
    for user, mine in by_user(jobs).items():
        ran = sorted((job for job in mine if job["started_at"] is not None),
                     key=lambda job: job["started_at"])
        # every job that started also finished (or its worker died)
        for before, after in itertools.pairwise(ran):
            if ran_until(before, died) > after["started_at"]:
                overlaps.append((user, before["id"], before["worker"], before["kind"],
                                 after["id"], after["worker"], after["kind"]))
    return overlaps


@dataclass
class Turns:
    """One user's sync of one kind over the run: the successes and what came between."""

    user: str
    kind: str
    successes: list[datetime] = field(default_factory=list)
    others: list[tuple[datetime, str]] = field(default_factory=list)  # (created_at, status)
    lost: list[datetime] = field(default_factory=list)  # claims whose worker died first

    def excused_between(self, start: datetime, end: datetime) -> int:
        """Turns that legitimately did not end in a success between `start` and `end`."""
        return (sum(start <= at < end for at, _status in self.others)
                + sum(start <= at < end for at in self.lost))


def turns_of(jobs: Iterable[dict[str, Any]], kinds: Iterable[str],
             lost: Iterable[tuple[str, str, datetime]] = ()) -> dict[tuple[str, str], Turns]:
    """Scheduled jobs per (user, kind): successes by start time, the rest by creation."""
    turns: dict[tuple[str, str], Turns] = {}
    for job in jobs:
        if job["trigger"] != "scheduled" or job["kind"] not in kinds:
            continue
        key = (job["user_id"], job["kind"])
        entry = turns.setdefault(key, Turns(*key))
        if job["status"] == "SUCCESS":
            entry.successes.append(job["started_at"])
        else:
            entry.others.append((job["created_at"], job["status"]))
    for user, kind, at in lost:
        turns.setdefault((user, kind), Turns(user, kind)).lost.append(at)
    for entry in turns.values():
        entry.successes.sort()
    return turns


def interval_findings(turns: Turns, interval: float, *, connected: datetime,
                      stopped: datetime, spread: float, first_late: float, late: float,
                      early: float) -> list[str]:
    """What breaks "synced exactly once per interval" for one user and kind.

    A cursor is claimed when due and moved one interval on, so consecutive successes are
    one interval apart, give or take how late a claim ran (`late`: a tick's period plus
    the wait for a free job slot) and how long the job took to start (`early`). A turn
    that did not succeed (SKIPPED: the user was busy; FAILED: its worker died or stopped)
    may cost one interval each - a skipped turn is retried a few seconds later, a lost
    one waits for the next interval. The first sync is due within `spread` of the login
    and may be `first_late` late (it competes with the other users' logins).
    """
    found = []
    marks = [connected, *turns.successes]
    if not turns.successes:
        return [f"no success at all ({turns.others}, lost {turns.lost})"]
    for index, (before, after) in enumerate(itertools.pairwise(marks)):
        gap = (after - before).total_seconds()
        excused = turns.excused_between(before, after)
        allowed = ((spread + first_late if index == 0 else interval + late)
                   + excused * interval)
        if gap > allowed:
            found.append(f"{gap:.1f}s between syncs {index} and {index + 1} "
                         f"(allowed {allowed:.1f}s, {excused} excused)")
        if index and gap < interval - early:
            found.append(f"two syncs {gap:.1f}s apart (interval {interval:.1f}s)")
    tail = (stopped - turns.successes[-1]).total_seconds()
    excused = turns.excused_between(turns.successes[-1], stopped + timedelta(seconds=1))
    if tail > interval + late + excused * interval:
        found.append(f"no sync in the last {tail:.1f}s before the stop")
    return found


def timing(turns: Turns, interval: float,
           connected: datetime) -> tuple[float | None, list[float]]:
    """The first sync's delay after the login, and how far each later gap was from one
    interval (negative: earlier); gaps with an excused turn in them are left out."""
    first = None
    if turns.successes and not turns.excused_between(connected, turns.successes[0]):
        first = (turns.successes[0] - connected).total_seconds()
    off = [(after - before).total_seconds() - interval
           for before, after in itertools.pairwise(turns.successes)
           if not turns.excused_between(before, after)]
    return first, off


def users_per_window(jobs: Iterable[dict[str, Any]], kind: str, start: datetime,
                     end: datetime, interval: float) -> list[int]:
    """Distinct users with a successful `kind` sync started in each whole interval-long
    window from `start` to `end` (each user once per window when all is well)."""
    step = timedelta(seconds=interval)
    windows = int((end - start) / step)
    users: list[set[str]] = [set() for _ in range(windows)]
    for job in jobs:
        if job["kind"] != kind or job["status"] != "SUCCESS" or job["started_at"] < start:
            continue
        index = int((job["started_at"] - start) / step)
        if index < windows:
            users[index].add(job["user_id"])
    return [len(window) for window in users]
