"""Namespacing is what lets one client use many servers; every rewrite must be reversible."""

import msgspec
import pytest

from watchgate.errors import UnknownName
from watchgate.protocol import namespace
from watchgate.protocol.namespace import NamespaceTable


def test_tool_names_get_a_double_underscore_prefix() -> None:
    assert namespace.public_name("fs", "read_file") == "fs__read_file"
    assert namespace.split_name("fs__read_file") == ("fs", "read_file")
    assert namespace.split_name("fs__with__more") == ("fs", "with__more")
    assert namespace.split_name("nounderscores") is None
    assert namespace.split_name("__x") is None


def test_long_names_are_shortened_deterministically_within_64_characters() -> None:
    long_tool = "a_really_long_tool_name_that_goes_on_and_on_and_on_forever_and_ever"
    first = namespace.public_name("github-enterprise", long_tool)
    assert len(first) == 64
    assert first.startswith("github-enterprise__a_really")
    assert first == namespace.public_name("github-enterprise", long_tool)
    other = namespace.public_name("github-enterprise", long_tool + "2")
    assert other != first and len(other) == 64


def test_uris_get_the_server_as_a_scheme_prefix() -> None:
    assert namespace.public_uri("fs", "file:///tmp/x") == "fs+file:///tmp/x"
    assert namespace.split_uri("fs+file:///tmp/x") == ("fs", "file:///tmp/x")
    assert namespace.split_uri("fs+git+ssh://h/r") == ("fs", "git+ssh://h/r")
    assert namespace.split_uri("file:///tmp/x") is None
    assert namespace.split_uri("9x+file:///") is None


def _table() -> NamespaceTable:
    long_tool = "t" * 70
    return NamespaceTable(
        multi_server=True,
        servers=["fs", "time"],
        tools={"fs": ["read_file", long_tool], "time": ["get_current_time"]},
        prompts={"fs": ["summarise"], "time": []},
    )


def test_table_resolves_public_names_to_server_and_upstream_name() -> None:
    table = _table()
    assert table.resolve_tool("fs__read_file") == ("fs", "read_file")
    assert table.resolve_tool("time__get_current_time") == ("time", "get_current_time")
    shortened = namespace.public_name("fs", "t" * 70)
    assert table.resolve_tool(shortened) == ("fs", "t" * 70)
    assert table.resolve_prompt("fs__summarise") == ("fs", "summarise")
    # a server that listed its tools is asked for nothing else, in no other spelling
    for other in ("fs__brand_new", "fs__READ_FILE", "fs__read_file ", "fs__\uff52\uff45\uff41\uff44_file"):
        with pytest.raises(UnknownName, match="unknown tool"):
            table.resolve_tool(other)
    # one that has not listed yet (starting) is reached by its prefix: it answers with its state
    unlisted = NamespaceTable(multi_server=True, servers=["fs", "time"], tools={"time": []})
    assert unlisted.resolve_tool("fs__brand_new") == ("fs", "brand_new")
    with pytest.raises(UnknownName):
        unlisted.resolve_tool("time__x")


@pytest.mark.parametrize("name", ["nope__x", "read_file", "FS__read_file", "fs_read_file"])
def test_unknown_prefix_is_invalid_params_listing_known_servers(name: str) -> None:
    with pytest.raises(UnknownName) as info:
        _table().resolve_tool(name)
    assert info.value.code == -32602
    assert name in info.value.message and "fs, time" in info.value.message


def test_uri_resolution_and_unknown_uri() -> None:
    table = _table()
    assert table.resolve_uri("time+tz://utc") == ("time", "tz://utc")
    with pytest.raises(UnknownName) as info:
        table.resolve_uri("file:///etc/passwd")
    assert "file:///etc/passwd" in info.value.message


def test_single_server_mode_passes_names_through() -> None:
    table = NamespaceTable(multi_server=False, servers=["only"], tools={"only": ["x"]}, prompts={})
    assert table.resolve_tool("x") == ("only", "x")
    with pytest.raises(UnknownName):  # what it did not list is decided here, as in multi-server mode
        table.resolve_tool("anything__else")
    # unless nothing is hidden: then the gateway is invisible, and the server answers as it would
    open_table = NamespaceTable(multi_server=False, servers=["only"], tools={"only": ["x"]}, transparent=True)
    assert open_table.resolve_tool("anything__else") == ("only", "anything__else")
    assert table.resolve_uri("file:///a") == ("only", "file:///a")
    assert table.public_tool("only", "x") == "x"


def _loads(raw: msgspec.Raw) -> object:
    return msgspec.json.decode(raw)


def test_tool_results_rewrite_resource_links_and_embedded_resources_only() -> None:
    result = msgspec.Raw(
        b'{"content":[{"type":"text","text":"uri"},'
        b'{"type":"resource_link","uri":"file:///a","name":"a"},'
        b'{"type":"resource","resource":{"uri":"file:///b","text":"hi"}}],'
        b'"structuredContent":{"uri":"user data stays"}}'
    )
    out = _loads(namespace.rewrite_result("tools/call", "fs", result))
    assert out == {
        "content": [
            {"type": "text", "text": "uri"},
            {"type": "resource_link", "uri": "fs+file:///a", "name": "a"},
            {"type": "resource", "resource": {"uri": "fs+file:///b", "text": "hi"}},
        ],
        "structuredContent": {"uri": "user data stays"},
    }


def test_results_without_uris_are_returned_untouched() -> None:
    result = msgspec.Raw(b'{"content":[{"type":"text","text":"hello"}]}')
    assert namespace.rewrite_result("tools/call", "fs", result) is result


def test_prompt_messages_and_resource_contents_are_rewritten() -> None:
    prompt = msgspec.Raw(
        b'{"messages":[{"role":"user","content":{"type":"resource","resource":{"uri":"x://1","text":"t"}}}]}'
    )
    assert _loads(namespace.rewrite_result("prompts/get", "ev", prompt)) == {
        "messages": [
            {"role": "user", "content": {"type": "resource", "resource": {"uri": "ev+x://1", "text": "t"}}}
        ]
    }
    read = msgspec.Raw(b'{"contents":[{"uri":"x://1","text":"t"}]}')
    assert _loads(namespace.rewrite_result("resources/read", "ev", read)) == {
        "contents": [{"uri": "ev+x://1", "text": "t"}]
    }
    other = msgspec.Raw(b'{"uri":"x://1"}')
    assert namespace.rewrite_result("completion/complete", "ev", other) is other


def test_malformed_results_are_passed_through_rather_than_crashing() -> None:
    weird = msgspec.Raw(b'{"content":"uri is not a list"}')
    assert namespace.rewrite_result("tools/call", "fs", weird) is weird
    weird_items = msgspec.Raw(b'{"content":[1, {"type":"resource","resource":"uri"}]}')
    assert _loads(namespace.rewrite_result("tools/call", "fs", weird_items)) == {
        "content": [1, {"type": "resource", "resource": "uri"}]
    }


def test_a_server_without_a_prefix_keeps_its_names_beside_prefixed_ones() -> None:
    table = NamespaceTable(
        multi_server=True,
        servers=["fs", "time"],
        tools={"fs": ["read_file"], "time": ["get_current_time"]},
        prefixed=["time"],
    )
    assert table.public_tool("fs", "read_file") == "read_file"
    assert table.public_uri("fs", "file:///x") == "file:///x"
    assert table.resolve_tool("read_file") == ("fs", "read_file")
    assert table.resolve_tool("time__get_current_time") == ("time", "get_current_time")
    # not listed: refused at the gateway, whether prefixed or plain
    for name in ("time__new", "brand_new"):
        with pytest.raises(UnknownName):
            table.resolve_tool(name)
    assert NamespaceTable(multi_server=True, servers=["fs"], prefixed=[]).resolve_tool("new") == ("fs", "new")
    assert table.resolve_uri("time+tz://utc") == ("time", "tz://utc")
    assert table.resolve_uri("file:///etc/hosts") == ("fs", "file:///etc/hosts")


def test_two_plain_servers_sharing_a_name_the_first_keeps_it() -> None:
    table = NamespaceTable(
        multi_server=True, servers=["a", "b"], tools={"b": ["echo", "only_b"], "a": ["echo"]}, prefixed=[]
    )
    assert table.resolve_tool("echo") == ("a", "echo")
    assert table.resolve_tool("only_b") == ("b", "only_b")
    assert table.collisions == [("echo", "a", "b")]
    with pytest.raises(UnknownName):  # two plain servers: an unlisted name has no owner to guess
        table.resolve_tool("unlisted")


def test_prefix_always_with_one_server() -> None:
    table = NamespaceTable(multi_server=False, servers=["only"], tools={"only": ["x"]}, prefixed=["only"])
    assert table.public_tool("only", "x") == "only__x"
    assert table.resolve_tool("only__x") == ("only", "x")
    with pytest.raises(UnknownName):
        table.resolve_tool("x")
