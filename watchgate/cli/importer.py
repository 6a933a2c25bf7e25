"""``watchgate import``: find the servers your MCP clients run, show them, add them to
``supervisor.yaml`` and, with ``--rewrite``, point the clients at ``watchgate attach``.

Nothing is written before the preview has been shown and confirmed (``--yes`` confirms ahead,
``--dry-run`` only shows). The preview says which config it changes and what every server runs
(a command or a URL), escaped: a file can say anything. Servers from a project folder's own files
(a cloned repository may hold them) are asked about on their own. The merged config is checked
before it is written, and a client is pointed at Watchgate only when the config starts the way
that client will start it (with the little environment a client passes): a client is never left
without its servers. The config is kept private (0600 in a 0700 folder): it now holds what the
clients' files held, secrets included.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import stat
import sys
import time
from collections.abc import Iterable
from pathlib import Path

from watchgate.cli.ps import print_table
from watchgate.config import parse_config
from watchgate.daemon.paths import CONFIG_ENV, find_config
from watchgate.errors import ConfigError, ConfigNotFound
from watchgate.importing.merge import CLIENT_ENVIRONMENT, Plan, Planned, merged_text, plan
from watchgate.importing.rewrite import attach_entry, private_copy, rewrite
from watchgate.importing.sources import (
    ClientFile,
    FoundServer,
    Unreadable,
    client_files,
    given_file,
    read_client_file,
)
from watchgate.sanitize import escape_controls

_MISSING_VARIABLE = "is not set (used as ${"


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "import",
        help="move the servers your MCP clients run into Watchgate",
        description=(
            "Find the MCP servers of Claude Desktop, Claude Code, Cursor, VS Code and Windsurf "
            "(or of the files given with --from), show them, and add them to the config. "
            "Importing twice changes nothing."
        ),
        epilog="example: watchgate import --rewrite   (then restart your clients)",
    )
    parser.add_argument(
        "--from",
        dest="sources",
        action="append",
        metavar="FILE",
        help="read this client file only (repeatable)",
    )
    parser.add_argument(
        "-c",
        "--config",
        help=f"the config to add to (default: ${CONFIG_ENV}, ./supervisor.yaml, then ~/.config/watchgate/)",
    )
    parser.add_argument(
        "--rewrite",
        action="store_true",
        help="also replace each client's servers with one `watchgate attach` entry (a backup is kept)",
    )
    parser.add_argument("-y", "--yes", action="store_true", help="do it without asking")
    parser.add_argument(
        "--dry-run", action="store_true", help="show what would be written and changed, change nothing"
    )
    parser.set_defaults(func=run)


def _say(text: str) -> str:
    """What a file said, fit for a terminal: control characters escaped."""
    return escape_controls(text)


def run(args: argparse.Namespace) -> int:
    config = _target(args.config).absolute()
    notes: list[str] = []
    try:
        if args.sources:
            sources = [given_file(Path(name)) for name in args.sources]
        else:
            sources, notes = client_files(Path.home(), Path.cwd())
    except Unreadable as exc:
        print(f"watchgate: {_say(str(exc))}", file=sys.stderr)
        return 1
    found: list[FoundServer] = []
    problems: list[str] = []
    unreadable: set[Path] = set()
    for source in sources:
        servers, trouble = read_client_file(source)
        found += servers
        problems += trouble
        if trouble:
            unreadable.add(source.path)
    text = config.read_text(encoding="utf-8") if config.is_file() else None
    client_env = {key: os.environ[key] for key in CLIENT_ENVIRONMENT if key in os.environ}
    result = plan(found, text, client_env)
    _preview(result, problems + notes, found, config, args.config)
    if not result.new and not args.rewrite:
        return 0
    if args.dry_run:
        _show_dry_run(result, text, sources, found, unreadable, args.rewrite)
        return 0
    if not args.yes and not _confirmed(result, config, rewrite=args.rewrite):
        return 1
    if result.new and not _write_config(config, text, result):
        return 1
    if args.rewrite:
        return _rewrite_clients(sources, found, result, unreadable, config, client_env)
    return 0


def _target(flag: str | None) -> Path:
    """The config the other commands would use; where none exists yet, the per-user one."""
    try:
        return find_config(flag)
    except ConfigNotFound:
        return Path.home() / ".config" / "watchgate" / "supervisor.yaml"


def _runs(planned: Planned) -> str:
    entry = planned.entry
    return str(entry["url"]) if "url" in entry else shlex.join(entry["command"])


def _preview(
    result: Plan, problems: list[str], found: list[FoundServer], config: Path, flag: str | None
) -> None:
    clients = sorted({server.client for server in found})
    where = f": {', '.join(clients)}" if clients else ""
    print(f"Found {len(found)} server(s) in {len(clients)} client file(s){where}")
    local = flag is None and config == Path.cwd() / "supervisor.yaml"
    here = " (the supervisor.yaml of this folder; -c FILE to choose another)" if local else ""
    print(f"Config: {_say(str(config))}{here}")
    if result.new:
        rows = [["NAME", "KIND", "FROM", "NOTES"]]
        for planned in result.new:
            notes = []
            if len(planned.found) > 1:
                notes.append(f"in {len(planned.found)} clients: one upstream")
            if planned.found[0].name != planned.name:
                notes.append(f"was {planned.found[0].name!r}")
            notes += [f"{key} looks like a secret (written as given)" for key in planned.secrets]
            notes += planned.notes
            origin = ", ".join(dict.fromkeys(server.client for server in planned.found))
            rows.append([planned.name, planned.kind, origin, "; ".join(notes)])
        print("To add:")
        print_table(rows[0], rows[1:], sys.stdout, indent="  ")  # escapes every cell
        print("What each one runs:")
        width = max(len(planned.name) for planned in result.new)
        for planned in result.new:
            print(f"  {planned.name:<{width}}  {_say(_runs(planned))}")
    for server, name in result.present:
        print(f"Already in {_say(config.name)}: {_say(server.name)} ({server.client}) as {name}")
    for server, why in result.skipped:
        print(f"Skipped: {_say(server.name)} ({server.client}): {why}")
    for server, why in result.held:
        print(f"Stays in {server.client}: {_say(server.name)}: {_say(why)}")
    for problem in problems:
        print(f"Not read: {_say(problem)}")
    if not result.new:
        print("Nothing new to add.")


def _show_dry_run(
    result: Plan,
    text: str | None,
    sources: list[ClientFile],
    found: list[FoundServer],
    unreadable: set[Path],
    rewrite: bool,
) -> None:
    if result.new:
        merged, _ = merged_text(text, [planned.entry for planned in result.new])
        added = merged.removeprefix(text) if text and merged.startswith(text) else merged
        print("The config would get:" if text else "The config would be:")
        for line in added.splitlines():
            print(f"  {_say(line)}")
    if rewrite:
        for source, keep in _rewritable(sources, found, result, unreadable):
            kept = f" (keeping {', '.join(_say(name) for name in keep)})" if keep else ""
            print(f"--rewrite would point {_say(str(source.path))} ({source.client}) at Watchgate{kept}")


def _ask(question: str) -> bool:
    return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")


def _confirmed(result: Plan, config: Path, *, rewrite: bool) -> bool:
    if not sys.stdin.isatty():
        print(
            "watchgate: nothing written: confirm with --yes (or look first with --dry-run)", file=sys.stderr
        )
        return False
    projects = [planned for planned in result.new if any(s.project for s in planned.found)]
    if projects:  # a cloned repository's .mcp.json can say anything: these are asked about apart
        names = ", ".join(planned.name for planned in projects)
        if not _ask(f"{names} come(s) from this folder's own files; add them too (see what they run above)?"):
            result.new = [planned for planned in result.new if planned not in projects]
            result.held += [(s, "left out (you said no)") for planned in projects for s in planned.found]
    what = [f"add {len(result.new)} server(s) to {config}"] if result.new else []
    if rewrite:
        what.append("point the clients at `watchgate attach` (backups kept)")
    if not what:
        return False
    return _ask(" and ".join(what).capitalize() + "?")


def _write_config(config: Path, text: str | None, result: Plan) -> bool:
    merged, appended = merged_text(text, [planned.entry for planned in result.new])
    try:
        parse_config(merged, source=str(config), base_dir=str(config.parent.resolve()))
    except ConfigError as exc:  # only a variable this shell lacks is the user's to set later
        if not all(_MISSING_VARIABLE in problem.message for problem in exc.problems):
            print(f"watchgate: the merged config would not load, nothing written:\n{exc}", file=sys.stderr)
            return False
        for problem in exc.problems:
            print(f"note: {problem.message}: set it before `watchgate up`")
    if not config.parent.exists():
        config.parent.mkdir(parents=True, mode=0o700)
    if text is not None and not appended:
        backup = private_copy(config, config.with_name(f"{config.name}.watchgate-backup-{_stamp()}"))
        print(f"{config} was rewritten from its data (its comments are in {backup})")
    _write_private(config, merged)
    print(f"Added {len(result.new)} server(s) to {config}: {', '.join(p.name for p in result.new)}")
    return True


def _stamp() -> str:
    return time.strftime("%Y%m%dT%H%M%S")


def _write_private(config: Path, text: str) -> None:
    """Write the config 0600: it holds what the clients' files held. A config others could read
    is made private, and the user told."""
    descriptor = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as out:
        mode = stat.S_IMODE(os.fstat(out.fileno()).st_mode)
        if mode & 0o077:
            os.fchmod(out.fileno(), mode & 0o700)
            print(f"{config} was readable by others (mode {mode:04o}); it is now {mode & 0o700:04o}")
        out.write(text)


def _watchgate_command() -> list[str]:
    """How a client starts this Watchgate: the script beside this Python (a venv's, pipx's), the
    one on PATH, or this Python with ``-m watchgate.cli``."""
    beside = Path(sys.executable).parent / "watchgate"
    if beside.is_file():
        return [str(beside)]
    found = shutil.which("watchgate")
    return [str(Path(found).resolve())] if found else [sys.executable, "-m", "watchgate.cli"]


def _rewritable(
    sources: list[ClientFile], found: list[FoundServer], result: Plan, unreadable: set[Path]
) -> Iterable[tuple[ClientFile, list[str]]]:
    """Each client file to point at Watchgate, with the servers it keeps (those that stay)."""
    moved = {id(server) for planned in result.new for server in planned.found}
    moved |= {id(server) for server, _ in result.present} | {id(server) for server, _ in result.skipped}
    for source in sources:
        servers = [s for s in found if s.path == source.path and s.client == source.client]
        if not servers or source.path in unreadable or not any(id(s) in moved for s in servers):
            continue
        yield source, [server.name for server in servers if id(server) not in moved]


def _rewrite_clients(
    sources: list[ClientFile],
    found: list[FoundServer],
    result: Plan,
    unreadable: set[Path],
    config: Path,
    client_env: dict[str, str],
) -> int:
    try:  # as a client will start it: with the little environment a client passes
        parse_config(
            config.read_text(encoding="utf-8"), base_dir=str(config.parent.resolve()), environ=client_env
        )
    except (OSError, ConfigError) as exc:
        print(
            "watchgate: the clients are left as they are: the config would not start from a "
            f"client (`watchgate attach` gets only {', '.join(CLIENT_ENVIRONMENT)} from it):\n{exc}",
            file=sys.stderr,
        )
        return 1
    for path in sorted(unreadable):
        print(f"Left as it is: {_say(str(path))} (not every server of it could be read)")
    watchgate = _watchgate_command()
    for source, keep in _rewritable(sources, found, result, unreadable):
        done = rewrite(source, attach_entry(watchgate, config.resolve(), source.key), keep)
        if done is None:
            print(f"Already points at Watchgate: {_say(str(source.path))}")
            continue
        kept = f", keeping {', '.join(_say(name) for name in keep)}" if keep else ""
        print(
            f"Rewrote {_say(str(done.path))} ({source.client}{kept}); "
            f"undo: mv {shlex.quote(str(done.backup))} {shlex.quote(str(done.path))}"
        )
    return 0
