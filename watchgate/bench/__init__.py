"""Benchmarks: what Watchgate costs compared with talking to the same MCP server directly.

A gateway that slows every tool call gets removed, so the cost is measured, not assumed:
``python -m watchgate.bench`` (``make bench``) runs the whole suite and ``watchgate bench`` runs the
same comparison on one of the user's own configured servers. See ``docs/performance.md``.
"""
