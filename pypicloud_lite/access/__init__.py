"""Access backends: authentication and per-project permissions; build_access picks one lazily."""

from __future__ import annotations

from pypicloud_lite.access.audit import AuditRecorder, LogOnlyAudit
from pypicloud_lite.access.base import AccessBackend, Identity, Permission
from pypicloud_lite.access.static import GeneratedAdmin
from pypicloud_lite.config import Settings

__all__ = ["AccessBackend", "Identity", "Permission", "build_access", "console_audit"]


def build_access(settings: Settings) -> tuple[AccessBackend, GeneratedAdmin | None]:
    built: tuple[AccessBackend, GeneratedAdmin | None]
    if settings.auth.backend == "sql":
        from pypicloud_lite.access.sql import SQLAccess

        built = SQLAccess.from_settings(settings.auth, settings.cache)
    else:
        from pypicloud_lite.access.static import StaticAccess

        built = StaticAccess.from_settings(settings.auth)
    built[0].audit.keep_for(settings.ops.audit_retention)
    return built


def console_audit(settings: Settings) -> AuditRecorder:
    """The audit trail of a console script (ppc-reload): the server's, without making a first admin."""
    if settings.auth.backend == "sql":
        from pypicloud_lite.access.sql import SQLAccess

        recorder = SQLAccess.connect(settings.auth, settings.cache).audit
    else:
        recorder = AuditRecorder(LogOnlyAudit())
    recorder.keep_for(settings.ops.audit_retention)
    return recorder
