"""A server's process tree, for ``ps NAME``: its process and every descendant, from ``/proc``.

``npx`` starts ``node``, a wrapper starts the real server: the pid ``ps`` shows is only the
top. One pass over ``/proc`` (each process's parent and command line); a process that ends
while it is read is simply left out. Elsewhere than Linux the tree is the one pid.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["process_tree"]

_PROC = Path("/proc")
_MAX_COMMAND = 120


def process_tree(pid: int | None, proc: Path = _PROC) -> list[tuple[int, int, str]]:
    """(depth, pid, command line) of ``pid`` and its descendants, depth first."""
    if pid is None:
        return []
    children: dict[int, list[int]] = {}
    commands: dict[int, str] = {}
    for entry in proc.iterdir() if proc.is_dir() else ():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue  # ended meanwhile, or not ours to read
        parent = int(stat[stat.rindex(")") + 2 :].split()[1])  # after "(comm) state"
        child = int(entry.name)
        children.setdefault(parent, []).append(child)
        words = command.rstrip(b"\0").split(b"\0")
        commands[child] = " ".join(w.decode(errors="replace") for w in words)[:_MAX_COMMAND]
    tree: list[tuple[int, int, str]] = []

    def walk(node: int, depth: int) -> None:
        tree.append((depth, node, commands.get(node, "?")))
        for child in sorted(children.get(node, ())):
            walk(child, depth + 1)

    walk(pid, 0)
    return tree
