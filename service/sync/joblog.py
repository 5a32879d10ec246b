"""The one log line of each finished sync job.

An operator reads the service's work from these lines: one per job, whatever ended it, at
INFO, as `key=value` pairs (JSON output carries each pair as its own key too). A line names
the user, kind, trigger and status, what the job stored and what it cost; a job that did not
succeed says why in a word of our own (`reason`: a Garmin failure's outcome such as
`rate_limited`, `timeout`, `unavailable`, `protocol` or `auth_rejected`; `busy`,
`no_session`, `lease_lost`, `cancelled`, `shutdown`, `internal_error`), never Garmin's text
or a token, and after a Garmin failure how long the kind now backs off.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from datetime import datetime

from service import logs
from service.garmin import SessionCalls
from service.models import JobStatus, SyncJob

log = logging.getLogger(__name__)


@dataclass
class JobNote:
    """What a job's log line tells beyond the job row: why it ended (a word of our own
    vocabulary, never Garmin's text), the Garmin calls it made, how long it ran."""

    started: float = field(default_factory=time.perf_counter)
    reason: str | None = None
    calls: SessionCalls | None = None
    backoff_until: datetime | None = None


def log_job_end(job: SyncJob, note: JobNote, now: datetime) -> None:
    """The one INFO line of a finished job: who, what, how it ended, what it stored, what it
    cost; for a job that did not succeed, why (and, after a Garmin failure, the backoff)."""
    values: dict[str, logs.Field] = {
        "user": job.user_id, "kind": job.kind.value, "trigger": job.trigger.value,
        "status": job.status.value, "items": job.items_upserted or 0,
        "fetched": job.items_fetched or 0, "skipped": job.items_skipped or 0,
        "garmin_calls": note.calls.made if note.calls is not None else 0,
        "duration_ms": round((time.perf_counter() - note.started) * 1000),
    }
    if job.status != JobStatus.SUCCESS:
        values["reason"] = note.reason or job.status.value.lower()
    if note.backoff_until is not None:
        values["backoff_s"] = max(0, math.ceil((note.backoff_until - now).total_seconds()))
    log.info("sync job finished %s", logs.fields(values), extra={"fields": values})
