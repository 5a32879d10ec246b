"""Benchmark plumbing: processes pinned to cores, an open-loop HTTP load generator, /proc.

Processes are started like tests/support/replicas.py starts its replicas (`python -m
service ...` with GARMIN_SYNC_* environment), each pinned to one core with
`os.sched_setaffinity` in the child before exec, so the server under test and the load
generator never share a core.

The load generator is a small asyncio HTTP/1.1 client (keep-alive connections, raw
protocol, no parsing beyond Content-Length): much cheaper per request than aiohttp's client,
so on one core it outruns an aiohttp server on another core. It is open-loop in the wrk2
sense: requests are scheduled at a fixed rate whatever the answers do, queue for a free
connection when all are busy, and every latency is measured from the request's scheduled
time (a stalled server cannot hide its queue).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

from tests.support.replicas import Proc as Proc
from tests.support.replicas import _clean_env
from tests.support.replicas import spawn as spawn_process

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


# The cores this process may use, read once at import: a figure's process pins itself to
# the load generator's core later, and the server must still get the other one.
_CPUS = sorted(os.sched_getaffinity(0))


def cpus() -> list[int]:
    return list(_CPUS)


def server_cpu() -> int:
    return cpus()[0]


def client_cpu() -> int:
    return cpus()[-1]


def pin_self(cpu: int) -> None:
    os.sched_setaffinity(0, {cpu})


# --- processes ---------------------------------------------------------------------------


def spawn(name: str, args: Sequence[str], env: dict[str, str], workdir: Path,
          cpu: int | None) -> Proc:
    """`python <args> --port P` as the replica tests start their processes, pinned to `cpu`
    (in the child, before exec, so not even its startup runs elsewhere)."""

    def pin() -> None:
        if cpu is not None:
            os.sched_setaffinity(0, {cpu})

    return spawn_process(name, args, env, workdir, preexec_fn=pin)


# Wakes every millisecond and does nothing else: a CPU that is never idle for longer
# answers a timer or a packet without the wake-up of an idle virtual CPU.
_TICKER = "import time\nwhile True:\n    time.sleep(0.001)\n"


@contextlib.contextmanager
def warm_core(cpu: int) -> Iterator[None]:
    """Keep `cpu`, the load generator's, out of idle while a latency probe runs.

    On this kind of VM an idle virtual CPU wakes late: with the load generator's core
    alternating between idle and the sandbox's bursts during a sync, the generator's own
    1 ms dispatch ticks ran up to 1 ms later at p99 than when it was idle, and that delay
    was counted as the server's latency. A ticker at nice 19 (about 2 % of the core)
    removes it; it runs alike through both sides of every ratio, so it favours neither.
    """
    def pin() -> None:
        os.sched_setaffinity(0, {cpu})
        os.nice(19)

    ticker = subprocess.Popen([sys.executable, "-c", _TICKER], preexec_fn=pin)
    try:
        yield
    finally:
        ticker.kill()
        ticker.wait()


async def wait_ready(proc: Proc, path: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as http:
        while True:
            if not proc.running():
                raise RuntimeError(f"{proc.name} exited {proc.popen.poll()}:\n{proc.tail()}")
            try:
                async with http.get(proc.url + path) as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{proc.name} not ready after {timeout}s:\n{proc.tail()}")
            await asyncio.sleep(0.1)


def clean_env() -> dict[str, str]:
    return _clean_env()


# --- /proc -------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), from /proc/<pid>/stat."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def busy_cpu_seconds() -> float:
    """CPU seconds the whole machine spent busy since boot (user, nice, system, irq, softirq)."""
    user, nice, system, _idle, _iowait, irq, softirq = (
        int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:8])
    return (user + nice + system + irq + softirq) / CLK_TCK


def children_cpu_seconds() -> float:
    """CPU seconds of this process's waited-for descendants: a figure's process and the
    servers, sandboxes and tickers it started (each is waited for when stopped)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def memory(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) in bytes, from /proc/<pid>/status."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) * 1024
    return values


def python_speed() -> float:
    """CPU seconds of a fixed pure-Python loop (10 million additions), best of three: how
    fast this machine runs the interpreter, to compare reports taken on different machines
    (the figures themselves are ratios and need no such correction)."""
    best = float("inf")
    for _ in range(3):
        started = time.process_time()
        total = 0
        for i in range(10_000_000):
            total += i
        best = min(best, time.process_time() - started)
    return round(best, 2)


def machine() -> dict[str, Any]:
    model = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    import garth
    import tortoise

    return {
        "nproc": os.cpu_count(),
        "usable_cpus": len(cpus()),
        "cpu_model": model,
        "python_loop_10M_cpu_s": python_speed(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "aiohttp": aiohttp.__version__,
        "tortoise": tortoise.__version__,
        "garth": garth.__version__,
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


# --- open-loop load generator ------------------------------------------------------------


class _Conn(asyncio.Protocol):
    """One keep-alive connection; `request()` sends bytes and awaits one full response."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._waiter: asyncio.Future[int] | None = None
        self._need: int | None = None
        self._status = 0
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(ConnectionError("connection lost"))

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while self._waiter is not None:
            if self._need is None:
                end = self._buffer.find(b"\r\n\r\n")
                if end < 0:
                    return
                head = bytes(self._buffer[:end]).decode("latin-1")
                self._status = int(head[9:12])
                length = 0
                for line in head.split("\r\n")[1:]:
                    name, _, value = line.partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value)
                self._need = end + 4 + length
            if len(self._buffer) < self._need:
                return
            del self._buffer[:self._need]
            self._need = None
            waiter, self._waiter = self._waiter, None
            if not waiter.done():
                waiter.set_result(self._status)

    def request(self, payload: bytes) -> asyncio.Future[int]:
        assert self.transport is not None
        self._waiter = asyncio.get_running_loop().create_future()
        self.transport.write(payload)
        return self._waiter


def raw_get(path: str, port: int, headers: dict[str, str] | None = None) -> bytes:
    lines = [f"GET {path} HTTP/1.1", f"Host: 127.0.0.1:{port}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@dataclass
class LoadResult:
    offered: float | None  # requests/s scheduled (None: closed loop)
    duration: float
    completed: int
    errors: int
    non_2xx: int
    latencies: list[float] = field(repr=False, default_factory=list)
    client_cpu: float = 0.0  # share of one core the generator used
    server_cpu: float | None = None  # share of one core the server used
    # requests scheduled in the window but still unanswered at its end (their latencies are
    # not in `latencies`: when the oldest is older than a percentile, that one is optimistic)
    unfinished: int = 0
    oldest_unfinished: float = 0.0
    # how late the generator's own 1 ms dispatch ticks woke (its loop's lag): when this
    # grows, part of a latency increase is the load generator's, not the server's
    dispatch_lag: list[float] = field(repr=False, default_factory=list)
    # when each measured request was scheduled, in s from the window's start (same order as
    # `latencies`): the p99 over time, not only over the whole window
    scheduled_at: list[float] = field(repr=False, default_factory=list)

    def timeline(self, window: float = 1.0) -> list[list[float]]:
        """[start s, p99 ms, requests] per `window` seconds of scheduled time."""
        buckets: dict[int, list[float]] = {}
        for at, latency in zip(self.scheduled_at, self.latencies, strict=True):
            buckets.setdefault(int(at // window), []).append(latency)
        return [[round(index * window, 2), _ms(ranked(values, 0.99)), len(values)]
                for index, values in sorted(buckets.items())]

    @property
    def achieved(self) -> float:
        return self.completed / self.duration

    def percentile(self, q: float) -> float:
        return ranked(self.latencies, q)

    def summary(self) -> dict[str, Any]:
        return {"offered_rps": None if self.offered is None else round(self.offered),
                "achieved_rps": round(self.achieved), "completed": self.completed,
                "errors": self.errors, "non_2xx": self.non_2xx,
                "p50_ms": round(self.percentile(0.5) * 1000, 2),
                "p99_ms": round(self.percentile(0.99) * 1000, 2),
                "client_cpu": round(self.client_cpu, 2),
                "server_cpu": None if self.server_cpu is None else round(self.server_cpu, 2),
                "dispatch_lag_p99_ms": _ms(ranked(self.dispatch_lag, 0.99)),
                "dispatch_lag_max_ms": _ms(max(self.dispatch_lag, default=float("nan"))),
                "unfinished": self.unfinished,
                "oldest_unfinished_ms": round(self.oldest_unfinished * 1000, 2),
                "p99_timeline": self.timeline()}


async def run_load(port: int, payloads: Sequence[bytes], rate: float | None, duration: float,
                   connections: int, server_pid: int | None = None,
                   warmup: float = 0.5, until: asyncio.Event | None = None) -> LoadResult:
    """Open loop at `rate` requests/s (closed loop, back-to-back, when None) for `duration`
    seconds after a `warmup`; payloads are used round-robin.

    With `until`, the measurement also ends as soon as that event is set: a probe can cover
    exactly the span of some other work whose length is not known in advance."""
    loop = asyncio.get_running_loop()
    conns: list[_Conn] = []
    for _ in range(connections):
        _transport, proto = await loop.create_connection(_Conn, "127.0.0.1", port)
        conns.append(proto)
    queue: asyncio.Queue[float] = asyncio.Queue()
    latencies: list[float] = []
    counters = {"completed": 0, "errors": 0, "non_2xx": 0, "sent": 0}
    measuring = {"from": float("inf"), "to": float("inf")}
    stop = asyncio.Event()
    in_flight: dict[int, float] = {}  # worker -> scheduled time of its unanswered request
    dispatch_lag: list[float] = []
    scheduled_at: list[float] = []

    async def worker(conn: _Conn) -> None:
        index = 0
        while not stop.is_set():
            if rate is None:
                scheduled = loop.time()
            else:
                scheduled = await queue.get()
            payload = payloads[index % len(payloads)]
            index += 1
            in_flight[id(conn)] = scheduled
            try:
                status = await conn.request(payload)
            except ConnectionError:
                counters["errors"] += 1
                return
            del in_flight[id(conn)]
            done = loop.time()
            if measuring["from"] <= done <= measuring["to"]:
                counters["completed"] += 1
                if status >= 300:
                    counters["non_2xx"] += 1
                if scheduled >= measuring["from"]:
                    latencies.append(done - scheduled)
                    scheduled_at.append(scheduled - measuring["from"])

    async def scheduler() -> None:
        assert rate is not None
        start = loop.time()
        sent = 0
        while not stop.is_set():
            now = loop.time()
            due = int((now - start) * rate)
            for _ in range(due - sent):
                queue.put_nowait(start + (sent := sent + 1) / rate)
            await asyncio.sleep(0.001)
            if measuring["from"] <= now <= measuring["to"]:
                dispatch_lag.append(loop.time() - now - 0.001)

    tasks = [asyncio.ensure_future(worker(conn)) for conn in conns]
    if rate is not None:
        tasks.append(asyncio.ensure_future(scheduler()))
    await asyncio.sleep(warmup)
    cpu0, server0, wall0 = time.process_time(), _maybe_cpu(server_pid), loop.time()
    measuring["from"], measuring["to"] = wall0, wall0 + duration
    if until is None:
        await asyncio.sleep(duration)
    else:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(until.wait(), duration)
    cpu1, server1, wall1 = time.process_time(), _maybe_cpu(server_pid), loop.time()
    waiting = [t for t in [*in_flight.values(), *_queued(queue)] if t >= wall0]
    stop.set()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for conn in conns:
        if conn.transport is not None:
            conn.transport.close()
    elapsed = wall1 - wall0
    return LoadResult(
        offered=rate, duration=elapsed, completed=counters["completed"],
        errors=counters["errors"], non_2xx=counters["non_2xx"], latencies=latencies,
        client_cpu=(cpu1 - cpu0) / elapsed,
        server_cpu=None if server0 is None or server1 is None else (server1 - server0) / elapsed,
        unfinished=len(waiting), oldest_unfinished=wall1 - min(waiting, default=wall1),
        dispatch_lag=dispatch_lag, scheduled_at=scheduled_at,
    )


def ranked(values: list[float], q: float) -> float:
    """The q-quantile of `values`, nearest rank (NaN when there are none)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


def _queued(queue: asyncio.Queue[float]) -> list[float]:
    """The scheduled times still waiting for a free connection (drains the queue)."""
    times = []
    while not queue.empty():
        times.append(queue.get_nowait())
    return times


def _maybe_cpu(pid: int | None) -> float | None:
    return None if pid is None else cpu_seconds(pid)


def dumps(data: Any) -> str:
    return json.dumps(data, indent=2, default=str)
