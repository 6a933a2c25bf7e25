"""A tiny MCP server for tests (stdlib only, starts in milliseconds).

Tools: ``echo`` (returns its text), ``pid`` (its process id), ``crash`` (writes a last word to
stderr and exits with code 3 mid-call), ``slow`` (answers after ``seconds``, in a thread, so the
server keeps reading and sees a cancellation), ``link`` (a resource_link).
``orphan`` starts a grandchild in a session of its own that keeps the server's stdout open,
writes its pid to ``pidfile`` and exits with code 5 (the gateway must see the exit all the same).
``--stubborn`` ignores SIGTERM and the end of stdin (only SIGKILL ends it).
``--fail-start`` makes it exit before answering ``initialize``; ``--fail-start-if PATH`` does so
only while PATH exists; ``--record PATH`` appends every line it receives to PATH;
``--extra-tool NAME`` offers one more tool, named NAME (markup, for the console's tests), that
echoes like ``echo``.
"""

import json
import os
import signal
import subprocess
import sys
import threading
import time

_out = threading.Lock()

TOOLS = [
    {"name": name, "description": f"test tool {name}", "inputSchema": {"type": "object"}}
    for name in ("echo", "pid", "crash", "slow", "link", "orphan")
]
EXTRA = sys.argv[sys.argv.index("--extra-tool") + 1] if "--extra-tool" in sys.argv else None
if EXTRA is not None:
    TOOLS.append(
        {"name": EXTRA, "description": "a tool named with markup", "inputSchema": {"type": "object"}}
    )


def reply(request_id, result=None, error=None):
    msg = {"jsonrpc": "2.0", "id": request_id}
    msg["error" if error else "result"] = error or result
    with _out:
        sys.stdout.write(json.dumps(msg) + "\n")
        sys.stdout.flush()


def call(request_id, params):
    name = params.get("name")
    args = params.get("arguments") or {}
    if name == "echo" or (EXTRA is not None and name == EXTRA):
        return reply(request_id, {"content": [{"type": "text", "text": str(args.get("text", ""))}]})
    if name == "pid":
        return reply(request_id, {"content": [{"type": "text", "text": str(os.getpid())}]})
    if name == "crash":
        sys.stderr.write("crashing on purpose\n")
        sys.stderr.flush()
        os._exit(3)
    if name == "slow":

        def answer_later():
            time.sleep(float(args.get("seconds", 1)))
            reply(request_id, {"content": [{"type": "text", "text": "slept"}]})

        return threading.Thread(target=answer_later, daemon=True).start()
    if name == "orphan":
        grandchild = subprocess.Popen(["sleep", "600"], stdin=subprocess.DEVNULL, start_new_session=True)
        with open(args["pidfile"], "w") as f:
            f.write(str(grandchild.pid))
        os._exit(5)
    if name == "link":
        link = {"type": "resource_link", "uri": "file:///tmp/x.txt", "name": "x"}
        return reply(request_id, {"content": [link]})
    return reply(request_id, error={"code": -32602, "message": f"unknown tool {name}"})


def option(flag):
    return sys.argv[sys.argv.index(flag) + 1] if flag in sys.argv else None


def main():
    guard = option("--fail-start-if")
    if "--fail-start" in sys.argv or (guard and os.path.exists(guard)):
        sys.stderr.write("cannot start: missing credentials\n")
        sys.exit(2)
    record = option("--record")
    if "--stubborn" in sys.argv:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    serve(record)
    while "--stubborn" in sys.argv:
        time.sleep(1)


def serve(record):
    for line in sys.stdin:
        if not line.strip():
            continue
        if record:
            with open(record, "a") as f:
                f.write(line)
        msg = json.loads(line)
        method, request_id = msg.get("method"), msg.get("id")
        if request_id is None:
            continue
        if method == "initialize":
            reply(
                request_id,
                {
                    "protocolVersion": "2025-11-25",
                    "capabilities": {"tools": {"listChanged": True}},
                    "serverInfo": {"name": "crashy", "version": "1.0"},
                },
            )
        elif method == "tools/list":
            reply(request_id, {"tools": TOOLS})
        elif method == "tools/call":
            call(request_id, msg.get("params") or {})
        elif method == "ping":
            reply(request_id, {})
        else:
            reply(request_id, error={"code": -32601, "message": f"method not found: {method}"})


if __name__ == "__main__":
    main()
