"""BENCHMARKS.md and bench/results/: each figure's result is kept as its own JSON file (with
the machine and the load it ran under), and the report is rebuilt from every file there, so
running some figures again replaces only those.

Hand-written conclusions below NOTES_MARKER survive a rewrite."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.constants import APART_NICE, LATENCY_MS, PROBE_POLL, RESULTS, W
from bench.table import render

NOTES_MARKER = "<!-- notes below this line are kept when make bench rewrites the file -->"
# the order of the figures in the table and of the databases within each
ORDER = ["status", "sandbox", "tail-default", "tail", "tail-apart", "sync", "sync-di", "login",
         "login-di", "upsert", "memory", "scale", "webhooks"]
DBS = ["sqlite", "postgres"]
# the share of the machine's CPU other work may take before a figure's verdict says so
OTHER_WORK_LIMIT = 0.1  # the method text says 10 %
NUMBERS = {"status": 1, "tail-default": 2, "tail": 2, "tail-apart": 2, "sync": 3, "sync-di": 3,
           "login": 4, "login-di": 4, "upsert": 5, "memory": 6, "scale": 7, "webhooks": 8}
CHARTS = {"scaling.svg": "Figure 7: sync cost per user from 100 to 5,000 users",
          "status-during-sync.svg": "Figure 2: status p99 per second, idle and during a sync"}


def result_path(key: str, db: str, results: Path = RESULTS) -> Path:
    return results / (f"{key}.json" if key == "sandbox" else f"{key}-{db}.json")


def save(key: str, db: str, outcome: dict[str, Any], machine: dict[str, Any],
         run: dict[str, Any], results: Path = RESULTS) -> Path:
    """One figure's result on one database, with the machine and the run it came from."""
    results.mkdir(parents=True, exist_ok=True)
    path = result_path(key, db, results)
    path.write_text(json.dumps({"figure": key, "db": db, "machine": machine, "run": run,
                                "result": outcome}, indent=1, default=str) + "\n")
    return path


def load(results: Path = RESULTS) -> list[dict[str, Any]]:
    """Every stored result, in the table's order."""
    files = [json.loads(p.read_text()) for p in sorted(results.glob("*.json"))]
    return sorted(files, key=lambda f: (ORDER.index(f["figure"]) if f["figure"] in ORDER
                                        else len(ORDER), DBS.index(f["db"])
                                        if f["db"] in DBS else len(DBS)))


def grouped(files: list[dict[str, Any]]) -> dict[str, Any]:
    """The shape the table reads: figure -> [result per database] (the sandbox: one). A
    result measured while other work used much of the machine is marked."""
    results: dict[str, Any] = {}
    for f in files:
        other = f["run"].get("other_cpu_share")
        if other is not None and other > OTHER_WORK_LIMIT:
            f["result"]["other_work"] = other
        if f["figure"] == "sandbox":
            results["sandbox"] = f["result"]
        else:
            results.setdefault(f["figure"], []).append(f["result"])
    return results


def runs_table(files: list[dict[str, Any]]) -> list[str]:
    """One line per suite run whose results are shown: when, on what, under what load."""
    by_run: dict[str, list[dict[str, Any]]] = {}
    for f in files:
        by_run.setdefault(f["machine"]["date"], []).append(f)
    lines = ["| run (UTC) | figures | CPU | Python loop of 10M (CPU s) | load average "
             "(1 min) | other work's share of the CPU | options |",
             "|---|---|---|---|---|---|---|"]
    for date, group in sorted(by_run.items()):
        machine = group[0]["machine"]
        figures = "; ".join(
            f"{db}: " + ", ".join(str(n) for n in sorted({NUMBERS[f["figure"]] for f in group
                                                       if f["db"] == db}))
            for db in DBS if any(f["db"] == db for f in group))
        if any(f["figure"] == "sandbox" for f in group):
            figures = "; ".join(filter(None, [figures, "sandbox calibration"]))
        loads = [float(value) for f in group for value in
                 (f["run"].get("load_before", "nan"), f["run"].get("load_after", "nan"))]
        load = f"{min(loads):.2f}-{max(loads):.2f}"
        shares = [f["run"]["other_cpu_share"] for f in group if "other_cpu_share" in f["run"]]
        other = (f"{min(shares):.0%}-{max(shares):.0%}" if shares else "(not measured)")
        lines.append(f"| {date} | {figures} | {machine['cpu_model']}, {machine['nproc']} "
                     f"cores | {machine['python_loop_10M_cpu_s']} | {load} | {other} | "
                     f"{group[0]['run'].get('options') or '(defaults)'} |")
    return lines


def versions(files: list[dict[str, Any]]) -> str:
    latest = max((f["machine"] for f in files), key=lambda m: m["date"])
    return ", ".join(f"{name} {latest[name]}" for name in
                     ("python", "aiohttp", "tortoise", "garth", "kernel") if name in latest)


def not_measured(files: list[dict[str, Any]]) -> list[str]:
    present = {(f["figure"], f["db"]) for f in files}
    return [f"{key} ({db})" for key in ORDER if key != "sandbox" for db in DBS
            if (key, db) not in present]


def write_markdown(path: Path, results: Path = RESULTS) -> None:
    files = load(results)
    charts = [(name, title) for name, title in CHARTS.items() if (results / name).exists()]
    missing = not_measured(files)
    text = [
        "# Benchmarks",
        "",
        "Written by `make bench` (`python -m bench.run`) from the results in `bench/results/`",
        "(one JSON file per figure and database, with the machine and load it ran under;",
        "running some figures again replaces only those). Every figure is a ratio of two",
        "measurements taken in the same run on the same machine, so it travels better than an",
        "absolute number.",
        "",
        "## Machine and runs",
        "",
        *runs_table(files),
        "",
        f"Versions of the latest run: {versions(files)}." if files else "",
        "",
        "## Results",
        "",
        render(grouped(files)),
        "",
        *[line for name, title in charts
          for line in (f"![{title}](bench/results/{name})", "")],
        "## Method",
        "",
        *method(),
        "",
        "## Not measured",
        "",
        *([f"- {item}" for item in missing] or ["- (nothing)"]),
        "",
    ]
    notes = ""
    if path.exists() and NOTES_MARKER in path.read_text():
        notes = path.read_text().split(NOTES_MARKER, 1)[1]
    path.write_text("\n".join(text) + NOTES_MARKER + notes)


def method() -> list[str]:
    return [
        "- Processes: the sandbox (`python -m service sandbox --seed F`), the service",
        "  (`python -m service serve`, configured by GARMIN_SYNC_* environment variables) and",
        "  the baseline app (`python -m bench.bare_app`) each run as their own process;",
        "  the server under test is pinned to one core (`os.sched_setaffinity`), the load",
        "  generator and the sandbox to another. PostgreSQL's own processes are not pinned.",
        "- Other work: per figure, the machine's busy CPU time (/proc/stat) minus the CPU time",
        "  of the figure's own processes (its process and every server, sandbox and ticker it",
        "  started), over the figure's wall time x cores. PostgreSQL's processes are not the",
        "  figure's, so on PostgreSQL figures this includes the database's own work. A verdict",
        "  reached while other work took more than 10 % of the machine says so.",
        "- Load generator: an open-loop asyncio HTTP/1.1 client in this process (keep-alive",
        "  connections, raw protocol; latency counted from each request's scheduled time, so",
        "  queueing is not hidden). Throughput = completions per second while offered at twice",
        "  the bare server's closed-loop estimate (the server is saturated); runs alternate",
        "  bare/service and the median of the rounds is used. 'per server CPU-s' divides",
        "  completions by the CPU seconds the server process used (/proc/<pid>/stat), which",
        "  is robust against other work on the machine.",
        "- 1 status: `GET /api/v1/garmin/session/status` with a fresh validation (answered from",
        "  the database: the auth row and the sync cursors) for 20 logged-in users, versus the",
        "  bare app answering the identical body bytes.",
        "- 2 tail latency: figure 3's setup with `--tail-users` users (1,000; quick 300): they",
        "  log in through a service without scheduler, then a service with it starts while",
        "  their cursors are held a day ahead. On that process, once ready and ticking over",
        "  nothing due, the probe runs idle for 10 s (quick 5 s): `GET /api/v1/garmin/session/",
        "  status` open loop at `--probe-rps` (200 req/s), round-robin over all the users (each",
        "  polled less often than status.cache_seconds, 1 s by default, so mostly not answered",
        "  from that cache), `GET /healthz` at 20 req/s beside it, a /metrics scrape every",
        f"  {PROBE_POLL:g} s. The cursors were set due (from this process, before the idle run)",
        "  a moment after it ends, so the sync starts by itself; the same probe then runs from",
        f"  0.2 s before that moment until the job counter, scraped every {PROBE_POLL:g} s, shows",
        "  every job done. Ratio = status p99 during the sync / idle p99. Three layouts: the",
        "  replica syncing at its own configured concurrency (config.yaml: sync.",
        "  max_concurrent_users 8, garmin.executor_threads 16; what a replica does unless told",
        "  otherwise), the same at figure 3's W = 32 (its core then mostly busy), and 'API",
        "  process apart' at W = 32: the probe asks a second `serve` process with",
        "  `sync.enabled: false` (an API replica) pinned to the same core as the syncing one",
        f"  (a sync worker, `sync.nice: {APART_NICE}`). While the probe runs, a ticker process",
        "  at nice 19 (a 1 ms sleep loop, about 2 % of a core) keeps the load generator's core",
        "  from going idle, in the idle and the sync runs alike: without it the generator's",
        "  own dispatch ticks woke up to 1 ms later at p99 during a sync (the sandbox's bursts",
        "  on that core, on a virtual CPU that wakes slowly from idle), which counted as the",
        "  server's latency. That dispatch lag is reported (context), and so is the status",
        "  route's handling time inside the service (its request-duration histogram, p99 as a",
        "  bucket). Event-loop lag: the service exports a histogram",
        "  (`garmin_sync_event_loop_lag_seconds`, one sample per 0.1 s sleep, buckets 1, 2.5,",
        "  5, 10, 25, 50, 100 ms...) and a gauge of the largest lag of the last 60 s. The",
        "  histogram's difference between the scrapes before and after the sync only places",
        "  the p99 and the max in a bucket, reported as (lower, upper]; a verdict is exact",
        "  because 5 and 50 ms are bucket bounds. The gauge, scraped at the end, covers the",
        "  last 60 s, which for a sync shorter than that includes part of the idle run.",
        "  `/healthz` does no I/O, so its latency (from the scheduled time, load generator",
        "  included) is an outside view of how long a request waits for the loop.",
        "  The chart plots the status p99 of each second of scheduled time, idle and during",
        "  the sync, with the span from the first job's start to the last job's end shaded.",
        "  Outstanding requests at the end of a run are counted as `unfinished` in the raw",
        "  data (with the age of the oldest), since their latency is not in the percentiles.",
        "- 3 sync: `--users` users (1,000; quick 500), each with their own sandbox account",
        f"  and login; sandbox latency {LATENCY_MS} ms per call;",
        f"  sync.max_concurrent_users = garmin.executor_threads = {W}; tick 0.2 s;",
        "  backfill 2 days (1 activity page + profile + 3 calls per day). Calls are counted by",
        "  the sandbox (data calls + token calls of either engine during the sync phase);",
        "  floor = calls x 50 ms / W; measured = last job finished - first job started (from",
        "  sync_job). CPU = utime+stime of the service process from ready to the last job",
        "  (PostgreSQL's CPU not included). 'setup logins' are the logins of figure 3's users",
        "  (sandbox latency 0, 32 at once).",
        "- 3 and 4 run once per Garmin engine (`--engines`, both by default), labelled with it:",
        "  `garmin.engine` chooses the engine of the logins, so the users of a run hold only",
        "  that engine's sessions (garth: OAuth1 + OAuth2 tokens; di: ha-garmin's DI tokens,",
        "  `garmin.di_login_delays: false`, since the sandbox needs no pauses between sign-in",
        "  steps). In figure 3 the access tokens of both engines live 3 hours (the sandbox",
        "  accounts' lifetimes) and the sync starts seconds after the logins, so it measures",
        "  a sync on valid tokens, not refreshes: its 'calls per user' row shows the token",
        "  calls and refreshes the sync made (0 expected). Figures 2, 6 and 7 use garth",
        "  sessions.",
        "- 4 logins: `--logins` (64) users log in at once through the API, every Garmin call",
        f"  {LATENCY_MS} ms (their accounts' latency, and the sandbox-wide latency for the",
        "  sign-in and embed pages, which carry no username), while figure 2's probe runs on",
        "  20 users logged in before (latency 0; an idle probe run of 5 s, quick 3 s,",
        "  precedes the logins); scheduler off. Total = first request sent to last answer.",
        "  The sandbox's request record (`GET /_sandbox/requests`) gives what one login costs",
        "  in requests (garth: sign-in page, login, embed page, preauthorized, exchange; di:",
        "  sign-in page, login, DI token exchange of the service ticket) and",
        "  the latency it added to each. Floor = ceil(logins / garmin.executor_threads) x",
        "  that latency per login, the thread count resolved from the service's own",
        "  configuration (file, then environment). 'Time over the floor' is total - floor,",
        "  comparable with reports whose floor counted only the three account calls",
        "  (before the sandbox-wide latency existed, the pages were answered at once).",
        "  Isolation: every recorded request, the probe users' logins included, is checked:",
        "  the account it resolved to and the owner of the token it carried (when any) must",
        "  be the caller's own account (X-Sandbox-Caller, the user id the service sent it",
        "  for); a DI login's requests carry no token yet (its ticket exchange resolves to",
        "  the account the ticket was issued for). CPU per login subtracts the probe's idle",
        "  CPU share over the same span.",
        "- 5 upsert: 10,000 sandbox-generated activities, 5,000 already present;",
        "  `service.store.sync.upsert_activities` inside one transaction versus the driver's",
        "  own `executemany` of a plain INSERT ... ON CONFLICT DO UPDATE of the same columns",
        "  (tuples built from the same dicts inside the timing) on the same connection, one",
        "  transaction. The service's statement is multi-row and writes only rows whose",
        "  values differ (`WHERE (old) IS DISTINCT FROM (new)`, returning the rows it",
        "  inserted or changed); the rows the timed case wrote are reported. The present",
        "  rows were written by the raw statement, whose `raw_json` text has json.dumps'",
        "  spacing: SQLite compares that text, finds it different and rewrites them (both",
        "  sides write 10,000 rows); PostgreSQL's jsonb compares equal, so there the service",
        "  writes 5,000 rows where the raw statement rewrites 10,000. Then, apart from the",
        "  ratio, three rounds of the same 10,000 rows again (nothing changed: nothing may be",
        "  written, checked by what the statement returned and by the rows' `updated_at`)",
        "  and of every row with a changed value (all 10,000 updated).",
        "- 6 memory: 10,000 users inserted directly (each session blob, from one real sandbox",
        "  login, sealed per user with the service's Cipher; both cursors not due), RSS after",
        "  startup and ticks, after one cached status call per user, and VmHWM while the",
        "  scheduler syncs (all cursors due, W = 32, sandbox latency 50 ms).",
        "- 7 scaling: figure 3's sync settings at `--scale-sizes` users (100, 500, 1,000, 2,000,",
        "  5,000; quick 100, 500, 1,000), each in a fresh database and sandbox. Users are inserted",
        "  directly, as in figure 6 (one real sandbox login's session sealed for each user,",
        "  both cursors due), because logging 5,000 users in through the API takes longer than",
        "  syncing them. So the sandbox attributes every request to one account; it keeps no",
        "  per-account cache or lock, each request costs it the same either way, and the",
        "  figure measures the service (the raw data lists calls per user). Per-user wall =",
        "  (last job finished - first job started) / users; CPU as in figure 3. Ratio = the",
        "  largest per-user wall cost over the smallest; the fixed ramp of a sync (first tick,",
        "  the last users' sequential calls) weighs most on the smallest size. As context, the",
        "  wall time each added user cost between consecutive sizes (the difference of the",
        "  wall times over the difference of the user counts), from which that ramp cancels.",
        "- 8 webhooks: a receiver process on the load generator's core (aiohttp, answering",
        "  204) verifies every signature with the `standardwebhooks` package and counts the",
        "  deliveries, their distinct `webhook-id`s, bad signatures and event types. Overhead:",
        "  figure 7's setup at `--users` users (1,000; quick 500): seeded users, sandbox",
        f"  latency {LATENCY_MS} ms, W = {W}, each sync in a fresh database; runs alternate",
        "  webhooks off, on, held, held, on, off (twice over; quick once). 'On' is",
        "  `webhooks.enabled` with one endpoint, the receiver (`allow_private_targets`,",
        "  concurrency 8). Every",
        "  user's first sync stores activities and days, so each of its two jobs writes one",
        "  event (`activities.synced`, `health.synced`) in the job's transaction. CPU per",
        "  user = the service's CPU from ready until the last job finished and, with",
        "  webhooks, until the receiver had every event written (the outbox's rows counted",
        "  in the database), / users; ratio = median on / median off. Context: 'held',",
        "  the same endpoint at a port that accepts connections and never answers: the sync",
        "  writes every event, the dispatcher's POSTs wait out their timeout and nothing is",
        "  delivered (what writing the events costs; CPU until the last job finished).",
        "  Drain: an outbox filled beforehand (the service's `outbox.emit`, 10,000 events;",
        "  quick 5,000; 10 per user) is delivered by a service",
        "  with the scheduler off, after an ANALYZE of the delivery table: the statistics",
        "  autovacuum keeps for a backlog that built up (without them, PostgreSQL's claim",
        "  query scans every pending row once per pending row). Deliveries/s = (received",
        "  - 1) / (last - first arrival) at the receiver. Compared with a bare sender on",
        "  the same core: a process that signs (`standardwebhooks`) and POSTs the same",
        "  bodies with aiohttp, 8 at a time, with no database. Nothing lost: every id",
        "  arrived, and every delivery row is `delivered`. The sync's wall time on / off",
        "  is context (the dispatcher shares the replica's loop and database pool).",
        "  CPU per delivery: the service's CPU from the first poll that saw a delivery to",
        "  the last, / the deliveries in between (startup excluded).",
    ]
