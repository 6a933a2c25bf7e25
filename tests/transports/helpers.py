"""Reading a transport in tests: through its message seam, as the upstream actor does."""

from __future__ import annotations

from watchgate.transports.base import UpstreamConnection


async def first_line(transport: UpstreamConnection) -> bytes | None:
    """The peer's next line, or None if it ended first."""
    async for burst in transport.receive():
        return burst[0]
    return None


async def read_lines(transport: UpstreamConnection) -> list[bytes]:
    """Every line until the peer ends."""
    return [line async for burst in transport.receive() for line in burst]
