"""``watchgate auth login | status | logout``: OAuth 2.1 logins for remote servers.

``login NAME`` is the one place a person takes part: it asks the server (which answers 401 and
names its authorization server), opens the browser at the authorization URL (or prints it with
``--no-browser``), and waits for the redirect on a loopback listener on 127.0.0.1 (stdlib
``http.server``, one request, in a worker thread). The tokens land in the 0600 token file
(``transports/oauth.py``); a running daemon is told to reconnect that server. ``status`` says
who is logged in where, with scopes and expiry, never a token; ``logout`` forgets the tokens.
"""

from __future__ import annotations

import argparse
import queue
import sys
import time
import webbrowser
from collections.abc import Awaitable, Callable
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import trio

from watchgate.cli.pin import config_option
from watchgate.config.load import load_config
from watchgate.config.schema import UpstreamConfig
from watchgate.daemon.paths import find_config
from watchgate.errors import WatchgateError
from watchgate.protocol.urls import shown_url
from watchgate.sanitize import clean

_LOGIN_TIMEOUT = 300.0


def register(commands: Any) -> None:
    auth = commands.add_parser("auth", help="OAuth logins for remote servers: login, status, logout")
    verbs = auth.add_subparsers(dest="auth_command", metavar="VERB", required=True)
    common = config_option()
    login = verbs.add_parser("login", parents=[common], help="log in to a server's authorization server")
    login.add_argument("name", metavar="NAME", help="the upstream's name")
    login.add_argument("--no-browser", action="store_true", help="print the URL instead of opening a browser")
    login.set_defaults(func=_login)
    status = verbs.add_parser("status", parents=[common], help="who is logged in where (never a token)")
    status.set_defaults(func=_status)
    logout = verbs.add_parser("logout", parents=[common], help="forget a server's tokens")
    logout.add_argument("name", metavar="NAME", help="the upstream's name")
    logout.set_defaults(func=_logout)


def _oauth_upstreams(args: argparse.Namespace) -> list[UpstreamConfig]:
    config = load_config(find_config(args.config))
    return [u for u in config.proxy.upstreams if u.auth is not None and u.auth.type == "oauth"]


def _named(args: argparse.Namespace) -> UpstreamConfig:
    upstreams = _oauth_upstreams(args)
    for upstream in upstreams:
        if upstream.name == args.name:
            return upstream
    names = ", ".join(u.name for u in upstreams) or "none"
    raise WatchgateError(f"no upstream {args.name!r} with auth: {{type: oauth}} (those with one: {names})")


class _Callback(BaseHTTPRequestHandler):
    """The authorization server's redirect: the code, the state and the issuer, once."""

    answers: queue.Queue[dict[str, str]]

    def do_GET(self) -> None:
        query = {key: values[0] for key, values in parse_qs(urlsplit(self.path).query).items()}
        self.answers.put(query)
        ok = "code" in query
        self.send_response(200 if ok else 400)
        self.send_header("content-type", "text/plain; charset=utf-8")
        self.end_headers()
        message = "Watchgate is logged in. You can close this tab." if ok else "The login failed: no code."
        self.wfile.write(message.encode())

    def log_message(self, format: str, *args: Any) -> None:  # the terminal shows what matters
        return


def _login(args: argparse.Namespace) -> int:
    upstream = _named(args)
    return trio.run(_login_async, upstream, args.no_browser)


async def _login_async(
    upstream: UpstreamConfig,
    no_browser: bool,
    *,
    open_url: Callable[[str], Awaitable[None]] | None = None,
) -> int:
    """The login itself; ``open_url`` stands in for the browser (it must not wait for the
    redirect back: that is served after it returns)."""
    import httpx2

    from watchgate.transports.oauth import AuthorizationCodeResult, TokenFile, gateway_auth, preregister

    answers: queue.Queue[dict[str, str]] = queue.Queue()
    handler = type("Callback", (_Callback,), {"answers": answers})
    server = HTTPServer(("127.0.0.1", 0), handler)
    redirect_uri = f"http://127.0.0.1:{server.server_address[1]}/callback"
    storage = TokenFile(upstream.url or "")

    async def redirect(url: str) -> None:
        if open_url is not None:
            await open_url(url)
        elif no_browser or not webbrowser.open(url):
            print(f"Open this URL to log in to {upstream.name}:\n{url}", flush=True)
        else:
            print(f"A browser is open for the login to {upstream.name}; waiting for it…", flush=True)

    async def callback() -> AuthorizationCodeResult:
        def wait() -> dict[str, str]:
            server.timeout = _LOGIN_TIMEOUT
            server.handle_request()
            return answers.get_nowait() if not answers.empty() else {}

        query = await trio.to_thread.run_sync(wait)
        if "code" not in query:
            raise WatchgateError(f"the login was not completed: {query.get('error', 'no answer')}")
        return AuthorizationCodeResult(code=query["code"], state=query.get("state"), iss=query.get("iss"))

    storage.start_over()  # a login asks anew (for what the server last wanted, too)
    try:
        await preregister(upstream, storage, redirect_uri)
        auth = gateway_auth(
            upstream,
            redirect_uri=redirect_uri,
            redirect_handler=redirect,
            callback_handler=callback,
            storage=storage,
        )
        async with httpx2.AsyncClient(auth=auth, timeout=30.0, follow_redirects=False) as client:
            response = await _ask_until_challenged(client, upstream.url or "", storage)
    except httpx2.HTTPError as exc:
        raise WatchgateError(f"cannot reach {shown_url(upstream.url or '')}: {exc}") from None
    finally:
        server.server_close()
    entry = storage.entry()
    if response.status_code in (401, 403) or "tokens" not in entry:
        said = clean(response.text[:200].strip())  # a server's words reach the terminal escaped
        raise WatchgateError(
            f"{upstream.name} still refuses the login (HTTP {response.status_code})"
            + (f": {said}" if said else "")
        )
    print(f"Logged in to {upstream.name}: {_describe(entry)}")
    await _tell_the_daemon(upstream.name)
    return 0


async def _ask_until_challenged(client: Any, url: str, storage: Any) -> Any:
    """What the gateway would ask, until the server wants a login (which the client's auth then
    does): ``initialize``, then — for a server that lets anyone initialize — ``tools/list`` in
    that session."""
    from watchgate import __version__
    from watchgate.transports.modern import ModernConnection

    info = {"name": "watchgate-login", "version": __version__}
    params = {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": info}
    headers = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
    modern = ModernConnection(None, {"id": 0, "params": params}, "login")  # the 2026-07-28 era first
    probe = modern.discover_request()
    response = await client.post(url, content=probe.body, headers={**headers, **probe.headers})
    if "tokens" in storage.entry():
        return response
    if response.status_code == 200 and modern.discovered(response.content) is None:
        prepared = modern.session.prepare({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
        assert prepared is not None
        return await client.post(url, content=prepared[0], headers={**headers, **prepared[1]})
    response = await client.post(
        url, json={"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": params}, headers=headers
    )
    if response.status_code >= 400 or "tokens" in storage.entry():
        return response
    session = response.headers.get("mcp-session-id")
    if session is not None:
        headers["mcp-session-id"] = session
    headers["mcp-protocol-version"] = "2025-11-25"
    await client.post(url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=headers)
    listing = await client.post(
        url, json={"jsonrpc": "2.0", "id": 2, "method": "tools/list"}, headers=headers
    )
    if session is not None:
        await client.delete(url, headers=headers)
    return listing


async def _tell_the_daemon(name: str) -> None:
    """A running daemon reconnects the server now that it has tokens."""
    from watchgate.daemon import control
    from watchgate.daemon.client import call
    from watchgate.daemon.paths import find_daemon

    try:
        await call(find_daemon(), control.Restart(names=[name]))
    except WatchgateError:
        return  # no daemon, or not this server in it: nothing to tell
    print(f"The running daemon is reconnecting {name}.")


def _describe(entry: dict[str, Any]) -> str:
    tokens = entry.get("tokens") or {}
    scopes = tokens.get("scope") or "(none named)"
    expires = entry.get("expires_at")
    left = f"expires in {max(0, int(expires - time.time())) // 60} min" if expires else "no expiry given"
    refresh = ", refreshable" if tokens.get("refresh_token") else ""
    return f"issuer {entry.get('issuer') or '?'}, scopes {scopes}, {left}{refresh}"


def _status(args: argparse.Namespace) -> int:
    from watchgate.transports.oauth import TokenFile

    upstreams = _oauth_upstreams(args)
    if not upstreams:
        print("No upstream uses auth: {type: oauth}.")
        return 0
    for upstream in upstreams:
        entry = TokenFile(upstream.url or "").entry()
        state = (
            _describe(entry) if "tokens" in entry else f"not logged in (watchgate auth login {upstream.name})"
        )
        print(f"{upstream.name}: {state}")
    return 0


def _logout(args: argparse.Namespace) -> int:
    from watchgate.transports.oauth import TokenFile

    upstream = _named(args)
    if TokenFile(upstream.url or "").forget():
        print(f"Logged out of {upstream.name}: its tokens are forgotten.")
    else:
        print(f"{upstream.name} had no tokens.", file=sys.stderr)
    return 0
