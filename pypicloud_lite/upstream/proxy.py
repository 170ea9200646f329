"""UpstreamProxy: which names are served from upstream, their pages (TTL, ETag, single-flight), their files.

Single-flight holds within a process (threads share one fetch) and across processes (flight.py: a lease
per fetch in the shared cache; a page's copy in storage, stored_pages.py, for the processes that did not
fetch it; a file's row in the cache).

The origin rule (against dependency confusion): a name is resolved upstream only when this index
does not hold it, never held it (no project state, no deletion record in storage) and it is not
reserved. A project whose files were cached from upstream has a state with `origin = "upstream"`
(written before its first file): its pages keep showing the upstream's listing, and it takes no
local upload until an admin sets its origin back to local (`set_origin`).
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, BinaryIO, Generic, TypeVar, cast

from pypicloud_lite.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    PermissionDenied,
    UpstreamBusy,
    UpstreamUnavailable,
)
from pypicloud_lite.models import ORIGINS, PackageFile, ProjectState
from pypicloud_lite.naming import INTERNAL_PREFIX, normalize
from pypicloud_lite.service import PackageIndex
from pypicloud_lite.spool import SPOOL_PREFIX, SPOOL_SUFFIX
from pypicloud_lite.upstream.client import (
    Fetched,
    Missing,
    NotModified,
    UpstreamError,
    UpstreamFileTooLarge,
    download,
    fetch_bytes,
    fetch_page,
)
from pypicloud_lite.upstream.cooldown import Cooldown
from pypicloud_lite.upstream.credentials import UpstreamCredentials
from pypicloud_lite.upstream.exemptions import Exemptions
from pypicloud_lite.upstream.flight import Outcome, Progress, SharedFlights, age_of, lease_name
from pypicloud_lite.upstream.parse import UpstreamFile, UpstreamPage
from pypicloud_lite.upstream.stored_pages import StoredPage, dump_page, forget_page, read_page, write_page
from pypicloud_lite.upstream_settings import UpstreamIndex, UpstreamSettings

logger = logging.getLogger(__name__)

# After an upstream failure, a stale page is served this long before the upstream is asked again.
RETRY_AFTER_FAILURE = 10.0
MAX_PAGES = 5000
# Metadata files kept in memory, in bytes all together (a wheel's METADATA is a few KB).
MAX_METADATA_BYTES = 16 * 1024 * 1024
# A wheel's METADATA file (PEP 658); the upload path bounds the extracted one alike.
MAX_METADATA_SIZE = 4 * 1024 * 1024

T = TypeVar("T")

# How long a process trusts what it found of a name's origin while no change bumps the serial: an admin's
# origin control writes storage only, and other processes see it within this time.
ORIGIN_MAX_AGE = 30.0

FileFilter = Callable[[str, list[UpstreamFile]], list[UpstreamFile]]

# A cached file's uploader: this prefix and the upstream's name.
UPSTREAM_UPLOADER = "upstream:"


def upstream_of(file: PackageFile) -> str | None:
    """The name of the upstream a stored file was cached from; None for a file uploaded here."""
    uploader = file.uploader or ""
    return uploader.removeprefix(UPSTREAM_UPLOADER) if uploader.startswith(UPSTREAM_UPLOADER) else None


def read_origin(index: PackageIndex, name: str) -> str:
    """What storage and cache say of a name's origin: "local", "upstream", or "none" (never held here)."""
    state = index.state.read_project(name)
    if state is not None:
        return state.origin
    if index.find_project(name) is not None:
        return "local"
    deleted = next(iter(index.storage.list(f"{INTERNAL_PREFIX}deleted/{name}/")), None)
    return "local" if deleted is not None else "none"


def set_origin(index: PackageIndex, name: str, origin: str) -> ProjectState:
    """An admin's origin control, kept in the project's state in storage.

    "local": local uploads are taken and the upstream is never asked for the name again (for a name
    never held here, this blocks it upstream); "upstream": the name is served from upstream, its files
    cached here, and local uploads are refused.
    """
    if origin not in ORIGINS:
        raise InvalidInput(f"Unknown origin {origin!r}: use one of {', '.join(ORIGINS)}.")
    name = normalize(name)
    project = index.find_project(name)

    def change(current: ProjectState | None) -> ProjectState:
        base = current or ProjectState(name, project.display_name if project else name)
        return replace(base, origin=origin)

    state = index.state.update_project(name, change)
    assert state is not None
    return state


@dataclass(frozen=True)
class Listing:
    """An upstream's page for a name as served now: `stale` when the upstream failed and an older copy is shown."""

    page: UpstreamPage
    index: UpstreamIndex
    # Increases with every fetch that changed the page: renderings are cached by it.
    version: int
    stale: bool = False


@dataclass
class _Entry:
    listing: Listing
    etag: str | None
    fetched_at: float
    # The sha256 of the page's copy in storage (None: not stored).
    digest: str | None = None
    failed_at: float | None = None
    failure: str = ""


class _Flight(Generic[T]):
    def __init__(self) -> None:
        self.done = threading.Event()
        self.result: T | None = None
        self.error: BaseException | None = None
        # Requests waiting on this flight's answer instead of asking the upstream themselves.
        self.waiters = 0


class UpstreamProxy:
    def __init__(
        self,
        index: PackageIndex,
        settings: UpstreamSettings,
        serial: Callable[[], int],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.index = index
        self.settings = settings
        self._serial = serial
        self._clock = clock
        self._lock = threading.Lock()
        self._pages: OrderedDict[str, _Entry] = OrderedDict()
        self._flights: dict[str, _Flight[Any]] = {}
        self._origins: dict[str, tuple[int, str, float]] = {}
        self._metadata: OrderedDict[str, bytes] = OrderedDict()
        self._metadata_bytes = 0
        self._missing: dict[str, float] = {}
        self._versions = 0
        # Hooks: steps over an upstream's files before anything shows them (the cooldown), and
        # names that are never resolved upstream (reserved namespaces).
        self.filters: list[FileFilter] = []
        self.is_reserved: Callable[[str], bool] = lambda name: False
        # Upstream files too young or past the freeze are neither shown nor served.
        self.cooldown = Cooldown(settings.min_age, settings.freeze_at)
        # Break-glass: projects an admin lets through the cooldown (judged by the cooldown's clock).
        self.exemptions = Exemptions(index.storage)
        # One fetch of a page or file across every process sharing the cache.
        self.flights = SharedFlights(index.cache, settings.lease_ttl, settings.wait)
        # Upstream passwords and tokens, read from SSM or Secrets Manager when the settings name one.
        self.credentials = UpstreamCredentials(settings.secret_max_age)

    # -- the origin rule ---------------------------------------------------------------------

    def _route(self, name: str) -> str:
        """The name's origin (`read_origin`), remembered per serial for at most ORIGIN_MAX_AGE.

        A quarantined project cached from upstream counts as local: its page is this index's, offering nothing.
        """
        serial, now = self._serial(), self._clock()
        known = self._origins.get(name)
        if known is not None and known[0] == serial and now - known[2] < ORIGIN_MAX_AGE:
            return known[1]
        origin = read_origin(self.index, name)
        if origin == "upstream":
            held = self.index.find_project(name)
            origin = "local" if held is not None and held.status == "quarantined" else origin
        with self._lock:
            if len(self._origins) > MAX_PAGES:
                self._origins.clear()
            self._origins[name] = (serial, origin, now)
        return origin

    def proxied(self, name: str) -> bool:
        """Whether `/simple/<name>/` is the upstream's listing (never for a reserved or local name)."""
        # The origin first (remembered per serial): only a name that would go upstream costs a namespace lookup.
        return self.settings.enabled and self._route(name) != "local" and not self.is_reserved(name)

    def set_origin(self, name: str, origin: str) -> ProjectState:
        """An admin's origin control (the module's `set_origin`), seen at once by this process."""
        state = set_origin(self.index, name, origin)
        with self._lock:
            self._origins.pop(state.name, None)
        return state

    # -- pages ---------------------------------------------------------------------------------

    def listing(self, name: str) -> Listing:
        """The first upstream's page that has `name`; NotFound when none has it; UpstreamUnavailable when
        an upstream failed and no copy is held (a held copy is served, marked stale)."""
        entry = self._pages.get(name)
        now = self._clock()
        missing = self._missing.get(name)
        if missing is not None and now - missing < self.settings.page_ttl:
            raise NotFound(f"No project named {name!r} in this index or its upstream indexes.")
        if entry is not None:
            if entry.failed_at is not None and now - entry.failed_at < RETRY_AFTER_FAILURE:
                return replace(entry.listing, stale=True)
            if entry.failed_at is None and now - entry.fetched_at < self.settings.page_ttl:
                return entry.listing
        return self._one_fetch(
            name,
            lambda progress: self._settled_page(name, progress),
            lambda progress: self._lead_refresh(name, progress),
            lambda: self._gave_up_page(name),
        )

    def _one_fetch(
        self,
        key: str,
        settled: Callable[[Progress | None], T | None],
        work: Callable[[Progress | None], Outcome[T]],
        gave_up: Callable[[], T],
    ) -> T:
        """One fetch of `key` for every thread (`_single_flight`) and every process (`SharedFlights.run`)."""
        return self._single_flight(key, lambda: self.flights.run(lease_name(key), settled, work, gave_up), gave_up)

    def _single_flight(self, key: str, work: Callable[[], T], gave_up: Callable[[], T]) -> T:
        """`work()` once for every caller that asks for `key` while it runs: they share its answer or error,
        waiting for it at most `upstream.wait` seconds (then `gave_up()` answers them)."""
        with self._lock:
            flight = self._flights.get(key)
            leader = flight is None
            if flight is None:
                flight = self._flights[key] = _Flight[Any]()
            else:
                flight.waiters += 1
        if not leader:
            try:
                if not flight.done.wait(self.settings.wait):
                    return gave_up()
            finally:
                with self._lock:
                    flight.waiters -= 1
            if flight.error is not None:
                raise flight.error
            return cast(T, flight.result)
        try:
            result = work()
            flight.result = result
            return result
        except BaseException as exc:
            flight.error = exc
            raise
        finally:
            with self._lock:
                del self._flights[key]
            flight.done.set()

    def waiting(self, key: str) -> int:
        """How many requests of this process wait on a fetch of `key` (a name, or `file:<filename>`) now in flight,
        here or in another process."""
        with self._lock:
            flight = self._flights.get(key)
            here = flight.waiters if flight is not None else 0
        return here + self.flights.waiting(lease_name(key))

    def _busy(self, what: str) -> str:
        return (
            f"Another request has been fetching {what} from upstream for {self.settings.wait:g} s; try again shortly."
        )

    def _gave_up_page(self, name: str) -> Listing:
        # The copy held is served stale, without waiting again, for RETRY_AFTER_FAILURE.
        return self._held_copy(name, UpstreamBusy(self._busy(f"the page of {name!r}")), failed_at=self._clock())

    def _settled_page(self, name: str, progress: Progress | None) -> Listing | None:
        """What the last fetch of the page (in any process) left, while it is recent enough to serve."""
        now, ttl = self.flights.wall(), self.settings.page_ttl
        fetched = age_of(progress, "page", now)
        if fetched is not None and fetched < ttl:
            assert progress is not None
            return self._adopt(name, str(progress.get("digest")), fetched)
        missing = age_of(progress, "missing", now)
        if missing is not None and missing < ttl:
            with self._lock:
                self._pages.pop(name, None)
            self._remember_missing(name, self._clock() - missing)
            raise NotFound(f"No project named {name!r} in this index or its upstream indexes.")
        failed = age_of(progress, "failed", now)
        if failed is not None and failed < RETRY_AFTER_FAILURE:
            assert progress is not None
            error = UpstreamUnavailable(str(progress.get("message")))
            return self._held_copy(name, error, failed_at=self._clock() - failed)
        return None

    def _adopt(self, name: str, digest: str, age: float) -> Listing | None:
        """The page another process fetched `age` seconds ago: this process's copy if it is the same, else storage's."""
        entry = self._pages.get(name)
        if entry is None or entry.digest != digest:
            entry = self._load_stored(name)
            if entry is None or entry.digest != digest:
                return None  # gone or replaced meanwhile: this process fetches it
        entry.fetched_at, entry.failed_at = self._clock() - age, None
        return entry.listing

    def _load_stored(self, name: str) -> _Entry | None:
        stored = read_page(self.index.storage, name, self.settings.indexes, 2 * self.settings.max_page_size)
        if stored is None:
            return None
        self._keep(name, stored, fetched_at=self._clock() - self.settings.page_ttl)
        return self._pages.get(name)

    def _held_copy(self, name: str, error: UpstreamUnavailable, failed_at: float | None = None) -> Listing:
        """The page held here or in storage, marked stale; `error` when there is none.

        `failed_at`: when a fetch failed, so this process serves the copy without asking until RETRY_AFTER_FAILURE.
        """
        entry = self._pages.get(name) or self._load_stored(name)
        if entry is None:
            raise error
        if failed_at is not None:
            entry.failed_at, entry.failure = failed_at, error.message
        return replace(entry.listing, stale=True)

    def _lead_refresh(self, name: str, seen: Progress | None) -> Outcome[Listing]:
        """Fetch the page holding its lease; the outcome says the others what came of it."""
        entry = self._pages.get(name)
        digest = seen.get("digest") if seen is not None else None
        if entry is None or (digest is not None and entry.digest != digest):
            # Another process's copy: its ETag makes the fetch a revalidation, and it is served if the upstream fails.
            self._load_stored(name)
        try:
            listing = self._refresh(name)
        except NotFound as exc:
            return exc, {"outcome": "missing"}
        except UpstreamUnavailable as exc:
            return exc, {"outcome": "failed", "message": exc.message}
        entry = self._pages.get(name)
        if listing.stale and entry is not None:
            return listing, {"outcome": "failed", "message": entry.failure}
        if entry is None or entry.digest is None:
            return listing, {"outcome": "unshared"}
        return listing, {"outcome": "page", "digest": entry.digest}

    def _refresh(self, name: str) -> Listing:
        entry = self._pages.get(name)
        failures = []
        for upstream in self.settings.indexes:
            if upstream.mode == "off":
                continue
            etag = entry.etag if entry is not None and entry.listing.index == upstream else None
            try:
                answer = fetch_page(upstream, name, etag, self.settings.max_page_size, credentials=self.credentials)
            except UpstreamError as exc:
                logger.warning("upstream page of %s: %s", name, exc.message)
                failures.append(exc.message)
                continue
            if isinstance(answer, Missing):
                continue
            if isinstance(answer, NotModified):
                assert entry is not None
                entry.fetched_at, entry.failed_at = self._clock(), None
                return entry.listing
            assert isinstance(answer, Fetched)
            return self._fetched(name, answer, upstream)
        if failures:
            message = f"No upstream index could be asked for {name!r} ({'; '.join(failures)}); try again shortly."
            if entry is not None:
                entry.failed_at, entry.failure = self._clock(), message
                return replace(entry.listing, stale=True)
            raise UpstreamUnavailable(message)
        with self._lock:
            self._pages.pop(name, None)
        if entry is not None:
            forget_page(self.index.storage, name)  # never served stale again: the upstreams no longer have it
        # Every upstream said 404: remembered as long as a page would be (names that exist nowhere
        # are asked for again and again by resolvers trying extras and typos).
        self._remember_missing(name, self._clock())
        raise NotFound(f"No project named {name!r} in this index or its upstream indexes.")

    def _remember_missing(self, name: str, since: float) -> None:
        with self._lock:
            if len(self._missing) > MAX_PAGES:
                self._missing.clear()
            self._missing[name] = since

    def _fetched(self, name: str, answer: Fetched, upstream: UpstreamIndex) -> Listing:
        """A page the upstream sent: kept here, and in storage for the other processes (unless it is the same)."""
        data = dump_page(answer.page, upstream, answer.etag)
        digest = hashlib.sha256(data).hexdigest()
        entry = self._pages.get(name)
        if entry is not None and entry.digest == digest:
            # The same page (an upstream without ETags sends it whole): stored already, and rendered.
            entry.fetched_at, entry.failed_at = self._clock(), None
            return entry.listing
        shared = len(data) <= 2 * self.settings.max_page_size and write_page(self.index.storage, name, data)
        stored = StoredPage(answer.page, upstream, answer.etag, digest if shared else None)
        return self._keep(name, stored, fetched_at=self._clock())

    def _keep(self, name: str, stored: StoredPage, fetched_at: float) -> Listing:
        with self._lock:
            self._versions += 1
            listing = Listing(stored.page, stored.index, self._versions)
            self._pages[name] = _Entry(listing, stored.etag, fetched_at, stored.digest)
            self._missing.pop(name, None)
            self._pages.move_to_end(name)
            while len(self._pages) > MAX_PAGES:
                self._pages.popitem(last=False)
        return listing

    def visible_files(self, listing: Listing) -> list[UpstreamFile]:
        """The listing's files after the cooldown and every filter; what pages and file URLs offer.

        Rendered pages are kept per listing version (web/upstream_pages.py) and the cooldown's time bucket:
        another filter whose answer changes with time alone must also bound how long a page is kept.
        """
        files = self.cooldown_for(listing.page.name).visible(list(listing.page.files))
        for keep in self.filters:
            files = keep(listing.page.name, files)
        return files

    def cooldown_for(self, name: str) -> Cooldown:
        """The cooldown that holds back the project's upstream files: none while an admin's exception covers it."""
        if not self.cooldown.active:
            return self.cooldown
        self.exemptions.clock = self.cooldown.clock
        return Cooldown() if self.exemptions.active(name) is not None else self.cooldown

    def check_cached(self, file: PackageFile) -> None:
        """PermissionDenied when the cooldown holds back a file cached from upstream, by its upstream upload time.

        A file cached under an exception that was revoked since, or before min_age grew or a freeze was set,
        stays in storage: it is offered again only when the cooldown would offer it upstream.
        """
        refusal = self.cached_refusal(file)
        if refusal is not None:
            raise PermissionDenied(refusal)

    def cached_refusal(self, file: PackageFile) -> str | None:
        """Why the cooldown holds back a stored file now (None for this index's own uploads)."""
        if upstream_of(file) is None:
            return None
        return self.cooldown_for(file.project).refusal(file.filename, file.upload_time)

    # -- files ---------------------------------------------------------------------------------

    def find_file(self, name: str, filename: str) -> tuple[UpstreamIndex, UpstreamFile]:
        """A listed file as the pages offer it; PermissionDenied (saying until when) when the cooldown holds it back."""
        listing = self.listing(name)
        for file in self.visible_files(listing):
            if file.filename == filename:
                return listing.index, file
        for file in listing.page.files:
            refusal = (
                self.cooldown_for(name).refusal(file.filename, file.upload_time) if file.filename == filename else None
            )
            if refusal is not None:
                raise PermissionDenied(refusal)
        raise NotFound(f"No file named {filename!r} in project {name!r} upstream.")

    def cache_file(self, name: str, filename: str) -> PackageFile:
        """Fetch an upstream file once into storage, through the upload path, and answer its row.

        Concurrent requests for one file, in any process, share one download (its lease): the others wait
        for the row it writes, or answer 503 after `upstream.wait` seconds. Were two downloads to race anyway
        (a lease lapsed), the upload path's own lease and its identical-file rule end them in the same row.
        """
        key = f"file:{filename}"
        busy = self._busy(repr(filename))

        def gave_up() -> PackageFile:
            raise UpstreamBusy(busy)

        return self._one_fetch(
            key,
            lambda progress: self._cached_file(filename, progress),
            lambda _progress: self._lead_cache_file(name, filename),
            gave_up,
        )

    def _cached_file(self, filename: str, progress: Progress | None) -> PackageFile | None:
        """The row another fetch stored; its error while it is recent (the upstream is not asked again at once)."""
        row = self.index.cache.get_file(filename)
        if row is not None:
            return row
        failed = age_of(progress, "failed", self.flights.wall())
        if failed is not None and failed < RETRY_AFTER_FAILURE:
            assert progress is not None
            raise UpstreamUnavailable(str(progress.get("message")))
        return None

    def _lead_cache_file(self, name: str, filename: str) -> Outcome[PackageFile]:
        # Stored by a fetch that ended between this process's look and its taking the lease.
        row = self.index.cache.get_file(filename)
        if row is not None:
            return row, {"outcome": "cached"}
        try:
            return self._cache_file(name, filename), {"outcome": "cached"}
        except UpstreamUnavailable as exc:
            return exc, {"outcome": "failed", "message": exc.message}

    def _cache_file(self, name: str, filename: str) -> PackageFile:
        upstream, file = self.find_file(name, filename)
        if file.sha256 is None:
            raise UpstreamUnavailable(f"Upstream {upstream.name} gives no sha256 for {filename!r}: it is not cached.")
        self._mark_upstream(name)
        settings = self.index.upload_settings
        if settings.spool_dir is not None:
            settings.spool_dir.mkdir(parents=True, exist_ok=True)
        # Named as upload spools are, so a killed process's leftovers are removed with theirs.
        with tempfile.NamedTemporaryFile(dir=settings.spool_dir, prefix=SPOOL_PREFIX, suffix=SPOOL_SUFFIX) as tmp:
            spooled = cast(BinaryIO, tmp)
            try:
                download(
                    upstream,
                    file.url,
                    spooled,
                    settings.max_size,
                    file.sha256,
                    credentials=self.credentials,
                    expected_size=file.size,
                )
            except UpstreamFileTooLarge as exc:
                raise UpstreamUnavailable(f"{exc.message}; raise upload.max_size to serve it.") from exc
            except UpstreamError as exc:
                raise UpstreamUnavailable(f"{exc.message}; try again shortly.") from exc
            spooled.seek(0)
            result = self.index.import_file(
                filename,
                spooled,
                upload_time=file.upload_time,
                uploader=f"{UPSTREAM_UPLOADER}{upstream.name}",
                display_name=None,
                summary=None,
                origin="upstream",
            )
        logger.info("cached %s from upstream %s", filename, upstream.name)
        return result.file

    def _mark_upstream(self, name: str) -> None:
        """Record the origin before the first file lands, so the name never looks local."""

        def change(current: ProjectState | None) -> ProjectState:
            if current is None:
                return ProjectState(name, name, origin="upstream")
            if current.origin != "upstream":
                raise Conflict(f"Project {name!r} is held in this index: it is not cached from upstream.")
            return current

        self.index.state.update_project(name, change)
        with self._lock:
            self._origins.pop(name, None)

    def metadata(self, name: str, filename: str) -> bytes:
        """The upstream's PEP 658 metadata of a listed file, checked against its hash."""
        upstream, file = self.find_file(name, filename)
        if not file.has_metadata:
            raise NotFound(f"No core metadata is published for {filename!r}.")
        key = f"{upstream.name}/{file.url}"
        with self._lock:
            known = self._metadata.get(key)
        if known is not None:
            return known
        try:
            body = fetch_bytes(
                upstream, file.url + ".metadata", MAX_METADATA_SIZE, file.metadata_sha256, credentials=self.credentials
            )
        except UpstreamError as exc:
            raise UpstreamUnavailable(f"{exc.message}; try again shortly.") from exc
        with self._lock:
            if key not in self._metadata:
                self._metadata[key] = body
                self._metadata_bytes += len(body)
            while self._metadata_bytes > MAX_METADATA_BYTES and self._metadata:
                self._metadata_bytes -= len(self._metadata.popitem(last=False)[1])
        return body
