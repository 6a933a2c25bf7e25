"""The web console's HTTP side: one page, its script and style, and a small JSON API.

Served by the HTTP listener at ``/console`` (the daemon's with ``--http``, and ``watchgate run
--http``), behind the same guard as the MCP endpoint: the loopback rule and the ``Host`` check,
allowed origins, and the bearer token when one is configured (the page asks for it and sends it
with every API call). Reads: ``GET /console/api/state`` (servers, clients, held calls, the audit
log's status), ``GET /console/api/audit`` (the last records matching the filters, and whether
the chain verifies). Actions: ``POST /console/api/servers/NAME/restart|stop|start`` and
``POST /console/api/approvals/ID/approve|deny``, each with the page's CSRF token in
``X-CSRF-Token`` (a cross-site page can neither read the token nor set the header). Every answer
carries a strict Content-Security-Policy; the page renders what servers and clients said as
text, never as markup.
"""

from __future__ import annotations

import fnmatch
import hmac
import secrets
from collections import deque
from importlib import resources
from typing import Any, Final
from urllib.parse import parse_qs

import msgspec
import trio

from actors import UnknownChild
from watchgate.audit.files import log_files, read_lines
from watchgate.audit.record import AuditRecord, decode_record
from watchgate.audit.verify import verify_log
from watchgate.gateway.status import client_rows, upstream_rows
from watchgate.gateway.tree import Gateway
from watchgate.listeners.http.asgi import Receive, Scope, Send, headers_of, read_body, respond
from watchgate.listeners.http.guard import Refusal, RequestGuard

__all__ = ["PREFIX", "Console"]

PREFIX: Final = "/console"
_AUDIT_LIMIT: Final = 200  # records an audit query returns at most
_STATIC: Final = {
    "console.js": b"text/javascript; charset=utf-8",
    "console.css": b"text/css; charset=utf-8",
}
_SECURITY: Final = [
    (
        b"content-security-policy",
        b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
        b"base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cache-control", b"no-store"),
]
_SERVER_VERBS: Final = frozenset({"restart", "stop", "start"})
_encoder = msgspec.json.Encoder()


class Console:
    def __init__(self, gateway: Gateway, guard: RequestGuard) -> None:
        self._gateway = gateway
        self._guard = guard
        self.csrf = secrets.token_urlsafe(32)  # per process: a page from before a restart reloads

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"].removeprefix(PREFIX) or "/"
        method: str = scope["method"]
        try:
            if method == "GET" and path in ("/", "/index.html"):
                await self._page(send)
            elif method == "GET" and path.startswith("/static/") and path[8:] in _STATIC:
                await self._static(send, path[8:])
            elif path.startswith("/api/"):
                await self._api(scope, receive, send, method, path[5:])
            else:
                await _json(send, 404, {"error": f"no console page at {PREFIX}{path}"})
        except Refusal as refusal:
            await _json(send, refusal.status, {"error": str(refusal)})

    # -- the page -----------------------------------------------------------------------------------

    async def _page(self, send: Send) -> None:
        page = _asset("index.html").replace(b"{{csrf}}", self.csrf.encode())
        await respond(send, 200, page, content_type=b"text/html; charset=utf-8", headers=list(_SECURITY))

    async def _static(self, send: Send, name: str) -> None:
        await respond(send, 200, _asset(name), content_type=_STATIC[name], headers=list(_SECURITY))

    # -- the API -------------------------------------------------------------------------------------

    async def _api(self, scope: Scope, receive: Receive, send: Send, method: str, path: str) -> None:
        headers = headers_of(scope)
        principal = self._guard.check(headers)  # origin and token, as for the MCP endpoint
        if principal is None:
            raise Refusal(401, "the console takes the listener's static tokens, not OAuth access tokens")
        if method == "GET" and path == "state":
            await _json(send, 200, await self._state())
        elif method == "GET" and path == "audit":
            query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
            await _json(send, 200, await self._audit({k: v[-1] for k, v in query.items()}))
        elif method == "POST":
            self._check_csrf(headers)
            body = await read_body(receive, 4096)
            await self._act(send, path.split("/"), _reason_of(body), principal.name)
        else:
            raise Refusal(404, f"no console API at {PREFIX}/api/{path}")

    def _check_csrf(self, headers: dict[str, str]) -> None:
        token = headers.get("x-csrf-token", "")
        if not hmac.compare_digest(token.encode(), self.csrf.encode()):
            raise Refusal(403, "the action carries no valid CSRF token: reload the console")

    async def _state(self) -> dict[str, Any]:
        gateway = self._gateway
        return {
            "servers": msgspec.to_builtins(upstream_rows(gateway)),
            "clients": msgspec.to_builtins(client_rows(gateway)),
            "approvals": await gateway.approvals.listing_all(),
            "audit": msgspec.to_builtins(gateway.audit.status()) if gateway.audit is not None else None,
            "rates": gateway.call_rates.last_hour(),
        }

    async def _act(self, send: Send, parts: list[str], reason: str | None, who: str) -> None:
        if len(parts) == 3 and parts[0] == "servers" and parts[2] in _SERVER_VERBS:
            supervisor, name = self._gateway.upstream_supervisor, parts[1]
            verbs = {
                "restart": supervisor.restart_child,
                "stop": supervisor.stop_child,
                "start": supervisor.start_child,
            }
            verb = verbs[parts[2]]
            try:
                await verb(name)
            except UnknownChild as exc:
                raise Refusal(404, f"unknown server {exc.name!r}") from None
            await _json(send, 200, {"server": name, "state": str(supervisor.status(name).state)})
        elif len(parts) == 3 and parts[0] == "approvals" and parts[2] in ("approve", "deny"):
            approve = parts[2] == "approve"
            refused = await self._gateway.approvals.decide_anywhere(
                parts[1], approve=approve, by=who, channel="console", reason=reason
            )
            if refused is not None:
                raise Refusal(409, refused)
            await _json(send, 200, {"approval": parts[1], "decision": "approved" if approve else "denied"})
        else:
            raise Refusal(404, f"no console action {'/'.join(parts)!r}")

    async def _audit(self, query: dict[str, str]) -> dict[str, Any]:
        """The last matching records (newest last) and the chain's state, read off the event loop."""
        audit = self._gateway.audit
        if audit is None or not audit.config.enabled:
            return {"records": [], "verify": None}
        path = audit.config.path
        match = _matcher(query)
        return await trio.to_thread.run_sync(_read_audit, path, match)


def _read_audit(path: str, match: Any) -> dict[str, Any]:
    found: deque[AuditRecord] = deque(maxlen=_AUDIT_LIMIT)
    for file in log_files(path):
        for line in read_lines(file):
            if not line.complete:
                continue
            try:
                record = decode_record(line.data)
            except msgspec.DecodeError:
                continue
            if match(record):
                found.append(record)
    result = verify_log(path)
    return {
        "records": msgspec.to_builtins(list(found)),
        "verify": {
            "ok": result.ok,
            "summary": f"{result.records} records, the chain verifies"
            if result.ok
            else f"the chain is broken: {result.problem} ({result.file}:{result.line})",
        },
    }


def _matcher(query: dict[str, str]) -> Any:
    server, tool, who = query.get("server") or None, query.get("tool") or None, query.get("who") or None
    decision, since, until = query.get("decision") or None, query.get("since") or "", query.get("until") or ""

    def match(record: AuditRecord) -> bool:
        if server is not None and record.server != server:
            return False
        if decision is not None and record.decision != decision:
            return False
        if who is not None and who not in (record.principal, record.client):
            return False
        if (since and record.time < since) or (until and record.time > until):
            return False
        if tool is not None:
            names = [name for name in (record.tool, record.public_name) if name]
            return any(fnmatch.fnmatchcase(name, tool) for name in names)
        return True

    return match


def _reason_of(body: bytes) -> str | None:
    try:
        decoded = msgspec.json.decode(body) if body else {}
    except msgspec.DecodeError:
        raise Refusal(400, "the body must be JSON") from None
    reason = decoded.get("reason") if isinstance(decoded, dict) else None
    return reason[:500] if isinstance(reason, str) and reason.strip() else None


def _asset(name: str) -> bytes:
    return (resources.files("watchgate.listeners.http.console") / "static" / name).read_bytes()


async def _json(send: Send, status: int, value: Any) -> None:
    await respond(send, status, _encoder.encode(value), headers=list(_SECURITY))
