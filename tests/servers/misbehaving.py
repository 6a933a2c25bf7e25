"""An MCP server that misbehaves in one chosen way (stdlib only), for the fault-injection suite.

    misbehaving.py MODE MARKER

MODE is what goes wrong (see ``MODES``); MARKER is an argument every process it starts carries
too, so a test can find them all in /proc. ``tools/call`` of ``act`` triggers the fault; ``echo``
always answers.
"""

import json
import os
import signal
import subprocess
import sys
import time

import stub

MODES = (
    "crash",  # act: exit 3 mid-call, with a last word on stderr
    "hang",  # act: never answered
    "garbage",  # act: lines of garbage, then the answer
    "big",  # act: a 10 MB answer
    "drip",  # act: the answer one byte at a time
    "noinit",  # never answers initialize
    "exitloop",  # exits at once, every time it is started
    "grandchild",  # act: a grandchild keeps stdout open, the server exits
    "setsid",  # at start: a grandchild in its own session that would outlive a careless gateway
    "ignoreterm",  # ignores SIGTERM and the end of stdin
    "closestdout",  # act: closes stdout but stays alive
)
MODE, MARKER = sys.argv[1], sys.argv[2]
SLEEPER = [sys.executable, "-c", "import time; time.sleep(600)", MARKER]


def send(msg):
    sys.stdout.write(json.dumps(msg) + "\n")
    sys.stdout.flush()


def text(value):
    return {"content": [{"type": "text", "text": value}]}


def act(request_id):
    if MODE == "crash":
        sys.stderr.write("fatal: the act tool broke\n")
        sys.stderr.flush()
        os._exit(3)
    if MODE == "hang":
        return
    if MODE == "garbage":
        sys.stdout.write('not json at all\n{"half": \n\x00\x01\x02\n[[[[[[\n')
        send({"jsonrpc": "2.0", "id": request_id, "result": text("after the garbage")})
    elif MODE == "big":
        send({"jsonrpc": "2.0", "id": request_id, "result": text("x" * 10_000_000)})
    elif MODE == "drip":
        for byte in json.dumps({"jsonrpc": "2.0", "id": request_id, "result": text("dripped")}) + "\n":
            sys.stdout.write(byte)
            sys.stdout.flush()
            time.sleep(0.002)
    elif MODE == "grandchild":
        subprocess.Popen(SLEEPER, stdin=subprocess.DEVNULL, start_new_session=True)
        os._exit(5)
    elif MODE == "closestdout":
        sys.stdout.close()
        os.close(1)
        time.sleep(600)
    else:
        send({"jsonrpc": "2.0", "id": request_id, "result": text("fine")})


def main():
    if MODE == "exitloop":
        sys.stderr.write("cannot start: broken install\n")
        sys.exit(1)
    if MODE == "setsid":
        subprocess.Popen(SLEEPER, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, start_new_session=True)
    if MODE == "ignoreterm":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    for method, request_id, params in stub.requests():
        if method == "initialize":
            if MODE != "noinit":
                send(
                    {
                        "jsonrpc": "2.0",
                        "id": request_id,
                        "result": stub.initialize_result(f"misbehaving-{MODE}"),
                    }
                )
        elif method == "tools/list":
            send({"jsonrpc": "2.0", "id": request_id, "result": stub.tools_result(("act", "echo"))})
        elif method == "tools/call":
            if params.get("name") == "act":
                act(request_id)
            else:
                send(
                    {
                        "jsonrpc": "2.0",
                        "id": request_id,
                        "result": text(str((params.get("arguments") or {}).get("text", ""))),
                    }
                )
        elif method == "ping":
            send({"jsonrpc": "2.0", "id": request_id, "result": {}})
    while MODE == "ignoreterm":
        time.sleep(1)


if __name__ == "__main__":
    main()
