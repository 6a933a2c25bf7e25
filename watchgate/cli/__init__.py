"""The ``watchgate`` command line: ``main`` is the console script (``watchgate.cli:main``) and
``python -m watchgate.cli``; ``main.py`` parses and imports the module of the command it names
(``run.py`` one gateway in this process, ``daemon.py`` the daemon's commands, ``attach.py`` what
an MCP client launches)."""

from watchgate.cli.main import main

__all__ = ["main"]
