"""`docs/configuration.md` and `config.yaml`, generated from the declarations in
`service.config` (`garmin-sync config-doc`, `make config-doc`); a test fails when either
committed file differs from what this module writes."""

from __future__ import annotations

import json
import textwrap
from typing import Any

import yaml

from service.config import NOT_SETTINGS, Config
from service.settings import TYPE_NAMES, Key, keys_of, sections_of

INTRO = """\
# Configuration

<!-- Generated from service/config.py by `make config-doc`; do not edit by hand. -->

garmin-sync reads, for every key, the first of:

1. a command-line flag (`serve --host`, `serve --port`);
2. the environment variable `GARMIN_SYNC_<SECTION>_<KEY>` (upper case; lists
   comma-separated), e.g. `GARMIN_SYNC_DATABASE_URL`;
3. the configuration file: `--config PATH` (before or after the command), else
   `$GARMIN_SYNC_CONFIG`, else the shipped `config.yaml`;
4. the default below.

Relative paths (`database.url` of SQLite, `security.data_dir`) written in the configuration
file, and the defaults, resolve against **the configuration file's folder**, so the service
finds the same database and key from any working directory. Relative paths given in the
environment resolve against the working directory.

An unknown key in the file, an unknown `GARMIN_SYNC_*` environment variable (a misspelt
`GARMIN_SYNC_DATABASE_URL` must not run the service on a new, empty database) or an invalid
value stops the process with exit code 2 and one line naming the key or variable. A valid
setting whose target cannot be used at startup (a database that does not answer, a host
that does not resolve, a folder that cannot be written) stops it with exit code 1 and one
line naming the key and its variable.

With no `auth.api_keys`, `serve` warns at startup and every API call answers 401 saying
that no key is configured. What the generated encryption key protects against, and what
not, is in [security.md](security.md).
"""


def _default_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return "[" + ", ".join(value) + "]"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, str) and not value:
        return '""'
    return str(value)


def _allowed(key: Key) -> str:
    rule = key.rule
    parts = []
    if rule.choices:
        parts.append("one of " + ", ".join(f"`{choice}`" for choice in rule.choices))
    if rule.minimum is not None and rule.maximum is not None:
        parts.append(f"{rule.minimum:g} to {rule.maximum:g}")
    elif rule.minimum is not None:
        parts.append(f">= {rule.minimum:g}")
    if rule.below is not None:
        parts.append(f"below {rule.below:g}")
    if rule.check_doc:
        parts.append(rule.check_doc)
    if rule.path_kind is not None:
        parts.append("a relative path resolves as described above")
    return "; ".join(parts)


def markdown() -> str:
    lines = [INTRO]
    for section, cls in sections_of(Config):
        lines += [f"## `{section}`", "", (cls.__doc__ or "").strip(), ""]
        for key in keys_of(section, cls):
            lines += [f"### `{key.dotted}`", "", textwrap.fill(key.rule.doc, 92), "",
                      f"- environment: `{key.env_name}`",
                      f"- type: {TYPE_NAMES[key.kind]}",
                      f"- default: `{_default_text(key.default)}`"]
            allowed = _allowed(key)
            if allowed:
                lines.append(f"- allowed: {allowed}")
            lines.append("")
    lines += ["## Other environment variables", "",
              "These are not configuration keys, and are the only other `GARMIN_SYNC_*` "
              "names accepted:", ""]
    lines += [f"- `{name}`: {meaning}" for name, meaning in sorted(NOT_SETTINGS.items())]
    return "\n".join(lines) + "\n"


def _yaml_value(value: Any) -> str:
    if isinstance(value, str) and value:
        plain = yaml.safe_load(value) == value and ": " not in value and " #" not in value
        return value if plain else json.dumps(value)
    return _default_text(value)


def yaml_text() -> str:
    lines = ["# garmin-sync configuration: every key with its default. Generated from",
             "# service/config.py by `make config-doc`; docs/configuration.md says more about",
             "# each key. Any key can be overridden by GARMIN_SYNC_<SECTION>_<KEY> (upper case;",
             "# lists comma-separated). Relative paths resolve against this file's folder.",
             ""]
    for section, cls in sections_of(Config):
        lines.append(f"{section}:")
        for key in keys_of(section, cls):
            doc = key.rule.doc.replace("`", "")
            lines += textwrap.wrap(doc, width=92, initial_indent="  # ",
                                   subsequent_indent="  # ")
            lines.append(f"  {key.name}: {_yaml_value(key.default)}")
        lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"
