"""The tamper-evident audit log (DESIGN.md section 8, issue 5).

One `AuditActor` writes every record as a line of JSON, chained by SHA-256 so that
``watchgate audit verify`` proves nothing was edited, removed or reordered. The gateway builds
`AuditEntry` values and ``tell``s them to the actor, or ``write_and_confirm``s one when a
response must not reach the client before its record is written.
"""

from watchgate.audit.actor import AuditActor, AuditMessage, AuditStatus, Confirm
from watchgate.audit.events import lifecycle_entry, supervisor_entry
from watchgate.audit.files import log_files, resolved_audit_config
from watchgate.audit.record import AuditEntry, AuditRecord, Decision, Event
from watchgate.audit.sinks import CefSink, CsvSink, Sink, SyslogSink
from watchgate.audit.verify import VerifyResult, verify_log
from watchgate.errors import AuditUnavailable

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
