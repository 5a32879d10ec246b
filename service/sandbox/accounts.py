"""Garmin Connect users as the sandbox sees them, and the seed files that create them."""

from __future__ import annotations

import dataclasses
import json
import os
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import yaml

from .errors import ValidationError
from .faults import Fault, faults_from
from .fields import boolean, int_in, optional_int, optional_str, reject_unknown_keys, require_str

DEFAULT_OAUTH2_LIFETIME_SECONDS: Final = 3600
DEFAULT_DI_ACCESS_LIFETIME_SECONDS: Final = 3600
DEFAULT_DI_REFRESH_LIFETIME_SECONDS: Final = 7_776_000
MFA_INVALID_STATUSES: Final = (200, 400, 401, 403, 422)
"""Statuses a wrong MFA code may be answered with; Garmin's is undocumented (see sso.py)."""
MAX_LATENCY_MS: Final = 600_000
DEFAULT_HISTORY_DAYS: Final = 60
MAX_HISTORY_DAYS: Final = 3650
MAX_ACTIVITIES_PER_DAY: Final = 20
"""Upper bound of `activities_per_day`; activity ids reserve this many slots per day."""

DATA_FAMILIES: Final = ("activities", "summary", "sleep", "hrv", "stress", "body_battery")
"""The connectapi data endpoints, by family; keys of `Account.data_calls`."""

_COUNTER_OF_SCOPE: Final = {
    "login": "login_attempts",
    "mfa": "mfa_attempts",
    "portal_login": "login_attempts",
    "portal_mfa": "mfa_attempts",
    "exchange": "exchanges",
    "di_token": "di_exchanges",
    "di_refresh": "di_refresh_attempts",
    "api": "api_calls",
}


def default_profile_id(username: str) -> int:
    """A stable 8-digit id derived from the username: same account, same id, every run."""
    return 10_000_000 + zlib.crc32(username.casefold().encode()) % 90_000_000


def garmin_guid(account: Account) -> str:
    """The account's Garmin GUID: in socialProfile, and the `sub` of its DI access tokens."""
    return f"{account.profile_id:08d}-0000-4000-8000-000000000000"


_PATCHABLE_FIELDS: Final = (
    "password",
    "mfa_code",
    "display_name",
    "full_name",
    "oauth2_lifetime_seconds",
    "latency_ms",
    "oauth1_revoked",
    "history_days",
    "activities_per_day",
    "malformed_activity_every",
    "mfa_invalid_status",
    "mfa_max_attempts",
    "di_access_lifetime_seconds",
    "di_refresh_lifetime_seconds",
    "di_reuse_revokes_family",
)
_CREATABLE_FIELDS: Final = ("username", "profile_id", "faults", *_PATCHABLE_FIELDS)


@dataclass
class Account:
    """A Garmin Connect user as the sandbox sees it, with its faults and usage counters.

    Counters count every request attributed to the account in that scope, including those
    answered by a fault or refused: they show what the client attempted. `refreshes`
    counts successful exchanges without an `audience` (garth's refresh, not its login).
    `data_calls` splits the GETs to the data endpoints (see `connectapi.py`) by family, so a
    test can check how many pages a sync fetched or which days a second sync fetched again.
    `mfa_attempts` counts MFA code POSTs on both the mobile and the portal URL.

    DI (see `diauth.py`): `di_exchanges` and `di_refresh_attempts` count requests to the DI
    token endpoint's two grants; `di_refreshes` the successful refreshes;
    `di_refresh_reuses` the refreshes presenting a refresh token that was already rotated
    (a client that stores every rotation keeps it at 0). A wrong MFA code is answered with
    `mfa_invalid_status`; after `mfa_max_attempts` wrong codes (None: no limit) the
    challenge is gone.

    The data options shape what `activities.py` and `wellness.py` generate: `history_days` of
    activities before today, `activities_per_day` per day, and every
    `malformed_activity_every`-th activity broken (so a client can prove it skips a bad item
    instead of aborting the sync).
    """

    username: str
    password: str
    mfa_code: str | None = None
    display_name: str = ""
    full_name: str = ""
    profile_id: int = 0
    oauth2_lifetime_seconds: int = DEFAULT_OAUTH2_LIFETIME_SECONDS
    oauth1_revoked: bool = False
    faults: dict[str, Fault] = field(default_factory=dict)
    latency_ms: int = 0
    history_days: int = DEFAULT_HISTORY_DAYS
    activities_per_day: int = 1
    malformed_activity_every: int | None = None
    mfa_invalid_status: int = 200
    mfa_max_attempts: int | None = None
    di_access_lifetime_seconds: int = DEFAULT_DI_ACCESS_LIFETIME_SECONDS
    di_refresh_lifetime_seconds: int = DEFAULT_DI_REFRESH_LIFETIME_SECONDS
    di_reuse_revokes_family: bool = False
    login_attempts: int = 0
    mfa_attempts: int = 0
    exchanges: int = 0
    refreshes: int = 0
    api_calls: int = 0
    di_exchanges: int = 0
    di_refresh_attempts: int = 0
    di_refreshes: int = 0
    di_refresh_reuses: int = 0
    data_calls: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DATA_FAMILIES, 0))

    def __post_init__(self) -> None:
        if not self.display_name:
            self.display_name = self.username.split("@", 1)[0]
        if not self.full_name:
            self.full_name = self.display_name.replace(".", " ").title()
        if not self.profile_id:
            self.profile_id = default_profile_id(self.username)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Account:
        """Build a validated account from control-API JSON or a seed entry."""
        if not isinstance(data, Mapping):
            raise ValidationError("an account must be an object")
        reject_unknown_keys(data, _CREATABLE_FIELDS, "account")
        account = cls(
            username=require_str(data, "username"),
            password=require_str(data, "password"),
            profile_id=int_in(data.get("profile_id", 0), "profile_id", 0, 2**53),
            faults=faults_from(data.get("faults")),
        )
        account.apply_changes({k: v for k, v in data.items() if k in _PATCHABLE_FIELDS})
        return account

    def apply_changes(self, changes: Mapping[str, Any]) -> None:
        """Validate and apply a PATCH; all-or-nothing so a bad field changes nothing."""
        reject_unknown_keys(changes, _PATCHABLE_FIELDS, "account")
        staged = _validated_changes(changes)
        for key, value in staged.items():
            setattr(self, key, value)

    def to_dict(self) -> dict[str, Any]:
        """Public view with counters; the password is never echoed back."""
        view = dataclasses.asdict(self)
        view.pop("password")
        view["faults"] = {scope: fault.to_dict() for scope, fault in self.faults.items()}
        view["mfa_enabled"] = self.mfa_code is not None
        return view

    def count(self, scope: str) -> None:
        """Bump the counter that belongs to `scope`, if that scope has one."""
        counter = _COUNTER_OF_SCOPE.get(scope)
        if counter is not None:
            setattr(self, counter, getattr(self, counter) + 1)

    def count_data(self, family: str) -> None:
        """Bump the data-call counter of one endpoint family (a key of DATA_FAMILIES)."""
        self.data_calls[family] = self.data_calls.get(family, 0) + 1


def _validated_changes(changes: Mapping[str, Any]) -> dict[str, Any]:
    staged: dict[str, Any] = {}
    for key, value in changes.items():
        if key == "password":
            staged[key] = require_str(changes, key)
        elif key == "mfa_code":
            staged[key] = optional_str(changes, key)
        elif key in ("display_name", "full_name"):
            staged[key] = require_str(changes, key)
        elif key == "oauth2_lifetime_seconds":
            staged[key] = int_in(value, key, 0, 10 * 365 * 86_400)
        elif key == "latency_ms":
            staged[key] = int_in(value, key, 0, MAX_LATENCY_MS)
        elif key in ("oauth1_revoked", "di_reuse_revokes_family"):
            staged[key] = boolean(value, key)
        elif key == "mfa_invalid_status":
            staged[key] = int_in(value, key, 200, 499)
            if staged[key] not in MFA_INVALID_STATUSES:
                raise ValidationError(f"mfa_invalid_status must be one of {MFA_INVALID_STATUSES}")
        elif key == "mfa_max_attempts":
            staged[key] = optional_int(value, key, 1, 100)
        elif key in ("di_access_lifetime_seconds", "di_refresh_lifetime_seconds"):
            staged[key] = int_in(value, key, 0, 10 * 365 * 86_400)
        elif key == "history_days":
            staged[key] = int_in(value, key, 0, MAX_HISTORY_DAYS)
        elif key == "activities_per_day":
            staged[key] = int_in(value, key, 0, MAX_ACTIVITIES_PER_DAY)
        elif key == "malformed_activity_every":
            staged[key] = optional_int(value, key, 2, 1000)
    return staged


# --- seed files --------------------------------------------------------------------------


def load_seed(path: str | os.PathLike[str]) -> list[Account]:
    """Read accounts from a YAML or JSON seed file: `{"accounts": [{username, ...}, ...]}`.

    Lets a sandbox started as its own process come up with known users; invalid content
    raises ValidationError naming the problem (a missing file raises OSError).
    """
    source = Path(path)
    text = source.read_text(encoding="utf-8")
    try:
        data = json.loads(text) if source.suffix.lower() == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise ValidationError(f"seed file {source.name} is not valid YAML/JSON") from exc
    return accounts_from_seed(data)


def accounts_from_seed(data: Any) -> list[Account]:
    """Validate parsed seed data and build its accounts (usernames must be unique)."""
    if not isinstance(data, Mapping) or not isinstance(data.get("accounts"), list):
        raise ValidationError("a seed must be an object with an 'accounts' list")
    reject_unknown_keys(data, ("accounts",), "seed")
    accounts: list[Account] = []
    seen: set[str] = set()
    for index, item in enumerate(data["accounts"]):
        try:
            account = Account.from_dict(item)
        except ValidationError as exc:
            raise ValidationError(f"seed account #{index + 1}: {exc}") from exc
        key = account.username.casefold()
        if key in seen:
            raise ValidationError(f"seed account #{index + 1}: duplicate {account.username!r}")
        seen.add(key)
        accounts.append(account)
    return accounts
