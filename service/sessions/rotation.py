"""Re-encrypt every stored secret with the first configured key (`garmin-sync rotate-keys`).

Idempotent and resumable: rows already on the current key are skipped by their key id
without decrypting, and each row is written with compare-and-set, so rotation can run while
the service serves traffic and can be interrupted and started again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from service.crypto import Cipher, DecryptionError
from service.models import GarminAuthenticationState
from service.store import sessions as store

log = logging.getLogger(__name__)

SEALED_FIELDS = ("session_data", "mfa_state")
PAGE = 500


@dataclass
class RotationReport:
    reencrypted: int = 0
    current: int = 0
    failed: int = 0


def _rotated(cipher: Cipher, row: GarminAuthenticationState) -> dict[str, str] | None:
    """New ciphertexts for the row's stale fields; None when everything is current."""
    changes: dict[str, str] = {}
    for name in SEALED_FIELDS:
        sealed = getattr(row, name)
        if not sealed or cipher.is_current(sealed):
            continue
        plain = cipher.decrypt(sealed, user_id=row.user_id, purpose=name)
        changes[name] = cipher.encrypt(plain, user_id=row.user_id, purpose=name)
    return changes or None


async def _rotate_row(
    cipher: Cipher, row: GarminAuthenticationState, report: RotationReport
) -> None:
    for _ in range(3):
        try:
            changes = _rotated(cipher, row)
        except DecryptionError as exc:
            report.failed += 1
            log.error("user %s: cannot re-encrypt (%s); row left untouched", row.user_id, exc)
            return
        if changes is None:
            report.current += 1
            return
        if await store.compare_and_set(row, None, **changes):
            report.reencrypted += 1
            return
        fresh = await store.load(row.user_id)
        if fresh is None:
            return
        row = fresh
    report.failed += 1
    log.error("user %s: row kept changing; run rotate-keys again", row.user_id)


async def rotate_keys(cipher: Cipher) -> RotationReport:
    report = RotationReport()
    last_id = 0
    while True:
        rows = await GarminAuthenticationState.filter(id__gt=last_id).order_by("id").limit(PAGE)
        if not rows:
            return report
        for row in rows:
            await _rotate_row(cipher, row, report)
        last_id = rows[-1].id
