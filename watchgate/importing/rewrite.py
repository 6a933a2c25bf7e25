"""``--rewrite``: each client whose servers moved into Watchgate gets one entry instead, the
``watchgate attach`` that reaches them all through the daemon.

Only the servers' object of the file changes (``mcpServers``, or ``servers`` for VS Code): a
file such as ``~/.claude.json`` keeps everything else it holds. Before a file is changed, a copy
is kept beside it (``<file>.watchgate-backup-<time>``); moving it back undoes the change. A file
that already has exactly that one entry is not touched, so rewriting twice changes nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from watchgate.importing.sources import ClientFile

__all__ = ["Rewritten", "attach_entry", "rewrite"]


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


def rewrite(source: ClientFile, entry: dict[str, Any], *, now: float | None = None) -> Rewritten | None:
    """Replace the client's servers with ``{"watchgate": entry}``; None if that is what it has."""
    document = json.loads(source.path.read_text(encoding="utf-8"))
    wanted = {"watchgate": entry}
    if document.get(source.key) == wanted:
        return None
    stamp = time.strftime("%Y%m%dT%H%M%S", time.localtime(now))
    backup = source.path.with_name(f"{source.path.name}.watchgate-backup-{stamp}")
    shutil.copy2(source.path, backup)
    document[source.key] = wanted
    _write_atomically(source.path, json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    return Rewritten(source.path, backup)


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
