"""OpenTelemetry for the gateway, opt-in (``telemetry:`` in the config; issue 17).

``hooks`` is a message hook like the audit log: one span per client request, a child span for
its upstream call and one per plugin decision, metrics per server and tool. ``setup`` builds the
official SDK's providers with OTLP exporters. Nothing here is imported unless the config asks
for telemetry, so a gateway without it runs exactly the code it ran before.
"""

from __future__ import annotations

from watchgate.telemetry.hooks import TelemetryHooks
from watchgate.telemetry.setup import Telemetry, start_telemetry

__all__ = ["Telemetry", "TelemetryHooks", "start_telemetry"]
