"""``watchgate import``: find the servers your MCP clients run, show them, add them to
``supervisor.yaml`` and, with ``--rewrite``, point the clients at ``watchgate attach``.

Nothing is written before the preview has been shown and confirmed (``--yes`` confirms ahead,
``--dry-run`` only shows). The merged config is checked before it is written; a client file is
rewritten only when every one of its servers is in the config, with a backup beside it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

from watchgate.cli.ps import print_table
from watchgate.config import parse_config
from watchgate.daemon.paths import CONFIG_ENV, find_config
from watchgate.errors import ConfigError, ConfigNotFound
from watchgate.importing.merge import Plan, merged_text, plan
from watchgate.importing.rewrite import attach_entry, rewrite
from watchgate.importing.sources import (
    ClientFile,
    FoundServer,
    Unreadable,
    client_files,
    given_file,
    read_client_file,
)

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
    parser.add_argument("--dry-run", action="store_true", help="show what would be done, change nothing")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = _target(args.config)
    try:
        sources = [given_file(Path(name)) for name in args.sources] if args.sources else _discovered()
    except Unreadable as exc:
        print(f"watchgate: {exc}", file=sys.stderr)
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
    result = plan(found, text, os.environ)
    _preview(result, problems, found, config)
    if not result.new and not args.rewrite:
        return 0
    if args.dry_run:
        return 0
    if not args.yes and not _confirmed(result, config, rewrite=args.rewrite):
        return 1
    if result.new and not _write_config(config, text, result):
        return 1
    if args.rewrite:
        _rewrite_clients(sources, found, result, unreadable, config)
    return 0


def _target(flag: str | None) -> Path:
    """The config the other commands would use; where none exists yet, the per-user one."""
    try:
        return find_config(flag)
    except ConfigNotFound:
        return Path.home() / ".config" / "watchgate" / "supervisor.yaml"


def _discovered() -> list[ClientFile]:
    return client_files(Path.home(), Path.cwd())


def _preview(result: Plan, problems: list[str], found: list[FoundServer], config: Path) -> None:
    clients = sorted({server.client for server in found})
    where = f": {', '.join(clients)}" if clients else ""
    print(f"Found {len(found)} server(s) in {len(clients)} client file(s){where}")
    if result.new:
        rows = [["NAME", "KIND", "FROM", "NOTES"]]
        for planned in result.new:
            notes = []
            if len(planned.found) > 1:
                notes.append(f"in {len(planned.found)} clients: one upstream")
            if planned.found[0].name != planned.name:
                notes.append(f"was {planned.found[0].name!r}")
            notes += [f"{key} looks like a secret (written as given)" for key in planned.secrets]
            notes += [f"{key} from your environment" for key in planned.references]
            notes += [f"set {variable} (VS Code asked for it)" for variable in planned.found[0].inputs]
            origin = ", ".join(dict.fromkeys(server.client for server in planned.found))
            rows.append([planned.name, planned.kind, origin, "; ".join(notes)])
        print(f"To add to {config}:")
        print_table(rows[0], rows[1:], sys.stdout, indent="  ")
    for server, name in result.present:
        print(f"Already in {config.name}: {server.name} ({server.client}) as {name}")
    for server, why in result.skipped:
        print(f"Skipped: {server.name} ({server.client}): {why}")
    for problem in problems:
        print(f"Not read: {problem}")
    if not result.new:
        print("Nothing new to add.")


def _confirmed(result: Plan, config: Path, *, rewrite: bool) -> bool:
    what = [f"add {len(result.new)} server(s) to {config}"] if result.new else []
    if rewrite:
        what.append("point the clients at `watchgate attach` (backups kept)")
    if not sys.stdin.isatty():
        print(
            "watchgate: nothing written: confirm with --yes (or look first with --dry-run)", file=sys.stderr
        )
        return False
    answer = input(f"{' and '.join(what).capitalize()}? [y/N] ").strip().lower()
    return answer in ("y", "yes")


def _write_config(config: Path, text: str | None, result: Plan) -> bool:
    merged, appended = merged_text(text, [planned.entry for planned in result.new])
    try:
        parse_config(merged, source=str(config), base_dir=str(config.parent.resolve()))
    except ConfigError as exc:
        missing = [p for p in exc.problems if _MISSING_VARIABLE in p.message]
        if len(missing) != len(exc.problems):
            print(f"watchgate: the merged config would not load, nothing written:\n{exc}", file=sys.stderr)
            return False
        for problem in missing:
            print(f"note: {problem.message}: set it before `watchgate up`")
    config.parent.mkdir(parents=True, exist_ok=True)
    if text is not None and not appended:
        backup = config.with_name(f"{config.name}.watchgate-backup-{time.strftime('%Y%m%dT%H%M%S')}")
        shutil.copy2(config, backup)
        print(f"{config} was rewritten from its data (its comments are in {backup})")
    config.write_text(merged, encoding="utf-8")
    print(f"Added {len(result.new)} server(s) to {config}: {', '.join(p.name for p in result.new)}")
    return True


def _watchgate_command() -> list[str]:
    """How a client starts this Watchgate: the script beside this Python (a venv's, pipx's), the
    one on PATH, or this Python with ``-m watchgate.cli``."""
    beside = Path(sys.executable).parent / "watchgate"
    if beside.is_file():
        return [str(beside)]
    found = shutil.which("watchgate")
    return [str(Path(found).resolve())] if found else [sys.executable, "-m", "watchgate.cli"]


def _rewrite_clients(
    sources: list[ClientFile], found: list[FoundServer], result: Plan, unreadable: set[Path], config: Path
) -> None:
    watchgate = _watchgate_command()
    moved = {id(server) for planned in result.new for server in planned.found}
    moved |= {id(server) for server, _ in result.present} | {id(server) for server, _ in result.skipped}
    for source in sources:
        servers = [server for server in found if server.path == source.path]
        if not servers:
            continue
        if source.path in unreadable or not all(id(server) in moved for server in servers):
            print(f"Left as it is: {source.path} (not every server of it could be read)")
            continue
        done = rewrite(source, attach_entry(watchgate, config.resolve(), source.key))
        if done is None:
            print(f"Already points at Watchgate: {source.path}")
            continue
        print(f"Rewrote {done.path} ({source.client}); undo: mv '{done.backup}' '{done.path}'")
