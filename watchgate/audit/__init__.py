"""The tamper-evident audit log (design.md §8, issue 5).

One `AuditActor` writes every record as a line of JSON, chained by SHA-256 so that
``watchgate audit verify`` proves nothing was edited, removed or reordered. The gateway builds
`AuditEntry` values and ``tell``s them to the actor, or ``write_and_confirm``s one when a
response must not reach the client before its record is written.
"""

from typing import TYPE_CHECKING

from watchgate._lazy import load_on_use
from watchgate.errors import AuditUnavailable

if TYPE_CHECKING:
    from watchgate.audit.actor import AuditActor, AuditMessage, Confirm
    from watchgate.audit.events import lifecycle_entry, supervisor_entry
    from watchgate.audit.files import log_files, resolved_audit_config
    from watchgate.audit.record import AuditEntry, AuditRecord, AuditStatus, Decision, Event
    from watchgate.audit.sinks import CefSink, CsvSink, Sink, SyslogSink
    from watchgate.audit.verify import VerifyResult, verify_log

#: each name's module, imported when the name is first used (``watchgate ps`` needs one struct)
_HOMES = {
    "actor": ("AuditActor", "AuditMessage", "Confirm"),
    "events": ("lifecycle_entry", "supervisor_entry"),
    "files": ("log_files", "resolved_audit_config"),
    "record": ("AuditEntry", "AuditRecord", "AuditStatus", "Decision", "Event"),
    "sinks": ("CefSink", "CsvSink", "Sink", "SyslogSink"),
    "verify": ("VerifyResult", "verify_log"),
}


def __getattr__(name: str) -> object:
    return load_on_use(__name__, _HOMES, name)


__all__ = [
    "AuditActor",
    "AuditEntry",
    "AuditMessage",
    "AuditRecord",
    "AuditStatus",
    "AuditUnavailable",
    "CefSink",
    "Confirm",
    "CsvSink",
    "Decision",
    "Event",
    "Sink",
    "SyslogSink",
    "VerifyResult",
    "lifecycle_entry",
    "log_files",
    "resolved_audit_config",
    "supervisor_entry",
    "verify_log",
]
