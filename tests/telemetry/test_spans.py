"""OpenTelemetry through a running gateway, exported to the SDK's in-memory exporters."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
import trio.testing
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from tests.gateway.fakes import Client, FakeServer, echo, running_gateway
from tests.plugins.helpers import config_with
from watchgate.config import GatewayConfig
from watchgate.config.schema import TelemetryConfig
from watchgate.gateway.tree import Gateway
from watchgate.telemetry import start_telemetry
from watchgate.telemetry.setup import OncePerInterval

TRACE = "0af7651916cd43dd8448eb211c80319c"
PARENT = "b7ad6b7169203331"
SECRET = "AKIAIOSFODNN7EXAMPLE"


def _metrics(reader: InMemoryMetricReader) -> dict[str, list[Any]]:
    found: dict[str, list[Any]] = {}
    data = reader.get_metrics_data()
    for resource in data.resource_metrics if data else ():
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                found[metric.name] = list(metric.data.data_points)
    return found


@asynccontextmanager
async def traced(
    config: GatewayConfig, *servers: FakeServer
) -> AsyncIterator[tuple[Client, InMemorySpanExporter, InMemoryMetricReader]]:
    """A gateway whose telemetry goes to the SDK's in-memory exporters."""
    spans, reader = InMemorySpanExporter(), InMemoryMetricReader()
    gateways: list[Gateway] = []
    telemetry = start_telemetry(
        TelemetryConfig(otlp_endpoint="http://127.0.0.1:9"),
        lambda: gateways[0]._telemetry_counts(),
        span_processor=SimpleSpanProcessor(spans),
        metric_reader=reader,
    )
    try:
        async with running_gateway(config, *servers, telemetry=telemetry) as (gateway, client):
            gateways.append(gateway)
            yield client, spans, reader
    finally:
        telemetry.shutdown()


async def test_a_call_is_one_trace_from_the_client_through_the_plugins_to_the_server(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fs = FakeServer("fs", tools={"echo": echo})
    config = config_with("fs", "other", plugins=[{"name": "secrets"}])
    async with traced(config, fs, FakeServer("other")) as (client, spans, reader):
        await client.initialize()
        meta = {"traceparent": f"00-{TRACE}-{PARENT}-01"}
        call = {"name": "fs__echo", "arguments": {"text": f"the key is {SECRET}"}, "_meta": meta}
        result = await client.result("tools/call", call)
        assert SECRET not in json.dumps(result)  # the secrets plugin did its work
        refused = await client.request("tools/call", {"name": "fs__nope"})
        assert "error" in refused
    in_trace = [span for span in spans.get_finished_spans() if f"{span.context.trace_id:032x}" == TRACE]
    finished = {span.name: span for span in in_trace}  # the first call's trace
    request = finished["tools/call fs__echo"]
    upstream = finished["tools/call fs"]
    assert request.kind is SpanKind.SERVER and upstream.kind is SpanKind.CLIENT
    assert f"{request.context.trace_id:032x}" == TRACE  # the client's trace, continued
    assert request.parent is not None and f"{request.parent.span_id:016x}" == PARENT
    assert upstream.parent is not None and upstream.parent.span_id == request.context.span_id
    assert request.attributes["mcp.tool.name"] == "echo"
    assert request.attributes["watchgate.public_name"] == "fs__echo"
    assert request.attributes["mcp.server"] == "fs"
    assert request.attributes["watchgate.principal"] == "anonymous"  # who called (no token here)
    decisions = [s for s in finished.values() if s.name.startswith("plugin ")]
    assert decisions and all(
        s.parent is not None and s.parent.span_id == request.context.span_id for s in decisions
    )
    assert {s.attributes["watchgate.decision"] for s in decisions} <= {"allow", "deny", "modify", "error"}
    # the server's parent is the gateway's upstream span
    sent = fs.session.requests("tools/call")[0]["params"]["_meta"]["traceparent"]
    assert sent == f"00-{TRACE}-{upstream.context.span_id:016x}-01"
    everything = json.dumps([dict(s.attributes or {}) for s in spans.get_finished_spans()])
    assert SECRET not in everything and "the key is" not in everything  # no arguments, no results

    metrics = _metrics(reader)
    [calls] = [p for p in metrics["watchgate.calls"] if p.attributes.get("tool") == "echo"]
    assert calls.value == 1 and calls.attributes["server"] == "fs"
    assert calls.attributes["principal"] == "anonymous"
    assert {p.attributes["server"] for p in metrics["watchgate.in_flight"]} == {"fs", "other"}
    assert "watchgate.call.duration" in metrics and "watchgate.restarts" in metrics


def test_the_endpoint_must_be_a_url() -> None:
    with pytest.raises(ValueError, match="otlp_endpoint must be an http"):
        TelemetryConfig(otlp_endpoint="localhost:4318")


async def test_a_call_a_plugin_refuses_is_still_one_span_saying_so(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fs = FakeServer("fs", tools={"echo": echo, "delete": echo})
    plugins = [{"name": "tool_access", "config": {"tools": {"deny": ["delete"]}}}]
    async with traced(config_with("fs", "other", plugins=plugins), fs, FakeServer("other")) as (
        client,
        spans,
        reader,
    ):
        await client.initialize()
        refused = await client.request("tools/call", {"name": "fs__delete", "arguments": {}})
        assert refused["error"]["code"] == -32010
    (request,) = [s for s in spans.get_finished_spans() if s.name == "tools/call fs__delete"]
    assert request.attributes["watchgate.decision"] == "deny"
    assert request.attributes["rpc.jsonrpc.error_code"] == -32010
    assert request.end_time >= request.start_time
    assert not fs.session.requests("tools/call")  # refused before the server
    [decision] = [s for s in spans.get_finished_spans() if s.name == "plugin tool_access"]
    assert decision.parent is not None and decision.parent.span_id == request.context.span_id
    errors = _metrics(reader)["watchgate.errors"]
    assert [(p.attributes["code"], p.value) for p in errors] == [(-32010, 1)]


async def test_names_stay_few_and_say_nothing_they_should_not(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A resource's URI is no span name (one per file, and it may hold what it reads); a made-up
    tool name is refused before telemetry (no span, no metric series per guess)."""
    fs = FakeServer("fs", tools={"echo": echo}, resources=["file:///secret?key=x"])
    fs.capabilities = {"tools": {}, "resources": {}}
    async with traced(config_with("fs", "other"), fs, FakeServer("other")) as (client, spans, reader):
        await client.initialize()
        await client.result("resources/read", {"uri": "fs+file:///secret?key=x"})
        for n in range(20):
            assert (await client.request("tools/call", {"name": f"fs__guess{n}"}))["error"]["code"] == -32602
    names = [s.name for s in spans.get_finished_spans()]
    assert "resources/read" in names and not any("secret" in name or "guess" in name for name in names)
    labels = [p.attributes for points in _metrics(reader).values() for p in points]
    assert not any("guess" in str(label.get("tool", "")) for label in labels)


def test_the_exporters_say_a_collector_is_down_once_not_on_every_retry(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    quiet = OncePerInterval(600, clock=lambda: now[0])
    logger = logging.getLogger("tests.telemetry.exporter")
    logger.addFilter(quiet)
    try:
        with caplog.at_level(logging.WARNING, logger="tests.telemetry.exporter"):
            for second in (0.0, 1.0, 2.0, 599.0, 600.0):
                now[0] = second
                logger.warning("Transient error %s", "connection refused")
    finally:
        logger.removeFilter(quiet)
    assert [r.getMessage() for r in caplog.records] == [
        "Transient error connection refused (telemetry: more of these are held back for 600 s)"
    ] * 2


def test_shutdown_twice_is_once(caplog: pytest.LogCaptureFixture) -> None:
    telemetry = start_telemetry(
        TelemetryConfig(otlp_endpoint="http://127.0.0.1:9"),
        dict,
        span_processor=SimpleSpanProcessor(InMemorySpanExporter()),
        metric_reader=InMemoryMetricReader(),
    )
    with caplog.at_level(logging.DEBUG):
        telemetry.shutdown()
        telemetry.shutdown()
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
