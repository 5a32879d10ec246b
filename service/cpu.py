"""CPU priority: the work that can wait gives way to the work that answers requests."""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)


def lower_priority(nice: int) -> None:
    """Lower the calling thread's CPU priority (Linux nice) to `nice`; never raise it.

    On Linux the nice value belongs to each thread, and threads started afterwards inherit
    it: called at startup it covers the whole process, called in a thread only that
    thread. Lowering needs no privileges; raising it back would, so this never tries.
    """
    if nice <= 0 or not hasattr(os, "setpriority"):
        return
    try:
        if nice > os.getpriority(os.PRIO_PROCESS, 0):
            os.setpriority(os.PRIO_PROCESS, 0, nice)
    except OSError as exc:  # a sandbox without the syscall: run at the priority we have
        log.warning("cannot lower the CPU priority to nice %d: %s", nice, exc)
