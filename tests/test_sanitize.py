"""What a peer controls is stored and printed only after secrets are redacted and control
characters escaped (design.md §12)."""

from __future__ import annotations

import pytest

from watchgate.sanitize import clean, escape_controls

TOKEN = "ghp_a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("read_file", "read_file"),
        ("evil\n2026-12-01 #9 forged", "evil\\n2026-12-01 #9 forged"),
        ("\x1b[2J\x1b[31mred", "\\x1b[2J\\x1b[31mred"),
        ("tab\there\rcr\x7f\x9b", "tab\\there\\rcr\\x7f\\x9b"),
        ("abc\u202edcba", "abc\\u202edcba"),
        (f"fatal: bad token {TOKEN}", "fatal: bad token [REDACTED:github_token]"),
        (f"\x1b[1m {TOKEN}\n", "\\x1b[1m [REDACTED:github_token]\\n"),
        ("héllo wörld, 日本語", "héllo wörld, 日本語"),
    ],
)
def test_clean(text: str, shown: str) -> None:
    assert clean(text) == shown


def test_escaping_keeps_printable_text_as_it_is() -> None:
    assert escape_controls("plain text, with ünïcode") == "plain text, with ünïcode"
