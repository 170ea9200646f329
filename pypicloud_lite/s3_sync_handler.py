"""The S3 sync Lambda's handler: apply S3 object events to this region's cache.

Lambda runs it as `s3_sync.handler`, the bundle's entry module (lambda/s3_sync.py), which
re-exports it. Settings: the server's keys as a JSON object in PYPICLOUD_SETTINGS, read
by pypicloud_lite.config; a value `ssm:<parameter>` or `secretsmanager:<secret id>` is
fetched (and cached for sync.secret_max_age seconds). Clients, engines and the cache live
for the whole execution environment and are reused by warm invocations.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import dataclass
from typing import Any

from pypicloud_lite.cache import build_cache
from pypicloud_lite.cache.base import Cache
from pypicloud_lite.cdn import CdnFlusher, SqsScheduler, build_flusher, writer_cache
from pypicloud_lite.config import Settings, load_settings, sync_settings
from pypicloud_lite.config_environ import environ_settings
from pypicloud_lite.errors import BackendUnavailable, PypicloudLiteError
from pypicloud_lite.log_format import configure as configure_logging
from pypicloud_lite.secrets import SecretResolver
from pypicloud_lite.storage import build_storage
from pypicloud_lite.sync import Message, S3Sync, SequencerMemory, messages, storage_for_sync

# Named after the entry module, as the function's log lines always were (not after this module).
logger = logging.getLogger("s3_sync")
logger.setLevel(logging.INFO)

# What a database says when it refuses the credentials: a rotated secret, fetch it anew.
_CREDENTIAL_ERRORS = ("password authentication failed", "access denied for user", "authentication failed")


@dataclass
class Runtime:
    raw: dict[str, Any]
    settings: Settings
    cache: Cache
    sync: S3Sync
    # With cdn.backend set: the first change of a window sends a delayed message, which flushes.
    flusher: CdnFlusher | None = None
    scheduler: SqsScheduler | None = None


_lock = threading.Lock()
_runtime: Runtime | None = None
_memory = SequencerMemory()
_resolver: SecretResolver | None = None


def runtime() -> Runtime:
    """The environment's runtime, rebuilt only when a resolved secret changed."""
    global _runtime, _resolver  # noqa: PLW0603 - one per execution environment, by design
    with _lock:
        # Secret references stay in `raw`: they are resolved below, then the settings loaded.
        raw = environ_settings(os.environ)
        if _resolver is None:
            _resolver = SecretResolver(max_age=sync_settings(raw).secret_max_age)
        resolved = _resolver.resolve(raw)
        if _runtime is None or _runtime.raw != resolved:
            if _runtime is not None:
                _runtime.cache.close()
            # Settings come from PYPICLOUD_SETTINGS only; the resolved values replace the references.
            settings = load_settings(resolved, environ={})
            configure_logging(settings.ops.log_format)
            cache = writer_cache(settings, "sync Lambda", build_cache)
            sync = S3Sync(storage_for_sync(build_storage(settings.storage)), cache, _memory)
            _runtime = Runtime(resolved, settings, cache, sync)
            # Without a queue (no --cdn) changes are only recorded: the servers' timers flush them.
            if settings.cdn.enabled and settings.cdn.queue_url:
                region = settings.storage.s3.region if settings.storage.s3 else None
                _runtime.scheduler = SqsScheduler.from_settings(settings.cdn, region)
                _runtime.flusher = build_flusher(cache, settings.cdn, on_window=_runtime.scheduler.schedule)
        return _runtime


def _credentials_rejected(exc: BaseException) -> bool:
    text = f"{exc} {exc.__cause__ or ''}".lower()
    return any(marker in text for marker in _CREDENTIAL_ERRORS)


def _log(**fields: Any) -> None:
    logger.info(json.dumps(fields, sort_keys=True))


def _apply(message: Message, counts: dict[str, int]) -> None:
    """Apply every hint of one message; one retry with fresh secrets if the database refused them."""
    for attempt in (1, 2):
        try:
            sync = runtime().sync  # building it may meet the database's refusal too
            for hint in message.hints:
                outcome = sync.apply(hint)
                counts[outcome] = counts.get(outcome, 0) + 1
                _log(event=hint.event_name, key=hint.key, bucket=hint.bucket, outcome=outcome)
            return
        except BackendUnavailable as exc:
            if attempt == 1 and _credentials_rejected(exc) and _resolver is not None:
                logger.warning("the cache refused its credentials: fetching the secrets again")
                _resolver.invalidate()
                continue
            raise


def _flush_cdn(message: Message, counts: dict[str, int]) -> None:
    """The delayed message of a CDN window: send what is pending, or come back later."""
    current = runtime()
    if current.flusher is None or current.scheduler is None:
        _log(message=message.message_id, outcome="ignored", event="cdn flush without cdn.backend or cdn.queue_url")
        return
    result = current.flusher.flush()
    counts[f"cdn_{result.state}"] = counts.get(f"cdn_{result.state}", 0) + 1
    record = result.record
    _log(
        message=message.message_id,
        cdn=result.state,
        paths=len(result.paths),
        invalidation=record.invalidation_id if record else None,
    )
    if result.state in ("waiting", "busy"):
        # CloudFront's limits, or another flusher: the batch stays pending; look again later.
        current.scheduler.schedule()
    elif result.state == "sent" and current.flusher.pending():
        # Committed while this flush ran: their own window (opened here if nobody did) sends them.
        current.flusher.note_change()


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """Apply every message of one invocation; from SQS, answer which messages failed (the rest are done)."""
    counts: dict[str, int] = {}
    failures: list[str] = []
    delivered = messages(event)
    from_sqs = any(m.message_id is not None for m in delivered)
    for message in delivered:
        if message.error:
            counts["failed"] = counts.get("failed", 0) + 1
            _log(message=message.message_id, outcome="failed", error=message.error)
            if message.message_id:
                failures.append(message.message_id)
            continue
        if not message.hints and not message.cdn_flush:
            _log(message=message.message_id, outcome="ignored", event="s3:TestEvent or empty")
        try:
            if message.cdn_flush:
                _flush_cdn(message, counts)
            else:
                _apply(message, counts)
        except Exception as exc:
            counts["failed"] = counts.get("failed", 0) + 1
            error = exc.message if isinstance(exc, PypicloudLiteError) else f"{type(exc).__name__}: {exc}"
            _log(message=message.message_id, outcome="failed", error=error)
            if not from_sqs:
                raise  # S3 and SNS retry the whole invocation
            # In a batch, one bad message must not send the others back to the queue.
            failures.append(str(message.message_id))
    summary = {"messages": len(delivered), **counts}
    _log(summary=summary)
    if from_sqs:
        # Only the failed messages return to the queue; the rest of the batch is done.
        return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in failures]}
    return summary
