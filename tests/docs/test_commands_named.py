"""Every ``watchgate`` command and flag the documentation names exists: a person copying a line
from the docs never meets "invalid choice" or "unrecognized arguments"."""

from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path

import pytest

from watchgate.cli.main import _parser

ROOT = Path(__file__).resolve().parents[2]
DOCS = sorted([ROOT / "README.md", *ROOT.glob("docs/*.md"), *ROOT.glob("docs/development/*.md")])
#: a command line inside an inline code span or a shell line of a code block
_SPAN = re.compile(r"`([^`\n]*\bwatchgate [^`\n]*)`")
_SHELL = re.compile(r"^\s*(?:\$ )?((?:\S*/)?watchgate [^\n]*)$", re.M)
_STOP = {"|", "||", "&&", ";", "#", ">", "2>&1", "<"}


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _options(parser: argparse.ArgumentParser) -> set[str]:
    return {flag for action in parser._actions for flag in action.option_strings}


def _command_lines() -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for doc in DOCS:
        text = doc.read_text()
        fenced = re.findall(r"^```(?:sh|bash|console|shell)?\n(.*?)^```", text, re.M | re.S)
        lines = [m.group(1) for m in _SPAN.finditer(text)]
        lines += [m.group(1) for block in fenced for m in _SHELL.finditer(block)]
        found += [(doc.name, line) for line in lines]
    return found


def _problem(line: str, root: argparse.ArgumentParser) -> str | None:
    try:
        words = shlex.split(line, comments=True)
    except ValueError:
        words = line.split()
    start = next((i for i, w in enumerate(words) if w == "watchgate" or w.endswith("/watchgate")), None)
    if start is None:
        return None
    words = words[start + 1 :]
    words = words[: next((i for i, w in enumerate(words) if w in _STOP), len(words))]
    parser = root
    for word in words:
        commands = _subparsers(parser)
        if commands and not word.startswith("-"):
            choices = word.replace("\\", "").split("|")  # `restart|stop|start` names three
            if len(choices) > 1 and all(choice in commands for choice in choices):
                parser = commands[choices[0]]
                continue
            if word not in commands:
                if (parser is root and word[:1].isupper()) or word in ("…", "...") or not word[:1].isalpha():
                    return None  # prose ("watchgate NAME …"), not a command line
                return f"no command {word!r}"
            parser = commands[word]
            continue
        if word.startswith("--"):
            flag = word.split("=", 1)[0]
            if flag not in _options(parser) | _options(root):
                return f"no option {flag} for `{parser.prog}`"
    return None


def test_every_command_and_flag_in_the_docs_exists() -> None:
    root = _parser()
    lines = _command_lines()
    assert len(lines) > 50  # the docs do name commands: the scan found them
    problems = [f"{doc}: `{line}`: {why}" for doc, line in lines if (why := _problem(line, root))]
    assert problems == []


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("watchgate tools NAME", "no command 'tools'"),
        ("watchgate ps --tools time", None),
        ("watchgate ps --bogus", "no option --bogus for `watchgate ps`"),
        ("watchgate audit tail -f --server fs", None),
        ("watchgate audit frob", "no command 'frob'"),
        ("echo x | watchgate run -c f.yaml 2>/dev/null", None),
        ("watchgate restart\\|stop\\|start NAME", None),
        ("watchgate restart|halt NAME", "no command 'restart|halt'"),
    ],
)
def test_the_scan_tells_a_real_command_from_a_made_up_one(line: str, problem: str | None) -> None:
    assert _problem(line, _parser()) == problem
