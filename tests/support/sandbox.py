"""The sandbox's own tests: their seeded accounts and a clock they move by hand."""

from __future__ import annotations

from dataclasses import dataclass

ALICE = "alice@example.com"
ALICE_PASSWORD = "alice-pw"
BOB = "bob@example.com"
BOB_PASSWORD = "bob-pw"
MONA = "mona@example.com"
MONA_PASSWORD = "mona-pw"
MFA_CODE = "123456"


@dataclass
class FakeClock:
    """The sandbox's clock, movable by tests (garth keeps using the real one)."""

    now: float

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
