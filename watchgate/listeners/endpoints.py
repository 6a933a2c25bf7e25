"""The paths of the daemon's socket, shared by the listener and the commands that connect to it
(kept apart from ``unix.py`` so ``watchgate ps`` does not import the gateway to find them)."""

from typing import Final

__all__ = ["ATTACH_PATH", "CONTROL_PATH", "MAX_MESSAGE"]

CONTROL_PATH: Final = "/control"  # watchgate ps/restart/logs/down/reload
ATTACH_PATH: Final = "/attach"  # an MCP session relayed over a WebSocket
MAX_MESSAGE: Final = 256 * 1024 * 1024  # a 5 MB tool result must pass an attach session whole
