"""``pii``: personal data in requests, responses and notifications, redacted or blocked.

Types (``types``, each can be switched off): ``email``; ``phone`` (international ``+`` numbers
with 8 to 15 digits, and North American ``(555) 123-4567`` / ``555-123-4567`` forms);
``credit_card`` (13 to 19 digits starting with 2 to 6, optionally grouped by spaces or dashes,
Luhn-checked); ``iban`` (country code, check digits, mod-97 checked, optionally grouped in fours);
``ssn`` (US, ``123-45-6789`` with dashes, excluding numbers never issued); ``ip`` (IPv4 and IPv6
addresses, validated).

Out of scope: names, postal addresses, dates of birth, national ids other than the US SSN, SSNs
without dashes, phone numbers in local formats without a country code (other than North
American), and personal data in images or binary blobs.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any, ClassVar, Final, Literal

from watchgate.plugins.content import ContentConfig, ContentFilter, Span

PiiType = Literal["email", "phone", "credit_card", "iban", "ssn", "ip"]

PATTERNS: Final[dict[str, str]] = {
    "email": r"(?<![\w.+-])[A-Za-z0-9._%+-]{1,64}@(?:[A-Za-z0-9-]{1,63}\.)+[A-Za-z]{2,24}\b",
    "iban": r"\b[A-Z]{2}[0-9]{2}(?:[ ]?[A-Z0-9]){11,30}\b",
    "credit_card": r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])",
    "ssn": r"(?<![\d-])(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?![\d-])",
    "phone": (
        r"(?<![\w+])(?:\+\d{1,3}[ .-]?(?:\(\d{1,4}\)[ .-]?)?\d{1,4}(?:[ .-]?\d{2,4}){1,4}"
        r"|\(\d{3}\)[ .-]?\d{3}[ .-]\d{4}|\d{3}[.-]\d{3}[.-]\d{4})(?![\w-])"
    ),
    "ip": (
        r"(?<![\w.])(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)(?![\w.])"
        r"|(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])"
    ),
}


class PiiConfig(ContentConfig, kw_only=True, forbid_unknown_fields=True, frozen=True):
    types: tuple[PiiType, ...] = tuple(PiiType.__args__)  # type: ignore[attr-defined]


class PiiPlugin(ContentFilter):
    Config: ClassVar[type[Any]] = PiiConfig
    priority: ClassVar[int] = 50
    min_length: ClassVar[int] = 6  # a@b.co
    label: ClassVar[str] = "personal data"

    def __init__(self, config: PiiConfig, *, mode: str, setup: Any) -> None:
        super().__init__(config, mode=mode, setup=setup)
        kinds = [kind for kind in PATTERNS if kind in config.types]
        self._pattern = re.compile("|".join(f"(?P<{k}>{PATTERNS[k]})" for k in kinds)) if kinds else None

    def find(self, text: str) -> list[Span]:
        if self._pattern is None:
            return []
        spans = []
        for match in self._pattern.finditer(text):
            kind = match.lastgroup
            assert kind is not None
            if _VALID[kind](match.group()):
                spans.append(Span(match.start(), match.end(), kind))
        return spans


def luhn(number: str) -> bool:
    digits = [int(d) for d in number if d.isdigit()]
    if not 13 <= len(digits) <= 19:
        return False
    total = 0
    for index, digit in enumerate(reversed(digits)):
        if index % 2:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return total % 10 == 0


def iban_valid(candidate: str) -> bool:
    compact = candidate.replace(" ", "")
    if not 15 <= len(compact) <= 34:
        return False
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(ch, 36)) for ch in rearranged)) % 97 == 1


def _phone(candidate: str) -> bool:
    digits = sum(ch.isdigit() for ch in candidate)
    return 10 <= digits <= 15 if not candidate.startswith("+") else 8 <= digits <= 15


def _ip(candidate: str) -> bool:
    try:
        ipaddress.ip_address(candidate)
    except ValueError:
        return False
    return candidate != "::"


_VALID: Final = {
    "email": lambda _: True,
    "iban": iban_valid,
    "credit_card": lambda number: number[0] in "23456" and luhn(number),
    "ssn": lambda _: True,
    "phone": _phone,
    "ip": _ip,
}
