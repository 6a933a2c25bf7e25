"""Package facades whose names load on first use (PEP 562), so a command imports what it runs.

``watchgate attach`` (what every MCP client launches) and ``watchgate ps`` reach
``watchgate.audit`` only for the struct ``ps`` shows; importing every module behind the facade
up front cost them the audit actor, the actor runtime and tenacity at each start. A facade
lists its names by home module, imports them under ``TYPE_CHECKING`` for the type checker, and
hands its module ``__getattr__`` to `load_on_use`.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Mapping, Sequence

__all__ = ["load_on_use"]


def load_on_use(package: str, homes: Mapping[str, Sequence[str]], name: str) -> object:
    """``package.name`` from the submodule ``homes`` places it in, kept on the package after."""
    for module, names in homes.items():
        if name in names:
            value: object = getattr(importlib.import_module(f"{package}.{module}"), name)
            setattr(sys.modules[package], name, value)
            return value
    raise AttributeError(f"module {package!r} has no attribute {name!r}")
