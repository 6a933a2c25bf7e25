"""``watchgate import``: the servers people already configured in their MCP clients, moved into
Watchgate (issue 17). ``sources`` finds and reads each client's file, ``merge`` adds the servers
to ``supervisor.yaml``, ``rewrite`` points the clients at ``watchgate attach``."""
