"""The programs a benchmark arm runs: the servers, the gateway in front of them, and the peer proxy.

Every arm is a plain argv run by the same driver, so "direct", "watchgate" and "fastmcp" differ
only in what sits between the driver and the server.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

import watchgate
from watchgate.bench.driver import BenchError

REPO = Path(watchgate.__file__).resolve().parents[1]
ECHO_SERVER = REPO / "tests" / "servers" / "echo_server.py"
EVERYTHING = REPO / "node_mcp" / "node_modules" / ".bin" / "mcp-server-everything"
PEER_SCRIPT = Path(__file__).resolve().with_name("peer_fastmcp.py")
PASSTHROUGH = Path(__file__).resolve().with_name("passthrough.py")
GATEKIT = REPO / ".bench-peers" / "gatekit" / "bin" / "gatekit-gateway"  # `make bench` installs it
GATEKIT_VERSION = "0.3.0"


def echo_server(tools: int = 2) -> list[str]:
    """The in-repo echo server. ``-S`` skips site (and .pth hooks): 50 copies start in ~10 ms each."""
    if not ECHO_SERVER.is_file():
        raise BenchError(f"{ECHO_SERVER} not found: the benchmark runs from a source checkout")
    argv = [sys.executable, "-S", str(ECHO_SERVER)]
    return [*argv, "--tools", str(tools)] if tools != 2 else argv


def everything_server() -> list[str] | None:
    """server-everything from ``node_mcp/`` (``make install``), or None when it is not installed."""
    return [str(EVERYTHING), "stdio"] if EVERYTHING.exists() else None


def gateway_command(config: Path, audit_log: Path | None = None) -> list[str]:
    """``watchgate run`` with this interpreter, so the gateway measured is the code in this tree;
    ``audit_log`` keeps a measurement out of the user's own audit log."""
    argv = [sys.executable, "-m", "watchgate.cli", "run", "-c", str(config)]
    return [*argv, "--audit-log", str(audit_log)] if audit_log is not None else argv


def daemon_available() -> bool:
    """Whether this tree's ``watchgate`` has the daemon (``up``/``attach``): asked, not assumed."""
    try:
        probe = subprocess.run(
            [sys.executable, "-m", "watchgate.cli", "up", "--help"],
            capture_output=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return probe.returncode == 0


def daemon_up(config: Path) -> list[str]:
    """The daemon in the foreground, so the benchmark owns (and reaps) its process."""
    return [sys.executable, "-m", "watchgate.cli", "up", "--foreground", "-c", str(config)]


def daemon_attach() -> list[str]:
    """What an MCP client launches to reach the daemon: a stdio bridge to its socket."""
    return [sys.executable, "-m", "watchgate.cli", "attach", "--no-start"]


def daemon_socket(runtime_dir: Path) -> Path:
    from watchgate.daemon.paths import RuntimePaths  # only trees with the daemon have it

    return RuntimePaths(runtime_dir).socket


def upstream_entry(
    name: str,
    argv: Sequence[str],
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": name, "command": list(argv)}
    if env:
        entry["env"] = dict(env)
    if cwd:
        entry["cwd"] = cwd
    return entry


def write_config(
    path: Path,
    upstreams: Sequence[dict[str, Any]],
    level: str = "info",
    *,
    plugins: Sequence[dict[str, Any]] = (),
    audit: bool = True,
    telemetry: dict[str, Any] | None = None,
) -> Path:
    """A gateway config with defaults everywhere except a generous ``startup_wait``.

    Logging stays at the default level: the benchmark measures the gateway as people run it. So
    does the audit log, on by default (``watchgate-audit.jsonl`` next to the config, that is in
    the bench's temporary directory); ``audit=False`` turns it off for the plugins row only.
    """
    proxy = {"startup_wait": 60, "upstreams": list(upstreams)}
    config: dict[str, Any] = {"proxy": proxy, "logging": {"level": level}}
    if not audit:
        config["audit"] = {"enabled": False}
    if plugins:
        config["plugins"] = list(plugins)
    if telemetry is not None:
        config["telemetry"] = telemetry
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def builtin_plugins(workdir: Path) -> list[dict[str, Any]]:
    """All six built-in security plugins, each configured to look at the echo call and let it by.

    Default modes everywhere; the rules are real but do not match ``echo``/``big`` or their
    arguments, so every plugin does its work and allows the call.
    """
    return [
        {"name": "tool_access", "config": {"tools": {"allow": ["echo", "big"], "deny": ["*_admin"]}}},
        {"name": "path_guard", "config": {"allow": [f"{workdir}/**"], "deny": ["**/.env", "~/.ssh/**"]}},
        {"name": "tool_pinning", "config": {"state_file": str(workdir / "bench-pins.json")}},
        {"name": "secrets"},
        {"name": "pii"},
        {"name": "prompt_injection"},
    ]


def fastmcp_version() -> str | None:
    """The installed FastMCP's version, or None when it cannot be imported here."""
    if importlib.util.find_spec("fastmcp") is None:
        return None
    try:
        return importlib.metadata.version("fastmcp")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def fastmcp_proxy(server: Sequence[str]) -> list[str]:
    """FastMCP's proxy (a stdio server) in front of ``server``."""
    return [sys.executable, str(PEER_SCRIPT), "--", *server]


def passthrough(server: Sequence[str]) -> list[str]:
    """The bare trio pass-through (two byte pumps, no parsing) in front of ``server``."""
    return [sys.executable, str(PASSTHROUGH), "--", *server]


def gatekit_available() -> bool:
    return GATEKIT.exists()


def gatekit_gateway(server_name: str, server: Sequence[str], workdir: Path) -> list[str]:
    """Gatekit in front of ``server``, no plugins: its tools come out as ``NAME__tool``."""
    config = {
        "proxy": {
            "transport": "stdio",
            "upstreams": [{"name": server_name, "command": list(server)}],
        }
    }
    path = workdir / f"gatekit-{server_name}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return [str(GATEKIT), "--config", str(path)]


def resolve_tool(names: Sequence[str], tool: str) -> str:
    """The name under which a proxy exposes ``tool``: itself, or with a server prefix."""
    if tool in names:
        return tool
    prefixed = [name for name in names if name.endswith(("_" + tool, "__" + tool))]
    if len(prefixed) == 1:
        return prefixed[0]
    raise BenchError(f"tool {tool!r} not found among {len(names)} tools: {', '.join(sorted(names)[:10])}")
