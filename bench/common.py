"""What every figure shares: its work directory and processes (Env), the service's
environment, the database, logins through the API, the sandbox's counters, /metrics scrapes
and seeded users."""

from __future__ import annotations

import asyncio
import base64
import contextvars
import functools
import json
import os
import re
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp

from bench import harness as h
from bench.constants import W
from tests.support.replicas import PASSWORD, REPO, TABLES, username_of

API_KEY = "bench-api-key-0123456789abcdef"
PG_URL = os.environ.get("GARMIN_SYNC_TEST_DATABASE_URL", "")


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


# --- shared setup ------------------------------------------------------------------------


class Env:
    """One figure's work directory, database and processes (all stopped at the end)."""

    def __init__(self, root: Path, name: str, db: str, engine: str = "garth") -> None:
        self.dir = root / f"{name}-{db}"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.db = db
        self.engine = engine
        self.url = PG_URL if db == "postgres" else f"sqlite://{self.dir}/bench.sqlite3"
        from service.crypto import generate_key

        self.key = generate_key()
        self.procs: list[h.Proc] = []

    def sandbox(self, accounts: list[dict[str, Any]], cpu: int | None) -> h.Proc:
        seed = self.dir / "seed.json"
        seed.write_text(json.dumps({"accounts": [{"password": PASSWORD, **a} for a in accounts]}))
        proc = h.spawn("sandbox", ["-m", "service", "sandbox", "--seed", str(seed)],
                       h.clean_env(), self.dir, cpu)
        self.procs.append(proc)
        return proc

    def service_env(self, sandbox: h.Proc | None, **settings: str) -> dict[str, str]:
        env = h.clean_env()
        base = {
            "DATABASE_URL": self.url,
            "SECURITY_ENCRYPTION_KEYS": self.key,
            "SECURITY_DATA_DIR": str(self.dir / "data"),
            "AUTH_API_KEYS": API_KEY,
            "GARMIN_BASE_URL": sandbox.url if sandbox else "http://127.0.0.1:9",
            "GARMIN_OAUTH_CONSUMER_KEY": "sandbox-consumer-key",
            "GARMIN_OAUTH_CONSUMER_SECRET": "sandbox-consumer-secret",
            "GARMIN_RETRIES": "0",
            # the engine of the logins a figure makes (figures 3 and 4 run on each; the
            # others on garth, whose sessions figures 6 and 7 seed); the sandbox needs no
            # human pauses between DI sign-in steps
            "GARMIN_ENGINE": self.engine,
            "GARMIN_DI_LOGIN_DELAYS": "false",
            "HTTP_SHUTDOWN_TIMEOUT_SECONDS": "2",
            "SYNC_SHUTDOWN_GRACE_SECONDS": "2",
            **settings,
        }
        env.update({f"GARMIN_SYNC_{key}": value for key, value in base.items()})
        return env

    def service(self, name: str, env: dict[str, str], cpu: int | None) -> h.Proc:
        proc = h.spawn(name, ["-m", "service", "serve"], env, self.dir, cpu)
        self.procs.append(proc)
        return proc

    def close(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()


async def empty_database(url: str) -> None:
    """Bring the schema up to date and empty every table (as the test suite does on PG).

    Migrations run in a `garmin-sync migrate` subprocess, as tests/support/replicas.py
    does: Aerich keeps per-process state, so one process cannot migrate SQLite and then
    PostgreSQL."""
    from service.crypto import generate_key

    env = h.clean_env()
    env.update({"GARMIN_SYNC_DATABASE_URL": url,
                "GARMIN_SYNC_SECURITY_ENCRYPTION_KEYS": generate_key()})
    done = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "service", "migrate"], cwd=REPO, env=env,
        capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"migrate failed: {done.stdout}{done.stderr}")
    if url.startswith("postgres"):
        import asyncpg

        conn = await asyncpg.connect(url)
        try:
            await conn.execute(f"TRUNCATE {', '.join(TABLES)}")
        finally:
            await conn.close()


def headers(user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {API_KEY}", "X-User-Id": user}


async def login_all(url: str, users: list[str], concurrency: int) -> list[float]:
    """Log every user in through the service API; the latency of each login."""
    semaphore = asyncio.Semaphore(concurrency)
    latencies: list[float] = []
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(timeout=timeout,
                                     connector=aiohttp.TCPConnector(limit=concurrency)) as http:
        async def one(user: str) -> None:
            async with semaphore:
                started = time.perf_counter()
                async with http.post(url + "/api/v1/garmin/session/login", headers=headers(user),
                                     json={"username": username_of(user),
                                           "password": PASSWORD}) as response:
                    body = await response.text()
                    if response.status != 200:
                        raise RuntimeError(f"login of {user}: {response.status} {body}")
                latencies.append(time.perf_counter() - started)

        await asyncio.gather(*(one(user) for user in users))
    return latencies


async def sandbox_totals(sandbox: h.Proc) -> dict[str, int]:
    async with aiohttp.ClientSession() as http, \
            http.get(sandbox.url + "/_sandbox/accounts") as response:
        accounts = await response.json()
    return {name: sum(account[name] for account in accounts)
            for name in ("api_calls", "exchanges", "login_attempts", "refreshes",
                         "di_exchanges", "di_refresh_attempts", "di_refreshes")}


async def patch_accounts(sandbox: h.Proc, usernames: list[str], changes: dict[str, Any]) -> None:
    semaphore = asyncio.Semaphore(16)
    async with aiohttp.ClientSession() as http:
        async def one(username: str) -> None:
            async with semaphore, http.patch(f"{sandbox.url}/_sandbox/accounts/{username}",
                                             json=changes) as response:
                assert response.status == 200, await response.text()

        await asyncio.gather(*(one(name) for name in usernames))


# One HTTP session for every scrape of a figure's process. The probe's load generator
# shares that process's event loop: a session per scrape, and a line-by-line parse of a
# sync's metrics, took it 1.4 ms of CPU per poll (up to 4 ms) and delayed the requests it
# was about to send.
_scrapes: aiohttp.ClientSession | None = None


async def metrics_text(proc: h.Proc) -> str:
    global _scrapes
    if _scrapes is None or _scrapes.closed:
        _scrapes = aiohttp.ClientSession()
    async with _scrapes.get(proc.url + "/metrics") as response:
        return await response.text()


async def close_scrapes() -> None:
    if _scrapes is not None:
        await _scrapes.close()


@functools.lru_cache(maxsize=16)
def _samples_of(name: str) -> re.Pattern[str]:
    return re.compile(rf"^{re.escape(name)}\{{([^}}]*)\}} (\S+)$", re.MULTILINE)


async def metric_sum(proc: h.Proc, name: str, **labels: str) -> float:
    """The sum of a labelled metric's samples whose labels include `labels`."""
    wanted = [f'{key}="{value}"' for key, value in labels.items()]
    return sum(float(value) for found, value in _samples_of(name).findall(await metrics_text(proc))
               if all(label in found for label in wanted))


async def sandbox_token(sandbox: h.Proc, username: str) -> str:
    """An access token of `username`, from a real garth login against the sandbox."""
    session = await sandbox_session(sandbox, username)
    return str(json.loads(base64.b64decode(session))[1]["access_token"])


async def sandbox_session(sandbox: h.Proc, username: str) -> str:
    from service.garmin import GarminSettings, configure_consumer
    from service.garmin.garth.signin import login

    configure_consumer("sandbox-consumer-key", "sandbox-consumer-secret")
    settings = GarminSettings(base_url=sandbox.url, timeout_seconds=10, retries=0)
    result = await asyncio.to_thread(login, settings, "bench", username, PASSWORD)
    assert result.session is not None
    return result.session


# what a replica syncs at once: W in the sync figures, config.yaml's own values where a
# figure says "default concurrency"
CONCURRENCY_SETTINGS = ("SYNC_MAX_CONCURRENT_USERS", "GARMIN_EXECUTOR_THREADS")
SYNC_SETTINGS = {
    "SYNC_ENABLED": "true", "SYNC_TICK_SECONDS": "0.2", "SYNC_MAX_CONCURRENT_USERS": str(W),
    "GARMIN_EXECUTOR_THREADS": str(W), "SYNC_CLAIM_BATCH": "200",
    "SYNC_ACTIVITIES_INTERVAL_MINUTES": "600", "SYNC_HEALTH_INTERVAL_MINUTES": "600",
    "SYNC_INITIAL_SPREAD_SECONDS": "0", "SYNC_JITTER_FRACTION": "0", "SYNC_BACKFILL_DAYS": "2",
    "SYNC_OVERLAP_DAYS": "1", "SYNC_LEASE_SECONDS": "60", "GARMIN_TIMEOUT_SECONDS": "20",
}


def sync_concurrency(env: dict[str, str]) -> dict[str, int]:
    """The users a replica started with `env` syncs at once, and its Garmin threads, as it
    resolves them (the config file, then the environment)."""
    from service.config import load_config, resolve_config_path

    config = load_config(resolve_config_path(None, env), env)
    return {"users": config.sync.max_concurrent_users, "threads": config.garmin.executor_threads}


async def seed_users(url: str, key: str, session: str, count: int, due: datetime,
                     prefix: str = "mem") -> None:
    """`count` connected users `<prefix>-00000`...: an auth row with the session sealed for
    each user (the service's own Cipher) and both cursors due at `due`."""
    from service import db as service_db
    from service.crypto import Cipher
    from service.models import GarminAuthenticationState, SessionStatus, SyncCursor, SyncKind
    from service.store.vault import SESSION

    cipher = Cipher([key])
    ctx = await service_db.open_context(url)

    async def work() -> None:
        service_db.activate(ctx)
        now = datetime.now(UTC)
        users = [f"{prefix}-{i:05d}" for i in range(count)]
        await GarminAuthenticationState.bulk_create([
            GarminAuthenticationState(
                user_id=u, session_data=cipher.encrypt(session, user_id=u, purpose=SESSION),
                status=SessionStatus.VALID, connected_at=now, last_validated=now, version=1)
            for u in users], batch_size=1000)
        await SyncCursor.bulk_create([SyncCursor(user_id=u, kind=kind, next_sync_at=due)
                                      for u in users for kind in SyncKind], batch_size=1000)

    try:
        await asyncio.get_running_loop().create_task(work(), context=contextvars.Context())
    finally:
        await service_db.close_context(ctx)


async def set_all_due(url: str) -> None:
    await set_cursors_due(url, datetime.now(UTC) - timedelta(seconds=1))


async def set_cursors_due(url: str, at: datetime) -> None:
    """Every sync cursor due at `at` (from another process: the scheduler reads the
    cursors from the database on each tick)."""
    from service import db as service_db
    from service.models import SyncCursor

    ctx = await service_db.open_context(url)

    async def work() -> None:
        service_db.activate(ctx)
        await SyncCursor.all().update(next_sync_at=at)

    try:
        await asyncio.get_running_loop().create_task(work(), context=contextvars.Context())
    finally:
        await service_db.close_context(ctx)
