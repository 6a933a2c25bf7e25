"""Where the 2026-07-28 era is written: its two layers, and a short list of edges, each with its
reason. A module that starts naming the era's methods, keys or translation outside them fails
here: put the knowledge in the layer of its side instead (docs/development/architecture.md)."""

from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "watchgate"
#: what naming the era looks like in code (docstrings and comments do not count)
_ERA = re.compile(
    r"protocol \. eras\b|protocol import [\w ,()]*\beras\b|transports \. modern\b|\bMODERN\b"
    r"|input_required|requestState|server/discover|subscriptions/listen"
)
LAYERS = ("gateway/era/", "transports/modern/", "protocol/eras.py")
#: the modules outside the layers that know the era, and why they must
EDGES = {
    "gateway/router/requests.py": "answers server/discover as initialize would",
    "gateway/upstreams/actor.py": "a result a plugin changed loses the server's cache hints",
    "gateway/upstreams/handshake.py": "the protocol versions the gateway knows",
    "listeners/http/app.py": "tells a legacy session's version header from the other era's",
    "listeners/http/modern.py": "HTTP's part of the era: headers mirrored, statuses",
    "listeners/http/request.py": "keeps a request's channel for the retry of a parked call",
    "listeners/http/listen.py": "serves a subscription as an event stream",
    "transports/http.py": "the HTTP wire: the probe, then a POST per message",
    "transports/listen.py": "the HTTP wire's listen stream",
    "transports/modern_stdio.py": "the stdio wire: a line per message",
    "transports/dual.py": "which era a client's message goes in (the era split)",
    "transports/dual_stdio.py": "a second process for the other era",
    "cli/auth.py": "probes the era before a login, through the upstream layer",
    "bench/httpload.py": "the benchmark's wrk client sends 2026-07-28 requests (a client, not the gateway)",
}


def _code_of(path: Path) -> str:
    """The module's code, docstrings and comments left out, tokens joined by spaces."""
    source = path.read_text()
    docstrings: set[int] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            first = node.body[0] if node.body else None
            value = first.value if isinstance(first, ast.Expr) else None
            if first is not None and isinstance(value, ast.Constant) and isinstance(value.value, str):
                docstrings.update(range(first.lineno, (first.end_lineno or first.lineno) + 1))
    kept = []
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            continue
        if token.type == tokenize.STRING and token.start[0] in docstrings:
            continue
        kept.append(token.string)
    return " ".join(kept)


def knowing_the_era() -> set[str]:
    return {
        path.relative_to(PACKAGE).as_posix() for path in PACKAGE.rglob("*.py") if _ERA.search(_code_of(path))
    }


def test_the_era_is_written_in_its_layers_and_the_named_edges_only() -> None:
    outside = {m for m in knowing_the_era() if not m.startswith(LAYERS)}
    assert outside <= set(EDGES), f"new modules know the 2026-07-28 era: {sorted(outside - set(EDGES))}"
    assert set(EDGES) <= outside, (
        f"no longer know it (take them off the list): {sorted(set(EDGES) - outside)}"
    )


def test_the_count_finds_an_import_and_a_method_name_but_not_a_docstring(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text('"""server/discover is mentioned here only."""\n# subscriptions/listen\nx = 1\n')
    assert not _ERA.search(_code_of(module))
    module.write_text("from watchgate.protocol import jsonrpc, eras\n")
    assert _ERA.search(_code_of(module))
    module.write_text('ROUTES = {"server/discover": None}\n')
    assert _ERA.search(_code_of(module))
