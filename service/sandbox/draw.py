"""Deterministic draws for generated Garmin data, and what stays the same for an account.

Every value is drawn from a hash of (username, date, index, field name): the same account and
date give identical JSON on every run and in any call order, and no `random` global state is
involved (tests in the same process cannot disturb each other).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, TypeVar

from .accounts import Account

T = TypeVar("T")


class Draw:
    """Values drawn from a hash of (username, date, index, name): same inputs, same value.

    Each name is hashed on its own, so adding a field never shifts the others' values.
    """

    def __init__(self, username: str, day: dt.date | None, index: int | str) -> None:
        when = day.isoformat() if day is not None else "account"
        self._key = f"{username.casefold()}|{when}|{index}"

    def unit(self, name: str) -> float:
        """A number in [0, 1)."""
        digest = hashlib.blake2b(f"{self._key}|{name}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big") / 2**64

    def integer(self, name: str, low: int, high: int) -> int:
        """An integer in [low, high]."""
        return low + int(self.unit(name) * (high - low + 1))

    def number(self, name: str, low: float, high: float) -> float:
        """A float in [low, high)."""
        return low + self.unit(name) * (high - low)

    def choice(self, name: str, options: Sequence[T]) -> T:
        """One of `options`."""
        return options[int(self.unit(name) * len(options))]


# --- per-account constants ---------------------------------------------------------------

_HOMES: Final = (
    ("Lisbon", 0),
    ("Berlin", 1),
    ("Helsinki", 2),
    ("Boston", -5),
    ("Denver", -7),
    ("Sao Paulo", -3),
    ("Tokyo", 9),
    ("Sydney", 10),
)
"""Where an account trains and its fixed UTC offset (hours, no DST: the sandbox keeps it simple)."""


@dataclass(frozen=True)
class Profile:
    """What stays the same for an account across days: home, baselines."""

    place: str
    offset: dt.timedelta
    activity_key: int
    resting_hr: int
    bmr_kcal: int
    step_base: int
    hrv_base: int


def account_profile(account: Account) -> Profile:
    draw = Draw(account.username, None, "profile")
    place, hours = draw.choice("home", _HOMES)
    return Profile(
        place=place,
        offset=dt.timedelta(hours=hours),
        activity_key=draw.integer("activity_key", 0, 999_999),
        resting_hr=draw.integer("resting_hr", 46, 62),
        bmr_kcal=draw.integer("bmr", 1450, 1950),
        step_base=draw.integer("steps", 5000, 11000),
        hrv_base=draw.integer("hrv", 38, 75),
    )


def epoch_ms(moment: dt.datetime) -> int:
    """Epoch milliseconds of a naive datetime that holds a UTC time."""
    return int(moment.replace(tzinfo=dt.UTC).timestamp() * 1000)
