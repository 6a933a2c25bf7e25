"""The control protocol: what ``watchgate ps/restart/…`` say to the daemon, as msgspec structs.

Control connections and attach sessions share one Unix socket, told apart by the WebSocket
resource: ``/control`` carries one JSON request and one JSON reply per message, ``/attach``
carries raw MCP frames both ways.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

from watchgate.audit.record import AuditStatus
from watchgate.gateway.rows import ClientRow, UpstreamRow


class Request(msgspec.Struct, tag_field="op", forbid_unknown_fields=True):
    pass


class Ps(Request, tag="ps"):
    pass


class Restart(Request, tag="restart"):
    names: list[str]
    all: bool = False


class Stop(Request, tag="stop"):
    names: list[str]


class Start(Request, tag="start"):
    names: list[str]


class Logs(Request, tag="logs"):
    name: str
    lines: int = 100
    follow: bool = False


class Tools(Request, tag="tools"):
    name: str


class Detail(Request, tag="detail"):
    """``ps NAME``: one server in full."""

    name: str


class Down(Request, tag="down"):
    grace: float = 5.0


class Reload(Request, tag="reload"):
    pass


class Relist(Request, tag="relist"):
    """Fetch these servers' lists again (after `watchgate pin approve`): clients see the change."""

    names: list[str]


class Approvals(Request, tag="approvals"):
    """``watchgate approvals``: the calls held for approval."""


class Decide(Request, tag="decide"):
    """``watchgate approvals approve|deny ID``."""

    id: str
    approve: bool
    by: str
    reason: str | None = None


class ForgetApprovals(Request, tag="forget-approvals"):
    pass


AnyRequest = (
    Ps
    | Restart
    | Stop
    | Start
    | Logs
    | Tools
    | Detail
    | Down
    | Reload
    | Relist
    | Approvals
    | Decide
    | ForgetApprovals
)


class Reply(msgspec.Struct, omit_defaults=True):
    ok: bool
    result: Any = None
    error: str | None = None
    more: bool = False  # a streaming reply (logs -f): further messages follow


class PsReport(msgspec.Struct):
    pid: int
    config: str | None
    uptime: float
    multi_server: bool
    upstreams: list[UpstreamRow]
    clients: list[ClientRow]
    audit: AuditStatus | None = None  # None: not auditing
    listeners: list[str] = []  # where clients reach it: the socket, and the HTTP URLs if any


class ProcessRow(msgspec.Struct):
    pid: int
    depth: int  # 0: the server's own process, 1: its children, …
    command: str


class ServerDetail(msgspec.Struct):
    """Everything ``ps NAME`` shows of one server."""

    row: UpstreamRow
    target: str  # the command line, or the URL
    policy: str  # the restart policy, in words
    protocol: str | None  # what the running server speaks
    server: str | None  # its serverInfo: name and version
    processes: list[ProcessRow]
    tools: list[str]  # the names clients call them by
    events: list[str]  # its recent lifecycle events, oldest first
    stderr: list[str]  # its last lines of stderr


class ToolRow(msgspec.Struct):
    name: str
    upstream_name: str
    shortened: bool


_request_decoder: Final = msgspec.json.Decoder(AnyRequest)
_reply_decoder: Final = msgspec.json.Decoder(Reply)
_encoder: Final = msgspec.json.Encoder()


def encode(value: Any) -> bytes:
    return _encoder.encode(value)


def decode_request(data: bytes | str) -> AnyRequest:
    try:
        return _request_decoder.decode(data)
    except RecursionError:  # msgspec's answer to deep nesting
        raise msgspec.DecodeError("JSON nested too deeply") from None


def decode_reply(data: bytes | str) -> Reply:
    try:
        return _reply_decoder.decode(data)
    except RecursionError:
        raise msgspec.DecodeError("JSON nested too deeply") from None
