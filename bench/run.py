"""The benchmark suite: `python -m bench.run` (or `make bench`).

Every figure is a ratio of two measurements taken in the same run on the same machine
(service vs. a baseline, or measured vs. a computed floor), so a slower or busier machine
moves both sides. Results are printed as a table; each figure's raw result is written to
bench/results/ with the machine and load it ran under, and BENCHMARKS.md and its charts are
rebuilt from every result there (bench/report.py, bench/charts.py).

Figures (see BENCHMARKS.md for what each one means):
  1  status endpoint throughput (cached validation) / bare aiohttp handler, per database
  2  status p99 at a fixed rate during a 1,000-user sync / the same when idle; loop lag
  3  sync efficiency: floor (calls x 50 ms / W) / measured, users per minute, CPU per user
  4  64 concurrent logins: total time / floor, and requests carrying another user's token
  (3 and 4 once per Garmin engine: garth's sessions and DI's)
  5  upsert rate: service.store.sync.upsert_activities / raw driver executemany
  6  RSS of one service process with 10,000 connected users, idle and during sync
  7  scaling: sync wall time and CPU per user at 100, 500, 1,000, 2,000 and 5,000 users
  8  webhooks: CPU per synced user with the outbox and its deliveries / without; the
     dispatcher draining a filled outbox to a verifying receiver / a bare signed sender

PostgreSQL figures run when GARMIN_SYNC_TEST_DATABASE_URL is set (its tables are emptied,
as the test suite does). Options: --figures 1,2,3,4,5,6,7,8  --users N  --tail-users N
--probe-rps R  --logins N  --scale-sizes A,B,C  --engines garth,di  --quick (smaller sizes)
--no-write  --report-only  --raw FILE.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bench import harness as h
from bench import report, webhooks
from bench.common import PG_URL, close_scrapes, log
from bench.constants import ENGINES, RESULTS, engine_key
from bench.fig_login import figure_login
from bench.fig_memory import figure_memory
from bench.fig_scale import figure_scale
from bench.fig_status import figure_status
from bench.fig_sync import calibrate_sandbox, figure_sync, figure_tail
from bench.fig_upsert import figure_upsert
from bench.table import render
from tests.support.replicas import REPO

CHILD_RESULT = "BENCH-RESULT "


async def run_child(args: argparse.Namespace) -> int:
    """One figure on one database in this (fresh) process; the result as the last line.

    Each figure runs in its own process: Tortoise and Aerich keep per-process state, so one
    process cannot use SQLite and then PostgreSQL, and no figure inherits another's heap.
    """
    h.pin_self(h.client_cpu())
    key, db = args.child.split(":")
    root = Path(args.root)
    work: dict[str, Callable[[], Awaitable[dict[str, Any]]]] = {
        "status": lambda: figure_status(root, db, args.quick),
        "tail": lambda: figure_tail(root, db, args.tail_users, args.probe_rps, args.quick),
        "tail-default": lambda: figure_tail(root, db, args.tail_users, args.probe_rps,
                                            args.quick, default_concurrency=True),
        "tail-apart": lambda: figure_tail(root, db, args.tail_users, args.probe_rps,
                                          args.quick, api_apart=True),
        "sandbox": lambda: calibrate_sandbox(root, args.quick),
        "sync": lambda: figure_sync(root, db, args.users, "garth"),
        "sync-di": lambda: figure_sync(root, db, args.users, "di"),
        "login": lambda: figure_login(root, db, args.logins, args.probe_rps, args.quick,
                                      "garth"),
        "login-di": lambda: figure_login(root, db, args.logins, args.probe_rps, args.quick,
                                         "di"),
        "scale": lambda: figure_scale(root, db, sizes(args.scale_sizes)),
        "upsert": lambda: figure_upsert(root, db, args.quick),
        "memory": lambda: figure_memory(root, db, args.memory_users,
                                        10 if args.quick else 20),
        "webhooks": lambda: webhooks.figure_webhooks(root, db, args.users, args.quick),
    }
    try:
        outcome = await work[key]()
    finally:
        await close_scrapes()
    print(CHILD_RESULT + json.dumps(outcome, default=str), flush=True)
    return 0


async def guarded(results: dict[str, Any], key: str, db: str, args: argparse.Namespace,
                  root: Path, machine: dict[str, Any]) -> None:
    log(f"{key} ({db}) ...")
    started, load_before = time.perf_counter(), load_average()
    busy0, own0 = h.busy_cpu_seconds(), h.children_cpu_seconds()
    command = [sys.executable, "-m", "bench.run", "--child", f"{key}:{db}",
               "--root", str(root), "--users", str(args.users),
               "--memory-users", str(args.memory_users), "--tail-users", str(args.tail_users),
               "--probe-rps", str(args.probe_rps), "--logins", str(args.logins),
               "--scale-sizes", args.scale_sizes, *(["--quick"] if args.quick else [])]
    done = await asyncio.to_thread(subprocess.run, command, cwd=REPO, capture_output=True,
                                   text=True, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith(CHILD_RESULT)]
    if lines:
        outcome = json.loads(lines[-1].removeprefix(CHILD_RESULT))
    else:
        errors = [line for line in done.stderr.splitlines() if line and not line[0].isspace()]
        print(done.stderr[-3000:], file=sys.stderr)
        outcome = {"db": db, "error": (errors[-1] if errors else f"exit {done.returncode}")[:200]}
    elapsed = time.perf_counter() - started
    # the machine's busy CPU that was not this figure's processes: other work on a shared
    # machine (and PostgreSQL's own processes, which are not our children)
    other = max(0.0, (h.busy_cpu_seconds() - busy0) - (h.children_cpu_seconds() - own0))
    other_share = round(other / (elapsed * len(h.cpus())), 2)
    log(f"{key} ({db}) done in {elapsed:.0f} s; other work {other_share:.0%} of the machine")
    if key == "sandbox":
        results[key] = outcome
    else:
        results.setdefault(key, []).append(outcome)
    if not args.no_write:
        run = {"options": _options(sys.argv[1:]), "duration_s": round(elapsed, 1),
               "load_before": load_before, "load_after": load_average(),
               "other_cpu_share": other_share}
        report.save(key, db, outcome, machine, run)


def load_average() -> str:
    """The 1-minute load average: the machine's other work while a figure ran."""
    return Path("/proc/loadavg").read_text().split()[0]


def _options(argv: list[str]) -> str:
    """The options as given, but a file argument (`--raw`) named only as FILE: the results
    are committed and must not carry a path of the machine they ran on."""
    shown: list[str] = []
    for arg in argv:
        shown.append("FILE" if shown and shown[-1] == "--raw" else
                     "--raw FILE" if arg.startswith("--raw=") else arg)
    return " ".join(shown)


async def main_async(args: argparse.Namespace) -> int:
    if args.report_only:
        write_report()
        return 0
    if len(h.cpus()) < 2:
        print("the benchmarks need at least 2 usable cores (server and load apart)")
        return 2
    if args.child:
        return await run_child(args)
    info = h.machine()
    info["load_average_at_start"] = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    figures = {int(f) for f in args.figures.split(",")}
    engines = engines_of(args.engines)
    dbs = ["sqlite", *(["postgres"] if PG_URL else [])]
    results: dict[str, Any] = {"not_measured": []}
    if not PG_URL:
        results["not_measured"].append(
            "PostgreSQL figures: GARMIN_SYNC_TEST_DATABASE_URL is not set")
    root = Path(tempfile.mkdtemp(prefix="garmin-sync-bench-"))
    started = time.perf_counter()
    plan = [("status", db) for db in dbs if 1 in figures]
    # whether the sandbox can serve what the sync figures ask of it
    plan += [("sandbox", "none")] if figures & {2, 3, 7} else []
    plan += [("tail-default", db) for db in dbs if 2 in figures]
    plan += [("tail", db) for db in dbs if 2 in figures]
    plan += [("tail-apart", db) for db in dbs if 2 in figures]
    plan += [(engine_key("sync", e), db) for db in dbs for e in engines if 3 in figures]
    plan += [(engine_key("login", e), db) for db in dbs for e in engines if 4 in figures]
    plan += [("upsert", db) for db in dbs if 5 in figures]
    plan += [("memory", db) for db in dbs if 6 in figures]
    plan += [("scale", db) for db in dbs if 7 in figures]
    plan += [("webhooks", db) for db in dbs if 8 in figures]
    try:
        for key, db in plan:
            await guarded(results, key, db, args, root, info)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    info["load_average_at_end"] = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    log(f"suite done in {time.perf_counter() - started:.0f} s")
    print()
    print(render(results))
    print()
    print(h.dumps({key: value for key, value in info.items()}))
    if args.raw:
        Path(args.raw).write_text(h.dumps({"machine": info, "results": results}))
    if not args.no_write:
        write_report()
    return 0


def write_report() -> None:
    """The charts and BENCHMARKS.md, from every result in bench/results/."""
    try:
        from bench import charts
    except ImportError:  # matplotlib is the bench extra's: the table needs no chart
        log("charts skipped: matplotlib is missing (pip install -e '.[bench]')")
    else:
        for path in charts.draw(RESULTS):
            log(f"wrote {path.relative_to(REPO)}")
    report.write_markdown(REPO / "BENCHMARKS.md")
    log(f"wrote {REPO / 'BENCHMARKS.md'} and {RESULTS.relative_to(REPO)}/")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.run")
    parser.add_argument("--figures", default="1,2,3,4,5,6,7,8")
    parser.add_argument("--users", type=int,
                        help="users of figure 3 (default 1,000, the issue's size; quick 500)")
    parser.add_argument("--memory-users", type=int, default=10_000)
    parser.add_argument("--tail-users", type=int,
                        help="users synced under figure 2's probe (default 1,000; quick 300)")
    parser.add_argument("--probe-rps", type=float, default=200.0,
                        help="status requests/s of the probe of figures 2 and 4")
    parser.add_argument("--logins", type=int, default=64, help="concurrent logins, figure 4")
    parser.add_argument("--engines", default=",".join(ENGINES),
                        help="the Garmin engines figures 3 and 4 run on (default garth,di)")
    parser.add_argument("--scale-sizes",
                        help="users per sync of figure 7 (default 100,500,1000,2000,5000; "
                             "quick 100,500,1000)")
    parser.add_argument("--quick", action="store_true",
                        help="shorter runs, fewer rounds, smaller figures 2 and 7")
    parser.add_argument("--no-write", action="store_true",
                        help="write neither bench/results/ nor BENCHMARKS.md")
    parser.add_argument("--report-only", action="store_true",
                        help="run nothing: rebuild the charts and BENCHMARKS.md from "
                             "bench/results/")
    parser.add_argument("--raw", help="also write the raw results as JSON to this file")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--root", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.users is None:
        args.users = 500 if args.quick else 1000
    if args.tail_users is None:
        args.tail_users = 300 if args.quick else 1000
    if args.scale_sizes is None:
        args.scale_sizes = "100,500,1000" if args.quick else "100,500,1000,2000,5000"
    sys.exit(asyncio.run(main_async(args)))


def sizes(text: str) -> list[int]:
    return [int(size) for size in text.split(",")]


def engines_of(text: str) -> list[str]:
    chosen = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in ENGINES]
    if unknown or not chosen:
        raise SystemExit(f"--engines: unknown {unknown}; known: {','.join(ENGINES)}")
    return chosen


if __name__ == "__main__":
    main()
