"""Comparing names the way an attacker would try to dodge: case, width, look-alike letters, hidden
characters, and ``..`` or percent-encoding in paths and URIs.

Allow rules compare exactly; deny rules compare the *skeletons* of both sides, so ``Delete_File``,
``delete_file`` in full-width letters, with a Cyrillic ``e`` (U+0435), or followed by a zero-width
space all look like ``delete_file``. The look-alike table covers the Latin look-alikes of Cyrillic and
Greek, plus what NFKC folds (full-width, ligatures, mathematical letters); it is not the whole
Unicode confusables list (UTS #39), which is out of scope.
"""

from __future__ import annotations

import posixpath
import re
import unicodedata
from fnmatch import fnmatchcase
from typing import Final
from urllib.parse import unquote, urlsplit, urlunsplit

INVISIBLE: Final = re.compile(
    "[\\s\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180e\u200b-\u200f\u202a-\u202e"
    "\u2060-\u2064\u2066-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\U000e0000-\U000e0fff]"
)
_LOOKALIKES: Final = str.maketrans(
    # Cyrillic
    "аеорсухіјѕԁһӏԛԝвкмнтАВЕКМНОРСТХЅІЈԌ"
    # Greek
    "αεικνορτυχΑΒΕΖΗΙΚΜΝΟΡΤΥΧ"
    # Latin extras
    "ıȷℓ",
    "aeopcyxijsdhlqwbkmhtABEKMHOPCTXSIJGaeikvoptuxABEZHIKMNOPTYXijl",
)


def skeleton(name: str) -> str:
    """A form in which look-alike spellings of one name are equal (for deny rules)."""
    folded = unicodedata.normalize("NFKC", name)
    folded = INVISIBLE.sub("", folded)
    folded = "".join(ch for ch in unicodedata.normalize("NFKD", folded) if not unicodedata.combining(ch))
    return folded.translate(_LOOKALIKES).casefold()


def plain(name: str) -> bool:
    """Printable ASCII without spaces: what a real tool or prompt name is made of."""
    return name.isascii() and name.isprintable() and not any(ch.isspace() for ch in name) and bool(name)


class Globs:
    """A list of fnmatch patterns (``*``, ``?``, ``[...]``), case-sensitive, with a skeleton twin."""

    def __init__(self, patterns: tuple[str, ...]) -> None:
        self.patterns = patterns
        self._skeletons = tuple(skeleton(p) for p in patterns)

    def __bool__(self) -> bool:
        return bool(self.patterns)

    def exact(self, name: str) -> str | None:
        return next((p for p in self.patterns if fnmatchcase(name, p)), None)

    def lookalike(self, name: str) -> str | None:
        """The first pattern ``name`` matches exactly or by skeleton."""
        found = self.exact(name)
        if found is not None:
            return found
        shadow = skeleton(name)
        return next(
            (p for p, s in zip(self.patterns, self._skeletons, strict=True) if fnmatchcase(shadow, s)), None
        )


def decode_percent(text: str, rounds: int = 3) -> str:
    """Percent-decoding until nothing changes (``%252e`` is ``%2e`` is ``.``), at most ``rounds``."""
    for _ in range(rounds):
        decoded = unquote(text)
        if decoded == text:
            break
        text = decoded
    return text


def normalize_uri(uri: str) -> str:
    """The URI with its path percent-decoded and ``.``/``..`` resolved (``file:///a/../b`` ->
    ``file:///b``); a URI without a path is returned as it is."""
    try:
        parts = urlsplit(uri)
    except ValueError:
        return uri
    if not parts.path:
        return uri
    path = decode_percent(parts.path)
    normal = posixpath.normpath(path)
    if path.startswith("/") and normal.startswith("//"):
        normal = "/" + normal.lstrip("/")
    if path.endswith("/") and not normal.endswith("/"):
        normal += "/"
    return urlunsplit((parts.scheme, parts.netloc, normal, parts.query, parts.fragment))
