"""Rendered simple pages kept in each process, valid exactly as long as the shared cache's serials say.

Every change bumps the global serial and stamps the changed project with it in the
same write (see cache/base.py), so:

* `/simple/` rendered at global serial G is current while the global serial is G;
* `/simple/<p>/` rendered at project serial S is current while the project's serial
  is S. Once checked at global serial G it stays current until the global serial
  moves, so a request costs one cheap read (the global serial) in the steady state
  and one more (the project row) only after some change anywhere. When many pages
  are checked at one global serial (a reload's fill moves it every second or so,
  and pip asks for hundreds of project pages meanwhile), they are checked against
  one listing of every project's serial instead, read once per global serial.

With `serial_max_age` above 0 (other processes' changes may show that late anyway), while one
thread renders `/simple/` or reads that listing for a new serial, the other requests get the page
or listing before it rather than wait, when that one shows every change this process committed (a
client's own upload is never missing from what it reads next). With 0, they wait for it.

Bodies are kept identity-encoded and gzipped, both made once per serial.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pypicloud_lite.metrics import PAGE_CACHE
from pypicloud_lite.models import Applied, PackageFile, Project
from pypicloud_lite.service import PackageIndex
from pypicloud_lite.web import simple_pages

# Level 6 (gzip's default) costs ~2 ms for a 200 KB listing and is paid once per serial.
GZIP_LEVEL = 6
# Project pages checked one project row each at one global serial before the rest are checked against the
# listing of every project (one query, a few ms at thousands of projects: the price of a few rows).
CHECKS_BEFORE_LISTING = 8


@dataclass
class Page:
    """One rendered representation; `etag` is unquoted and names the serial it was rendered at."""

    body: bytes
    etag: str
    serial: int
    # The global serial at which this page was last known to be current.
    checked_at: int
    # Headers beside the page's own, e.g. that an upstream's listing is a stale copy.
    extra_headers: tuple[tuple[str, str], ...] = ()
    # An upper bound on how long clients and a CDN keep it (an upstream's listing changes without a purge).
    shared_max_age: int | None = None
    # What the body was made from, when a later serial may make the same bytes (the names `/simple/` lists).
    source: tuple[tuple[str, str], ...] | None = field(default=None, repr=False, compare=False)
    # The body gzipped: made here unless given (the same body as a page before it).
    gzipped: bytes = field(default=b"", repr=False)
    # Responses built from this page, by the request's kind (web/simple_serving.py).
    responses: dict[tuple[str, bool, bool, int, int | None], Any] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        if not self.gzipped:
            self.gzipped = gzip.compress(self.body, GZIP_LEVEL, mtime=0)

    @property
    def size(self) -> int:
        return len(self.body) + len(self.gzipped)


PageKey = tuple[str, ...]
ProjectRenderer = Callable[[Project, list[PackageFile]], bytes]


class PageCache:
    """A bounded LRU of rendered pages, each checked against the shared cache's serials on use."""

    def __init__(self, index: PackageIndex, max_bytes: int, serial_max_age: float = 0.0) -> None:
        self.index = index
        self.max_bytes = max_bytes
        self.serial_max_age = serial_max_age
        self._pages: OrderedDict[PageKey, Page] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self._serial: tuple[float, int] | None = None
        # The latest serial a change this process committed has (the cache tells its listeners): a serial read
        # below it is never reused, however young, and a page older than it is never served while its successor
        # renders (_current_enough).
        self._local_serial = 0
        index.subscribe(self._on_change)
        # The project list behind filtered listings, shared by every caller at one serial.
        self._projects: tuple[int, list[Project]] | None = None
        self._listing = threading.Lock()
        self._rendering = threading.Lock()
        # Each project's serial in that list, and how many pages were checked one row each at a global serial.
        self._serials: tuple[int, dict[str, int]] | None = None
        self._checks: tuple[int, int] = (0, 0)

    # -- serials -----------------------------------------------------------------

    def serial(self) -> int:
        """The global serial: read on every call, or at most every `serial_max_age` seconds.

        A change committed by this process (an upload, a reload, anything) ends the age at once, so
        `twine upload` then `pip install` against one process never sees the page before it.
        """
        if self.serial_max_age <= 0:
            return self.index.serial()
        now = time.monotonic()
        known = self._serial
        if known is not None and known[1] >= self._local_serial and now - known[0] < self.serial_max_age:
            return known[1]
        serial = self.index.serial()
        self._serial = (now, serial)
        return serial

    def _on_change(self, applied: Applied) -> None:
        with self._lock:
            self._local_serial = max(self._local_serial, applied.serial or 0)

    def _current_enough(self, serial: int) -> bool:
        """Whether a page current at global serial `serial` may be served while another thread makes its successor
        (a few ms to tens of ms). Only where other processes' changes may lag anyway (`serial_max_age` above 0:
        they lag by a render more), and only when it shows every change this process committed, so that a
        client that changed something here sees it in what it reads next. With `serial_max_age` at 0, a change
        anywhere is on every page served after it: the requests wait for the new page."""
        return self.serial_max_age > 0 and serial >= self._local_serial

    def projects(self, serial: int) -> list[Project]:
        """Every project, read once per global serial: the requests that arrive meanwhile wait for that read."""
        known = self._projects
        if known is not None and known[0] == serial:
            return known[1]
        with self._listing:
            known = self._projects
            if known is not None and known[0] == serial:
                return known[1]
            projects = (self._listed_again(*known) if known is not None else None) or self.index.list_projects()
            self._projects = (serial, projects)
            return projects

    def _listed_again(self, serial: int, projects: list[Project]) -> list[Project] | None:
        """The listing read at global serial `serial` made current by the projects changed since (a fill's batch
        changes hundreds of the thousands a listing holds), where the cache can say which: None when it cannot,
        or when a project came or went (a new name's place in the order is the database's to say)."""
        changed = self.index.projects_changed_since(serial)
        if changed is None:
            return None
        rows, total = changed
        by_name = {project.name: project for project in projects}
        if len(by_name) != total or any(row.name not in by_name for row in rows):
            return None
        by_name.update((row.name, row) for row in rows)
        return [by_name[project.name] for project in projects]

    def _listed_serial(self, name: str, serial: int) -> tuple[int, int | None] | None:
        """(at, the serial of project `name` in the listing read at global serial `at`), if a listing is cheaper
        than a row: read at `serial` already, or this is the CHECKS_BEFORE_LISTING-th check at it. While another
        thread reads the listing, the one before it, if current enough (_current_enough), else None rather than
        wait for it: a row costs a fraction of a millisecond, the wait for a listing of thousands of projects tens
        of milliseconds under load (every request checking a page would queue behind it after each serial move).
        None: read the row. A project the listing lacks (gone, or a name not normalized) is read as before."""
        known = self._serials
        if known is None or known[0] != serial:
            with self._lock:
                at, count = self._checks
                self._checks = (serial, count + 1 if at == serial else 1)
                wanted = self._checks[1] > CHECKS_BEFORE_LISTING
            listed = self._projects
            if not wanted and (listed is None or listed[0] != serial):
                return None
            if self._listing.locked() and (listed is None or listed[0] != serial):
                if known is not None and self._current_enough(known[0]):
                    return known[0], known[1].get(name)
                return None
            known = (serial, {project.name: project.serial for project in self.projects(serial)})
            self._serials = known
        return known[0], known[1].get(name)

    # -- pages -------------------------------------------------------------------

    def index_page(self, kind: str) -> Page:
        """`/simple/` listing every project."""
        serial = self.serial()
        key = ("index", kind)
        page = self._get(key)
        if page is not None and page.serial == serial:
            return _hit(page)
        # Rendered once per serial, however many requests arrive after a change (a reload's fill moves the
        # serial every second): the others serve the page it replaces meanwhile, when that one is current
        # enough, or else wait for it rather than render it too.
        if not self._rendering.acquire(blocking=False):
            if page is not None and self._current_enough(page.serial):
                return _hit(page)
            self._rendering.acquire()
        try:
            page = self._get(key)
            if page is not None and page.serial == serial:
                return _hit(page)
            return self._put(key, self._render_index(self.projects(serial), serial, kind, str(serial), page))
        finally:
            self._rendering.release()

    def filtered_index_page(self, kind: str, readable: Callable[[list[str]], set[str]]) -> Page:
        """`/simple/` for a caller who may read only some projects; tagged by what it shows, not who asked.

        Grants change without a serial bump, so the readable set is computed on every request.
        """
        serial = self.serial()
        projects = self.projects(serial)
        shown = readable([p.name for p in projects])
        tag = hashlib.sha256(" ".join(sorted(shown)).encode()).hexdigest()[:16]
        key = ("index", kind, tag)
        page = self._get(key)
        if page is not None and page.serial == serial:
            return _hit(page)
        listed = [p for p in projects if p.name in shown]
        return self._put(key, self._render_index(listed, serial, kind, f"{serial}.{tag}", page))

    def project_page(self, name: str, kind: str, namespaces: simple_pages.NamespacesField = None) -> Page:
        """`/simple/<name>/`; NotFound for a project the index does not have.

        The JSON page carries PEP 752's `namespaces`, which change without a serial bump (they live in the
        access backend): the caller passes them, and the page is kept and tagged per value.
        """
        if kind != "json":
            return self.project_document(("project", name, kind), name, simple_pages.project_html)
        if namespaces is None:
            return self.project_document(("project", name, kind), name, simple_pages.project_json)
        tag = hashlib.sha256(json.dumps(namespaces, sort_keys=True).encode()).hexdigest()[:16]

        def render(project: Project, files: list[PackageFile]) -> bytes:
            return simple_pages.project_json(project, files, namespaces)

        return self.project_document(("project", name, kind, tag), name, render, tag=tag)

    def project_document(self, key: PageKey, name: str, render: ProjectRenderer, tag: str = "") -> Page:
        """A page made only of one project and its offered files, e.g. the PyPI JSON `/pypi/<name>/json`.

        `key` names everything else the bytes depend on (the kind of page, the URL it links from), and
        `tag` goes into the ETag when those can change at one serial. NotFound for a project the index
        does not have.
        """
        serial = self.serial()
        page = self._get(key)
        if page is not None and page.checked_at == serial:
            return _hit(page)
        listed = self._listed_serial(name, serial)
        if page is not None and listed is not None and page.serial == listed[1]:
            page.checked_at = max(page.checked_at, listed[0])
            return _hit(page)
        project = self.index.get_project(name)
        if page is not None and page.serial == project.serial:
            page.checked_at = serial
            return _hit(page)
        files = self.index.offered_files(project)
        etag = f"{project.serial}.{tag}" if tag else str(project.serial)
        return self._put(key, Page(render(project, files), etag, project.serial, checked_at=serial))

    def kept(self, key: PageKey, render: Callable[[], Page]) -> Page:
        """A page made of something other than this index's state (an upstream's listing), kept in the same
        bounded LRU: `key` names everything its bytes depend on."""
        page = self._get(key)
        return _hit(page) if page is not None else self._put(key, render())

    @staticmethod
    def _render_index(projects: list[Project], serial: int, kind: str, etag: str, before: Page | None = None) -> Page:
        """`/simple/` at `serial`. The HTML lists names only: where they are the names of the page `before` it (a
        change to files, as every batch of a reload's fill and most uploads are), its bytes are kept, gzipped
        already, and only the serial and ETag are new."""
        if kind == "json":
            return Page(simple_pages.index_json(projects, serial), etag, serial, checked_at=serial)
        names = tuple((project.name, project.display_name) for project in projects)
        if before is not None and before.source == names:
            return Page(before.body, etag, serial, checked_at=serial, source=names, gzipped=before.gzipped)
        return Page(simple_pages.index_html(projects), etag, serial, checked_at=serial, source=names)

    # -- the LRU -----------------------------------------------------------------

    def _get(self, key: PageKey) -> Page | None:
        with self._lock:
            page = self._pages.get(key)
            if page is not None:
                self._pages.move_to_end(key)
            return page

    def _put(self, key: PageKey, page: Page) -> Page:
        PAGE_CACHE.labels("miss").inc()
        with self._lock:
            old = self._pages.pop(key, None)
            if old is not None:
                self._bytes -= old.size
            self._pages[key] = page
            self._bytes += page.size
            while self._bytes > self.max_bytes and len(self._pages) > 1:
                _, evicted = self._pages.popitem(last=False)
                self._bytes -= evicted.size
        return page

    def __len__(self) -> int:
        return len(self._pages)


def _hit(page: Page) -> Page:
    PAGE_CACHE.labels("hit").inc()
    return page
