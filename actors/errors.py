"""Exceptions raised by the actor runtime.

They share one base class so callers can write a single ``except ActorError``
around any interaction with an actor or a supervisor without also swallowing
unrelated bugs.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["ActorError", "AskTimeout", "MailboxFull", "UnknownChild"]


class ActorError(Exception):
    """Base class for every error the actor runtime raises on purpose."""


class MailboxFull(ActorError):
    """``tell_nowait`` found the mailbox full.

    Raised instead of dropping the message: the caller decides whether to
    shed load, retry later, or fall back to the blocking ``tell``.
    """


class AskTimeout(ActorError):
    """``ask`` got no reply in time (including time spent waiting for mailbox space)."""


class UnknownChild(ActorError):
    """A supervisor was asked to act on a child name it does not have.

    The known names are part of the message because the usual cause is a typo
    in an operator command, and the fix is to pick one of them.
    """

    def __init__(self, name: str, known: Sequence[str]) -> None:
        self.name = name
        self.known: tuple[str, ...] = tuple(known)
        listed = ", ".join(self.known) if self.known else "none"
        super().__init__(f"unknown child {name!r} (known: {listed})")
