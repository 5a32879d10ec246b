"""The `garmin-sync` command, run as a real subprocess (`python -m service`), on SQLite."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from service.config import Config
from service.crypto import Cipher, generate_key
from tests.support.aliases import StartApi
from tests.support.app import Sandbox

CliEnv = dict[str, str]

COMMANDS = ("serve", "migrate", "sandbox", "rotate-keys", "generate-key")
PASSED_THROUGH = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT")
K1, K2, K3 = generate_key(), generate_key(), generate_key()
TABLE = "garmin_authentication_state"
REPORT = re.compile(r"re-encrypted: (\d+)\s+already current: (\d+)\s+failed: (\d+)")


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """The CLI tests exercise the command, so they stay on SQLite even in a PostgreSQL run."""
    return f"sqlite://{tmp_path}/garmin-sync.sqlite3"


@pytest.fixture
def db_path(database_url: str) -> Path:
    return Path(database_url.removeprefix("sqlite://"))


@pytest.fixture
def cli_env(database_url: str, tmp_path: Path) -> CliEnv:
    """A minimal environment: nothing GARMIN_SYNC_* leaks in from the outer one."""
    env = {name: os.environ[name] for name in PASSED_THROUGH if name in os.environ}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["GARMIN_SYNC_DATABASE_URL"] = database_url
    env["GARMIN_SYNC_SECURITY_DATA_DIR"] = str(tmp_path / "data")
    return env


def run_cli(env: CliEnv, cwd: Path, *args: str, timeout: float = 120,
            **extra_env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "service", *args], cwd=cwd, env={**env, **extra_env},
        capture_output=True, text=True, timeout=timeout, check=False,
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], *needles: str) -> str:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("garmin-sync: ")
    for needle in needles:
        assert needle in lines[0]
    return lines[0]


def report_of(result: subprocess.CompletedProcess[str]) -> tuple[int, int, int]:
    match = REPORT.search(result.stdout)
    assert match, result.stdout + result.stderr
    reencrypted, current, failed = (int(group) for group in match.groups())
    return reencrypted, current, failed


def table_rows(db_path: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db_path) as connection:
        return connection.execute(
            f"SELECT user_id, session_data, mfa_state, version FROM {TABLE} ORDER BY user_id"
        ).fetchall()


# --- help and usage ----------------------------------------------------------------------


def test_help_lists_every_command(cli_env: CliEnv, tmp_path: Path) -> None:
    result = run_cli(cli_env, tmp_path, "--help")
    assert result.returncode == 0
    for command in COMMANDS:
        assert command in result.stdout


@pytest.mark.parametrize("command", COMMANDS)
def test_each_command_has_help(cli_env: CliEnv, tmp_path: Path, command: str) -> None:
    result = run_cli(cli_env, tmp_path, command, "--help")
    assert result.returncode == 0, result.stderr
    assert f"garmin-sync {command}" in result.stdout
    assert result.stderr == ""


def test_no_command_is_a_usage_error(cli_env: CliEnv, tmp_path: Path) -> None:
    result = run_cli(cli_env, tmp_path)
    assert result.returncode == 2
    assert "usage:" in result.stderr
    assert "Traceback" not in result.stderr


def test_help_does_not_touch_the_database(cli_env: CliEnv, tmp_path: Path,
                                          db_path: Path) -> None:
    assert run_cli(cli_env, tmp_path, "migrate", "--help").returncode == 0
    assert not db_path.exists()


# --- configuration errors ----------------------------------------------------------------


@pytest.mark.parametrize("command", ["migrate", "serve", "rotate-keys"])
def test_invalid_env_value_is_one_line_naming_the_key(
    cli_env: CliEnv, tmp_path: Path, db_path: Path, command: str
) -> None:
    result = run_cli(cli_env, tmp_path, command, GARMIN_SYNC_HTTP_PORT="abc")
    assert_one_line_error(result, "GARMIN_SYNC_HTTP_PORT")
    assert result.stdout == ""
    assert not db_path.exists()


@pytest.mark.parametrize(
    ("extra_env", "needle"),
    [
        ({"GARMIN_SYNC_LOGGING_LEVEL": "LOUD"}, "GARMIN_SYNC_LOGGING_LEVEL"),
        ({"GARMIN_SYNC_DATABASE_URL": "mysql://localhost/gs"}, "GARMIN_SYNC_DATABASE_URL"),
        ({"GARMIN_SYNC_GARMIN_EXECUTOR_THREADS": "0"}, "GARMIN_SYNC_GARMIN_EXECUTOR_THREADS"),
        ({"GARMIN_SYNC_AUTH_API_KEYS": "short"}, "auth.api_keys"),
        ({"GARMIN_SYNC_SECURITY_ENCRYPTION_KEYS": "not-a-key"}, "security.encryption_keys"),
        ({"GARMIN_SYNC_DATABASE_URL": "postgres://gs@127.0.0.1:1/gs"},
         "security.encryption_keys"),
    ],
    ids=["log-level", "database-url", "executor-threads", "short-api-key",
         "bad-encryption-key", "postgres-without-keys"],
)
def test_rotate_keys_config_errors_name_the_key(
    cli_env: CliEnv, tmp_path: Path, extra_env: dict[str, str], needle: str
) -> None:
    result = run_cli(cli_env, tmp_path, "rotate-keys", **extra_env)
    line = assert_one_line_error(result, needle)
    if "ENCRYPTION_KEYS" in "".join(extra_env):
        assert "not-a-key" not in line


def test_unknown_key_in_config_file_names_the_key(cli_env: CliEnv, tmp_path: Path) -> None:
    config = tmp_path / "custom.yaml"
    config.write_text("http:\n  prot: 8080\n", encoding="utf-8")
    result = run_cli(cli_env, tmp_path, "--config", str(config), "migrate")
    assert_one_line_error(result, "http.prot")


def test_config_file_from_env_is_used(cli_env: CliEnv, tmp_path: Path) -> None:
    config = tmp_path / "custom.yaml"
    config.write_text("logging:\n  level: CHATTY\n", encoding="utf-8")
    result = run_cli(cli_env, tmp_path, "migrate", GARMIN_SYNC_CONFIG=str(config))
    assert_one_line_error(result, "logging.level")


def test_missing_config_file_is_one_line(cli_env: CliEnv, tmp_path: Path) -> None:
    result = run_cli(cli_env, tmp_path, "--config", str(tmp_path / "absent.yaml"), "migrate")
    assert_one_line_error(result, "--config", "absent.yaml")


# --- migrations --------------------------------------------------------------------------


def test_migrate_applies_once_then_nothing(cli_env: CliEnv, tmp_path: Path,
                                           db_path: Path) -> None:
    first = run_cli(cli_env, tmp_path, "migrate")
    assert first.returncode == 0, first.stderr
    assert re.match(r"applied [1-9]\d* migration\(s\): \S+\.py", first.stdout)
    with sqlite3.connect(db_path) as connection:
        tables = {row[0] for row in connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {TABLE, "aerich"} <= tables
    second = run_cli(cli_env, tmp_path, "migrate")
    assert second.returncode == 0, second.stderr
    assert second.stdout.strip() == "applied 0 migration(s)"


def _add_future_migration(db_path: Path) -> None:
    with sqlite3.connect(db_path) as connection:
        connection.execute(
            "INSERT INTO aerich (version, app, content) VALUES (?, ?, ?)",
            ("99_20991231235959_from_the_future.py", "models", "{}"),
        )


def test_migrate_refuses_a_database_from_a_newer_build(
    cli_env: CliEnv, tmp_path: Path, db_path: Path
) -> None:
    assert run_cli(cli_env, tmp_path, "migrate").returncode == 0
    _add_future_migration(db_path)
    result = run_cli(cli_env, tmp_path, "migrate")
    line = assert_one_line_error(result, "newer garmin-sync", "99_20991231235959_from_the_future")
    assert "database error" in line
    with sqlite3.connect(db_path) as connection:
        versions = [row[0] for row in connection.execute("SELECT version FROM aerich")]
    shipped = list((Path(__file__).resolve().parent.parent / "migrations" / "models")
                   .glob("[0-9]*_*.py"))
    assert len(versions) == len(shipped) + 1  # nothing applied, nothing removed


def test_serve_refuses_a_database_from_a_newer_build(
    cli_env: CliEnv, tmp_path: Path, db_path: Path
) -> None:
    assert run_cli(cli_env, tmp_path, "migrate").returncode == 0
    _add_future_migration(db_path)
    result = run_cli(cli_env, tmp_path, "serve", "--port", "0", timeout=60)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "newer garmin-sync" in result.stderr.strip().splitlines()[-1]


def test_serve_without_auto_migrate_refuses_a_schema_that_is_behind(
    cli_env: CliEnv, tmp_path: Path
) -> None:
    result = run_cli(cli_env, tmp_path, "serve", "--port", "0", timeout=60,
                     GARMIN_SYNC_DATABASE_AUTO_MIGRATE="false")
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "garmin-sync migrate" in result.stderr.strip().splitlines()[-1]


def test_serve_says_once_what_garths_deprecation_means_and_no_raw_warning(
    cli_env: CliEnv, tmp_path: Path
) -> None:
    # a listen host that does not resolve ends `serve` right after its start-up notices;
    # every DeprecationWarning is shown, so garth's own would surface if not handled
    result = run_cli(cli_env, tmp_path, "serve", "--host", "no-such-host.invalid",
                     "--port", "0", timeout=60, PYTHONWARNINGS="always::DeprecationWarning")
    assert result.returncode == 1, result.stderr
    notices = [line for line in result.stderr.splitlines() if "garth" in line.lower()]
    assert len(notices) == 1, result.stderr
    [notice] = notices
    assert "WARNING" in notice
    for needle in ("deprecated", "0.8.0", "March 2026", "stored garth sessions keep syncing",
                   "new logins use the DI-token engine where configured"):
        assert needle in notice, notice
    assert "DeprecationWarning" not in result.stderr
    assert "Traceback" not in result.stderr


# --- keys ----------------------------------------------------------------------------------


def test_generate_key_prints_a_usable_key(cli_env: CliEnv, tmp_path: Path) -> None:
    first = run_cli(cli_env, tmp_path, "generate-key")
    second = run_cli(cli_env, tmp_path, "generate-key")
    assert first.returncode == 0 and second.returncode == 0
    key = first.stdout.strip()
    assert "\n" not in key
    assert key != second.stdout.strip()
    cipher = Cipher([key])
    token = cipher.encrypt("secret", user_id="u", purpose="session_data")
    assert cipher.decrypt(token, user_id="u", purpose="session_data") == "secret"


def test_generate_key_needs_no_valid_configuration(cli_env: CliEnv, tmp_path: Path) -> None:
    result = run_cli(cli_env, tmp_path, "generate-key", GARMIN_SYNC_HTTP_PORT="abc")
    assert result.returncode == 0
    Cipher([result.stdout.strip()])


USERS = {"user-1": "alice@example.com", "user-2": "bob@example.com"}
MFA_USER = ("user-3", "carol@example.com")


@pytest.fixture
async def k1_rows(
    sandbox: Sandbox, make_config: Callable[..., Config], start_api: StartApi, db_path: Path
) -> list[tuple[Any, ...]]:
    """Two connected users and one pending MFA, all sealed with K1; the app is stopped."""
    api = await start_api(make_config(security={"encryption_keys": [K1]}))
    for user, username in USERS.items():
        sandbox.add(username)
        assert (await api.login(user, username)).status == 200
    sandbox.add(MFA_USER[1], mfa_code="123456")
    login = await api.login(*MFA_USER)
    assert (await login.json())["status"] == "MFA_REQUIRED"
    await api.client.close()
    rows = table_rows(db_path)
    assert len(rows) == 3
    k1 = Cipher([K1])
    for user_id, session_data, mfa_state, _version in rows:
        sealed = mfa_state if user_id == MFA_USER[0] else session_data
        assert sealed and k1.is_current(sealed)
    return rows


def _rotate(cli_env: CliEnv, tmp_path: Path, keys: str) -> subprocess.CompletedProcess[str]:
    return run_cli(cli_env, tmp_path, "rotate-keys", GARMIN_SYNC_SECURITY_ENCRYPTION_KEYS=keys)


async def test_rotate_keys_reencrypts_every_row_with_the_first_key(
    cli_env: CliEnv, tmp_path: Path, db_path: Path, k1_rows: list[tuple[Any, ...]]
) -> None:
    result = _rotate(cli_env, tmp_path, f"{K2},{K1}")
    assert result.returncode == 0, result.stderr
    assert report_of(result) == (3, 0, 0)
    ring, k2 = Cipher([K2, K1]), Cipher([K2])
    after = {row[0]: row for row in table_rows(db_path)}
    for user_id, session_data, mfa_state, version in k1_rows:
        _, new_session, new_mfa, new_version = after[user_id]
        assert new_version == version + 1
        for purpose, old, new in (("session_data", session_data, new_session),
                                  ("mfa_state", mfa_state, new_mfa)):
            if old is None:
                assert new is None
                continue
            assert new != old and k2.is_current(new)
            assert k2.decrypt(new, user_id=user_id, purpose=purpose) == \
                ring.decrypt(old, user_id=user_id, purpose=purpose)


async def test_rotate_keys_again_finds_every_row_current(
    cli_env: CliEnv, tmp_path: Path, db_path: Path, k1_rows: list[tuple[Any, ...]]
) -> None:
    assert _rotate(cli_env, tmp_path, f"{K2},{K1}").returncode == 0
    rotated = table_rows(db_path)
    again = _rotate(cli_env, tmp_path, f"{K2},{K1}")
    assert again.returncode == 0, again.stderr
    assert report_of(again) == (0, 3, 0)
    assert table_rows(db_path) == rotated


async def test_after_rotation_the_new_key_alone_opens_every_session(
    cli_env: CliEnv, tmp_path: Path, sandbox: Sandbox, make_config: Callable[..., Config],
    start_api: StartApi, k1_rows: list[tuple[Any, ...]]
) -> None:
    assert _rotate(cli_env, tmp_path, f"{K2},{K1}").returncode == 0
    api = await start_api(make_config(security={"encryption_keys": [K2]}))
    for user in USERS:
        body = await (await api.status(user, refresh=True)).json()
        assert (body["status"], body["checked"]) == ("VALID", "live"), body
    response = await api.mfa(MFA_USER[0], "123456")
    assert response.status == 200, await response.text()
    assert (await (await api.status(MFA_USER[0])).json())["status"] == "VALID"


async def test_without_rotation_the_new_key_alone_cannot_open_sessions(
    sandbox: Sandbox, make_config: Callable[..., Config], start_api: StartApi,
    k1_rows: list[tuple[Any, ...]]
) -> None:
    """The control for the test above: K2 alone really does need the rotation."""
    api = await start_api(make_config(security={"encryption_keys": [K2]}))
    body = await (await api.status("user-1", refresh=True)).json()
    assert body["status"] == "EXPIRED"


async def test_rotate_keys_with_an_unknown_key_fails_and_leaves_rows(
    cli_env: CliEnv, tmp_path: Path, db_path: Path, k1_rows: list[tuple[Any, ...]]
) -> None:
    result = _rotate(cli_env, tmp_path, K3)
    assert result.returncode == 1, result.stderr
    assert report_of(result) == (0, 0, 3)
    assert "Traceback" not in result.stderr
    assert table_rows(db_path) == k1_rows
    assert K1 not in result.stderr + result.stdout


async def test_serving_freezes_the_startup_heap_out_of_the_collectors_reach() -> None:
    import gc

    from aiohttp import web

    from service.cli import freeze_startup_heap

    before = gc.get_freeze_count()
    try:
        await freeze_startup_heap(web.Application())
        assert gc.get_freeze_count() > before
        assert len(gc.get_objects(generation=2)) < gc.get_freeze_count()
    finally:
        gc.unfreeze()


def _priority_after(nice: int) -> int:
    code = ("import os; from service.cpu import lower_priority; "
            f"lower_priority({nice}); print(os.getpriority(os.PRIO_PROCESS, 0))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, timeout=60)
    return int(done.stdout.strip())


def test_a_sync_worker_lowers_its_cpu_priority_to_the_configured_nice() -> None:
    assert _priority_after(7) == max(7, os.getpriority(os.PRIO_PROCESS, 0))


def test_a_nice_of_zero_leaves_the_cpu_priority_as_it_was() -> None:
    assert _priority_after(0) == os.getpriority(os.PRIO_PROCESS, 0)
