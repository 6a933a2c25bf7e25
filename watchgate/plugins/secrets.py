"""``secrets``: credentials in requests, responses and notifications, redacted or blocked.

Detected (``kinds``): AWS access key ids and secret keys (the latter when named as such), GitHub
tokens (classic ``ghp_``/``gho_``/``ghu_``/``ghs_``/``ghr_`` and fine-grained ``github_pat_``),
GitLab tokens (``glpat-`` and the other ``gl*-`` prefixes), Slack tokens (``xox?-``) and incoming
webhooks, Google API keys (``AIza``), private key blocks (PEM ``BEGIN … PRIVATE KEY``, also
without their end line), JWTs, and any other high-entropy token (``high_entropy``: at least
``entropy_min_length`` characters of the base64/hex alphabet with letters and digits and a
Shannon entropy of at least ``entropy_threshold`` bits per character).

Also found: a secret inside a base64-encoded string (decoded once, ``base64: true``), and a
secret cut into sibling fields of one object or list (``split_fields: true``), e.g.
``{"a": "AKIAIOSF", "b": "ODNN7EXAMPLE"}``. Out of scope: a secret split across messages, across
nesting levels or with anything between the pieces, other encodings (hex, gzip, URL-encoding,
base64 of base64), and secrets of formats not listed that are short or of low entropy.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections import Counter
from collections.abc import Sequence
from typing import Any, ClassVar, Final, Literal

from watchgate.plugins.content import ContentConfig, ContentFilter, Span, overlaps

Kind = Literal[
    "aws_access_key",
    "aws_secret_key",
    "github_token",
    "gitlab_token",
    "slack_token",
    "slack_webhook",
    "google_api_key",
    "private_key",
    "jwt",
    "high_entropy",
]

PATTERNS: Final[dict[str, str]] = {
    "private_key": (
        r"-----BEGIN[A-Z0-9 ]{0,40} PRIVATE KEY(?: BLOCK)?-----"
        r"(?:[\s\S]*?-----END[A-Z0-9 ]{0,40} PRIVATE KEY(?: BLOCK)?-----|[\s\S]*)"
    ),
    "jwt": r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*",
    "aws_access_key": r"\b(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AIPA|ANPA|ANVA|APKA|AROA|ASCA)[A-Z0-9]{16}\b",
    "aws_secret_key": (
        r"(?i:aws.{0,20}?(?:secret|private).{0,20}?)(?:[\"'`]?\s*[:=]\s*|\s+)[\"'`]?"
        r"(?P<aws_secret>[A-Za-z0-9/+]{40})\b"
    ),
    "github_token": r"\b(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})\b",
    "gitlab_token": r"\bgl(?:pat|dt|rt|ptt|cbt|imt|agent|oas|soat|ft|ffct)-[A-Za-z0-9_-]{20,}",
    "slack_webhook": r"https://hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9_/+-]{20,}",
    "slack_token": r"\bxox[abeoprs]-(?:[0-9]+-)?[A-Za-z0-9-]{10,}",
    "google_api_key": r"\bAIza[0-9A-Za-z_-]{35}\b",
}
_TOKEN: Final = re.compile(r"[A-Za-z0-9+/=_-]{16,}")
_BASE64: Final = re.compile(r"[A-Za-z0-9+/_-]{24,}={0,2}")
_HAS_DIGIT: Final = re.compile(r"\d")
_HAS_LETTER: Final = re.compile(r"[A-Za-z]")
_MAX_DECODE: Final = 1 << 20  # base64 runs longer than this are not decoded (images, archives)


class SecretsConfig(ContentConfig, kw_only=True, forbid_unknown_fields=True, frozen=True):
    kinds: tuple[Kind, ...] = tuple(Kind.__args__)  # type: ignore[attr-defined]
    entropy_threshold: float = 4.5
    entropy_min_length: int = 20
    base64: bool = True
    split_fields: bool = True
    allow: tuple[str, ...] = ()  # regexes: a match of one of them (the whole value) is not a secret

    def __post_init__(self) -> None:
        if not 0 < self.entropy_threshold <= 8:
            raise ValueError(f"entropy_threshold must be between 0 and 8 bits, got {self.entropy_threshold}")
        if self.entropy_min_length < 8:
            raise ValueError(f"entropy_min_length must be at least 8, got {self.entropy_min_length}")
        for pattern in self.allow:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"allow pattern {pattern!r} is not a valid regex: {exc}") from None


class SecretsPlugin(ContentFilter):
    Config: ClassVar[type[Any]] = SecretsConfig
    priority: ClassVar[int] = 40
    min_length: ClassVar[int] = 16  # shorter than any detected format
    label: ClassVar[str] = "secret"

    def __init__(self, config: SecretsConfig, *, mode: str, setup: Any) -> None:
        super().__init__(config, mode=mode, setup=setup)
        kinds = [kind for kind in PATTERNS if kind in config.kinds]
        self._pattern = _compile(kinds, loose=False)
        self._loose = _compile(kinds, loose=True) if config.split_fields else None
        self.joins = self._loose is not None
        self._entropy = "high_entropy" in config.kinds
        self._allow = [re.compile(p) for p in config.allow]
        self.config: SecretsConfig = config

    def find(self, text: str) -> list[Span]:
        spans = self._specific(text, self._pattern)
        if self.config.base64:
            spans.extend(self._encoded(text, spans))
        if self._entropy:
            spans.extend(self._high_entropy(text, spans))
        return spans

    def find_joined(self, text: str) -> list[Span]:
        return self._specific(text, self._loose)

    def _specific(self, text: str, pattern: re.Pattern[str] | None) -> list[Span]:
        if pattern is None:
            return []
        spans = []
        for match in pattern.finditer(text):
            kind = match.lastgroup or "secret"  # the outer group of the kind that matched
            start, end = match.span("aws_secret") if kind == "aws_secret_key" else match.span()
            if not self._allowed(text[start:end]):
                spans.append(Span(start, end, kind))
        return spans

    def _high_entropy(self, text: str, found: list[Span]) -> list[Span]:
        spans = []
        minimum, threshold = self.config.entropy_min_length, self.config.entropy_threshold
        for match in _TOKEN.finditer(text):
            token = match.group()
            if len(token) < minimum or not (_HAS_DIGIT.search(token) and _HAS_LETTER.search(token)):
                continue
            span = Span(match.start(), match.end(), "high_entropy")
            if entropy(token) >= threshold and not overlaps(span, found) and not self._allowed(token):
                spans.append(span)
        return spans

    def _encoded(self, text: str, found: list[Span]) -> list[Span]:
        """A base64 run whose decoded text holds a secret is a secret of that kind."""
        spans: list[Span] = []
        for match in _BASE64.finditer(text):
            span = Span(match.start(), match.end(), "")
            if len(match.group()) > _MAX_DECODE or overlaps(span, found) or overlaps(span, spans):
                continue
            decoded = decode_base64(match.group())
            if decoded is None:
                continue
            inner = self._specific(decoded, self._pattern)
            if inner:
                spans.append(Span(span.start, span.end, inner[0].kind))
        return spans

    def _allowed(self, value: str) -> bool:
        return any(pattern.fullmatch(value) for pattern in self._allow)


def _compile(kinds: Sequence[str], *, loose: bool) -> re.Pattern[str] | None:
    """One alternation, a named group per kind; ``loose`` drops word boundaries (joined pieces)."""
    if not kinds:
        return None
    parts = [
        f"(?P<{kind}>{PATTERNS[kind].replace(chr(92) + 'b', '') if loose else PATTERNS[kind]})"
        for kind in kinds
    ]
    return re.compile("|".join(parts))


def entropy(token: str) -> float:
    """Shannon entropy in bits per character."""
    length = len(token)
    return -sum(count / length * math.log2(count / length) for count in Counter(token).values())


def decode_base64(candidate: str) -> str | None:
    """The text a base64 (standard or URL-safe) string encodes, if it is mostly printable text."""
    body = candidate.rstrip("=")
    padded = body + "=" * (-len(body) % 4)
    altchars = b"-_" if ("-" in body or "_" in body) else None
    if altchars and ("+" in body or "/" in body):
        return None
    try:
        raw = base64.b64decode(padded, altchars=altchars, validate=True)
    except (binascii.Error, ValueError):
        return None
    text = raw.decode("utf-8", errors="replace")
    printable = sum(ch.isprintable() or ch in "\n\r\t" for ch in text)
    return text if text and printable / len(text) > 0.9 else None
