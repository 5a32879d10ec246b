"""Starting the service: which settings win, and startup failures as one line naming the
setting. Run as real subprocesses (`python -m service`), on SQLite unless a test says so."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import pytest

from service.config import Config
from service.crypto import generate_key
from tests.support.aliases import StartApi

Env = dict[str, str]
PASSED_THROUGH = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT")
KEY = generate_key()


@pytest.fixture
def env(tmp_path: Path) -> Env:
    """Nothing GARMIN_SYNC_* from the outer environment; SQLite and keys under tmp_path."""
    base = {name: os.environ[name] for name in PASSED_THROUGH if name in os.environ}
    base["PYTHONDONTWRITEBYTECODE"] = "1"
    base["GARMIN_SYNC_DATABASE_URL"] = f"sqlite://{tmp_path}/garmin-sync.sqlite3"
    base["GARMIN_SYNC_SECURITY_DATA_DIR"] = str(tmp_path / "data")
    return base


def run(env: Env, cwd: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "service", *args], cwd=cwd,
                          env={**env, **extra}, capture_output=True, text=True, timeout=120,
                          check=False)


def error_line(result: subprocess.CompletedProcess[str], code: int, *needles: str) -> str:
    """The process failed with `code` and exactly one `garmin-sync:` line, its last."""
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    ours = [line for line in lines if line.startswith("garmin-sync: ")]
    assert ours == lines[-1:], result.stderr
    for needle in needles:
        assert needle in ours[0], ours[0]
    return ours[0]


def free_port() -> int:
    with closing(socket.socket()) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


@contextmanager
def serving(env: Env, cwd: Path, *args: str, **extra: str) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen([sys.executable, "-m", "service", "serve", *args], cwd=cwd,
                            env={**env, **extra}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        yield proc
    finally:
        proc.terminate()
        proc.communicate(timeout=60)


def wait_until(check: Callable[[], bool], proc: subprocess.Popen[str], what: str) -> None:
    deadline = time.monotonic() + 60
    while not check():
        assert proc.poll() is None, f"serve exited before {what}"
        assert time.monotonic() < deadline, f"no {what} within 60 s"
        time.sleep(0.05)


# --- which setting wins --------------------------------------------------------------------


@pytest.mark.parametrize("command", ["migrate", "serve", "rotate-keys"])
def test_config_after_the_command_is_read(env: Env, tmp_path: Path, command: str) -> None:
    config = tmp_path / "custom.yaml"
    config.write_text("logging:\n  level: CHATTY\n", encoding="utf-8")
    result = run(env, tmp_path, command, "--config", str(config))
    assert result.returncode == 2, result.stderr
    assert "logging.level" in result.stderr


def test_config_after_the_command_wins_over_one_before(env: Env, tmp_path: Path) -> None:
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text("http:\n  port: 8081\n", encoding="utf-8")
    bad.write_text("http:\n  port: eighty\n", encoding="utf-8")
    assert run(env, tmp_path, "--config", str(bad), "migrate", "--config", str(good)) \
        .returncode == 0
    result = run(env, tmp_path, "--config", str(good), "migrate", "--config", str(bad))
    assert result.returncode == 2 and "http.port" in result.stderr


def test_serve_without_a_port_flag_listens_on_the_environments_port(
    env: Env, tmp_path: Path
) -> None:
    port = free_port()
    with serving(env, tmp_path, GARMIN_SYNC_HTTP_PORT=str(port)) as proc:
        wait_until(lambda: answers(port), proc, f"answer on the configured port {port}")


def test_serve_without_a_port_flag_listens_on_the_files_port(env: Env, tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "custom.yaml"
    config.write_text(f"http:\n  port: {port}\n", encoding="utf-8")
    with serving(env, tmp_path, "--config", str(config)) as proc:
        wait_until(lambda: answers(port), proc, f"answer on the file's port {port}")


def test_the_port_flag_wins_over_the_environment(env: Env, tmp_path: Path) -> None:
    flag_port, env_port = free_port(), free_port()
    with serving(env, tmp_path, "--port", str(flag_port),
                 GARMIN_SYNC_HTTP_PORT=str(env_port)) as proc:
        wait_until(lambda: answers(flag_port), proc, f"answer on the flag's port {flag_port}")
        assert not answers(env_port)


def test_a_misspelt_variable_stops_before_any_database_is_made(
    env: Env, tmp_path: Path
) -> None:
    """The misspelt URL must not run the service on a fresh SQLite file instead."""
    del env["GARMIN_SYNC_DATABASE_URL"]
    intended = tmp_path / "intended.sqlite3"
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    result = run(env, workdir, "migrate", GARMIN_SYNC_DATABSE_URL=f"sqlite://{intended}",
                 GARMIN_SYNC_CONFIG=str(tmp_path / "none.yaml"))
    error_line(result, 2, "GARMIN_SYNC_DATABSE_URL", "did you mean GARMIN_SYNC_DATABASE_URL?")
    assert list(workdir.iterdir()) == [] and not intended.exists()


def test_run_from_another_folder_uses_the_database_and_key_beside_the_config(
    env: Env, tmp_path: Path
) -> None:
    del env["GARMIN_SYNC_DATABASE_URL"], env["GARMIN_SYNC_SECURITY_DATA_DIR"]
    home, elsewhere = tmp_path / "home", tmp_path / "elsewhere"
    home.mkdir()
    elsewhere.mkdir()
    config = home / "config.yaml"
    config.write_text("database:\n  url: sqlite://./state/gs.sqlite3\n"
                      "security:\n  data_dir: ./state\n", encoding="utf-8")
    for cwd in (home, elsewhere):
        assert run(env, cwd, "migrate", "--config", str(config)).returncode == 0
        result = run(env, cwd, "rotate-keys", "--config", str(config))
        assert result.returncode == 0, result.stderr
    assert (home / "state" / "gs.sqlite3").is_file()
    assert (home / "state" / "encryption.key").is_file()
    assert list(elsewhere.iterdir()) == []


def test_generating_a_key_is_a_warning_naming_the_file_once(env: Env, tmp_path: Path) -> None:
    assert run(env, tmp_path, "migrate").returncode == 0
    first = run(env, tmp_path, "rotate-keys")
    assert first.returncode == 0, first.stderr
    key_file = tmp_path / "data" / "encryption.key"
    warnings = [line for line in first.stderr.splitlines() if "WARNING" in line]
    assert len(warnings) == 1, first.stderr
    assert str(key_file) in warnings[0]
    assert "cannot be read" in warnings[0] and "security.encryption_keys" in warnings[0]
    assert key_file.read_text().strip() not in first.stderr
    again = run(env, tmp_path, "rotate-keys")
    assert again.returncode == 0 and "WARNING" not in again.stderr


# --- startup failures name the setting -----------------------------------------------------


@pytest.mark.parametrize("command", ["migrate", "rotate-keys", "serve"])
def test_a_database_that_refuses_connections_names_database_url(
    env: Env, tmp_path: Path, command: str
) -> None:
    args = ("--port", "0") if command == "serve" else ()
    result = run(env, tmp_path, command, *args, GARMIN_SYNC_SECURITY_ENCRYPTION_KEYS=KEY,
                 GARMIN_SYNC_DATABASE_URL="postgres://gs:s3cret-pw@127.0.0.1:1/gs")
    error_line(result, 1, "database.url", "GARMIN_SYNC_DATABASE_URL", "127.0.0.1:1",
               "refused", "check that the server is running")
    assert "s3cret-pw" not in result.stderr


def test_a_database_host_that_does_not_resolve_names_database_url(
    env: Env, tmp_path: Path
) -> None:
    result = run(env, tmp_path, "migrate", GARMIN_SYNC_SECURITY_ENCRYPTION_KEYS=KEY,
                 GARMIN_SYNC_DATABASE_URL="postgres://gs@nonexistent.invalid:5432/gs")
    error_line(result, 1, "database.url", "GARMIN_SYNC_DATABASE_URL",
               "nonexistent.invalid does not resolve")


def test_a_sqlite_path_that_cannot_be_created_names_database_url(
    env: Env, tmp_path: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder", encoding="utf-8")
    result = run(env, tmp_path, "migrate",
                 GARMIN_SYNC_DATABASE_URL=f"sqlite://{blocker}/db/gs.sqlite3")
    error_line(result, 1, "database.url", "GARMIN_SYNC_DATABASE_URL", str(blocker),
               "may write")


@pytest.mark.parametrize("command", ["serve", "rotate-keys"])
def test_a_data_dir_that_cannot_be_written_names_security_data_dir(
    env: Env, tmp_path: Path, command: str
) -> None:
    assert run(env, tmp_path, "migrate").returncode == 0
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder", encoding="utf-8")
    args = ("--port", "0") if command == "serve" else ()
    result = run(env, tmp_path, command, *args,
                 GARMIN_SYNC_SECURITY_DATA_DIR=str(blocker / "keys"))
    error_line(result, 1, "security.data_dir", "GARMIN_SYNC_SECURITY_DATA_DIR",
               str(blocker / "keys" / "encryption.key"))


def test_a_listen_host_that_does_not_resolve_names_http_host(env: Env, tmp_path: Path) -> None:
    result = run(env, tmp_path, "serve", "--port", "0",
                 GARMIN_SYNC_HTTP_HOST="nonexistent.invalid")
    error_line(result, 1, "http.host", "GARMIN_SYNC_HTTP_HOST",
               "nonexistent.invalid does not resolve")
    assert not (tmp_path / "garmin-sync.sqlite3").exists()


def test_a_port_in_use_names_the_flag(env: Env, tmp_path: Path) -> None:
    with closing(socket.socket()) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run(env, tmp_path, "serve", "--port", str(port))
    error_line(result, 1, "--port", f"port {port} is already in use")


def test_a_key_file_without_a_key_names_the_file_and_setting(env: Env, tmp_path: Path) -> None:
    assert run(env, tmp_path, "migrate").returncode == 0
    key_file = tmp_path / "data" / "encryption.key"
    key_file.parent.mkdir()
    key_file.write_text("garbage\n", encoding="ascii")
    key_file.chmod(0o600)
    result = run(env, tmp_path, "rotate-keys")
    error_line(result, 2, "security.data_dir", str(key_file), "security.encryption_keys")


# --- first run -------------------------------------------------------------------------------


def _no_key_warnings(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in result.stderr.splitlines()
            if "WARNING" in line and "no API key is configured" in line]


def test_serve_without_an_api_key_warns_how_to_add_one(env: Env, tmp_path: Path) -> None:
    # auto_migrate off on an empty database: serve gets through its warnings, then stops
    result = run(env, tmp_path, "serve", "--port", "0", GARMIN_SYNC_DATABASE_AUTO_MIGRATE="0")
    assert result.returncode == 2, result.stderr
    warnings = _no_key_warnings(result)
    assert len(warnings) == 1, result.stderr
    assert "auth.api_keys" in warnings[0] and "GARMIN_SYNC_AUTH_API_KEYS" in warnings[0]
    configured = run(env, tmp_path, "serve", "--port", "0", GARMIN_SYNC_DATABASE_AUTO_MIGRATE="0",
                     GARMIN_SYNC_AUTH_API_KEYS="a-key-of-16-chars-or-more")
    assert configured.returncode == 2 and _no_key_warnings(configured) == []


async def test_without_configured_keys_the_401_says_so(
    make_config: Callable[..., Config], start_api: StartApi
) -> None:
    api = await start_api(make_config(auth={"api_keys": []}))
    response = await api.status("user-1")
    assert response.status == 401
    body = await response.json()
    assert "No API key is configured on the server" in body["detail"]
    assert "GARMIN_SYNC_AUTH_API_KEYS" in body["detail"]


async def test_with_configured_keys_a_wrong_key_is_still_just_not_valid(
    make_config: Callable[..., Config], start_api: StartApi
) -> None:
    api = await start_api(make_config())
    response = await api.client.get("/api/v1/garmin/session/status",
                                    headers=api.headers("user-1", key="w" * 20))
    assert response.status == 401
    assert (await response.json())["detail"] == "The API key is not valid."


# --- private files ---------------------------------------------------------------------------


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_sqlite_files_and_their_folder_are_private(
    tmp_path: Path, make_config: Callable[..., Config], start_api: StartApi
) -> None:
    folder = tmp_path / "private"
    database = folder / "gs.sqlite3"
    api = await start_api(make_config(database={"url": f"sqlite://{database}"},
                                      security={"encryption_keys": [],
                                                "data_dir": str(tmp_path / "keys")}))
    assert (await api.status("user-1")).status == 200
    files = [database, Path(f"{database}-wal"), Path(f"{database}-shm")]
    assert all(path.exists() for path in files), list(folder.iterdir())
    assert {path.name: _mode(path) for path in files} == {path.name: 0o600 for path in files}
    assert _mode(folder) == 0o700
    assert _mode(tmp_path / "keys") == 0o700
    assert _mode(tmp_path / "keys" / "encryption.key") == 0o600


def test_migrate_creates_a_private_sqlite_file(env: Env, tmp_path: Path) -> None:
    database = tmp_path / "new" / "gs.sqlite3"
    result = run(env, tmp_path, "migrate", GARMIN_SYNC_DATABASE_URL=f"sqlite://{database}")
    assert result.returncode == 0, result.stderr
    assert (_mode(database), _mode(database.parent)) == (0o600, 0o700)
