"""The settings every figure shares, named once for the figures and for their report."""

from __future__ import annotations

import os
from pathlib import Path

LATENCY_MS = 50  # sandbox latency per Garmin call in the sync and login figures
W = 32  # sync.max_concurrent_users = garmin.executor_threads in the sync figures
PROBE_POLL = 0.5  # s between /metrics scrapes while a probe measures (idle and sync alike)
MIB = 1024 * 1024
# the sync worker's nice in figure 2's "API process apart" layout
APART_NICE = int(os.environ.get("BENCH_APART_NICE", "10"))
RESULTS = Path(__file__).resolve().parent / "results"
# the Garmin engines figures 3 and 4 run on; garth's results keep the figure's own key
ENGINES = ("garth", "di")


def engine_key(figure: str, engine: str) -> str:
    """The result key of `figure` run on `engine`: "sync" for garth, "sync-di" for DI."""
    return figure if engine == "garth" else f"{figure}-{engine}"
