"""Real replicas for the multi-process sync tests: the sandbox and garmin-sync workers as
their own processes on loopback, sharing one PostgreSQL database.

A `Cluster` starts the processes, talks to them over HTTP (the workers' API with a Bearer
key, the sandbox's /_sandbox/ control API) and reads results straight from PostgreSQL with
asyncpg. Every process writes its output to a file under the test's tmp_path; the fixture
prints those logs at teardown (pytest shows them only when a test fails) and kills whatever
still runs.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import asyncpg

from service.crypto import generate_key
from service.sandbox import SANDBOX_CONSUMER_KEY, SANDBOX_CONSUMER_SECRET
from tests.support.waiting import eventually

PG_URL = os.environ.get("GARMIN_SYNC_TEST_DATABASE_URL", "")
SKIP_REASON = "needs PostgreSQL (GARMIN_SYNC_TEST_DATABASE_URL)"
API_KEY = "replicas-test-api-key-0123456789"
PASSWORD = "pw-correct-horse"
REPO = Path(__file__).resolve().parents[2]
TABLES = ("garmin_authentication_state", "activity", "daily_health", "sync_cursor", "sync_job",
          "user_lease", "webhook_event", "webhook_delivery", "webhook_user_sequence",
          "webhook_sync_health", "garmin_account_cooldown")
STARTUP_TIMEOUT = 30.0
POLL = 0.15
FINAL = ("SUCCESS", "FAILED", "AUTH_EXPIRED", "RATE_LIMITED", "SKIPPED")

# Settings every worker of these tests shares; a test overrides some per worker.
BASE_SYNC_ENV = {
    "TICK_SECONDS": "0.2",
    "LEASE_SECONDS": "5",
    "INITIAL_SPREAD_SECONDS": "0",
    "JITTER_FRACTION": "0",
    "ACTIVITIES_INTERVAL_MINUTES": "0.1",
    "HEALTH_INTERVAL_MINUTES": "0.1",
    "BACKFILL_DAYS": "2",
    "OVERLAP_DAYS": "1",
    "MAX_CONCURRENT_USERS": "10",
    "SHUTDOWN_GRACE_SECONDS": "10",
    "BACKOFF_BASE_SECONDS": "1",
}

T = TypeVar("T")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def now() -> datetime:
    return datetime.now(UTC)


def username_of(user: str) -> str:
    """The sandbox account a test user id logs in with (one account per user)."""
    return f"{user}@example.com"


def migrate_schema() -> None:
    """Bring the test database's schema up to date once (the workers' own auto-migration
    would do it too, but the tables must exist to be emptied before any worker starts)."""
    env = _clean_env()
    env.update({"GARMIN_SYNC_DATABASE_URL": PG_URL,
                "GARMIN_SYNC_SECURITY_ENCRYPTION_KEYS": generate_key()})
    done = subprocess.run([sys.executable, "-m", "service", "migrate"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def _clean_env() -> dict[str, str]:
    return {key: value for key, value in os.environ.items()
            if not key.startswith(("GARMIN_SYNC_", "GARTH_"))}


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def running(self) -> bool:
        return self.popen.poll() is None

    def send(self, sig: signal.Signals) -> None:
        self.popen.send_signal(sig)

    async def wait_exit(self, timeout: float) -> int:
        """The exit code, polled without blocking the loop; AssertionError after `timeout`."""
        code = await eventually(lambda: _exit_code(self.popen), timeout,
                                f"{self.name} to exit", interval=POLL)
        return code[0]

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait(timeout=10)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    @property
    def pid(self) -> int:
        return self.popen.pid

    def stop(self, timeout: float = 15) -> None:
        """SIGTERM, then SIGKILL if the process has not exited after `timeout` seconds."""
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()

    def tail(self, chars: int = 3000) -> str:
        return self.output()[-chars:]


def spawn(name: str, args: Sequence[str], env: dict[str, str], workdir: Path,
          preexec_fn: Callable[[], None] | None = None) -> Proc:
    """`python <args> --port P` in its own session, output to `<workdir>/<name>.log`.

    Its own session, so a signal sent to the test's process group never reaches it;
    `preexec_fn` runs in the child before exec (the benchmarks pin it to a core there)."""
    port = free_port()
    log = workdir / f"{name}.log"
    with log.open("wb") as sink:
        popen = subprocess.Popen(
            [sys.executable, *args, "--port", str(port)], cwd=REPO, env=env, stdout=sink,
            stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=preexec_fn,
        )
    return Proc(name, popen, port, log)


def _exit_code(popen: subprocess.Popen[bytes]) -> tuple[int] | None:
    code = popen.poll()
    return None if code is None else (code,)


@dataclass
class Cluster:
    """One test's sandbox, workers, HTTP session and database connection."""

    tmp_path: Path
    key: str = field(default_factory=generate_key)
    sandbox: Proc | None = None
    workers: dict[str, Proc] = field(default_factory=dict)
    http: aiohttp.ClientSession | None = None
    db: asyncpg.Connection | None = None
    # more GARMIN_SYNC_<KEY> settings for every worker (e.g. WEBHOOKS_ENABLED)
    settings: dict[str, str] = field(default_factory=dict)

    # --- lifecycle ----------------------------------------------------------------------

    async def open(self) -> None:
        self.http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        self.db = await asyncpg.connect(PG_URL)
        await self.db.execute(f"TRUNCATE {', '.join(TABLES)}")

    async def close(self) -> None:
        for proc in [*self.workers.values(), *([self.sandbox] if self.sandbox else [])]:
            if proc.running():
                # a test that fails midway may leave a stopped worker: wake it to let it die
                proc.send(signal.SIGCONT)
            proc.kill()
        if self.http is not None:
            await self.http.close()
        if self.db is not None:
            await self.db.close()

    def logs(self) -> str:
        parts = []
        for proc in [*([self.sandbox] if self.sandbox else []), *self.workers.values()]:
            lines = [line for line in proc.output().splitlines()
                     if "apscheduler" not in line]
            parts.append(f"===== {proc.name} (exit {proc.popen.poll()}) =====\n"
                         + "\n".join(lines[-300:]))
        return "\n".join(parts)

    def _spawn(self, name: str, args: list[str], env: dict[str, str]) -> Proc:
        return spawn(name, ["-m", "service", *args], env, self.tmp_path)

    async def _ready(self, proc: Proc, path: str) -> None:
        assert self.http is not None

        async def answers() -> bool:
            try:
                async with self.http.get(proc.url + path) as response:  # type: ignore[union-attr]
                    return response.status == 200
            except aiohttp.ClientError:
                return False

        def alive() -> None:
            if not proc.running():
                raise AssertionError(f"{proc.name} exited with {proc.popen.poll()}:\n"
                                     + proc.output()[-4000:])

        await eventually(answers, STARTUP_TIMEOUT, f"{proc.name} to answer {path}",
                         interval=POLL, alive=alive)

    def start_sandbox(self, accounts: Iterable[dict[str, Any]]) -> Proc:
        """Spawn the sandbox with these accounts as its seed (call `ready_sandbox` after)."""
        seed = self.tmp_path / "sandbox-seed.json"
        seed.write_text(json.dumps({"accounts": [
            {"password": PASSWORD, **account} for account in accounts]}))
        env = _clean_env()
        self.sandbox = self._spawn("sandbox", ["sandbox", "--seed", str(seed)], env)
        return self.sandbox

    async def ready_sandbox(self) -> None:
        assert self.sandbox is not None
        await self._ready(self.sandbox, "/_sandbox/requests")

    def worker_env(self, worker_id: str, **sync: str) -> dict[str, str]:
        assert self.sandbox is not None
        env = _clean_env()
        settings = {
            "DATABASE_URL": PG_URL,
            "SECURITY_ENCRYPTION_KEYS": self.key,
            "SECURITY_DATA_DIR": str(self.tmp_path / "data"),
            "AUTH_API_KEYS": API_KEY,
            "GARMIN_BASE_URL": self.sandbox.url,
            "GARMIN_OAUTH_CONSUMER_KEY": SANDBOX_CONSUMER_KEY,
            "GARMIN_OAUTH_CONSUMER_SECRET": SANDBOX_CONSUMER_SECRET,
            "GARMIN_TIMEOUT_SECONDS": "8",
            "GARMIN_RETRIES": "0",
            # these workers read and script garth's sessions (as the in-process tests'
            # default engine does); the sandbox needs no human pauses
            "GARMIN_ENGINE": "garth",
            "GARMIN_DI_LOGIN_DELAYS": "false",
            "HTTP_HOST": "127.0.0.1",
            "HTTP_SHUTDOWN_TIMEOUT_SECONDS": "2",
            "LOGGING_LEVEL": "INFO",
            "SYNC_ENABLED": "true",
            "SYNC_WORKER_ID": worker_id,
            **{f"SYNC_{key}": value for key, value in {**BASE_SYNC_ENV, **sync}.items()},
            **self.settings,
        }
        env.update({f"GARMIN_SYNC_{key}": value for key, value in settings.items()})
        return env

    def start_worker(self, worker_id: str, **sync: str) -> Proc:
        """Spawn `garmin-sync serve` as worker `worker_id` (call `ready_worker` after)."""
        proc = self._spawn(worker_id, ["serve"], self.worker_env(worker_id, **sync))
        self.workers[worker_id] = proc
        return proc

    async def ready_worker(self, worker_id: str) -> None:
        await self._ready(self.workers[worker_id], "/healthz")

    async def stop(self, worker_id: str, timeout: float = 20) -> int:
        """SIGTERM and the exit code (the caller asserts it)."""
        proc = self.workers[worker_id]
        proc.send(signal.SIGTERM)
        return await proc.wait_exit(timeout)

    def check_alive(self, *worker_ids: str) -> None:
        for worker_id in worker_ids or tuple(self.workers):
            proc = self.workers[worker_id]
            if not proc.running():
                raise AssertionError(f"{worker_id} died with exit code {proc.popen.poll()}")

    # --- the workers' API ---------------------------------------------------------------

    @staticmethod
    def headers(user: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {API_KEY}", "X-User-Id": user}

    async def call(self, worker_id: str, method: str, path: str, user: str,
                   body: dict[str, Any] | None = None) -> tuple[int, Any]:
        assert self.http is not None
        url = self.workers[worker_id].url + path
        async with self.http.request(method, url, headers=self.headers(user),
                                     json=body) as response:
            text = await response.text()
            try:
                return response.status, json.loads(text)
            except ValueError:
                return response.status, text

    async def login(self, worker_id: str, user: str) -> tuple[int, Any]:
        return await self.call(worker_id, "POST", "/api/v1/garmin/session/login", user,
                               {"username": username_of(user), "password": PASSWORD})

    async def connect(self, worker_id: str, user: str) -> datetime:
        """Log in successfully; the moment the login answered (the user is due from then)."""
        status, body = await self.login(worker_id, user)
        assert (status, body) == (200, {"status": "SUCCESS"}), (user, status, body)
        return now()

    # --- the sandbox --------------------------------------------------------------------

    async def sandbox_account(self, username: str) -> dict[str, Any]:
        """The sandbox's view of one account, with its request counters."""
        assert self.http is not None and self.sandbox is not None
        async with self.http.get(f"{self.sandbox.url}/_sandbox/accounts/{username}") as response:
            assert response.status == 200, await response.text()
            account: dict[str, Any] = await response.json()
            return account

    async def sandbox_requests(self) -> list[dict[str, Any]]:
        assert self.http is not None and self.sandbox is not None
        async with self.http.get(self.sandbox.url + "/_sandbox/requests") as response:
            assert response.status == 200
            records: list[dict[str, Any]] = await response.json()
            return records

    # --- the database -------------------------------------------------------------------

    async def rows(self, query: str, *args: Any) -> list[dict[str, Any]]:
        assert self.db is not None
        return [dict(row) for row in await self.db.fetch(query, *args)]

    async def jobs(self, user: str | None = None) -> list[dict[str, Any]]:
        if user is None:
            return await self.rows("SELECT * FROM sync_job ORDER BY id")
        return await self.rows("SELECT * FROM sync_job WHERE user_id = $1 ORDER BY id", user)

    async def job(self, job_id: int) -> dict[str, Any]:
        rows = await self.rows("SELECT * FROM sync_job WHERE id = $1", job_id)
        assert rows, f"no job {job_id}"
        return rows[0]

    async def auth_row(self, user: str) -> dict[str, Any]:
        rows = await self.rows("SELECT * FROM garmin_authentication_state WHERE user_id = $1",
                               user)
        assert rows, f"no auth row for {user}"
        return rows[0]

    async def lease(self, user: str) -> dict[str, Any]:
        rows = await self.rows("SELECT * FROM user_lease WHERE user_id = $1", user)
        assert rows, f"no lease row for {user}"
        return rows[0]

    async def cursor(self, user: str, kind: str) -> dict[str, Any]:
        rows = await self.rows("SELECT * FROM sync_cursor WHERE user_id = $1 AND kind = $2",
                               user, kind)
        assert rows, f"no {kind} cursor for {user}"
        return rows[0]

    async def data_rows(self, user: str, kind: str) -> list[dict[str, Any]]:
        table = "activity" if kind == "activities" else "daily_health"
        return await self.rows(f"SELECT * FROM {table} WHERE user_id = $1", user)


async def start(cluster: Cluster, accounts: list[dict[str, Any]], workers: list[str],
                **sync: str) -> None:
    """The sandbox and the workers, spawned together, each answering before this returns."""
    cluster.start_sandbox(accounts)
    for worker_id in workers:
        cluster.start_worker(worker_id, **sync)
    await asyncio.gather(cluster.ready_sandbox(),
                         *(cluster.ready_worker(worker_id) for worker_id in workers))
