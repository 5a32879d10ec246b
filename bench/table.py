"""The results table of BENCHMARKS.md: one (figure, measured, ratio, target, verdict) row
per number, built from the results of each figure and database."""

from __future__ import annotations

import math
from typing import Any

from bench.constants import ENGINES, LATENCY_MS, MIB, W, engine_key


def fmt(value: float, digits: int = 2) -> str:
    return f"{value:,.{digits}f}"


Row = tuple[str, str, str, str, str]


def table(results: dict[str, Any]) -> list[Row]:
    """(figure, measured, ratio, target, verdict) rows."""
    rows: list[Row] = []
    for item in results.get("status", []):
        if "error" in item:
            rows.append((f"1 status rps ({item['db']})", "error", "-", ">= 0.6", item["error"]))
            continue
        ok = "PASS" if item["ratio"] >= 0.6 else "MISS"
        rows.append((f"1 status rps ({item['db']})",
                     f"{fmt(item['service_rps'], 0)} vs bare {fmt(item['bare_rps'], 0)} req/s",
                     fmt(item["ratio"]), ">= 0.6", ok))
        rows.append((f"1 status rps per server CPU-s ({item['db']})",
                     f"{fmt(item['service_rps_per_cpu_s'], 0)} vs "
                     f"{fmt(item['bare_rps_per_cpu_s'], 0)}",
                     fmt(item["ratio_per_cpu"]), "(context)", ""))
    if "sandbox" in results and "error" in results["sandbox"]:
        rows.append(("sandbox max rate (calibration)", "error", "-", "-",
                     results["sandbox"]["error"]))
    elif "sandbox" in results:
        cal = results["sandbox"]
        rows.append(("sandbox max rate (calibration)", f"{fmt(cal['max_rps'], 0)} req/s",
                     fmt(cal["max_rps"] / cal["needed_rps"]), ">= 1 (vs W/50ms)",
                     "OK" if cal["max_rps"] >= cal["needed_rps"] else "SANDBOX-BOUND"))
    for item in (results.get("tail-default", []) + results.get("tail", [])
                 + results.get("tail-apart", [])):
        rows += tail_rows(item)
    for engine in ENGINES:
        for item in results.get(engine_key("sync", engine), []):
            rows += sync_rows(item, engine)
    for engine in ENGINES:
        for item in results.get(engine_key("login", engine), []):
            rows += login_rows(item, engine)
    for item in results.get("upsert", []):
        if "error" in item:
            rows.append((f"5 upsert ({item['db']})", "error", "-", ">= 0.5", item["error"]))
            continue
        ok = "PASS" if item["ratio"] >= 0.5 else "MISS"
        rows.append((f"5 upsert 10k, half present ({item['db']})",
                     f"{fmt(item['service_rows_per_s'], 0)} vs raw "
                     f"{fmt(item['raw_rows_per_s'], 0)} rows/s",
                     fmt(item["ratio"]), ">= 0.5", ok))
        rows.append((f"5 upsert, ratio of process CPU s ({item['db']})",
                     "raw CPU / service CPU (client side on PG)", fmt(item["ratio_cpu"]),
                     "(context)", ""))
        rows += upsert_change_rows(item)
    for item in results.get("memory", []):
        if "error" in item:
            rows.append((f"6 memory ({item['db']})", "error", "-", "< 300 MiB", item["error"]))
            continue
        ok = "PASS" if item["peak"] < 300 * MIB else "MISS"
        rows.append((f"6 RSS {item['users']} users ({item['db']})",
                     f"empty {fmt(item['empty_rss'] / MIB, 0)} / idle "
                     f"{fmt(item['idle_rss'] / MIB, 0)} / after status sweep "
                     f"{fmt(item['after_status_sweep_hwm'] / MIB, 0)} / syncing peak "
                     f"{fmt(item['sync']['VmHWM'] / MIB, 0)} MiB",
                     "-", "< 300 MiB", ok))
    for item in results.get("scale", []):
        rows += scale_rows(item)
    for item in results.get("webhooks", []):
        rows += webhook_rows(item)
    return rows


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def bucket_verdict(bucket: list[float], target_ms: float) -> str:
    """PASS/MISS when the bucket lies on one side of the target, else UNDECIDED."""
    low, high = bucket
    if high <= target_ms:
        return "PASS"
    return "MISS" if low >= target_ms else "UNDECIDED"


def bucket_text(bucket: list[float]) -> str:
    return f"({fmt(bucket[0], 1)}, {fmt(bucket[1], 1)}] ms"


def tail_rows(item: dict[str, Any]) -> list[Row]:
    """Figure 2: status p99 under sync / idle, and the loop lag during the sync."""
    db = item["db"]
    if "error" in item:
        return [(f"2 status p99 sync / idle ({db})", "error", "-", "<= 1.5", item["error"])]
    lag, probe, sync = item["lag"], item["probe"], item["sync"]
    concurrency = item.get("concurrency", {"users": W, "threads": W})
    db = (f"{db}, {concurrency['users']} users at once"
          f"{' (config.yaml)' if item.get('default_concurrency') else ''}")
    if item.get("api_apart"):
        db = f"{db}, API process apart"
    efficiency = (f"efficiency {fmt(sync['efficiency'])}, " if "efficiency" in sync else "")
    return [
        (f"2 status p99 during {item['users']:,}-user sync / idle ({db}, "
         f"{fmt(item['rate'], 0)} req/s)",
         f"idle {fmt(item['idle_p99_ms'])} ms / sync {fmt(item['sync_p99_ms'])} ms",
         fmt(item["ratio"]), "<= 1.5", verdict(item["ratio"] <= 1.5)),
        (f"2 event-loop lag p99 during sync ({db})",
         f"in {bucket_text(lag['p99_bucket_ms'])} (histogram bucket, {lag['samples']} samples)",
         "-", "<= 5 ms", bucket_verdict(lag["p99_bucket_ms"], 5)),
        (f"2 event-loop lag max during sync ({db})",
         f"in {bucket_text(lag['max_bucket_ms'])}; max gauge of the last 60 s at the end: "
         f"{fmt(probe['sync']['lag_window_max_ms'], 1)} ms",
         "-", "< 50 ms", bucket_verdict(lag["max_bucket_ms"], 50)),
        (f"2 status handling time in the service, p99 ({db})",
         f"idle in {bucket_text(probe['idle']['status_handling']['p99_bucket_ms'])} / sync in "
         f"{bucket_text(probe['sync']['status_handling']['p99_bucket_ms'])} (its histogram)",
         "-", "(context)", ""),
        (f"2 the load generator's own dispatch lag, p99 ({db})",
         f"idle {fmt(probe['idle']['status']['dispatch_lag_p99_ms'])} ms / sync "
         f"{fmt(probe['sync']['status']['dispatch_lag_p99_ms'])} ms", "-", "(context)", ""),
        (f"2 /healthz p99, outside view of lag ({db})",
         f"idle {fmt(probe['idle']['healthz']['p99_ms'])} ms / sync "
         f"{fmt(probe['sync']['healthz']['p99_ms'])} ms", "-", "(context)", ""),
        (f"2 the sync under the probe ({db})",
         f"{fmt(sync['measured_s'], 1)} s, {efficiency}"
         f"{fmt(sync['cpu_s_per_user'], 4)} CPU s/user (probe included), the core "
         f"{fmt(sync['service_cpu_share'] * 100, 0)} % busy", "-", "(context)", ""),
    ]


def sync_rows(item: dict[str, Any], engine: str) -> list[Row]:
    """Figure 3 on one engine: the sync against its floor, its rate and CPU per user."""
    db = f"{item['db']}, {engine}"
    if "error" in item:
        return [(f"3 sync efficiency ({db})", "error", "-", ">= 0.8", item["error"])]
    login = item["login"]
    # results stored before the token calls were counted apart have no such key
    tokens = (f"; {item['token_calls']} token calls, {item['refreshes']} refreshes"
              if "token_calls" in item else "")
    return [
        (f"3 sync efficiency ({db}, {item['users']} users)",
         f"floor {fmt(item['floor_s'])} s / measured {fmt(item['measured_s'])} s",
         fmt(item["efficiency"]), ">= 0.8", verdict(item["efficiency"] >= 0.8)),
        (f"3 efficiency ceiling if CPU-bound ({db})",
         f"floor / max(service {fmt(item['cpu_s_total'], 1)}, sandbox "
         f"{fmt(item['sandbox_cpu_s'], 1)} CPU s)",
         fmt(item["cpu_bound_ceiling"]), "(context)", ""),
        (f"3 users synced/min ({db})", fmt(item["users_per_minute"], 0), "-", "-", ""),
        (f"3 CPU s per user sync ({db})", fmt(item["cpu_s_per_user"], 4), "-", "-", ""),
        (f"3 Garmin calls per user sync ({db})",
         f"{fmt(item['calls_per_user'], 1)}{tokens}", "-", "(context)", ""),
        (f"3 setup logins ({db}, latency 0, {login['concurrency']} at once)",
         f"{fmt(login['cpu_s_per_login'], 4)} CPU s/login, "
         f"{fmt(login['logins_per_s'], 1)} logins/s", "-", "(context)", ""),
    ]


def login_rows(item: dict[str, Any], engine: str) -> list[Row]:
    """Figure 4 on one engine: concurrent logins against their floor, and the token
    isolation check."""
    db = f"{item['db']}, {engine}"
    if "error" in item:
        return [(f"4 logins / floor ({db})", "error", "-", "<= 1.2", item["error"])]
    iso, n = item["isolation"], item["logins"]
    delayed, calls = item["delayed_calls_per_login"], item["calls_per_login"]
    rounds = math.ceil(n / item["executor_threads"])
    return [
        (f"4 {n} concurrent logins / floor ({db})",
         f"{fmt(item['total_s'])} s / floor {fmt(item['floor_s'])} s = ceil({n}/"
         f"{item['executor_threads']}) x {fmt(delayed, 0)} delayed calls x {LATENCY_MS} ms",
         fmt(item["ratio"]), "<= 1.2", verdict(item["ratio"] <= 1.2)),
        (f"4 requests naming another user's account or token ({db})",
         f"{iso['crossed']} of {iso['checked']} checked ({iso['with_token']} with a token, "
         f"{iso['without_caller']} without caller)", "-", "0",
         verdict(iso["crossed"] == 0 and iso["without_caller"] == 0 and iso["checked"] > 0)),
        (f"4 login cost ({db})",
         f"{fmt(calls, 0)} requests ({fmt(delayed, 0)} delayed), "
         f"{fmt(item['cpu_s_per_login'], 4)} CPU s per login; p50 {fmt(item['p50_ms'], 0)} ms",
         "-", "(context)", ""),
        (f"4 time over the floor ({db})",
         f"{fmt((item['total_s'] - item['floor_s']) * 1000, 0)} ms in all, "
         f"{fmt((item['total_s'] - item['floor_s']) * 1000 / rounds, 0)} ms per round of "
         f"{item['executor_threads']} logins", "-", "(context)", ""),
        (f"4 status p99 during the logins / idle ({db})",
         f"idle {fmt(item['status_idle_p99_ms'])} ms / logins {fmt(item['status_p99_ms'])} ms",
         fmt(item["status_p99_ms"] / item["status_idle_p99_ms"]), "(context)", ""),
    ]


def scale_rows(item: dict[str, Any]) -> list[Row]:
    """Figure 7: per-user sync cost at each size, and how flat it stays."""
    db = item["db"]
    if "error" in item:
        return [(f"7 scaling ({db})", "error", "-", "<= 1.2", item["error"])]
    rows: list[Row] = []
    for point in item["points"]:
        rows.append((f"7 sync of {point['users']:,} users ({db})",
                     f"{fmt(point['measured_s'], 1)} s: {fmt(point['wall_s_per_user'] * 1000)} "
                     f"ms/user wall, {fmt(point['cpu_s_per_user'] * 1000)} ms/user CPU",
                     "-", "-", ""))
    wall = [p["wall_s_per_user"] * 1000 for p in item["points"]]
    rows.append((f"7 per-user wall cost max/min ({db})",
                 f"{fmt(min(wall))} to {fmt(max(wall))} ms/user", fmt(item["ratio"]), "<= 1.2",
                 verdict(item["ratio"] <= 1.2)))
    rows.append((f"7 per-user CPU max/min ({db})", "service CPU s / users",
                 fmt(item["cpu_ratio"]), "(context)", ""))
    if item["marginal"]:
        rows.append((f"7 wall cost of each added user ({db})",
                     ", ".join(f"{m['from']:,} to {m['to']:,}: {fmt(m['ms_per_user'])} ms"
                               for m in item["marginal"]), "-", "(context)", ""))
    return rows


def upsert_change_rows(item: dict[str, Any]) -> list[Row]:
    """Figure 5: what the upsert wrote, and a re-upsert with nothing or everything changed."""
    changes, db = item.get("changes"), item["db"]
    if not changes:
        return []
    first, count = changes["first"], changes["rows"]
    return [
        (f"5 rows the timed upsert wrote ({db})",
         f"{first['inserted']:,} inserted, {first['updated']:,} updated, "
         f"{first['unchanged']:,} unchanged", "-", "(context)", ""),
        (f"5 re-upsert of {count:,} unchanged rows ({db})",
         f"{changes['unchanged_written']:,} written; {fmt(changes['unchanged_rows_per_s'], 0)} "
         f"rows/s vs {fmt(changes['changed_rows_per_s'], 0)} with every row changed "
         f"({changes['changed_updated']:,} updated)",
         fmt(changes["unchanged_rows_per_s"] / changes["changed_rows_per_s"]), "0 written",
         verdict(changes["unchanged_written"] == 0 and changes["changed_updated"] == count)),
    ]


def webhook_rows(item: dict[str, Any]) -> list[Row]:
    """Figure 8: the outbox's cost to a sync, and a dispatcher draining a filled outbox."""
    db = item["db"]
    if "error" in item:
        return [(f"8 webhooks ({db})", "error", "-", "<= 1.05", item["error"])]
    cost, drain = item["overhead"], item["drain"]
    each = cost["order"].count("on")
    delivered = (cost["unique"] == cost["events"] > 0 and cost["invalid"] == 0
                 and cost["jobs_ok"] == cost["jobs"])
    kept = drain["lost"] == 0 and drain["invalid"] == 0 and drain["not_marked_delivered"] == 0
    return [
        (f"8 CPU per user synced, webhooks on / off ({db}, {cost['users']:,} users)",
         f"on {fmt(cost['cpu_s_per_user_on'] * 1000)} / off "
         f"{fmt(cost['cpu_s_per_user_off'] * 1000)} ms (median of {each} runs each; on: "
         "until every event was delivered)", fmt(cost["ratio"]), "<= 1.05",
         verdict(cost["ratio"] <= 1.05)),
        (f"8 sync wall time, webhooks on / off ({db})",
         "last job finished (and, on, last event received) - ready; median of each",
         fmt(cost["wall_ratio"]), "(context)", ""),
        (f"8 the same, events written but none delivered ({db})",
         f"held {fmt(cost['cpu_s_per_user_held'] * 1000)} / off "
         f"{fmt(cost['cpu_s_per_user_off'] * 1000)} ms (an endpoint that never answers; "
         f"{cost['held_events']:,} events written)", fmt(cost["held_ratio"]), "(context)", ""),
        (f"8 events of those syncs delivered ({db})",
         f"{cost['unique']:,} distinct of {cost['events']:,} written "
         f"({cost['received']:,} received), {cost['invalid']} bad signatures", "-",
         "all, 0 bad", verdict(delivered)),
        (f"8 outbox drain vs a bare signed sender ({db}, {drain['events']:,} events, "
         f"{drain['concurrency']} at once)",
         f"{fmt(drain['deliveries_per_s'], 0)} deliveries/s vs "
         f"{fmt(drain['bare_posts_per_s'], 0)} POSTs/s", fmt(drain["ratio"]), "(context)", ""),
        (f"8 drain: nothing lost ({db})",
         f"{drain['events'] - drain['lost']:,} of {drain['events']:,} ids received, "
         f"{drain['duplicates']} duplicates, {drain['invalid']} bad signatures, "
         f"{drain['not_marked_delivered']} rows not marked delivered", "-", "0 lost",
         verdict(kept)),
        (f"8 service CPU per delivery ({db})",
         f"dispatcher {fmt(drain['cpu_ms_per_delivery'], 3)} ms / bare sender "
         f"{fmt(drain['bare_cpu_ms_per_post'], 3)} ms per POST", "-", "(context)", ""),
    ]


def render(results: dict[str, Any]) -> str:
    """The table; a verdict measured while other work took a share of the machine's CPU
    (`other_work`, which the report attaches) says so."""
    rows: list[Row] = []
    for key, value in results.items():
        for item in value if isinstance(value, list) else [value]:
            if not isinstance(item, dict):
                continue
            for row in table({key: [item] if isinstance(value, list) else item}):
                other = item.get("other_work")
                rows.append((*row[:4], f"{row[4]} (other work {other:.0%})")
                            if other and row[4] else row)
    header = ("figure", "measured", "ratio", "target", "verdict")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(5)]
    lines = ["| " + " | ".join(str(c).ljust(w) for c, w in zip(header, widths, strict=True))
             + " |", "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    lines += ["| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) + " |"
              for r in rows]
    return "\n".join(lines)
