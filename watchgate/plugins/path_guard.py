"""``path_guard``: which files a tool may touch, judged on the real path.

For ``tools/call``, every argument whose key looks like a path (``path``, ``paths``, ``file``,
``source``, ``destination``, ``directory``, … at any depth; ``arguments`` lists the keys
explicitly if you prefer), a ``file:`` URI in any argument (the scheme in any case), and the URI
of a ``resources/read`` or ``resources/subscribe`` of a ``file:`` resource are resolved before
matching: percent-decoded (``%2e%2e``, also double-encoded), ``~`` expanded, made absolute,
``..`` resolved, symlinks followed (``os.path.realpath``) and Unicode-normalised (NFC, like the
globs: ``prive\u0301`` is ``privé``). A relative path is judged against ``base_dir`` when one is
configured and refused otherwise: the server resolves it against roots of its own, which the
gateway cannot see (judging it against the gateway's directory let ``etc/passwd`` past
``deny: [/etc/**]`` to a server rooted at ``/``).

The path must match an ``allow`` glob (if any are given) and no ``deny`` glob, checked on the
resolved path and on the path as written: a symlink out of an allowed folder and a denied path
reached through an allowed-looking spelling are both refused. Deny globs ignore case (a
case-insensitive file system, as on macOS, would open the file); allow globs don't.

Globs: ``*`` and ``?`` stay within one path segment, ``**`` spans any number of them, and
``dir/**`` also matches ``dir`` itself; a glob starting with ``**/`` matches at any depth
(``**/.env``). The literal folder part of each glob is resolved like a
path (so ``/tmp/**`` still matches where ``/tmp`` is a symlink).

Out of scope: a symlink created or changed between the check and the server's use of the path
(TOCTOU), paths hidden in free text (a shell command, a glob pattern argument the server expands
itself), and Windows paths.
"""

from __future__ import annotations

import os
import re
import unicodedata
from typing import Any, ClassVar, Final

import msgspec

from watchgate.plugins.api import ALLOW, Plugin, PluginContext, PluginMessage, Verdict, deny
from watchgate.plugins.names import decode_percent

PATH_WORDS: Final = frozenset(
    (
        *("path", "paths", "file", "files", "filename", "filenames", "filepath", "filepaths"),
        *("dir", "dirs", "directory", "directories", "folder", "folders", "source", "sources", "src"),
        *("destination", "dest", "dst", "target", "root", "cwd", "location"),
    )
)
_WORD_BREAK: Final = re.compile(r"[_\-\s.]+|(?<=[a-z0-9])(?=[A-Z])")
_WILDCARD: Final = re.compile(r"[*?\[]")
_FILE_URI: Final = re.compile(r"^file:(?://[^/]*)?", re.IGNORECASE)
RELATIVE: Final = "a relative path (the server decides where it points; set base_dir to judge it there)"


class PathGuardConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    allow: tuple[str, ...] | None = None  # None: every path not denied
    deny: tuple[str, ...] = ()
    arguments: tuple[str, ...] | None = None  # argument keys holding paths; None: by their name
    base_dir: str | None = None

    def __post_init__(self) -> None:
        for pattern in (*(self.allow or ()), *self.deny):
            if not pattern.startswith(("/", "~", "**")):
                raise ValueError(f"path globs must be absolute (start with /, ~ or **), got {pattern!r}")


class PathGuardPlugin(Plugin):
    Config: ClassVar[type[Any]] = PathGuardConfig
    priority: ClassVar[int] = 20

    def __init__(self, config: PathGuardConfig, *, mode: str, setup: Any) -> None:
        super().__init__(config, mode=mode, setup=setup)
        self._base: str | None = None  # relative paths are refused unless the admin says where
        if config.base_dir:
            base = os.path.expanduser(config.base_dir)
            if not os.path.isabs(base) and setup is not None and setup.config_dir is not None:
                base = os.path.join(setup.config_dir, base)
            self._base = os.path.abspath(base)
        self._allow = [_glob(p) for p in config.allow] if config.allow is not None else None
        self._deny = [_glob(p, fold=True) for p in config.deny]  # case-insensitive file systems
        self._keys = frozenset(config.arguments) if config.arguments is not None else None

    def check_request(self, message: PluginMessage, ctx: PluginContext) -> Verdict:
        params = message.params if isinstance(message.params, dict) else {}
        if ctx.method == "tools/call":
            found: list[tuple[str, str]] = []
            _collect(params.get("arguments"), "arguments", self._keys, found)
        elif ctx.method in ("resources/read", "resources/subscribe") and isinstance(ctx.name, str):
            found = [("uri", ctx.name)] if _is_file_uri(ctx.name) else []
        else:
            return ALLOW
        for where, value in found:
            reason = self.refuse(value)
            if reason is not None:
                return deny(f"{where}: {reason}")
        return ALLOW

    def refuse(self, value: str) -> str | None:
        """Why the path in ``value`` is refused, or None. The reason names the rule, not the path."""
        written = decode_percent(_FILE_URI.sub("", value, count=1))
        if "\x00" in written:
            return "the path contains a NUL character"
        written = os.path.expanduser(unicodedata.normalize("NFC", written))
        if not os.path.isabs(written):
            if self._base is None:
                return RELATIVE
            written = os.path.join(self._base, written)
        absolute = os.path.normpath(written)
        real = unicodedata.normalize("NFC", os.path.realpath(absolute))
        for form in dict.fromkeys([real, absolute]):
            for pattern, regex in self._deny:
                if regex.match(form):
                    return f"the path is denied (rule {pattern!r})"
            if self._allow is not None and not any(regex.match(form) for _, regex in self._allow):
                return "the path is outside the allowed folders"
        return None


def _collect(value: Any, where: str, keys: frozenset[str] | None, found: list[tuple[str, str]]) -> None:
    """Path-like strings under ``value``: by key name (or ``keys``), and any ``file:`` URI."""
    if isinstance(value, dict):
        for key, item in value.items():
            here = f"{where}.{key}"
            pathy = key in keys if keys is not None else path_like_key(str(key))
            if pathy and isinstance(item, str):
                found.append((here, item))
            elif pathy and isinstance(item, list):
                found.extend((f"{here}[{i}]", v) for i, v in enumerate(item) if isinstance(v, str))
            else:
                _collect(item, here, keys, found)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _collect(item, f"{where}[{index}]", keys, found)
    elif isinstance(value, str) and _is_file_uri(value):
        found.append((where, value))


def _is_file_uri(value: str) -> bool:
    return value[:5].lower() == "file:"  # URI schemes are case-insensitive (RFC 3986)


def path_like_key(key: str) -> bool:
    """``path``, ``file_path``, ``outputDir``, ``destination``: the last word names a path."""
    words = [w for w in _WORD_BREAK.split(key) if w]
    return bool(words) and (words[-1].lower() in PATH_WORDS or key.lower() in PATH_WORDS)


def _glob(pattern: str, *, fold: bool = False) -> tuple[str, re.Pattern[str]]:
    """``**`` any depth, ``*``/``?`` within a segment; the literal folder prefix resolved."""
    pattern = unicodedata.normalize("NFC", os.path.expanduser(pattern))
    wild = _WILDCARD.search(pattern)
    literal = pattern if wild is None else pattern[: pattern.rfind("/", 0, wild.start()) + 1]
    rest = pattern[len(literal) :]
    resolved = os.path.realpath(literal) if literal not in ("", "/") else literal
    if literal.endswith("/") and not resolved.endswith("/"):
        resolved += "/"
    regex = re.escape(resolved)
    index = 0
    while index < len(rest):
        if rest.startswith("/**", index) and index + 3 == len(rest):
            regex += "(?:/.*)?"
            index += 3
        elif rest.startswith("**", index):
            regex += ".*"
            index += 2
        elif rest[index] == "*":
            regex += "[^/]*"
            index += 1
        elif rest[index] == "?":
            regex += "[^/]"
            index += 1
        elif rest[index] == "[":
            close = rest.find("]", index + 1)
            if close == -1:
                regex += re.escape("[")
                index += 1
            else:
                body = rest[index + 1 : close]
                regex += "[" + ("^" + body[1:] if body.startswith("!") else body) + "]"
                index = close + 1
        else:
            regex += re.escape(rest[index])
            index += 1
    if resolved.endswith("/") and rest.startswith("**"):  # "/srv/**" also matches "/srv" itself
        regex = f"(?:{re.escape(resolved.rstrip('/'))}|{regex})"
    return pattern, re.compile(regex + r"\Z", re.IGNORECASE if fold else 0)
