"""The `garmin-sync` command: serve, migrate, sandbox, rotate-keys, generate-key, config-doc.

Configuration and schema problems end the process with exit code 2 and one line naming
what is wrong, never a traceback; a setting whose target cannot be used (the database does
not answer, a folder cannot be written, the host does not resolve) with exit code 1 and one
line naming the key and its environment variable.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import gc
import logging
import os
import socket
import sys
from collections.abc import Sequence
from pathlib import Path

from aiohttp import web
from tortoise.exceptions import BaseORMException

from service import db, logs
from service.config import (
    Config,
    ConfigError,
    StartupError,
    load_config,
    resolve_config_path,
)
from service.cpu import lower_priority
from service.crypto import build_cipher, generate_key

log = logging.getLogger("service")

EXIT_CONFIG = 2
EXIT_RUNTIME = 1
CONFIG_HELP = "configuration file (default: $GARMIN_SYNC_CONFIG or config.yaml)"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="garmin-sync",
        description="Persist users' Garmin Connect sessions so background jobs can sync them.",
    )
    parser.add_argument("--config", metavar="PATH", help=CONFIG_HELP)
    # the same option after the command; SUPPRESS keeps a value given before it
    configured = argparse.ArgumentParser(add_help=False)
    configured.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS,
                            help=CONFIG_HELP)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = commands.add_parser("serve", parents=[configured],
                                help="run the HTTP API (applies migrations first "
                                "unless database.auto_migrate is false)")
    serve.add_argument("--host", help="override http.host (and GARMIN_SYNC_HTTP_HOST)")
    serve.add_argument("--port", type=int, help="override http.port (and GARMIN_SYNC_HTTP_PORT)")
    commands.add_parser("migrate", parents=[configured],
                        help="apply pending database migrations and exit")
    sandbox = commands.add_parser(
        "sandbox", help="run the Garmin sandbox (a stand-in for Garmin's SSO and API)")
    sandbox.add_argument("--host", default="127.0.0.1", help="listen address (127.0.0.1)")
    sandbox.add_argument("--port", type=int, default=9090, help="listen port (9090)")
    sandbox.add_argument("--seed", metavar="FILE", help="YAML/JSON file of accounts to create")
    commands.add_parser("rotate-keys", parents=[configured],
                        help="re-encrypt every stored session with the first "
                        "key of security.encryption_keys; prints counts")
    commands.add_parser("generate-key", help="print a new random encryption key")
    doc = commands.add_parser("config-doc", help="print the configuration reference "
                              "(docs/configuration.md), or with --yaml the default config.yaml")
    doc.add_argument("--yaml", action="store_true", help="print config.yaml instead")
    return parser


def _load(args: argparse.Namespace) -> Config:
    config = load_config(resolve_config_path(args.config, os.environ))
    logs.configure(config.logging.level, config.logging.format)
    return config


async def freeze_startup_heap(app: web.Application) -> None:
    """Take what startup left alive (modules, routes, pools: about 100,000 objects, which live
    as long as the process) out of the garbage collector's reach.

    A full collection walks every tracked object on the event loop's thread; a sync allocates
    enough to trigger one now and then, and each walk of the startup heap stalled every
    request for tens of milliseconds. Objects made later are collected as usual.
    """
    gc.collect()
    gc.freeze()


def warn_about_settings(config: Config) -> None:
    """Startup warnings about settings that leave the service unusable as configured."""
    if not config.auth.api_keys:
        log.warning("no API key is configured, so every /api/v1 call is refused with 401: "
                    "add one (16+ characters, e.g. from `garmin-sync generate-key`) to "
                    "auth.api_keys in the configuration file or GARMIN_SYNC_AUTH_API_KEYS")


def announce_garmin_engine() -> None:
    """Say once, at start, what garth's end upstream means for logins and stored sessions
    (instead of the raw DeprecationWarning garth raises on import)."""
    from service.garmin import GARTH_DEPRECATION_NOTICE

    log.warning(GARTH_DEPRECATION_NOTICE)


def _check_listen_address(host: str, port: int, host_key: str) -> None:
    try:
        socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise StartupError(host_key, f"the listen host {host} does not resolve ({exc.strerror});"
                           " use a name or an address of this machine, e.g. 127.0.0.1 (or "
                           "0.0.0.0 for every interface)") from None


def _serve(args: argparse.Namespace) -> int:
    from service.app import SERVE_OPTIONS, create_app

    config = _load(args)
    warn_about_settings(config)
    announce_garmin_engine()
    host = args.host or config.http.host
    port = args.port if args.port is not None else config.http.port
    _check_listen_address(host, port, "--host" if args.host else "http.host")
    if config.sync.enabled:
        # a sync worker gives way to API replicas on the same cores
        lower_priority(config.sync.nice)
    app = create_app(config)
    app.on_startup.append(freeze_startup_heap)
    log.info("starting garmin-sync on http://%s:%s (database: %s)", host, port,
             "sqlite" if config.database.is_sqlite else "postgres")
    try:
        web.run_app(app, host=host, port=port, print=None, access_log=None,
                    shutdown_timeout=config.http.shutdown_timeout_seconds, **SERVE_OPTIONS)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise StartupError("--port" if args.port is not None else "http.port",
                               f"port {port} is already in use on {host}; stop the other "
                               "process or choose another port") from None
        if exc.errno == errno.EADDRNOTAVAIL:
            raise StartupError("--host" if args.host else "http.host",
                               f"{host} is not an address of this machine") from None
        raise
    return 0


def _migrate(args: argparse.Namespace) -> int:
    config = _load(args)
    applied = asyncio.run(db.upgrade(config.database.url))
    print(f"applied {len(applied)} migration(s)" + (f": {', '.join(applied)}" if applied else ""))
    return 0


def _sandbox(args: argparse.Namespace) -> int:
    from service.sandbox import SandboxState, create_sandbox_app, load_seed

    logs.configure("INFO", "text")
    state = SandboxState()
    if args.seed:
        try:
            accounts = load_seed(Path(args.seed))
        except (OSError, ValueError) as exc:
            raise ConfigError("--seed", str(exc)) from None
        for account in accounts:
            state.add_account(account)
    log.info("Garmin sandbox on http://%s:%s (%d accounts)", args.host, args.port,
             len(state.accounts))
    web.run_app(create_sandbox_app(state), host=args.host, port=args.port, print=None)
    return 0


async def _rotate(config: Config) -> int:
    from service.sessions.rotation import rotate_keys

    cipher = build_cipher(config.security.encryption_keys, is_sqlite=config.database.is_sqlite,
                          data_dir=config.security.data_dir)
    ctx = await db.open_context(config.database.url)
    try:
        db.activate(ctx)
        async with db.naming_the_database(config.database.url):
            report = await rotate_keys(cipher)
    finally:
        await db.close_context(ctx)
    print(f"re-encrypted: {report.reencrypted}  already current: {report.current}  "
          f"failed: {report.failed}")
    return 1 if report.failed else 0


def _rotate_keys(args: argparse.Namespace) -> int:
    config = _load(args)
    return asyncio.run(_rotate(config))


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    commands = {"serve": _serve, "migrate": _migrate, "sandbox": _sandbox,
                "rotate-keys": _rotate_keys}
    if args.command == "generate-key":
        print(generate_key())
        return 0
    if args.command == "config-doc":
        from service import config_doc

        sys.stdout.write(config_doc.yaml_text() if args.yaml else config_doc.markdown())
        return 0
    try:
        return commands[args.command](args)
    except ConfigError as exc:
        print(f"garmin-sync: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except StartupError as exc:
        print(f"garmin-sync: {exc}", file=sys.stderr)
        return EXIT_RUNTIME
    except db.SchemaError as exc:
        print(f"garmin-sync: database error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except OSError as exc:
        print(f"garmin-sync: {exc.strerror or exc}", file=sys.stderr)
        return 1
    except BaseORMException as exc:
        print(f"garmin-sync: database error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
