"""A tiny MCP server that probes its surroundings (stdlib only; run it with the system Python,
which a sandbox leaves visible). Tools: ``read`` (a file's text), ``connect`` (a TCP port on
127.0.0.1), ``connect_unix`` (a Unix socket), ``spawn`` (a grandchild in a session of its own carrying ``marker``), ``alloc``
(``mb`` megabytes)."""

import json
import os
import socket
import subprocess
import sys

import stub


def text(value, error=False):
    return {"content": [{"type": "text", "text": value}], "isError": error}


def call(name, args):
    if name == "read":
        try:
            with open(os.path.expanduser(args["path"])) as f:
                return text(f.read())
        except OSError as exc:
            return text(f"error: {exc.strerror}", error=True)
    if name == "connect":
        try:
            socket.create_connection(("127.0.0.1", int(args["port"])), timeout=5).close()
        except OSError as exc:
            return text(f"refused: {exc}", error=True)
        return text("connected")
    if name == "connect_unix":
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
                client.settimeout(5)
                client.connect(args["path"])
        except OSError as exc:
            return text(f"refused: {exc}", error=True)
        return text("connected")
    if name == "spawn":
        sleeper = [sys.executable, "-c", "import time; time.sleep(600)", args["marker"]]
        subprocess.Popen(sleeper, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, start_new_session=True)
        return text("spawned")
    if name == "alloc":
        block = bytearray(int(args["mb"]) * 1024 * 1024)
        return text(f"allocated {len(block)}")
    return text(f"unknown tool {name}", error=True)


def main():
    for method, request_id, params in stub.requests():
        if method == "initialize":
            result = stub.initialize_result("probe")
        elif method == "tools/list":
            result = stub.tools_result(("read", "connect", "connect_unix", "spawn", "alloc"))
        elif method == "tools/call":
            result = call(params.get("name"), params.get("arguments") or {})
        else:
            result = {}
        sys.stdout.write(json.dumps({"jsonrpc": "2.0", "id": request_id, "result": result}) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
