"""``path_guard``: allow and deny path globs for path-like arguments, judged on the real path."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import trio

from tests.gateway.fakes import FakeServer, echo, running_gateway
from tests.plugins.helpers import build, config_with, request
from watchgate.plugins.api import Allow, Deny
from watchgate.plugins.path_guard import _glob, path_like_key


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """``allowed/`` with a file, a symlink out to ``outside/``, and ``allowed/private/``."""
    (tmp_path / "allowed" / "private").mkdir(parents=True)
    (tmp_path / "allowed" / "note.txt").write_text("hi")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "passwd").write_text("root")
    (tmp_path / "allowed" / "link").symlink_to(tmp_path / "outside")
    return tmp_path


RELATIVE = "a relative path (the server decides where it points; set base_dir to judge it there)"


def guard(tree: Path, **config: Any) -> Any:
    deny = [f"{tree}/allowed/private/**", f"{tree}/allowed/privé/**"]
    return build("path_guard", {"allow": [f"{tree}/allowed/**"], "deny": deny, **config})


def call(plugin: Any, arguments: Any) -> Any:
    return plugin.check_request(*request("tools/call", {"name": "t", "arguments": arguments}))


def test_allowed_paths_pass(tree: Path) -> None:
    plugin = guard(tree)
    assert isinstance(call(plugin, {"path": f"{tree}/allowed/note.txt"}), Allow)
    assert isinstance(call(plugin, {"path": f"{tree}/allowed"}), Allow)  # dir/** matches dir itself
    assert isinstance(call(plugin, {"path": f"{tree}/allowed/new/file.txt"}), Allow)  # need not exist
    assert isinstance(call(plugin, {"content": "/etc/passwd", "count": 3}), Allow)  # not a path argument


@pytest.mark.parametrize(
    ("argument", "reason"),
    [
        ("{tree}/outside/passwd", "the path is outside the allowed folders"),
        ("{tree}/allowed/../outside/passwd", "the path is outside the allowed folders"),
        ("{tree}/allowed/%2e%2e/outside/passwd", "the path is outside the allowed folders"),
        ("{tree}/allowed/%252e%252e/outside/passwd", "the path is outside the allowed folders"),
        ("{tree}/allowed/link/passwd", "the path is outside the allowed folders"),
        ("{tree}/allowed/private/key", "the path is denied (rule '{tree}/allowed/private/**')"),
        ("{tree}/allowed/PRIVATE/key", "the path is denied (rule '{tree}/allowed/private/**')"),
        ("{tree}/allowed/note.txt\x00.png", "the path contains a NUL character"),
        ("file://{tree}/outside/passwd", "the path is outside the allowed folders"),
        ("relative/../../x", RELATIVE),
        ("etc/passwd", RELATIVE),
        ("FILE://{tree}/outside/passwd", "the path is outside the allowed folders"),
        ("File:{tree}/outside/passwd", "the path is outside the allowed folders"),
        ("{tree}/allowed/prive\u0301/key", "the path is denied (rule '{tree}/allowed/privé/**')"),
    ],
)
def test_escapes_are_refused(tree: Path, argument: str, reason: str) -> None:
    verdict = call(guard(tree), {"path": argument.format(tree=tree)})
    assert isinstance(verdict, Deny)
    assert verdict.reason == f"arguments.path: {reason.format(tree=tree)}"


def test_every_path_like_argument_is_checked(tree: Path) -> None:
    plugin = guard(tree)
    ok = f"{tree}/allowed/a"
    bad = f"{tree}/outside/b"
    assert isinstance(call(plugin, {"paths": [ok, bad]}), Deny)
    assert call(plugin, {"paths": [ok, bad]}).reason.startswith("arguments.paths[1]:")
    assert call(plugin, {"source": ok, "destination": bad}).reason.startswith("arguments.destination:")
    assert call(plugin, {"edits": [{"file_path": bad}]}).reason.startswith("arguments.edits[0].file_path:")
    assert call(plugin, {"options": {"outputDir": bad}}).reason.startswith("arguments.options.outputDir:")
    assert call(plugin, {"link": f"file://{bad}"}).reason.startswith("arguments.link:")
    assert call(plugin, {"link": f"FILE://{bad}"}).reason.startswith("arguments.link:")
    assert call(plugin, {"paths": [ok, "etc/passwd"]}).reason.startswith("arguments.paths[1]: a relative")
    assert call(plugin, [f"file://{bad}"]).reason.startswith("arguments[0]:")
    assert isinstance(call(plugin, {"path": 5, "paths": [1, 2]}), Allow)
    explicit = guard(tree, arguments=["where"])
    assert isinstance(call(explicit, {"where": bad}), Deny) and isinstance(
        call(explicit, {"path": bad}), Allow
    )


def test_resources_with_file_uris_are_checked(tree: Path) -> None:
    plugin = guard(tree)
    message, ctx = request("resources/read", {"uri": "x"}, name=f"file://{tree}/outside/passwd")
    assert isinstance(plugin.check_request(message, ctx), Deny)
    message, ctx = request("resources/read", {"uri": "x"}, name=f"File://{tree}/outside/passwd")
    assert isinstance(plugin.check_request(message, ctx), Deny)
    message, ctx = request("resources/read", {"uri": "x"}, name="demo://not/a/file")
    assert isinstance(plugin.check_request(message, ctx), Allow)
    message, ctx = request("prompts/get", {"name": "p"}, name="p")
    assert isinstance(plugin.check_request(message, ctx), Allow)


def test_a_relative_path_is_refused_without_base_dir_even_with_deny_only() -> None:
    """A filesystem server rooted at / reads etc/passwd as /etc/passwd: judging it against the
    gateway's working directory would let it past ``deny: [/etc/**]``."""
    plugin = build("path_guard", {"deny": ["/etc/**"]})
    verdict = call(plugin, {"path": "etc/passwd"})
    assert isinstance(verdict, Deny) and verdict.reason == f"arguments.path: {RELATIVE}"
    assert isinstance(call(plugin, {"paths": ["/srv/a", "etc/passwd"]}), Deny)
    assert isinstance(call(plugin, {"path": "/srv/a"}), Allow)


def test_no_allow_list_means_everything_not_denied(tree: Path) -> None:
    plugin = build("path_guard", {"deny": ["~/.ssh/**", "/etc/shadow"]})
    assert isinstance(call(plugin, {"path": "/srv/anything"}), Allow)
    assert isinstance(call(plugin, {"path": "~/.ssh/id_rsa"}), Deny)
    assert isinstance(call(plugin, {"path": os.path.expanduser("~/.ssh")}), Deny)
    assert isinstance(call(plugin, {"path": "/etc/./shadow"}), Deny)


def test_relative_paths_resolve_against_base_dir(tree: Path) -> None:
    plugin = guard(tree, base_dir=str(tree / "allowed"))
    assert isinstance(call(plugin, {"path": "note.txt"}), Allow)
    assert isinstance(call(plugin, {"path": "../outside/passwd"}), Deny)
    from watchgate.plugins.api import PluginSetup
    from watchgate.plugins.path_guard import PathGuardConfig, PathGuardPlugin

    relative = PathGuardPlugin(
        PathGuardConfig(allow=(f"{tree}/allowed/**",), base_dir="allowed"),
        mode="block",
        setup=PluginSetup(tree),
    )
    assert isinstance(call(relative, {"path": "note.txt"}), Allow)


def test_glob_syntax() -> None:
    _, regex = _glob("/srv/*/logs/**")
    assert (
        regex.match("/srv/app/logs") and regex.match("/srv/app/logs/a/b") and not regex.match("/srv/a/b/logs")
    )
    _, regex = _glob("/srv/file?.[ch]")
    assert (
        regex.match("/srv/file1.c") and not regex.match("/srv/file10.c") and not regex.match("/srv/file1.o")
    )
    _, regex = _glob("/srv/[!a]x")
    assert regex.match("/srv/bx") and not regex.match("/srv/ax")
    _, regex = _glob("/srv/a[b")
    assert regex.match("/srv/a[b")
    _, regex = _glob("/srv/**/x")
    assert regex.match("/srv/a/b/x")
    assert [path_like_key(k) for k in ("path", "filePath", "excludePatterns", "__", "pattern")] == [
        True,
        True,
        False,
        False,
        False,
    ]


async def test_path_guard_in_a_gateway_per_server(autojump_clock: trio.testing.MockClock, tree: Path) -> None:
    fs = FakeServer("fs", tools={"read": echo})
    other = FakeServer("other", tools={"read": echo})
    config = config_with(
        "fs",
        "other",
        per_server={"fs": [{"name": "path_guard", "config": {"allow": [f"{tree}/allowed/**"]}}]},
    )
    async with running_gateway(config, fs, other) as (_, client):
        await client.initialize()
        outside = {"name": "fs__read", "arguments": {"path": f"{tree}/allowed/../outside/passwd"}}
        error = (await client.request("tools/call", outside))["error"]
        assert error == {
            "code": -32010,
            "message": "blocked by plugin 'path_guard': arguments.path: the path is outside the allowed folders",
            "data": {
                "plugin": "path_guard",
                "reason": "arguments.path: the path is outside the allowed folders",
            },
        }
        assert "result" in await client.request("tools/call", {**outside, "name": "other__read"})
        inside = {"name": "fs__read", "arguments": {"path": f"{tree}/allowed/note.txt"}}
        assert "result" in await client.request("tools/call", inside)


def test_globs_at_any_depth(tree: Path) -> None:
    plugin = build("path_guard", {"deny": ["**/.git/**", "**/.env"]})
    assert isinstance(call(plugin, {"path": f"{tree}/repo/.git/config"}), Deny)
    assert isinstance(call(plugin, {"path": f"{tree}/repo/.git"}), Deny)
    assert isinstance(call(plugin, {"path": f"{tree}/app/.env"}), Deny)
    assert isinstance(call(plugin, {"path": f"{tree}/app/.envrc"}), Allow)
