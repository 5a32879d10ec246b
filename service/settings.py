"""One declaration per configuration key, and what reads it.

A key is a field of a frozen section dataclass declared with `setting()`: its annotation is
the type, and the field's metadata carries the default, the bounds, the documentation and
how a relative path resolves. From that one declaration come the YAML parsing (unknown keys
refused), the `GARMIN_SYNC_<SECTION>_<KEY>` environment override, the validation and the
generated documentation, so a key cannot be declared in one place and forgotten in another.

Every problem becomes a `ConfigError` naming the key (or the environment variable the bad
value came from); the CLI turns it into one line and exit code 2. A valid setting whose
target cannot be used at startup (a database that does not answer, a directory that cannot
be written) is a `StartupError` naming the key and its variable (exit code 1).
"""

from __future__ import annotations

import difflib
import json
import os
import re
import typing
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml

ENV_PREFIX = "GARMIN_SYNC_"
METADATA_KEY = "garmin_sync.setting"

T = TypeVar("T")
Parser = Callable[[Any], Any]
# "path": a file system path; "sqlite-url": the path inside a sqlite:// URL
PathKind = Literal["path", "sqlite-url"]


class ConfigError(Exception):
    """Invalid configuration; `str()` is the single line shown to the operator."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"configuration error: {key}: {problem}")
        self.key = key


class StartupError(Exception):
    """A valid setting whose target cannot be used; `str()` names the key and its variable
    (or the command-line flag it came from)."""

    def __init__(self, key: str, problem: str) -> None:
        label = key if key.startswith("--") else f"{key} ({env_name_of(key)})"
        super().__init__(f"{label}: {problem}")
        self.key = key


@dataclass(frozen=True)
class Rule:
    """What `setting()` records about a key beside its default and type."""

    doc: str
    minimum: float | None = None
    maximum: float | None = None
    below: float | None = None
    choices: tuple[str, ...] = ()
    check: Parser | None = None
    check_doc: str = ""
    path_kind: PathKind | None = None


def setting(
    default: T, doc: str, *, minimum: float | None = None, maximum: float | None = None,
    below: float | None = None, choices: tuple[str, ...] = (), check: Parser | None = None,
    check_doc: str = "", path_kind: PathKind | None = None, secret: bool = False,
) -> T:
    """Declare a configuration key: the field's default plus everything else about it.

    `minimum`/`maximum` are inclusive, `below` exclusive; `choices` compare without case and
    normalise to the choice as declared; `check` normalises or refuses (raising `ValueError`)
    after the type's own parsing, `check_doc` says what it allows. A `secret` stays out of
    the configuration's repr (and so out of any log that prints it).
    """
    rule = Rule(doc, minimum, maximum, below, choices, check, check_doc, path_kind)
    return field(default=default, metadata={METADATA_KEY: rule}, repr=not secret)


@dataclass(frozen=True)
class Key:
    """One declared key of one section."""

    section: str
    name: str
    kind: Any
    default: Any
    rule: Rule

    @property
    def dotted(self) -> str:
        return f"{self.section}.{self.name}"

    @property
    def env_name(self) -> str:
        return env_name_of(self.dotted)

    def parse(self, value: Any, base_dir: Path) -> Any:
        """The typed, checked value, relative paths resolved against `base_dir`."""
        parsed = _PARSERS[self.kind](value)
        rule = self.rule
        if rule.choices:
            by_folded = {choice.lower(): choice for choice in rule.choices}
            if parsed.lower() not in by_folded:
                raise ValueError(f"must be one of {', '.join(rule.choices)}")
            parsed = by_folded[parsed.lower()]
        if rule.minimum is not None and rule.maximum is not None:
            if not rule.minimum <= parsed <= rule.maximum:
                raise ValueError(f"must be from {rule.minimum:g} to {rule.maximum:g}")
        elif rule.minimum is not None and parsed < rule.minimum:
            raise ValueError(f"must be >= {rule.minimum:g}")
        if rule.below is not None and parsed >= rule.below:
            raise ValueError(f"must be below {rule.below:g}")
        if rule.check is not None:
            parsed = rule.check(parsed)
        if rule.path_kind is not None:
            parsed = resolve_path(parsed, rule.path_kind, base_dir)
        return parsed


def env_name_of(dotted: str) -> str:
    return ENV_PREFIX + dotted.replace(".", "_").upper()


def keys_of(section: str, cls: type[Any]) -> list[Key]:
    hints = typing.get_type_hints(cls)
    return [Key(section, item.name, hints[item.name], item.default, item.metadata[METADATA_KEY])
            for item in fields(cls)]


def sections_of(root: type[Any]) -> Iterator[tuple[str, type[Any]]]:
    """The root dataclass's fields: section name and section class."""
    hints = typing.get_type_hints(root)
    for item in fields(root):
        yield item.name, hints[item.name]


# --- parsing by type --------------------------------------------------------------------


def _as_str(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool | dict | list):
        raise ValueError("must be a string")
    return str(value)


def _as_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("must be an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value):
        return int(value)
    raise ValueError("must be an integer")


def _as_float(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError("must be a number")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError("must be a number") from None


def _as_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in {"1", "true", "yes", "on"}:
        return True
    if isinstance(value, str) and value.strip().lower() in {"0", "false", "no", "off"}:
        return False
    raise ValueError("must be true or false")


def _as_list(value: Any) -> tuple[str, ...]:
    """A YAML list, a comma-separated string, or the declared default (a tuple)."""
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        return tuple(item.strip() for item in value.split(",") if item.strip())
    if isinstance(value, list | tuple) and all(isinstance(item, str | int) for item in value):
        return tuple(str(item) for item in value)
    raise ValueError("must be a list of strings (comma-separated in the environment)")


def _as_mappings(value: Any) -> tuple[dict[str, Any], ...]:
    """A YAML list of mappings, or the same list written as JSON (the environment's form).
    The value never enters the message: it may hold secrets."""
    if isinstance(value, str):
        if not value.strip():
            return ()
        try:
            value = json.loads(value)
        except ValueError:
            raise ValueError("is not valid JSON") from None
    if isinstance(value, list | tuple) and all(isinstance(item, dict) for item in value):
        return tuple(dict(item) for item in value)
    raise ValueError("must be a list of mappings (a JSON list in the environment)")


# a list of mappings; its items are checked by the section's consumer
Mappings = tuple[dict[str, Any], ...]
_PARSERS: dict[Any, Parser] = {
    str: _as_str, int: _as_int, float: _as_float, bool: _as_bool, tuple[str, ...]: _as_list,
    Mappings: _as_mappings,
}
TYPE_NAMES: dict[Any, str] = {
    str: "string", int: "integer", float: "number", bool: "boolean (true/false)",
    tuple[str, ...]: "list of strings (comma-separated in the environment)",
    Mappings: "list of mappings (a JSON list in the environment)",
}


def resolve_path(value: str, kind: PathKind, base_dir: Path) -> str:
    """A relative path (or the path of a sqlite:// URL) made absolute against `base_dir`."""
    if kind == "path":
        if not value or Path(value).is_absolute():
            return value
        return os.path.normpath(base_dir / value)
    if not value.startswith("sqlite://"):
        return value
    path, mark, query = value.removeprefix("sqlite://").partition("?")
    if not path or path == ":memory:" or Path(path).is_absolute():
        return value
    return f"sqlite://{os.path.normpath(base_dir / path)}{mark}{query}"


# --- reading sections -------------------------------------------------------------------


def closest(name: str, candidates: list[str], prefix: str = "") -> str:
    """' (did you mean X?)' when one candidate is close to `name`, else ''."""
    tails = {candidate.removeprefix(prefix): candidate for candidate in candidates}
    match = difflib.get_close_matches(name.removeprefix(prefix), list(tails), n=1, cutoff=0.75)
    return f" (did you mean {tails[match[0]]}?)" if match else ""


def check_known_keys(raw: Mapping[str, Any], root: type[Any]) -> None:
    sections = dict(sections_of(root))
    for section, values in raw.items():
        if section not in sections:
            raise ConfigError(str(section), "unknown section" + closest(str(section),
                                                                         list(sections)))
        if values is None:
            continue
        if not isinstance(values, dict):
            raise ConfigError(section, "must be a mapping")
        names = [key.name for key in keys_of(section, sections[section])]
        for name in values:
            if name not in names:
                hint = closest(f"{section}.{name}", [f"{section}.{n}" for n in names])
                raise ConfigError(f"{section}.{name}", "unknown key" + hint)


def check_environment(env: Mapping[str, str], root: type[Any],
                      not_settings: Mapping[str, str]) -> None:
    """Refuse `GARMIN_SYNC_*` variables that name no key, so a typo cannot go unnoticed."""
    known = [key.env_name for section, cls in sections_of(root) for key in keys_of(section, cls)]
    allowed = set(known) | set(not_settings)
    for name in sorted(env):
        if name.startswith(ENV_PREFIX) and name not in allowed:
            hint = closest(name, sorted(allowed), ENV_PREFIX)
            raise ConfigError(name, "unknown environment variable" + hint)


def build_section(section: str, cls: type[T], values: Mapping[str, Any],
                  env: Mapping[str, str], file_dir: Path, env_dir: Path) -> T:
    """The section from the environment, else the file's value, else the default.

    Relative paths from the environment resolve against `env_dir` (the working directory),
    those from the file and the defaults against `file_dir` (the configuration file's).
    """
    parsed: dict[str, Any] = {}
    for key in keys_of(section, cls):
        from_env = key.env_name in env
        source = env[key.env_name] if from_env else values.get(key.name, key.default)
        try:
            parsed[key.name] = key.parse(source, env_dir if from_env else file_dir)
        except ValueError as exc:
            raise ConfigError(key.env_name if from_env else key.dotted, str(exc)) from None
    return cls(**parsed)


def read_yaml(path: Path) -> dict[str, Any]:
    """The configuration file's sections, or a `ConfigError` naming `--config`."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError("--config", f"cannot read {path}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise ConfigError("--config", f"{path} is not valid YAML{where}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError("--config", f"{path} must hold a mapping of sections")
    return data
