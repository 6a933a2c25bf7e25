"""The daemon's commands: ``up``, ``down``, ``attach``, ``ps``, ``restart``/``stop``/``start``,
``logs``, ``reload``. Every failure is one clear line on stderr and a non-zero exit code.

Only ``up`` runs the gateway: it imports it (and the config loader) itself, so that ``attach``,
which every MCP client launches, and ``ps`` start in the time it takes to load trio."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio

from watchgate.cli import ps as ps_command
from watchgate.cli.attach import bridge, hand_over
from watchgate.cli.heap import tune_collector
from watchgate.cli.options import listen_address, with_http
from watchgate.daemon import control
from watchgate.daemon.client import call, follow
from watchgate.daemon.paths import (
    CONFIG_ENV,
    RuntimePaths,
    find_config,
    find_daemon,
    open_private,
    runtime_paths,
    socket_answers,
)
from watchgate.errors import ConfigError, ControlError, DaemonAlreadyRunning, DaemonNotRunning, WatchgateError
from watchgate.sanitize import escape_controls

if TYPE_CHECKING:
    from watchgate.daemon.server import Daemon

AUTOSTART_ENV = "WATCHGATE_AUTOSTART"
_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
_READY_TIMEOUT = 60.0


def register(commands: Any) -> None:
    up = commands.add_parser("up", help="start the daemon (detached unless --foreground)")
    up.add_argument("-c", "--config", help="config file (default: $WATCHGATE_CONFIG, ./supervisor.yaml, …)")
    up.add_argument(
        "--foreground", action="store_true", help="stay in the foreground (systemd, launchd, tests)"
    )
    up.add_argument(
        "--http",
        metavar="HOST:PORT",
        type=listen_address,
        help="also serve MCP over Streamable HTTP on this address, beside the socket (proxy.http.listen)",
    )
    up.set_defaults(func=_up)

    down = commands.add_parser("down", help="stop the daemon gracefully")
    down.add_argument("--grace", type=float, default=5.0, help="seconds in-flight requests may finish (5)")
    down.set_defaults(func=_down)

    attach = commands.add_parser(
        "attach", help="bridge this stdin/stdout to the daemon (what MCP clients launch)"
    )
    attach.add_argument("-c", "--config", help="config for a daemon started on demand")
    attach.add_argument("--no-start", action="store_true", help="fail instead of starting a daemon")
    attach.add_argument("--profile", metavar="NAME", help="see only what this profile of the config shows")
    attach.set_defaults(func=_attach)

    ps_command.register(commands, _control)

    for verb, helptext in (
        ("restart", "restart servers (clears failed)"),
        ("stop", "stop servers"),
        ("start", "start stopped servers"),
    ):
        parser = commands.add_parser(verb, help=helptext)
        parser.add_argument("names", nargs="*", metavar="NAME")
        parser.add_argument("--all", action="store_true", help="every server")
        parser.set_defaults(func=_act, verb=verb)

    logs = commands.add_parser("logs", help="a server's stderr and lifecycle events")
    logs.add_argument("name", metavar="NAME")
    logs.add_argument("-f", "--follow", action="store_true")
    logs.add_argument("-n", "--lines", type=int, default=100)
    logs.set_defaults(func=_logs)

    reload = commands.add_parser(
        "reload", help="re-read the config: start added, stop removed, restart changed"
    )
    reload.set_defaults(func=_reload)


def _fail(message: str, code: int = 1) -> int:
    print(f"watchgate: {message}", file=sys.stderr)
    return code


def _control(action: Callable[[RuntimePaths], Awaitable[int]]) -> int:
    try:
        return trio.run(action, find_daemon())
    except (DaemonNotRunning, ControlError) as exc:
        return _fail(str(exc))
    except KeyboardInterrupt:
        return 130


# --- up / down -------------------------------------------------------------------------------------
def _up(args: argparse.Namespace) -> int:
    from watchgate.config import load_config
    from watchgate.daemon.server import Daemon

    try:
        path = find_config(args.config).resolve()
        config = with_http(load_config(path), args.http)
    except (WatchgateError, ConfigError) as exc:
        return _fail(str(exc))
    running = find_daemon()
    if socket_answers(running.socket):
        pid = running.pid_file.read_text().strip() if running.pid_file.exists() else "?"
        return _fail(f"a Watchgate daemon is already running (pid {pid}, socket {running.socket})")
    paths = runtime_paths()
    if not args.foreground:
        return _start_detached(path, paths, args.http)
    logging.basicConfig(stream=sys.stderr, level=config.logging.level.upper(), format=_FORMAT)
    daemon = Daemon(config, paths, config_path=path)
    tune_collector()
    try:
        trio.run(_serve, daemon, restrict_keyboard_interrupt_to_checkpoints=True)
    except DaemonAlreadyRunning as exc:
        return _fail(str(exc))
    return 0


async def _serve(daemon: Daemon) -> None:
    """Run until ``down`` or SIGINT/SIGTERM; both take the same graceful path."""
    try:
        await daemon.bind()  # outside the nursery: "already running" arrives as itself, not in a group
    except BaseException:
        daemon.release()
        raise
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_shutdown_on_signal, daemon)
        await daemon.serve()
        nursery.cancel_scope.cancel()


async def _shutdown_on_signal(daemon: Daemon) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            logging.getLogger("watchgate").info("%s: shutting down", signal.Signals(signum).name)
            daemon.request_shutdown(grace=5.0)


def _start_detached(
    config: Path, paths: RuntimePaths, http: str | None = None, *, quiet: bool = False
) -> int:
    """Start ``up --foreground`` in its own session and wait until it listens. Its news goes to
    stdout for ``up``, to stderr when ``quiet`` (``attach``: its stdout is the MCP channel)."""
    paths.ensure()
    with open_private(paths.log_file, append=True) as log:
        start_of_this_run = log.seek(0, os.SEEK_END)  # an earlier daemon's lines are not the reason
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "watchgate.cli", "up", "--foreground", "-c", str(config)),
                *(("--http", http) if http else ()),
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
            cwd=config.parent,
        )
    deadline = time.monotonic() + _READY_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            with paths.log_file.open("rb") as written:
                written.seek(start_of_this_run)
                tail = written.read().decode(errors="replace").strip().splitlines()[-5:]
            said = "\n  ".join(escape_controls(line) for line in tail) or f"exit code {process.returncode}"
            return _fail("the daemon exited while starting:\n  " + said)
        if socket_answers(paths.socket):
            out = sys.stderr if quiet else sys.stdout
            print(
                f"watchgate: daemon started (pid {process.pid}), socket {paths.socket}, log {paths.log_file}",
                file=out,
            )
            if http or not quiet:
                _say_where(paths, out)
            return 0
        time.sleep(0.05)
    return _fail(f"the daemon did not become ready within {_READY_TIMEOUT:g} s; see {paths.log_file}")


def _say_where(paths: RuntimePaths, out: Any) -> None:
    """The HTTP address(es) the new daemon serves MCP on, if it does (from the daemon itself:
    the port may have been chosen by the OS)."""
    try:
        report = trio.run(call, paths, control.Ps())
    except (WatchgateError, OSError):
        return
    for url in report.get("listeners", [])[1:]:
        print(f"watchgate: MCP over HTTP at {url}", file=out)


def _down(args: argparse.Namespace) -> int:
    async def down(paths: RuntimePaths) -> int:
        await call(paths, control.Down(grace=args.grace))
        with trio.move_on_after(args.grace + 60):
            # the daemon removes both files last: nothing to wait on but the filesystem
            while paths.socket.exists() or paths.pid_file.exists():  # noqa: ASYNC110
                await trio.sleep(0.05)
            print("watchgate: daemon stopped")
            return 0
        return _fail("the daemon did not stop in time")

    return _control(down)


# --- attach ----------------------------------------------------------------------------------------
async def _running_config(paths: RuntimePaths) -> str | None:
    config: str | None = (await call(paths, control.Ps())).get("config")
    return config


def _other_config(paths: RuntimePaths, wanted: Path) -> str | None:
    """Why attaching would be wrong: the running daemon serves another config than the one this
    client names (it would silently get other servers and other policies)."""
    running = trio.run(_running_config, paths)
    if running is None or Path(running).resolve() == wanted:
        return None
    return (
        f"the running daemon serves {running}, not {wanted}; attach without -c to use it, "
        "or `watchgate down` and attach again to start one on this config"
    )


def _attach(args: argparse.Namespace) -> int:
    paths = find_daemon()
    if not socket_answers(paths.socket):
        if args.no_start or os.environ.get(AUTOSTART_ENV, "1") == "0":
            return _fail(
                f"no Watchgate daemon is running (socket {paths.socket}); start one with `watchgate up`"
            )
        try:
            config = find_config(args.config).resolve()
        except WatchgateError as exc:
            return _fail(str(exc))
        code = _start_detached(config, paths, quiet=True)
        if code:
            return code
    elif args.config or os.environ.get(CONFIG_ENV):
        refusal = _other_config(paths, Path(find_config(args.config)).resolve())
        if refusal:
            return _fail(refusal)
    try:
        handed = hand_over(paths, args.profile)  # the fast path: the daemon serves the client's pipes
        client_left = handed if handed is not None else trio.run(bridge, paths, args.profile)
    except OSError as exc:
        return _fail(f"cannot reach the daemon: {exc}")
    except WatchgateError as exc:  # refused (an unknown profile): its reason, one line
        return _fail(str(exc))
    except KeyboardInterrupt:
        return 130
    if not client_left:  # the daemon went down under the client: say so, and not with status 0
        return _fail("the Watchgate daemon ended this session (it stopped or was shut down)")
    return 0


# --- ps / restart / logs / reload ----------------------------------------------------------------------
def _act(args: argparse.Namespace) -> int:
    if not args.names and not args.all:
        return _fail(f"{args.verb}: name a server (or --all)", 2)

    async def act(paths: RuntimePaths) -> int:
        request: control.Request
        names = args.names
        if args.all and args.verb != "restart":  # every server the daemon has now
            names = [u["name"] for u in (await call(paths, control.Ps()))["upstreams"]]
        if args.verb == "restart":
            request = control.Restart(names=names, all=args.all)
        elif args.verb == "stop":
            request = control.Stop(names=names)
        else:
            request = control.Start(names=names)
        states = await call(paths, request)
        for name, state in states.items():
            print(f"{name}: {state}")
        return 0

    return _control(act)


def _logs(args: argparse.Namespace) -> int:
    async def logs(paths: RuntimePaths) -> int:
        def show(lines: list[str]) -> bool:
            for line in lines:
                print(escape_controls(line), flush=True)  # cleaned when stored; a terminal is owed care
            return True

        await follow(paths, control.Logs(name=args.name, lines=args.lines, follow=args.follow), show)
        return 0

    return _control(logs)


_RELOAD_LINES = (
    ("added", "added"),
    ("removed", "removed"),
    ("changed", "changed (restarted)"),
    ("rules", "rules changed (applied, not restarted)"),
    ("profiles", "profiles changed"),
    ("plugins", "global"),
    ("unchanged", "unchanged"),
)


def _reload(args: argparse.Namespace) -> int:
    async def reload(paths: RuntimePaths) -> int:
        changes = await call(paths, control.Reload())
        for kind, label in _RELOAD_LINES:
            names = changes.get(kind, [])
            if names or kind in ("added", "removed", "changed", "unchanged"):
                print(f"{label}: {', '.join(names) or '-'}")
        return 0

    return _control(reload)
