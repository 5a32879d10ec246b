"""Figure 1: status endpoint throughput (cached validation) / a bare aiohttp handler."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

import aiohttp

from bench import harness as h
from bench.common import Env, empty_database, headers, login_all
from tests.support.replicas import username_of


async def figure_status(root: Path, db: str, quick: bool) -> dict[str, Any]:
    env = Env(root, "status", db)
    users = [f"status-{i}" for i in range(20)]
    try:
        await empty_database(env.url)
        sandbox = env.sandbox([{"username": username_of(u)} for u in users], h.client_cpu())
        await h.wait_ready(sandbox, "/_sandbox/requests")
        # the scheduler off: its ticks and the users' first syncs are not the figure
        service = env.service("service", env.service_env(sandbox, SYNC_ENABLED="false"),
                              h.server_cpu())
        await h.wait_ready(service, "/readyz")
        await login_all(service.url, users, 8)
        sandbox.stop()  # not needed for cached answers; frees the client core
        async with aiohttp.ClientSession() as http, \
                http.get(service.url + "/api/v1/garmin/session/status",
                         headers=headers(users[0])) as response:
            body = await response.read()
            assert response.status == 200 and b'"cached"' in body, body
        (env.dir / "body.json").write_bytes(body)
        bare = h.spawn("bare", ["-m", "bench.bare_app", "--body", str(env.dir / "body.json")],
                       h.clean_env(), env.dir, h.server_cpu())
        env.procs.append(bare)
        await h.wait_ready(bare, "/x")
        path = "/api/v1/garmin/session/status"
        service_payloads = [h.raw_get(path, service.port, headers(u)) for u in users]
        bare_payloads = [h.raw_get(path, bare.port, headers(u)) for u in users]
        targets = {"bare": (bare, bare_payloads), "service": (service, service_payloads)}
        connections, duration, rounds = 32, (2.0 if quick else 3.0), (2 if quick else 3)
        # a closed-loop estimate of the bare server sets the overload rate for every run
        estimate = await h.run_load(bare.port, bare_payloads, None, 1.5, connections, bare.pid)
        overload = estimate.achieved * 2
        runs: dict[str, list[dict[str, Any]]] = {"bare": [], "service": []}
        for _ in range(rounds):  # interleaved, so drift and neighbours hit both alike
            for name, (proc, payloads) in targets.items():
                result = await h.run_load(proc.port, payloads, overload, duration, connections,
                                          proc.pid)
                runs[name].append(result.summary())
        capacity = {name: statistics.median(r["achieved_rps"] for r in rs)
                    for name, rs in runs.items()}
        per_cpu = {name: statistics.median(r["achieved_rps"] / r["server_cpu"] for r in rs
                                           if r["server_cpu"]) for name, rs in runs.items()}
        # latency at a rate both sustain: half the service's capacity, open loop
        common = capacity["service"] * 0.5
        latency = {}
        for name, (proc, payloads) in targets.items():
            result = await h.run_load(proc.port, payloads, common, duration, connections,
                                      proc.pid)
            latency[name] = result.summary()
        return {
            "db": db, "ratio": capacity["service"] / capacity["bare"],
            "ratio_per_cpu": per_cpu["service"] / per_cpu["bare"],
            "service_rps": capacity["service"], "bare_rps": capacity["bare"],
            "service_rps_per_cpu_s": per_cpu["service"], "bare_rps_per_cpu_s": per_cpu["bare"],
            "offered_overload_rps": overload, "runs": runs, "latency_at_half": latency,
            "body_bytes": len(body), "users": len(users), "connections": connections,
        }
    finally:
        env.close()
