"""A fast stdlib MCP server for benchmarks: newline-delimited JSON-RPC on stdin/stdout.

Tools: ``echo`` (returns its ``text``) and ``big`` (returns a text of ``bytes`` bytes). With
``--tools N`` it exposes N tools in all (``echo``, ``big`` and ``echo_2`` .. ``echo_<N-1>``, which
behave like ``echo``), so a gateway can be given a large catalogue.

It is the "physical limit" arm of the benchmark, so it must cost as little as possible and the
same in every arm: stdlib only (starts in a few milliseconds, so 50 copies start together cheaply),
binary stdio, one ``json.loads`` per request, answers built from pre-encoded pieces, and the
``big`` payload encoded once per size. It never writes to stdout except protocol messages.
"""

import json
import sys

_PROTOCOL = "2025-11-25"


def _tools(count):
    def tool(name, description, prop, kind):
        schema = {"type": "object", "properties": {prop: {"type": kind}}, "required": [prop]}
        return {"name": name, "description": description, "inputSchema": schema}

    tools = [
        tool("echo", "Returns its text argument unchanged.", "text", "string"),
        tool("big", "Returns a text of the requested number of bytes.", "bytes", "integer"),
    ]
    tools += [
        tool(f"echo_{i}", f"Echo number {i}: returns its text.", "text", "string") for i in range(2, count)
    ]
    return tools


def _count_arg(argv):
    if "--tools" not in argv:
        return 2
    value = int(argv[argv.index("--tools") + 1])
    if value < 2:
        raise SystemExit("--tools must be at least 2 (echo and big)")
    return value


class Server:
    def __init__(self, tool_count):
        self.tool_names = {t["name"] for t in _tools(tool_count)}
        self.lists = json.dumps({"tools": _tools(tool_count)}, separators=(",", ":")).encode()
        self.big_cache = {}

    def result(self, request_id, result_json):
        return b'{"jsonrpc":"2.0","id":%s,"result":%s}\n' % (json.dumps(request_id).encode(), result_json)

    def error(self, request_id, code, message):
        body = {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}}
        return json.dumps(body, separators=(",", ":")).encode() + b"\n"

    def text_result(self, text):
        return b'{"content":[{"type":"text","text":%s}]}' % json.dumps(text).encode()

    def call(self, request_id, params):
        name = params.get("name")
        args = params.get("arguments") or {}
        if name not in self.tool_names:
            return self.error(request_id, -32602, f"unknown tool {name}")
        if name == "big":
            size = int(args.get("bytes", 0))
            body = self.big_cache.get(size)
            if body is None:
                body = self.big_cache[size] = self.text_result("x" * size)
            return self.result(request_id, body)
        return self.result(request_id, self.text_result(str(args.get("text", ""))))

    def handle(self, msg):
        method, request_id = msg.get("method"), msg.get("id")
        if request_id is None or method is None:
            return None  # a notification, or a response to nothing we asked
        if method == "tools/call":
            return self.call(request_id, msg.get("params") or {})
        if method == "initialize":
            info = {
                "protocolVersion": _PROTOCOL,
                "capabilities": {"tools": {"listChanged": False}},
                "serverInfo": {"name": "bench-echo", "version": "1.0"},
            }
            return self.result(request_id, json.dumps(info).encode())
        if method == "tools/list":
            return self.result(request_id, self.lists)
        if method == "ping":
            return self.result(request_id, b"{}")
        return self.error(request_id, -32601, f"method not found: {method}")


def main():
    server = Server(_count_arg(sys.argv))
    out = sys.stdout.buffer
    for line in sys.stdin.buffer:
        if not line.strip():
            continue
        try:
            msg = json.loads(line)
        except ValueError:
            out.write(server.error(None, -32700, "parse error"))
            out.flush()
            continue
        answer = server.handle(msg) if isinstance(msg, dict) else server.error(None, -32600, "not an object")
        if answer is not None:
            out.write(answer)
            out.flush()


if __name__ == "__main__":
    try:
        main()
    except (KeyboardInterrupt, BrokenPipeError):
        sys.exit(0)
