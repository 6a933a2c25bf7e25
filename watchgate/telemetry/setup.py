"""The OpenTelemetry SDK's providers for a gateway that asked for telemetry.

Spans go out in batches and metrics every ``metrics_interval`` seconds, both over OTLP/HTTP to
``otlp_endpoint`` (``/v1/traces``, ``/v1/metrics``), from the SDK's own threads: the message path
only records. Besides what the hooks count, two instruments are read at each export: restarts
and requests in flight, per server. ``shutdown`` flushes what is still buffered.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from watchgate import __version__
from watchgate.telemetry.hooks import TelemetryHooks

if TYPE_CHECKING:
    from watchgate.config.schema import TelemetryConfig

__all__ = ["Telemetry", "start_telemetry"]

#: per server: (restarts so far, requests in flight)
Counts = Callable[[], Mapping[str, tuple[int, int]]]

#: The loggers of the OTLP exporters: while the collector is down they warn on every retry of
#: every batch, several lines a second.
EXPORTER_LOGGERS: Final = (
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    "opentelemetry.exporter.otlp.proto.http.metric_exporter",
)


class OncePerInterval(logging.Filter):
    """Lets one record through every ``every`` seconds and holds back the rest, saying so."""

    def __init__(self, every: float = 600.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self._every = every
        self._clock = clock
        self._next = float("-inf")

    def filter(self, record: logging.LogRecord) -> bool:
        now = self._clock()
        if now < self._next:
            return False
        self._next = now + self._every
        record.msg = f"{record.getMessage()} (telemetry: more of these are held back for {self._every:g} s)"
        record.args = ()
        return True


def quiet_exporters(every: float = 600.0) -> None:
    """One line per exporter per ``every`` seconds while the collector does not answer."""
    for name in EXPORTER_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, OncePerInterval) for f in logger.filters):
            logger.addFilter(OncePerInterval(every))


@dataclass
class Telemetry:
    hooks: TelemetryHooks
    tracer_provider: TracerProvider
    meter_provider: MeterProvider
    _stopped: bool = field(default=False, init=False)

    def shutdown(self) -> None:
        """Flush and stop (blocking: call it from a thread); once, whoever asks again."""
        if self._stopped:
            return
        self._stopped = True
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()


def start_telemetry(
    config: TelemetryConfig,
    counts: Counts,
    *,
    span_processor: SpanProcessor | None = None,
    metric_reader: MetricReader | None = None,
) -> Telemetry:
    """Providers for ``config`` (``span_processor``/``metric_reader``: the tests' in-memory ones)."""
    resource = Resource.create({"service.name": config.service_name, "service.version": __version__})
    base = config.otlp_endpoint.rstrip("/")
    quiet_exporters()
    # no exit handlers of the SDK's own: the gateway shuts them down (twice would warn)
    tracer_provider = TracerProvider(resource=resource, shutdown_on_exit=False)
    tracer_provider.add_span_processor(
        span_processor or BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{base}/v1/traces"))
    )
    reader = metric_reader or PeriodicExportingMetricReader(
        OTLPMetricExporter(endpoint=f"{base}/v1/metrics"),
        export_interval_millis=config.metrics_interval * 1000,
    )
    meter_provider = MeterProvider(resource=resource, metric_readers=[reader], shutdown_on_exit=False)
    meter = meter_provider.get_meter("watchgate", __version__)

    def restarts(options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(r, {"server": s}) for s, (r, _) in counts().items()]

    def in_flight(options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(n, {"server": s}) for s, (_, n) in counts().items()]

    meter.create_observable_counter("watchgate.restarts", [restarts], description="automatic restarts")
    meter.create_observable_gauge("watchgate.in_flight", [in_flight], description="requests in flight")
    hooks = TelemetryHooks(tracer_provider.get_tracer("watchgate", __version__), meter)
    return Telemetry(hooks, tracer_provider, meter_provider)
