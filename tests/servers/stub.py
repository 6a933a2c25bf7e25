"""What the small test servers share (stdlib only; imported from the script's own folder):
the answers to ``initialize`` and ``tools/list``, and the request loop around them."""

import json
import sys


def initialize_result(name):
    info = {"name": name, "version": "1"}
    return {"protocolVersion": "2025-11-25", "capabilities": {"tools": {}}, "serverInfo": info}


def tools_result(names):
    return {"tools": [{"name": n, "inputSchema": {"type": "object"}} for n in names]}


def requests():
    """(method, id, params) of every request on stdin; notifications are skipped."""
    for line in sys.stdin:
        msg = json.loads(line)
        if msg.get("id") is not None:
            yield msg.get("method"), msg["id"], msg.get("params") or {}
