"""A small generic actor runtime on trio, with Erlang/OTP-style supervision.

An actor is a trio task with its own bounded mailbox; a supervisor owns child
tasks and restarts them by policy.  Nothing here knows about MCP.
"""

from .actor import Actor, Reply
from .errors import ActorError, AskTimeout, MailboxFull, UnknownChild
from .policy import Backoff, ChildState, RestartPolicy, RestartType, Strategy
from .spec import ChildSpec, ChildStatus, SupervisorEvent
from .supervisor import Supervisor

__all__ = [
    "Actor",
    "ActorError",
    "AskTimeout",
    "Backoff",
    "ChildSpec",
    "ChildState",
    "ChildStatus",
    "MailboxFull",
    "Reply",
    "RestartPolicy",
    "RestartType",
    "Strategy",
    "Supervisor",
    "SupervisorEvent",
    "UnknownChild",
]
