"""The charts of BENCHMARKS.md, drawn from the stored results (matplotlib: the `bench` extra).

- scaling.svg: figure 7, the sync's service CPU and wall time per user at each size, with
  the floor the Garmin latency sets (calls per user x 50 ms / W).
- status-during-sync.svg: figure 2, the status p99 of each second, idle and during the
  sync, per layout, with the span of the sync's jobs shaded.

The SVGs carry no date and a fixed id salt, so drawing the same results twice gives the
same bytes and only new results show up in a diff."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from bench.constants import LATENCY_MS, W
from bench.report import grouped, load

plt.rcParams.update({"svg.hashsalt": "garmin-sync-bench", "svg.fonttype": "none",
                     "font.size": 9})
COLOURS = {"sqlite": "tab:blue", "postgres": "tab:orange"}
LAYOUTS = [("tail-default", "configured concurrency (8 users, 16 threads)"),
           ("tail", f"W = {W} in one process"),
           ("tail-apart", f"W = {W}, API process apart")]


def draw(results: Path) -> list[Path]:
    """Every chart whose figure has results; the paths written."""
    files = load(results)
    data = grouped(files)
    # each line names the day its figure ran (the charts may mix runs of different days)
    # and, where measured, the share of the machine other work took meanwhile
    for f in files:
        other = f["run"].get("other_cpu_share")
        f["result"]["label"] = (f"{f['db']}, {f['machine']['date'][:10]}"
                                + (f", other work {other:.0%}" if other is not None else ""))
    written = []
    scale = [item for item in data.get("scale", []) if "points" in item]
    if scale:
        written.append(_save(scaling(scale), results / "scaling.svg"))
    tails = {key: [item for item in data.get(key, []) if _has_timeline(item)]
             for key, _ in LAYOUTS}
    if any(tails.values()):
        written.append(_save(status_during_sync(tails), results / "status-during-sync.svg"))
    return written


def scaling(items: list[dict[str, Any]]) -> Any:
    figure, (cpu_axes, wall_axes) = plt.subplots(1, 2, figsize=(9, 3.4), sharex=True)
    for item in items:
        points = item["points"]
        users = [p["users"] for p in points]
        colour = COLOURS.get(item["db"], "tab:grey")
        cpu_axes.plot(users, [p["cpu_s_per_user"] * 1000 for p in points], "o-",
                      color=colour, label=item.get("label", item["db"]))
        wall_axes.plot(users, [p["wall_s_per_user"] * 1000 for p in points], "o-",
                       color=colour, label=item.get("label", item["db"]))
        floor = [p["calls_per_user"] * LATENCY_MS / W for p in points]
        wall_axes.plot(users, floor, ":", color=colour,
                       label=f"{item['db']}: floor (calls x {LATENCY_MS} ms / {W})")
    cpu_axes.set_title("service CPU per user sync")
    cpu_axes.set_ylabel("ms per user")
    wall_axes.set_title(f"wall time per user ({W} users at once, {LATENCY_MS} ms per call)")
    for axes in (cpu_axes, wall_axes):
        axes.set_xscale("log")
        axes.set_xlabel("users synced")
        axes.set_ylim(bottom=0)
        axes.grid(True, alpha=0.3)
        axes.legend(fontsize=7)
    figure.tight_layout()
    return figure


def status_during_sync(tails: dict[str, list[dict[str, Any]]]) -> Any:
    layouts = [(key, title) for key, title in LAYOUTS if tails.get(key)]
    figure, axes_row = plt.subplots(1, len(layouts), figsize=(4 * len(layouts), 3.4),
                                    squeeze=False)
    for axes, (key, title) in zip(axes_row[0], layouts, strict=True):
        for item in tails[key]:
            colour = COLOURS.get(item["db"], "tab:grey")
            idle, during = item["probe"]["idle"], item["probe"]["sync"]
            shift = idle["window_s"]
            idle_line = idle["status"]["p99_timeline"]
            axes.plot([t - shift for t, _, _ in idle_line], [p99 for _, p99, _ in idle_line],
                      color=colour, alpha=0.5)
            sync_line = during["status"]["p99_timeline"]
            axes.plot([t for t, _, _ in sync_line], [p99 for _, p99, _ in sync_line],
                      color=colour, label=f"{item.get('label', item['db'])}: p99 sync / idle "
                                          f"{item['ratio']:.2f}")
            start = _seconds(item["sync"]["first_job_started"], during["window_started_at"])
            axes.axvspan(start, start + item["sync"]["measured_s"], color=colour, alpha=0.08)
            axes.axhline(item["idle_p99_ms"], color=colour, linestyle=":", linewidth=0.8)
        axes.axvline(0, color="black", linewidth=0.6)
        axes.set_title(title, fontsize=8)
        axes.set_xlabel("s from the sync's start (idle run before 0)")
        axes.set_ylim(bottom=0)
        axes.grid(True, alpha=0.3)
        axes.legend(fontsize=7)
    axes_row[0][0].set_ylabel("status p99 per second (ms)")
    figure.suptitle(f"status at 200 req/s during a {_users(tails):,}-user sync "
                    "(dotted: idle p99; shaded: first job start to last job end)", fontsize=9)
    figure.tight_layout()
    return figure


def _has_timeline(item: dict[str, Any]) -> bool:
    probe = item.get("probe", {})
    return all("p99_timeline" in probe.get(run, {}).get("status", {})
               and "window_started_at" in probe.get(run, {}) for run in ("idle", "sync"))


def _users(tails: dict[str, list[dict[str, Any]]]) -> int:
    return int(max(item["users"] for items in tails.values() for item in items))


def _seconds(at: str, since: str) -> float:
    return (datetime.fromisoformat(at) - datetime.fromisoformat(since)).total_seconds()


def _save(figure: Any, path: Path) -> Path:
    figure.savefig(path, format="svg", metadata={"Date": None})
    plt.close(figure)
    return path
