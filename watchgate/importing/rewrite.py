"""``--rewrite``: each client whose servers moved into Watchgate gets one entry instead, the
``watchgate attach`` that reaches them all through the daemon.

Only the servers' object of the file changes (``mcpServers``, or ``servers`` for VS Code; for
Claude Code's local scope, that folder's ``projects.<folder>.mcpServers``): a file such as
``~/.claude.json`` keeps everything else it holds. Servers that could not move stay beside the
new entry. Before a file is changed, a copy is kept beside it (``<file>.watchgate-backup-<time>``,
created new, never through a link planted at that name); moving it back undoes the change. A
file that already has exactly those entries is not touched, so rewriting twice changes nothing.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from watchgate.importing.sources import ClientFile, load_document

__all__ = ["Rewritten", "attach_entry", "private_copy", "rewrite"]


@dataclass(frozen=True)
class Rewritten:
    path: Path
    backup: Path


def attach_entry(watchgate: list[str], config: Path, key: str) -> dict[str, Any]:
    """The one server entry a client keeps: ``watchgate attach`` on this config (``watchgate``:
    the command that runs Watchgate, by absolute path: clients start servers without a shell)."""
    command, *words = watchgate
    entry: dict[str, Any] = {"command": command, "args": [*words, "attach", "-c", str(config)]}
    return {"type": "stdio", **entry} if key == "servers" else entry


def rewrite(
    source: ClientFile, entry: dict[str, Any], keep: Sequence[str] = (), *, now: float | None = None
) -> Rewritten | None:
    """Replace the client's servers with ``{"watchgate": entry}`` beside those named in ``keep``;
    None if that is what it has."""
    document = load_document(source.path)
    holder: dict[str, Any] = document
    for key in source.under:
        holder = holder[key]
    servers = holder.get(source.key) or {}
    wanted = {name: servers[name] for name in keep if name in servers} | {"watchgate": entry}
    if servers == wanted:
        return None
    stamp = time.strftime("%Y%m%dT%H%M%S", time.localtime(now))
    backup = private_copy(source.path, source.path.with_name(f"{source.path.name}.watchgate-backup-{stamp}"))
    holder[source.key] = wanted
    _write_atomically(source.path, json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    return Rewritten(source.path, backup)


def private_copy(original: Path, wanted: Path) -> Path:
    """A copy of ``original`` at ``wanted`` (or ``wanted-2``, … when taken), created new with the
    original's mode at most, never through a symlink or over a file someone put there."""
    data = original.read_bytes()
    mode = original.stat().st_mode & 0o777
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    for n in range(1, 100):
        target = wanted if n == 1 else wanted.with_name(f"{wanted.name}-{n}")
        try:
            descriptor = os.open(target, flags, mode)
        except FileExistsError:
            continue
        with os.fdopen(descriptor, "wb") as out:
            out.write(data)
        return target
    raise FileExistsError(f"no free name for a backup of {original} beside it")


def _write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` whole (a client reading it never sees half a file), keeping its mode."""
    mode = path.stat().st_mode & 0o777
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as out:
            out.write(text)
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
