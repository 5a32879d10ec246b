"""CPU per Garmin data call, for both engines in one run.

An in-process sandbox serves on loopback (in a thread of its own); one user signs in with
each engine, then the calling thread makes the same profile GET again and again, in rounds
alternating between the engines. Only the calling thread's CPU is counted
(`time.thread_time`), so the sandbox's share is not in the figure.

    .venv/bin/python -m bench.calls                    # 2,000 calls per engine
    .venv/bin/python -m bench.calls --calls 500 --profile di   # plus cProfile's top entries
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import statistics
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from aiohttp import web

from service.garmin import GarminSettings, configure_consumer
from service.garmin.di import DiEngine
from service.garmin.endpoints import PROFILE
from service.garmin.engine import Engine, LoadedSession
from service.garmin.garth import GarthEngine
from service.sandbox import (
    SANDBOX_CONSUMER_KEY,
    SANDBOX_CONSUMER_SECRET,
    Account,
    SandboxState,
    create_sandbox_app,
)

ENGINES = ("garth", "di")
USERNAME = "calls@example.com"
PASSWORD = "calls-pw"
ROUNDS = 10


@contextmanager
def sandbox() -> Iterator[tuple[str, SandboxState]]:
    """The sandbox on a loopback port, served by a loop in its own thread."""
    state = SandboxState()
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(create_sandbox_app(state), access_log=None)

    async def start() -> str:
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        return f"http://{host}:{port}"

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield asyncio.run_coroutine_threadsafe(start(), loop).result(), state
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result()
        loop.call_soon_threadsafe(loop.stop)
        thread.join()


def signed_in(engine: Engine) -> LoadedSession:
    result = engine.login("bench", USERNAME, PASSWORD)
    assert result.session is not None, "the sandbox asked for MFA"
    return engine.session("bench", result.session)


def cpu_of(session: LoadedSession, calls: int) -> float:
    """CPU seconds of the calling thread for `calls` data calls."""
    started = time.thread_time()
    for _ in range(calls):
        session.get(PROFILE)
    return time.thread_time() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000, help="data calls per engine")
    parser.add_argument("--profile", choices=ENGINES, help="also cProfile this engine's calls")
    parser.add_argument("--top", type=int, default=25, help="cProfile entries shown")
    args = parser.parse_args()

    configure_consumer(SANDBOX_CONSUMER_KEY, SANDBOX_CONSUMER_SECRET)
    with sandbox() as (url, state):
        state.add_account(Account.from_dict({
            "username": USERNAME, "password": PASSWORD,
            # no refresh during the run: only data calls are measured
            "di_access_lifetime_seconds": 86_400, "oauth2_lifetime_seconds": 86_400}))
        settings = GarminSettings(base_url=url, retries=0, di_login_delays=False,
                                  di_strategies=("mobile+requests",))
        engines: dict[str, Engine] = {"garth": GarthEngine(settings, pool_size=1),
                                      "di": DiEngine(settings, pool_size=1)}
        sessions = {name: signed_in(engine) for name, engine in engines.items()}
        for session in sessions.values():
            cpu_of(session, 50)  # warm: connection open, caches filled
        per_round = max(args.calls // ROUNDS, 1)
        samples: dict[str, list[float]] = {name: [] for name in ENGINES}
        for _ in range(ROUNDS):
            for name in ENGINES:
                samples[name].append(cpu_of(sessions[name], per_round) / per_round)
        for name in ENGINES:
            median = statistics.median(samples[name]) * 1000
            best = min(samples[name]) * 1000
            print(f"{name:5s}  {median:.3f} ms CPU per call (median of {ROUNDS} rounds of "
                  f"{per_round}; best {best:.3f} ms)")
        if args.profile:
            profiler = cProfile.Profile()
            profiler.runcall(cpu_of, sessions[args.profile], args.calls)
            pstats.Stats(profiler).sort_stats("tottime").print_stats(args.top)
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(args.top)
        for engine in engines.values():
            engine.close()


if __name__ == "__main__":
    main()
