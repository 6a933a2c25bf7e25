"""The rows ``watchgate ps`` and the web console show, as plain structs: light enough for the
command-line clients of the daemon to decode without loading the gateway (``status.py`` fills
them from a running gateway)."""

from __future__ import annotations

import msgspec

__all__ = ["ClientRow", "UpstreamRow"]


class UpstreamRow(msgspec.Struct):
    name: str
    transport: str
    state: str
    pid: int | None
    uptime: float | None
    restarts: int
    tools: int
    in_flight: int
    mailbox: int
    last_error: str | None
    next_restart_in: float | None
    sandbox: str = "-"  # "bwrap", "bwrap net:off", "UNSANDBOXED" (required: false, bwrap unusable)
    host: str | None = None  # a remote server's host[:port], shown where a process has its pid
    also_speaks: list[str] = []  # a server of both eras: the legacy session open beside the modern one


class ClientRow(msgspec.Struct):
    id: int
    name: str
    version: str
    pid: int | None
    attached_for: float
    in_flight: int
    profile: str | None = None  # the profile it attached with (None: it sees everything)
    peer: str | None = None  # an HTTP client's address
    one_request: bool = False  # a 2026-07-28 client's request over HTTP, shown while in flight
    principal: str | None = None  # who it is (a token's name, a uid's user)
    proven_by: str | None = None  # token | uid | process | none
