"""``watchgate run`` (one gateway in this process, stdio or HTTP) and ``watchgate validate``."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any

import trio

from watchgate.cli.heap import tune_collector
from watchgate.cli.options import listen_address, with_http
from watchgate.config import GatewayConfig, Transport, load_config
from watchgate.errors import CannotListen, ConfigError
from watchgate.gateway.tree import audit_actor, unknown_profile
from watchgate.listeners.stdio import serve_stdio
from watchgate.transports.sandbox import hidden_program

_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def register(commands: Any) -> None:
    run = commands.add_parser("run", help="run one gateway in this process, speaking MCP on stdin/stdout")
    run.add_argument("-c", "--config", required=True, help="the YAML config file")
    run.add_argument(
        "--audit-log",
        metavar="PATH",
        help="write the audit log here instead of the config's audit.path (one log has one writer: "
        "use this to run beside a daemon on the same config)",
    )
    run.add_argument(
        "--http",
        metavar="HOST:PORT",
        type=listen_address,
        help="serve MCP over Streamable HTTP on this address instead of stdio (proxy.http.listen)",
    )
    run.add_argument("--profile", metavar="NAME", help="the client sees only what this profile shows (stdio)")
    run.set_defaults(func=_run)
    validate = commands.add_parser("validate", help="check a config file and print every problem")
    validate.add_argument("-c", "--config", required=True, help="the YAML config file")
    validate.set_defaults(func=_validate)


def _load(path: str) -> GatewayConfig | None:
    try:
        return load_config(path)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return None


def _validate(args: argparse.Namespace) -> int:
    config = _load(args.config)
    if config is None:
        return 1
    names = ", ".join(u.name for u in config.proxy.upstreams)
    print(f"ok: {len(config.proxy.upstreams)} upstream(s) ({names})")
    plain = [u.name for u in config.proxy.upstreams if u.name not in config.proxy.prefixed]
    if config.proxy.multi_server and len(plain) > 1:
        print(
            f"warning: {', '.join(map(repr, plain))} have no prefix: a name two of them offer goes to "
            "the first in the config, the other's is hidden (set `prefix: always` on one)",
            file=sys.stderr,
        )
    token = config.proxy.http.token_file
    if token is not None:
        from watchgate.listeners.http.guard import read_token  # the HTTP listener loads only for HTTP

        try:  # what `run` and `up` refuse, validate refuses
            read_token(token)
        except CannotListen as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    for upstream in config.proxy.upstreams:
        if upstream.transport is not Transport.STDIO:
            continue
        if not (upstream.sandbox and upstream.sandbox.enabled):
            print(
                f"warning: {upstream.name!r} runs without a sandbox: it can read, write and send "
                "whatever you can (add `sandbox: {enabled: true, paths: [...]}`; docs/security.md)",
                file=sys.stderr,
            )
            continue
        path = upstream.env.get("PATH") or os.environ.get("PATH", os.defpath)
        hidden = hidden_program(upstream.command, upstream.sandbox, home=Path.home(), path=path)
        if hidden is not None:
            print(
                f"warning: {upstream.name!r} runs {hidden}, which its sandbox hides (the home folder "
                f"is empty inside it): it could not start; add {Path(hidden).parent} to sandbox.read_only",
                file=sys.stderr,
            )
    return 0


def _run(args: argparse.Namespace) -> int:
    config = _load(args.config)
    if config is None:
        return 1
    config = with_http(config, args.http)
    if args.profile is not None and (config.proxy.transport == "http" or args.profile not in config.profiles):
        why = (
            "over HTTP each client chooses its profile (?profile=NAME)"
            if config.proxy.transport == "http"
            else unknown_profile(config, args.profile)
        )
        print(f"watchgate: {why}", file=sys.stderr)
        return 1
    logging.basicConfig(stream=sys.stderr, level=config.logging.level.upper(), format=_FORMAT)
    audit = audit_actor(config, path=args.audit_log)  # AuditLogInUse: one line from main()
    tune_collector()
    if config.proxy.transport == "http":
        from watchgate.listeners.http import serve_http  # the HTTP listener loads only for HTTP

        try:
            trio.run(serve_http, config, audit, restrict_keyboard_interrupt_to_checkpoints=True)
        except CannotListen:
            if audit is not None:
                audit.release()
            raise
        return 0
    trio.run(serve_stdio, config, audit, args.profile, restrict_keyboard_interrupt_to_checkpoints=True)
    return 0
