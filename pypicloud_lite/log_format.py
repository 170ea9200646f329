"""Log output for the server and the Lambda: one JSON object per line (or text), secrets redacted on the way out.

`configure(fmt)` puts the formatter chosen by `log.format` and a `Redactor` on every handler of the root
logger (those pserve made from the ini's logging sections, or the Lambda runtime's). The redactor rewrites
each record before any handler formats it, so no password, token, Authorization header or presigned URL
reaches a log line, whatever code logged it.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime

REDACTED = "[redacted]"
# Key/value pairs whose value is a secret: `password=...`, `"token": "..."`, `Authorization: Basic ...`.
_SECRET_PAIR = re.compile(
    r"""(?P<key>\b(?:password|passwd|secret|token|session_secret|authorization|x-amz-security-token)\b"""
    r"""["']?\s*[:=]\s*["']?)(?:(?:Basic|Bearer|Token)\s+)?[^\s"',;&}]+""",
    re.IGNORECASE,
)
_PATTERNS = (
    # This index's API tokens.
    re.compile(r"\bppc_[0-9a-f]{16}_[0-9a-f]{48}\b"),
    # HTTP auth schemes with their credentials wherever they appear.
    re.compile(r"\b(?:Basic|Bearer)\s+[A-Za-z0-9+/=._~-]{8,}"),
    # JWTs (OIDC tokens of trusted publishing).
    re.compile(r"\beyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"),
)
# Presigned URLs: the query string carries the signature and the credential; the URL up to it is kept.
_PRESIGNED = re.compile(r"(https?://[^\s?\"']+)\?[^\s\"']*(?:X-Amz-Signature|Signature=|X-Amz-Credential)[^\s\"']*")


def redact(text: str) -> str:
    text = _SECRET_PAIR.sub(lambda m: m.group("key") + REDACTED, text)
    text = _PRESIGNED.sub(lambda m: f"{m.group(1)}?{REDACTED}", text)
    for pattern in _PATTERNS:
        text = pattern.sub(REDACTED, text)
    return text


class Redactor(logging.Formatter):
    """Wraps a handler's formatter: the line it makes, redacted. The record itself is left as it is, so every
    other handler (and anything reading records, such as a test's log capture) sees what was logged."""

    def __init__(self, inner: logging.Formatter | None = None) -> None:
        super().__init__()
        self.inner = inner or logging.Formatter()

    def format(self, record: logging.LogRecord) -> str:
        return redact(self.inner.format(record))


# The attributes every LogRecord has: anything else was passed in `extra=` and goes into the JSON object.
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the `extra=` fields, and the traceback if any."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({key: value for key, value in record.__dict__.items() if key not in _STANDARD})
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        return json.dumps(entry, default=str, ensure_ascii=False)


TEXT_FORMAT = "%(asctime)s %(levelname)-5.5s [%(name)s] %(message)s"


def configure(fmt: str, root: logging.Logger | None = None) -> None:
    """Give every handler (of the root logger and of any other) the `log.format` formatter ("json"; "text" keeps
    the ini's own) and the redactor; with no handler on the root logger, add one on stderr."""
    root = root or logging.getLogger()
    if not root.handlers:
        console = logging.StreamHandler()
        console.setFormatter(logging.Formatter(TEXT_FORMAT))
        root.addHandler(console)
    handlers = list(root.handlers)
    if root is logging.getLogger():
        # Loggers that do not propagate (an ini's `propagate = 0`) have handlers of their own.
        loggers = [item for item in logging.Logger.manager.loggerDict.values() if isinstance(item, logging.Logger)]
        handlers += [handler for logger in loggers for handler in logger.handlers if handler not in handlers]
    for handler in handlers:
        current = handler.formatter
        inner = current.inner if isinstance(current, Redactor) else current
        handler.setFormatter(Redactor(JsonFormatter() if fmt == "json" else inner))
