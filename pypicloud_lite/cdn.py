"""CDN purging: what a change makes stale, gathered per window into one CloudFront invalidation.

Used by the server (a timer per process) and by the S3 sync Lambda (a delayed SQS
message per window); no Pyramid here. The flow:

1. Every change records what it made stale in the cache's outbox, in the change's
   own transaction: a crash can delay a purge, never lose one.
2. The first change of a window claims it (a conditional write on the `cdn-window`
   lease); that is when the Lambda sends its delayed flush message.
3. Once the window has closed, one flusher (the `cdn-flush` lease) claims everything
   pending as a batch, turns it into paths and sends one CreateInvalidation whose
   CallerReference is the batch's id: a retried batch never pays twice.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import threading
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from pypicloud_lite.cache.base import Cache
from pypicloud_lite.config import (
    CLOUDFRONT_MAX_PATHS,
    CLOUDFRONT_MAX_WILDCARDS,
    MAX_CDN_WINDOW,
    CacheSettings,
    CdnSettings,
    Settings,
)
from pypicloud_lite.errors import ConfigError, PypicloudLiteError
from pypicloud_lite.models import Applied, CdnBatch, CdnChange, CdnRecord

logger = logging.getLogger(__name__)

WINDOW_LOCK = "cdn-window"
# Held by the index's distribution for as long as the index has a CDN (see settle_cdn).
INDEX_LOCK = "cdn-index"
INDEX_LEASE = 100 * 365 * 86400.0
FLUSH_LOCK = "cdn-flush"
# Long enough for a slow CloudFront call; a flusher that dies holds the batch no longer than this.
FLUSH_LEASE = 120.0
# The most changes one batch claims (the rest go to the next batch): DynamoDB's open-batch
# item lists their ids and must stay under its 400 KB item limit.
MAX_BATCH_CHANGES = 10_000
# The Lambda's flush message arrives this long after the window closes, so that a change
# whose transaction was still committing at the close is pending by then.
FLUSH_GRACE = 2
# What the Lambda's delayed message carries, and how the handler recognizes it.
FLUSH_MESSAGE = {"ppc": "cdn-flush"}
# CloudFront pricing, for ppc-cdn-report.
FREE_PATHS_PER_MONTH = 1000
PRICE_PER_PATH = 0.005
# A naive S3-triggered purge sends this many paths per changed object, one invalidation each.
NAIVE_PATHS_PER_CHANGE = 2
# Invalidations finish within minutes; older ones are not looked at again.
RECENT = timedelta(hours=1)
_PATH_SAFE = "/-._~!$&'()*+,;=:@"


class CdnError(PypicloudLiteError):
    """The CDN refused or could not be reached; the batch stays pending and is retried."""


# -- what a change makes stale -------------------------------------------------------------


def change_paths(change: CdnChange, prefix: str = "") -> list[str]:
    """The URLs a change to one project shows on; the file URL only when its bytes went away or changed."""
    project = quote(change.project, safe=_PATH_SAFE)
    paths = [f"{prefix}/simple/", f"{prefix}/simple/{project}/", f"{prefix}/pypi/{project}/json"]
    if change.version:
        paths.append(f"{prefix}/pypi/{project}/{quote(change.version, safe=_PATH_SAFE)}/json")
    if change.filename:
        file_url = f"{prefix}/packages/{project}/{quote(change.filename, safe=_PATH_SAFE)}"
        paths.append(file_url)
        if change.filename.endswith(".whl"):
            paths.append(file_url + ".metadata")  # PEP 658: served beside wheels
    return paths


def is_wildcard(path: str) -> bool:
    return path.endswith("*")


def invalidation_paths(changes: Iterable[CdnChange], prefix: str, threshold: int) -> list[str]:
    """Every stale path, or, above `threshold`, the biggest groups collapsed into `<prefix>/<group>/*`.

    At most three wildcards (simple, pypi, packages): within CloudFront's 15 in progress,
    and each costs one path while purging its whole group.
    """
    paths = sorted({path for change in changes for path in change_paths(change, prefix)})
    if len(paths) <= threshold:
        return paths
    groups: dict[str, list[str]] = defaultdict(list)
    for path in paths:
        groups[path[len(prefix) :].split("/")[1]].append(path)
    for group in sorted(groups, key=lambda g: (-len(groups[g]), g)):
        if sum(len(members) for members in groups.values()) <= threshold:
            break
        groups[group] = [f"{prefix}/{group}/*"]
    return sorted(path for members in groups.values() for path in members)


def batch_id(distribution_id: str, created: datetime, changes: Iterable[CdnChange]) -> str:
    """Derived from the batch itself; stored with it, so every retry of the batch sends the same reference."""
    digest = hashlib.sha256(f"{distribution_id}\n{created.isoformat()}".encode())
    for change in changes:
        digest.update(f"\n{change.id}".encode())
    return digest.hexdigest()[:40]


# -- whether the index has a CDN: decided once, for every writer ------------------------------


def index_distribution(cache: Cache) -> str | None:
    """The index's distribution id as the shared cache records it; None when the index has no CDN.

    "" while a starting process has taken the lease and not yet written the id beside it.
    """
    held, progress = cache.lock_state(INDEX_LOCK)
    if not held:
        return None
    return str((progress or {}).get("distribution_id") or "")


def settle_cdn(cache: Cache, settings: CdnSettings, process: str) -> None:
    """Make this writer record its changes for purging exactly when the index has a CDN.

    A process with cdn.* records the index's distribution in the cache (a lease that lasts until
    `ppc-cdn-report --turn-off` ends it); one naming another distribution refuses to start. A process
    without cdn.* on an index that has a CDN records every change in the outbox all the same, and says
    loudly that only processes with cdn.* flush it.
    """
    if settings.enabled:
        ours = settings.distribution_id
        assert ours is not None
        if not cache.acquire_lock(INDEX_LOCK, ours, INDEX_LEASE):
            raise ConfigError(
                f"setting 'cdn.distribution_id': the index's CDN is distribution {index_distribution(cache) or '?'}"
                f" (recorded in the cache), not {ours}; `ppc-cdn-report INI --turn-off` forgets the index's CDN"
            )
        cache.update_lock(INDEX_LOCK, ours, INDEX_LEASE, {"distribution_id": ours})
        return
    recorded = index_distribution(cache)
    if recorded is not None:
        cache.cdn_outbox = True
        logger.warning(
            "the index has CDN distribution %s (recorded in the cache) but this %s has no cdn.* settings: its"
            " changes are recorded for purging and flushed by the processes that have them; give it the same"
            " cdn.* settings, or turn the index's CDN off with `ppc-cdn-report INI --turn-off`",
            recorded or "?",
            process,
        )


def writer_cache(settings: Settings, process: str, build: Callable[[CacheSettings], Cache] | None = None) -> Cache:
    """The cache of a process that changes the index: it records purges whenever the index has a CDN."""
    from pypicloud_lite.cache import build_cache

    cache = (build or build_cache)(settings.cache)
    try:
        settle_cdn(cache, settings.cdn, process)
    except BaseException:
        cache.close()
        raise
    return cache


def turn_off(cache: Cache) -> str | None:
    """The index has no CDN from now on: writers stop recording changes as they restart. The id it had, if any."""
    recorded = index_distribution(cache)
    if recorded:
        cache.release_lock(INDEX_LOCK, recorded, {"turned_off": datetime.now(UTC).isoformat()})
    return recorded


# -- CloudFront ----------------------------------------------------------------------------


def _client_error_code(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    return str(response.get("Error", {}).get("Code", "")) if isinstance(response, dict) else ""


class CloudFrontPurger:
    """CreateInvalidation for one distribution, within CloudFront's limits on what is in progress."""

    def __init__(self, distribution_id: str, client: Any) -> None:
        self.distribution_id = distribution_id
        self.client = client

    @classmethod
    def from_settings(cls, settings: CdnSettings) -> CloudFrontPurger:
        import boto3

        assert settings.distribution_id is not None
        # CloudFront is a global service, reached through us-east-1.
        client = boto3.client("cloudfront", region_name="us-east-1", endpoint_url=settings.endpoint_url)
        return cls(settings.distribution_id, client)

    def _recent(self, since: datetime) -> list[dict[str, Any]]:
        """Summaries of the invalidations created since then."""
        found: list[dict[str, Any]] = []
        marker = ""
        while True:
            kwargs: dict[str, Any] = {"DistributionId": self.distribution_id, "MaxItems": "100"}
            if marker:
                kwargs["Marker"] = marker
            page = self._call("ListInvalidations", functools.partial(self.client.list_invalidations, **kwargs))
            listing = page.get("InvalidationList", {})
            items = listing.get("Items", [])
            recent = [i for i in items if i["CreateTime"] >= since]
            found.extend(recent)
            # CloudFront lists the newest first: a page with nothing recent ends the search.
            if not listing.get("IsTruncated") or not recent:
                return found
            marker = listing.get("NextMarker", "")

    def _batch(self, invalidation_id: str) -> dict[str, Any]:
        answer = self._call(
            "GetInvalidation",
            lambda: self.client.get_invalidation(DistributionId=self.distribution_id, Id=invalidation_id),
        )
        batch: dict[str, Any] = answer["Invalidation"]["InvalidationBatch"]
        return batch

    def in_progress(self) -> tuple[int, int]:
        """(explicit paths, wildcard paths) of the invalidations still in progress."""
        explicit = wildcards = 0
        for summary in self._recent(datetime.now(UTC) - RECENT):
            if summary.get("Status") != "InProgress":
                continue
            items = self._batch(summary["Id"]).get("Paths", {}).get("Items", [])
            wildcards += sum(1 for path in items if is_wildcard(path))
            explicit += sum(1 for path in items if not is_wildcard(path))
        return explicit, wildcards

    def has_room(self, paths: list[str]) -> bool:
        explicit, wildcards = self.in_progress()
        ours = sum(1 for path in paths if is_wildcard(path))
        return explicit + len(paths) - ours <= CLOUDFRONT_MAX_PATHS and wildcards + ours <= CLOUDFRONT_MAX_WILDCARDS

    def find(self, caller_reference: str, since: datetime) -> str | None:
        """The invalidation an earlier attempt of this batch already created, if any."""
        for summary in self._recent(since - timedelta(minutes=5)):
            if self._batch(summary["Id"]).get("CallerReference") == caller_reference:
                return str(summary["Id"])
        return None

    def invalidate(self, paths: list[str], caller_reference: str) -> str | None:
        """The new invalidation's id, or None when CloudFront has too many in progress (try later)."""
        request = {"Paths": {"Quantity": len(paths), "Items": paths}, "CallerReference": caller_reference}
        try:
            answer = self.client.create_invalidation(DistributionId=self.distribution_id, InvalidationBatch=request)
        except Exception as exc:
            if _client_error_code(exc) == "TooManyInvalidationsInProgress":
                return None
            raise self._error("CreateInvalidation", exc) from exc
        return str(answer["Invalidation"]["Id"])

    def _call(self, what: str, call: Callable[[], Any]) -> Any:
        try:
            return call()
        except Exception as exc:
            raise self._error(what, exc) from exc

    def _error(self, what: str, exc: Exception) -> CdnError:
        code = _client_error_code(exc) or type(exc).__name__
        logger.warning("CloudFront %s failed for distribution %s: %s", what, self.distribution_id, code)
        return CdnError(f"CloudFront {what} failed ({code})")


# -- the flush -----------------------------------------------------------------------------


@dataclass(frozen=True)
class FlushResult:
    """What a flush did: sent, idle (nothing pending), window-open, busy (another flusher) or waiting (limits).

    `failed` is only ever recorded with the flush lease: a failing flush raises.
    """

    state: str
    record: CdnRecord | None = None
    paths: tuple[str, ...] = ()


class CdnFlusher:
    """Claims the window on a change; once it closes, sends everything pending as one invalidation."""

    def __init__(
        self,
        cache: Cache,
        purger: CloudFrontPurger,
        settings: CdnSettings,
        on_window: Callable[[], None] | None = None,
    ) -> None:
        self.cache = cache
        self.purger = purger
        self.settings = settings
        # Called when a change opened a window (the Lambda schedules its flush there).
        self.on_window = on_window
        self.holder = uuid.uuid4().hex

    def attach(self) -> None:
        """Hear about every change this process commits through `cache`."""
        self.cache.subscribe(self._on_applied)

    def _on_applied(self, applied: Applied) -> None:
        if applied.cdn:
            self.note_change()

    def note_change(self) -> None:
        # A holder of its own per claim: the lease is taken only when no window is open.
        if self.cache.acquire_lock(WINDOW_LOCK, uuid.uuid4().hex, float(self.settings.window)):
            logger.info("CDN window of %ss opened", self.settings.window)
            if self.on_window is not None:
                self.on_window()

    def window_open(self) -> bool:
        return self.cache.lock_state(WINDOW_LOCK)[0]

    def pending(self) -> bool:
        # Pending changes first, the open batch second: another flusher may move the changes into its
        # batch between the two reads, and in this order they are then seen in the batch, never missed.
        return bool(self.cache.outbox_pending(1)) or self.cache.outbox_batch() is not None

    def flush(self, force: bool = False) -> FlushResult:
        """One invalidation for everything pending, once the window is closed (or `force`)."""
        if not force and self.window_open():
            return FlushResult("window-open")
        if not self.pending():
            return FlushResult("idle")  # reads only: an idle timer tick writes nothing
        if not self.cache.acquire_lock(FLUSH_LOCK, self.holder, FLUSH_LEASE):
            return FlushResult("busy")
        result = FlushResult("failed")  # what the lease records if the flush raises
        try:
            result = self._flush_claimed()
            return result
        finally:
            self.cache.release_lock(FLUSH_LOCK, self.holder, {"state": result.state})

    def _flush_claimed(self) -> FlushResult:
        batch = self.cache.outbox_batch()
        retried = batch is not None
        if batch is None:
            pending = self.cache.outbox_pending(MAX_BATCH_CHANGES)
            if not pending:
                return FlushResult("idle")
            created = datetime.now(UTC)
            assert self.settings.distribution_id is not None
            batch = CdnBatch(batch_id(self.settings.distribution_id, created, pending), created, tuple(pending))
            self.cache.open_outbox_batch(batch)
        paths = self._paths(batch.changes)
        reference = f"ppc-{batch.id}"
        # A retried batch may have reached CloudFront before its flush failed: never send it twice.
        invalidation_id = self.purger.find(reference, batch.created) if retried else None
        if invalidation_id is None and paths:
            if not self.purger.has_room(paths):
                logger.info("CDN flush waits: too many invalidations in progress (%d paths ready)", len(paths))
                return FlushResult("waiting", paths=tuple(paths))
            invalidation_id = self.purger.invalidate(paths, reference)
            if invalidation_id is None:
                return FlushResult("waiting", paths=tuple(paths))
        record = CdnRecord(
            batch_id=batch.id,
            sent=datetime.now(UTC),
            changes=len(batch.changes),
            paths=len(paths),
            wildcards=sum(1 for path in paths if is_wildcard(path)),
            invalidation_id=invalidation_id or "",
        )
        self.cache.close_outbox_batch(batch, record)
        logger.info(
            "CDN invalidation %s: %d changes, %d paths (%d wildcards)",
            record.invalidation_id,
            record.changes,
            record.paths,
            record.wildcards,
        )
        return FlushResult("sent", record, tuple(paths))

    def _paths(self, changes: tuple[CdnChange, ...]) -> list[str]:
        """The batch's paths, with every per-version JSON page of each changed project.

        Each of them shows the project's `last_serial`, so any change to the project makes all stale.
        The versions are looked up only while the JSON pages stay explicit paths: once there are too
        many, `/pypi/*` covers them.
        """
        prefix, threshold = self.settings.path_prefix, self.settings.wildcard_threshold
        releases: list[CdnChange] = []
        for project in sorted({change.project for change in changes}):
            if f"{prefix}/pypi/*" in invalidation_paths([*changes, *releases], prefix, threshold):
                break
            versions = sorted({file.version for file in self.cache.project_files(project)})
            releases.extend(CdnChange(project, version) for version in versions)
        return invalidation_paths([*changes, *releases], prefix, threshold)


def build_flusher(cache: Cache, settings: CdnSettings, on_window: Callable[[], None] | None = None) -> CdnFlusher:
    flusher = CdnFlusher(cache, CloudFrontPurger.from_settings(settings), settings, on_window)
    flusher.attach()
    return flusher


class FlushTimer:
    """The server's background flush: a daemon thread per process; the leases keep racing processes apart."""

    def __init__(self, flusher: CdnFlusher, interval: float) -> None:
        self.flusher = flusher
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ppc-cdn-flush", daemon=True)

    def start(self) -> FlushTimer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.flusher.flush()
            except Exception:
                # The batch stays in the outbox; the next tick retries it.
                logger.warning("CDN flush failed; retrying on the next tick", exc_info=True)


def start_flush_timer(cache: Cache, settings: CdnSettings) -> FlushTimer:
    # A few ticks per window: the flush follows the window's close closely.
    return FlushTimer(build_flusher(cache, settings), max(1.0, settings.window / 4)).start()


# -- the Lambda's delayed flush ------------------------------------------------------------


def flush_delay(settings: CdnSettings) -> int:
    return min(settings.window + FLUSH_GRACE, MAX_CDN_WINDOW)


class SqsScheduler:
    """Sends the delayed flush message the Lambda consumes at the window's end."""

    def __init__(self, queue_url: str, client: Any, delay: int) -> None:
        self.queue_url = queue_url
        self.client = client
        self.delay = delay

    @classmethod
    def from_settings(cls, settings: CdnSettings, region: str | None) -> SqsScheduler:
        import boto3

        if not settings.queue_url:
            raise CdnError("setting 'cdn.queue_url' is required for the Lambda's CDN flush")
        client = boto3.client("sqs", region_name=region, endpoint_url=settings.endpoint_url)
        return cls(settings.queue_url, client, flush_delay(settings))

    def schedule(self, delay: int | None = None) -> None:
        self.client.send_message(
            QueueUrl=self.queue_url,
            MessageBody=json.dumps(FLUSH_MESSAGE),
            DelaySeconds=self.delay if delay is None else delay,
        )


def is_flush_message(body: Any) -> bool:
    return isinstance(body, dict) and body.get("ppc") == FLUSH_MESSAGE["ppc"]


# -- ppc-cdn-report ------------------------------------------------------------------------


@dataclass(frozen=True)
class CdnReport:
    days: int
    changes: int
    invalidations: int
    paths: int
    wildcards: int
    cost: float
    naive_invalidations: int
    naive_paths: int
    naive_cost: float


def monthly_cost(paths_by_month: Counter[str]) -> float:
    """1,000 free paths a month, then $0.005 a path (a wildcard counts as one)."""
    return sum(max(0, paths - FREE_PATHS_PER_MONTH) * PRICE_PER_PATH for paths in paths_by_month.values())


def build_report(history: Iterable[CdnRecord], days: int, now: datetime | None = None) -> CdnReport:
    """Figures for the records of the last `days` days, against one invalidation of two paths per change."""
    now = now or datetime.now(UTC)
    since = now - timedelta(days=days)
    records = [r for r in history if since <= r.sent <= now]
    ours: Counter[str] = Counter()
    naive: Counter[str] = Counter()
    for record in records:
        month = record.sent.strftime("%Y-%m")
        ours[month] += record.paths
        naive[month] += NAIVE_PATHS_PER_CHANGE * record.changes
    changes = sum(r.changes for r in records)
    return CdnReport(
        days=days,
        changes=changes,
        invalidations=len(records),
        paths=sum(ours.values()),
        wildcards=sum(r.wildcards for r in records),
        cost=monthly_cost(ours),
        naive_invalidations=changes,
        naive_paths=sum(naive.values()),
        naive_cost=monthly_cost(naive),
    )


def format_report(report: CdnReport) -> str:
    saved = report.naive_cost - report.cost
    return "\n".join(
        [
            f"CDN purges over the last {report.days} days",
            f"  changes:        {report.changes}",
            f"  invalidations:  {report.invalidations}",
            f"  paths sent:     {report.paths} ({report.wildcards} wildcards)",
            f"  estimated cost: ${report.cost:.2f}",
            f"naive purge ({NAIVE_PATHS_PER_CHANGE} paths per changed object, one invalidation each)",
            f"  invalidations:  {report.naive_invalidations}",
            f"  paths:          {report.naive_paths}",
            f"  estimated cost: ${report.naive_cost:.2f}",
            f"saved: ${saved:.2f} (first {FREE_PATHS_PER_MONTH} paths a month free, ${PRICE_PER_PATH} a path after)",
        ]
    )
