"""Text that a peer controls, made safe to store or print (design.md §12).

Server stderr, exit reasons, tool names, request ids, methods and error messages end up in the
daemon's log, ``watchgate logs``, ``ps``, error answers and audit records. Before they are stored
or printed they pass the secrets detector (the ``secrets`` plugin's, default settings: a token in
a server's stderr must not sit in the audit log) and control characters are escaped (an ANSI
sequence or a newline in a tool name must not forge a line in ``audit tail`` or run in the
admin's terminal).
"""

from __future__ import annotations

import functools
import re
from typing import Final

from watchgate.plugins.content import redact
from watchgate.plugins.secrets import SecretsConfig, SecretsPlugin

# C0 and C1 controls, DEL, and the bidi overrides/isolates that reorder what a terminal shows
_CONTROLS: Final = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_SHORTEST_SECRET: Final = SecretsPlugin.min_length


@functools.cache
def _detector() -> SecretsPlugin:
    return SecretsPlugin(SecretsConfig(), mode="redact", setup=None)


def escape_controls(text: str) -> str:
    """``\\n`` → ``\\\\n``, ESC → ``\\\\x1b``, RLO → ``\\\\u202e``: visible, inert, one line."""
    return _CONTROLS.sub(_escape, text)


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    return {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(char) or (
        f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}"
    )


def clean(text: str) -> str:
    """Secrets redacted (``[REDACTED:<kind>]``), then control characters escaped."""
    if len(text) < _SHORTEST_SECRET and text.isprintable():  # names, ids: the common case, free
        return text
    spans = _detector().find(text)
    return escape_controls(redact(text, spans) if spans else text)


# Names (tools, methods) repeat on every call: the detector runs once per distinct name.
clean_name = functools.lru_cache(maxsize=4096)(clean)


def clean_optional(text: str | None) -> str | None:
    return None if text is None else clean_name(text)
