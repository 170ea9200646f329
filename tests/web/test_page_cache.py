"""The simple-page cache: every change is on the next page, 304 only when unchanged, one cache read per request."""

from __future__ import annotations

import gzip
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import webtest
from webob import Request, Response

from pypicloud_lite.cache.base import Cache
from pypicloud_lite.service import PackageIndex
from pypicloud_lite.storage.local import LocalStorage
from pypicloud_lite.web import page_cache
from pypicloud_lite.web.page_cache import PageCache
from pypicloud_lite.web.simple_serving import SimpleFastPath
from tests.support.apiutil import ADMIN, PASSWORD, call, creds, memo_hash, running, sql_settings, upload_wheel
from tests.support.common import UPLOADER, basic_auth, services
from tests.support.distbuilder import build_sdist, build_wheel
from tests.support.legacy import HTML, HTML_V1, JSON_V1, anchors, upload_dist
from tests.support.reload import key_of, put_raw
from tests.support.webapp import Uploaded, upload_foo_bar

PROJECT = "foo-bar"
PAGES = ("/simple/", f"/simple/{PROJECT}/")
# Accept header sent -> the kind of page rendered (None: no header, HTML).
KINDS = {None: "html", JSON_V1: "json"}
VIEWS = [(path, accept) for path in PAGES for accept in KINDS]
YANK_REASON = 'broken <build> & "bad"'
STATUS_REASON = "moved to foo-baz"


def get(
    testapp: webtest.TestApp,
    path: str,
    accept: str | None,
    headers: dict[str, str] | None = None,
    method: str = "GET",
) -> Response:
    """The response as sent: through webob directly, since webtest would decode a gzip body before the test saw it."""
    sent = {**({"Accept": accept} if accept else {}), **(headers or {})}
    response: Response = Request.blank(path, method=method, headers=sent).get_response(testapp.app)
    return response


def cold_body(index: PackageIndex, path: str, accept: str | None) -> bytes:
    """What a process that never served this page renders for it now (a fresh page cache of its own)."""
    cold = PageCache(index, 1 << 30)
    kind = KINDS[accept]
    if path == "/simple/":
        return cold.index_page(kind).body
    return cold.project_page(path.split("/")[2], kind).body


def identity_etag(etag: str) -> str:
    return etag.removesuffix('-gzip"').removesuffix('"') + '"'


# -- the changes ---------------------------------------------------------------------


@dataclass(frozen=True)
class World:
    testapp: webtest.TestApp
    auth: dict[str, str]
    dist_dir: Path
    index: PackageIndex
    storage_dir: Path
    uploaded: Uploaded


def _api(world: World, method: str, url: str, json: Any = None) -> None:
    resp = call(world.testapp, method, url, world.auth, json=json)
    assert resp.status_int == 200, resp.body


def _upload_release(world: World) -> None:
    path = build_wheel(world.dist_dir, "Foo.Bar", "2.0")
    assert upload_dist(world.testapp, world.auth, path, "Foo.Bar", "2.0").status_int == 200


def _upload_new_project(world: World) -> None:
    path = build_sdist(world.dist_dir, "Other", "1.0")
    assert upload_dist(world.testapp, world.auth, path, "Other", "1.0").status_int == 200


def _delete_file(world: World) -> None:
    _api(world, "DELETE", f"/api/projects/{PROJECT}/files/{world.uploaded.sdist.name}")


def _delete_version(world: World) -> None:
    _api(world, "DELETE", f"/api/projects/{PROJECT}/versions/1.0")


def _yank(world: World) -> None:
    _api(world, "POST", f"/api/projects/{PROJECT}/versions/1.0/yank", json={"reason": YANK_REASON})


def _unyank(world: World) -> None:
    _api(world, "DELETE", f"/api/projects/{PROJECT}/versions/1.0/yank")


def _status(world: World) -> None:
    _api(world, "PUT", f"/api/projects/{PROJECT}/status", json={"status": "deprecated", "reason": STATUS_REASON})


def _put_release_into_storage(world: World) -> Path:
    path = build_wheel(world.dist_dir, "Foo.Bar", "3.0")
    put_raw(world.index.storage, key_of(path), path.read_bytes())
    return path


def _reload_added_over_http(world: World) -> None:
    _put_release_into_storage(world)
    resp = world.testapp.post("/admin/reload?wait=1", headers=world.auth)
    assert resp.json["added"] == 1, resp.json


def _reload_removed_over_http(world: World) -> None:
    (world.storage_dir / key_of(world.uploaded.sdist)).unlink()
    resp = world.testapp.post("/admin/reload?wait=1", headers=world.auth)
    assert resp.json["removed"] == 1, resp.json


def _reload_through_the_service(world: World) -> None:
    _put_release_into_storage(world)
    world.index.begin_reload().execute()


def _nothing(world: World) -> None:
    pass


@dataclass(frozen=True)
class Change:
    """A change to the index, made after `before` (made before the pages are first served)."""

    make: Callable[[World], None]
    # What the project page must show afterwards (checked on the JSON page).
    check: Callable[[World, dict[str, Any]], None]
    before: Callable[[World], None] = _nothing
    # Only a new or removed project changes the bytes of the HTML listing (it lists names alone).
    lists_new_project: bool = False


def _files(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["filename"]: f for f in doc["files"]}


def _has_release(version: str) -> Callable[[World, dict[str, Any]], None]:
    def check(world: World, doc: dict[str, Any]) -> None:
        assert version in doc["versions"], doc

    return check


def _lacks_sdist(world: World, doc: dict[str, Any]) -> None:
    assert set(_files(doc)) == {world.uploaded.wheel.name}


def _only_release_2(world: World, doc: dict[str, Any]) -> None:
    # Release 2.0 was uploaded first: a project whose last file goes is a 404, no page to compare.
    assert doc["versions"] == ["2.0"] and {f["filename"].split("-")[1] for f in doc["files"]} == {"2.0"}


def _yanked(world: World, doc: dict[str, Any]) -> None:
    assert {f["yanked"] for f in doc["files"]} == {YANK_REASON}


def _unyanked(world: World, doc: dict[str, Any]) -> None:
    assert {f["yanked"] for f in doc["files"]} == {False}


def _deprecated(world: World, doc: dict[str, Any]) -> None:
    assert doc["project-status"] == {"status": "deprecated", "reason": STATUS_REASON}


def _unchanged(world: World, doc: dict[str, Any]) -> None:
    assert set(_files(doc)) == {world.uploaded.wheel.name, world.uploaded.sdist.name}


CHANGES = {
    "upload": Change(_upload_release, _has_release("2.0")),
    "upload-new-project": Change(_upload_new_project, _unchanged, lists_new_project=True),
    "delete-file": Change(_delete_file, _lacks_sdist),
    "delete-version": Change(_delete_version, _only_release_2, before=_upload_release),
    "yank": Change(_yank, _yanked),
    "unyank": Change(_unyank, _unyanked, before=_yank),
    "status": Change(_status, _deprecated),
    "reload-added": Change(_reload_added_over_http, _has_release("3.0")),
    "reload-removed": Change(_reload_removed_over_http, _lacks_sdist),
    "reload-service": Change(_reload_through_the_service, _has_release("3.0")),
}


@pytest.fixture
def world(
    testapp: webtest.TestApp, auth: dict[str, str], dist_dir: Path, index: PackageIndex, uploaded: Uploaded
) -> World:
    storage_dir = services(testapp.app).settings.storage.dir
    assert storage_dir is not None
    return World(testapp, auth, dist_dir, index, storage_dir, uploaded)


@pytest.mark.parametrize("name", list(CHANGES))
def test_every_change_is_on_the_next_page(world: World, name: str) -> None:
    change = CHANGES[name]
    change.before(world)
    app = world.testapp
    gzipped = {"Accept-Encoding": "gzip"}
    # Warm every representation: identity and gzip, HTML and JSON, listing and project page.
    before = {view: get(app, *view) for view in VIEWS}
    before_gzip = {view: get(app, *view, headers=gzipped) for view in VIEWS}
    for view, old in before.items():
        assert old.status_int == 200, (view, old.body)
        assert get(app, *view, headers={"If-None-Match": old.headers["ETag"]}).status_int == 304, view
        assert (
            get(app, *view, headers={**gzipped, "If-None-Match": before_gzip[view].headers["ETag"]}).status_int == 304
        )

    change.make(world)

    for view, old in before.items():
        path, accept = view
        new = get(app, path, accept)
        assert new.status_int == 200, (view, new.body)
        assert new.body == cold_body(world.index, path, accept), view
        if change.lists_new_project and path != "/simple/":
            # Another project's upload leaves this page, and its validators, as they were.
            assert (new.body, new.headers["ETag"]) == (old.body, old.headers["ETag"]), view
            assert get(app, path, accept, headers={"If-None-Match": old.headers["ETag"]}).status_int == 304
            continue
        assert new.headers["ETag"] != old.headers["ETag"], view
        if path != "/simple/" or accept == JSON_V1 or change.lists_new_project:
            assert new.body != old.body, view
        # The gzip representation moved with it, and still decodes to the identity bytes.
        new_gzip = get(app, path, accept, headers=gzipped)
        assert new_gzip.headers["Content-Encoding"] == "gzip"
        assert gzip.decompress(new_gzip.body) == new.body, view
        assert new_gzip.headers["ETag"] != before_gzip[view].headers["ETag"], view
        # Validators from before the change get the new page; current ones (either encoding, weak too) get 304.
        for stale in (old.headers["ETag"], before_gzip[view].headers["ETag"], f"W/{old.headers['ETag']}"):
            again = get(app, path, accept, headers={"If-None-Match": stale})
            assert again.status_int == 200 and again.body == new.body, (view, stale)
        for current in (new.headers["ETag"], new_gzip.headers["ETag"], f"W/{new_gzip.headers['ETag']}"):
            for headers in ({}, gzipped):
                again = get(app, path, accept, headers={**headers, "If-None-Match": current})
                assert again.status_int == 304 and again.body == b"", (view, current, headers)
    change.check(world, get(app, f"/simple/{PROJECT}/", JSON_V1).json)
    if change.lists_new_project:
        assert "Other" in anchors(get(app, "/simple/", None).text)


@pytest.mark.parametrize("name", list(CHANGES))
def test_every_change_is_on_the_next_pypi_json_page(world: World, raw_settings: dict[str, Any], name: str) -> None:
    change = CHANGES[name]
    change.before(world)
    app, path = world.testapp, f"/pypi/{PROJECT}/json"
    old = app.get(path)
    assert app.get(path, headers={"If-None-Match": old.headers["ETag"]}, status=304).body == b""

    change.make(world)

    new = app.get(path)
    # What a process that never served the page renders for it now.
    with running(raw_settings) as cold:
        assert new.body == cold.get(path).body
    if change.lists_new_project:
        assert (new.body, new.headers["ETag"]) == (old.body, old.headers["ETag"])
        return
    assert new.body != old.body and new.headers["ETag"] != old.headers["ETag"]
    assert new.json["last_serial"] == world.index.get_project(PROJECT).serial
    app.get(path, headers={"If-None-Match": old.headers["ETag"]}, status=200)
    app.get(path, headers={"If-None-Match": new.headers["ETag"]}, status=304)


def test_pypi_json_links_are_made_for_the_address_asked(world: World, raw_settings: dict[str, Any]) -> None:
    path = f"/pypi/{PROJECT}/json"
    with running({**raw_settings, "web.allowed_hosts": "index.example other.example:8080"}) as app:
        for host in ("index.example", "other.example:8080", "index.example"):
            doc = app.get(path, extra_environ={"HTTP_HOST": host}).json
            assert all(f["url"].startswith(f"http://{host}/packages/") for f in doc["urls"]), (host, doc["urls"])
            assert doc["info"]["project_url"] == f"http://{host}/simple/{PROJECT}/"


def test_a_warm_pypi_json_page_reads_no_files(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    path = f"/pypi/{PROJECT}/json"
    first = world.testapp.get(path)
    reads: list[str] = []
    real = world.index.offered_files
    monkeypatch.setattr(world.index, "offered_files", lambda project: reads.append(project.name) or real(project))
    assert world.testapp.get(path).body == first.body
    assert reads == []


@pytest.mark.parametrize(("path", "accept"), VIEWS)
def test_304_only_while_unchanged(world: World, path: str, accept: str | None) -> None:
    app = world.testapp
    first = get(app, path, accept)
    etag = first.headers["ETag"]
    assert etag.endswith(f'-{HTML.split(";")[0] if accept is None else accept}"')
    gzip_etag = get(app, path, accept, headers={"Accept-Encoding": "gzip"}).headers["ETag"]
    assert gzip_etag == etag.removesuffix('"') + '-gzip"'
    assert identity_etag(gzip_etag) == etag
    for _ in range(3):
        assert get(app, path, accept, headers={"If-None-Match": etag}).status_int == 304
    _yank(world)
    assert get(app, path, accept, headers={"If-None-Match": etag}).status_int == 200
    assert get(app, path, accept, headers={"If-None-Match": gzip_etag}).status_int == 200
    # Unyanking restores the same files, but at a new serial: the old validator stays stale.
    _unyank(world)
    again = get(app, path, accept, headers={"If-None-Match": etag})
    assert again.status_int == 200
    assert again.headers["ETag"] != etag


# -- encodings, HEAD, and the two paths to a page ------------------------------------


@pytest.mark.parametrize(("path", "accept"), VIEWS)
def test_gzip_is_the_identity_body_compressed(world: World, path: str, accept: str | None) -> None:
    app = world.testapp
    plain = get(app, path, accept)
    assert "Content-Encoding" not in plain.headers
    assert "accept-encoding" in plain.headers["Vary"].lower()
    for refused in ("gzip;q=0", "identity", "br", "gzip; q=0, deflate"):
        resp = get(app, path, accept, headers={"Accept-Encoding": refused})
        assert "Content-Encoding" not in resp.headers, refused
        assert resp.body == plain.body, refused
        assert resp.headers["ETag"] == plain.headers["ETag"], refused
    for wanted in ("gzip", "gzip, deflate, br", "br;q=1.0, gzip;q=0.8, *;q=0.1", "*"):
        resp = get(app, path, accept, headers={"Accept-Encoding": wanted})
        assert resp.headers["Content-Encoding"] == "gzip", wanted
        assert resp.headers["Content-Length"] == str(len(resp.body))
        assert resp.body != plain.body
        assert gzip.decompress(resp.body) == plain.body, wanted
        assert resp.headers["Content-Type"] == plain.headers["Content-Type"]
        assert resp.headers["ETag"] != plain.headers["ETag"]


@pytest.mark.parametrize(("path", "accept"), VIEWS)
@pytest.mark.parametrize("encoding", [None, "gzip"])
def test_head_has_the_headers_of_get(world: World, path: str, accept: str | None, encoding: str | None) -> None:
    headers = {"Accept-Encoding": encoding} if encoding else {}
    full = get(world.testapp, path, accept, headers)
    head = get(world.testapp, path, accept, headers, method="HEAD")
    assert head.status_int == 200
    assert head.body == b""
    assert head.headerlist == full.headerlist
    assert int(head.headers["Content-Length"]) == len(full.body) > 0


class Router:
    """The Pyramid router behind the fast path, counting the requests it answers."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.calls = 0

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        self.calls += 1
        return self.app(environ, start_response)


@pytest.fixture
def router(world: World, monkeypatch: pytest.MonkeyPatch) -> Router:
    fast: SimpleFastPath = world.testapp.app.app  # inside PublicAddress
    counting = Router(fast.app)
    monkeypatch.setattr(fast, "app", counting)
    return counting


@pytest.mark.parametrize("path", PAGES)
@pytest.mark.parametrize("accept", [None, JSON_V1])
@pytest.mark.parametrize("encoding", [None, "gzip"])
@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize("conditional", [False, True])
def test_fast_path_and_router_answer_alike(
    world: World,
    router: Router,
    path: str,
    accept: str | None,
    encoding: str | None,
    method: str,
    conditional: bool,
) -> None:
    fast_app = world.testapp
    routed_app = webtest.TestApp(router.app)
    headers = {**({"Accept": accept} if accept else {}), **({"Accept-Encoding": encoding} if encoding else {})}
    if conditional:
        headers["If-None-Match"] = get(fast_app, path, accept, headers).headers["ETag"]
    router.calls = 0
    fast = get(fast_app, path, None, headers, method)
    assert router.calls == 0, "the fast path handed the request to the router"
    routed = get(routed_app, path, None, headers, method)
    assert fast.status == routed.status == ("304 Not Modified" if conditional else "200 OK")
    # The same headers (webob moves Content-Length to the end: order is not meaningful).
    assert sorted(fast.headerlist) == sorted(routed.headerlist)
    assert fast.body == routed.body
    # The same bytes under a URL only the router serves (a query string).
    fmt = "json" if accept == JSON_V1 else "html"
    router.calls = 0
    query = get(fast_app, f"{path}?format={fmt}", None, headers, method)
    assert router.calls == 1
    assert query.body == fast.body
    assert query.status == fast.status


# -- what a request costs ----------------------------------------------------------


class CacheCalls:
    """Counts every call to the shared cache's methods (the Cache interface) by name."""

    def __init__(self, cache: Cache, monkeypatch: pytest.MonkeyPatch) -> None:
        self.counts: Counter[str] = Counter()
        for name in dir(Cache):  # every role the backend implements (cache/base.py)
            if callable(getattr(Cache, name)) and not name.startswith("_"):
                monkeypatch.setattr(cache, name, self._counting(name, getattr(cache, name)))

    def _counting(self, name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        def counted(*args: Any, **kwargs: Any) -> Any:
            self.counts[name] += 1
            return method(*args, **kwargs)

        return counted

    def take(self) -> dict[str, int]:
        found = dict(self.counts)
        self.counts.clear()
        return found


class Renders:
    """Counts the reads that rendering a page needs (PackageIndex.offered_files / list_projects), by project."""

    def __init__(self, index: PackageIndex, monkeypatch: pytest.MonkeyPatch) -> None:
        self.files: Counter[str] = Counter()
        self.listings = 0
        offered, listing = index.offered_files, index.list_projects

        def offered_files(project: Any) -> Any:
            self.files[project.name] += 1
            return offered(project)

        def list_projects() -> Any:
            self.listings += 1
            return listing()

        monkeypatch.setattr(index, "offered_files", offered_files)
        monkeypatch.setattr(index, "list_projects", list_projects)


def _two_projects(world: World) -> None:
    path = build_sdist(world.dist_dir, "Other", "1.0")
    assert upload_dist(world.testapp, world.auth, path, "Other", "1.0").status_int == 200


def test_slash_simple_keeps_its_bytes_while_the_names_it_lists_are_unchanged(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A change to files (a yank here; every batch of a reload's fill) moves the serial: `/simple/` gets a new ETag,
    and keeps the HTML and gzip it had, which list names only. A new project is rendered."""
    app = world.testapp
    warm = get(app, "/simple/", None, {"Accept-Encoding": "gzip"})
    rendered: list[int] = []
    real = page_cache.simple_pages.index_html
    monkeypatch.setattr(
        page_cache.simple_pages, "index_html", lambda projects: rendered.append(len(projects)) or real(projects)
    )

    _yank(world)
    kept = get(app, "/simple/", None, {"Accept-Encoding": "gzip"})
    assert kept.headers["ETag"] != warm.headers["ETag"] and rendered == []
    assert kept.body == warm.body and gzip.decompress(kept.body) == cold_body(world.index, "/simple/", None)
    rendered.clear()  # the cold page just rendered

    _two_projects(world)
    listed = get(app, "/simple/", None)
    assert rendered == [2] and "Other" in listed.text
    assert listed.body == cold_body(world.index, "/simple/", None)


@pytest.mark.parametrize("accept", [None, JSON_V1])
def test_unrelated_change_does_not_rerender_a_project_page(
    world: World, monkeypatch: pytest.MonkeyPatch, accept: str | None
) -> None:
    _two_projects(world)
    app = world.testapp
    warm = get(app, "/simple/other/", accept)
    renders = Renders(world.index, monkeypatch)
    calls = CacheCalls(world.index.cache, monkeypatch)

    _yank(world)  # foo-bar changes; other does not
    calls.take()
    again = get(app, "/simple/other/", accept)
    assert again.body == warm.body and again.headers["ETag"] == warm.headers["ETag"]
    assert renders.files == Counter()
    # One read of the global serial (it moved), one of the project row (its serial did not).
    assert calls.take() == {"serial": 1, "get_project": 1}
    # The changed project is re-rendered, once.
    changed = get(app, f"/simple/{PROJECT}/", accept)
    assert renders.files == Counter({PROJECT: 1})
    assert get(app, f"/simple/{PROJECT}/", accept).body == changed.body
    assert renders.files == Counter({PROJECT: 1})
    # And the listing once per serial, whichever encodings are asked for.
    get(app, "/simple/", accept)
    get(app, "/simple/", accept, headers={"Accept-Encoding": "gzip"})
    assert renders.listings == 1
    assert changed.body == cold_body(world.index, f"/simple/{PROJECT}/", accept)
    if accept == JSON_V1:
        _yanked(world, changed.json)
    else:
        assert anchors(changed.text)[world.uploaded.sdist.name]["data-yanked"] == YANK_REASON


@pytest.mark.parametrize(("path", "accept"), VIEWS)
@pytest.mark.parametrize("encoding", [None, "gzip"])
def test_a_warm_page_costs_one_serial_read(
    world: World, monkeypatch: pytest.MonkeyPatch, path: str, accept: str | None, encoding: str | None
) -> None:
    app = world.testapp
    headers = {"Accept-Encoding": encoding} if encoding else {}
    first = get(app, path, accept, headers)
    calls = CacheCalls(world.index.cache, monkeypatch)
    renders = Renders(world.index, monkeypatch)
    for _ in range(3):
        again = get(app, path, accept, headers)
        assert again.body == first.body
        assert calls.take() == {"serial": 1}
    assert get(app, path, accept, {**headers, "If-None-Match": first.headers["ETag"]}).status_int == 304
    assert calls.take() == {"serial": 1}
    assert (renders.files, renders.listings) == (Counter(), 0)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    """The page cache's monotonic clock, moved by hand."""
    fake = SimpleNamespace(now=1000.0)
    monkeypatch.setattr(page_cache, "time", SimpleNamespace(monotonic=lambda: fake.now))
    return fake


def test_serial_max_age_skips_the_read_within_its_age(
    raw_settings: dict[str, Any], uploaded: Uploaded, auth: dict[str, str], clock: SimpleNamespace
) -> None:
    with running(raw_settings) as writer, running({**raw_settings, "cache.serial_max_age": "3600"}) as reader:
        for path, accept in VIEWS:
            get(reader, path, accept)
        with pytest.MonkeyPatch.context() as monkeypatch:
            calls = CacheCalls(services(reader.app).index.cache, monkeypatch)
            before = {view: get(reader, *view) for view in VIEWS}
            assert calls.take() == {}
            # Another process changes the index: within the age this one may still serve the old pages...
            assert call(writer, "POST", f"/api/projects/{PROJECT}/versions/1.0/yank", auth).status_int == 200
            clock.now += 3599
            assert {view: get(reader, *view).body for view in VIEWS} == {v: r.body for v, r in before.items()}
            assert calls.take() == {}
            # ...and once it has passed, one read of the serial brings every page up to date.
            clock.now += 2
            after = {view: get(reader, *view) for view in VIEWS}
            assert calls.take()["serial"] == 1
            index = services(reader.app).index
            for view, resp in after.items():
                assert resp.body == cold_body(index, *view), view
                assert resp.headers["ETag"] != before[view].headers["ETag"], view
            # A change through this process itself is on its next page, well within the age.
            assert call(reader, "DELETE", f"/api/projects/{PROJECT}/versions/1.0/yank", auth).status_int == 200
            clock.now += 1
            unyanked = get(reader, f"/simple/{PROJECT}/", JSON_V1).json
            assert [f["yanked"] for f in unyanked["files"] if "-1.0" in f["filename"]] in ([False], [False, False])


@pytest.mark.parametrize("name", list(CHANGES))
def test_with_a_serial_age_every_change_this_process_commits_is_on_its_next_page(
    raw_settings: dict[str, Any], auth: dict[str, str], dist_dir: Path, clock: SimpleNamespace, name: str
) -> None:
    # Uploads, deletes and yanks, and reloads too (over HTTP or through the service): the cache tells
    # the page cache of each, so the age never hides this process's own change.
    with running({**raw_settings, "cache.serial_max_age": "3600"}) as app:
        index = services(app.app).index
        storage_dir = index.storage.root if isinstance(index.storage, LocalStorage) else None
        assert storage_dir is not None
        world = World(app, auth, dist_dir, index, storage_dir, upload_foo_bar(app, auth, dist_dir))
        change = CHANGES[name]
        change.before(world)
        before = {view: get(app, *view).body for view in VIEWS}
        change.make(world)
        clock.now += 1  # well within the age
        for view in VIEWS:
            assert get(app, *view).body == cold_body(index, *view), view
        moved = ("/simple/", JSON_V1) if change.lists_new_project else (f"/simple/{PROJECT}/", JSON_V1)
        assert get(app, *moved).body != before[moved]
        change.check(world, get(app, f"/simple/{PROJECT}/", JSON_V1).json)


def test_default_serial_max_age_reads_on_every_request(
    world: World, raw_settings: dict[str, Any], monkeypatch: pytest.MonkeyPatch, clock: SimpleNamespace
) -> None:
    assert services(world.testapp.app).settings.cache.serial_max_age == 0
    path = f"/simple/{PROJECT}/"
    get(world.testapp, path, JSON_V1)
    calls = CacheCalls(world.index.cache, monkeypatch)
    for _ in range(4):
        get(world.testapp, path, JSON_V1)
    assert calls.take() == {"serial": 4}
    # A change by another process, with this process's clock standing still, is on the next page.
    with running(raw_settings) as other:
        assert call(other, "POST", f"/api/projects/{PROJECT}/versions/1.0/yank", world.auth).status_int == 200
    calls.take()
    assert {f["yanked"] for f in get(world.testapp, path, JSON_V1).json["files"]} == {True}
    assert calls.take()["serial"] == 1


def test_many_pages_after_a_change_elsewhere_are_checked_against_one_listing(
    raw_settings: dict[str, Any], auth: dict[str, str], dist_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reload's fill moves the serial every second or so while pip asks for hundreds of pages: past a few
    project rows at one serial, the other pages are checked against one listing, and only a changed one is
    rendered again; a project gone since is a 404, and a new one is served, as without it."""
    pages = page_cache.CHECKS_BEFORE_LISTING * 3
    names = [f"many-{n:02d}" for n in range(pages)]
    with running(raw_settings) as app, running(raw_settings) as other:
        for name in names:
            upload_wheel(other, auth, dist_dir, name, "1.0")
        before = {name: get(app, f"/simple/{name}/", JSON_V1) for name in names}
        index = services(app.app).index
        calls, renders = CacheCalls(index.cache, monkeypatch), Renders(index, monkeypatch)
        # Another process yanks one release and deletes another project: this one is not told.
        changed, gone = names[-1], names[-2]
        assert call(other, "POST", f"/api/projects/{changed}/versions/1.0/yank", auth).status_int == 200
        assert call(other, "DELETE", f"/api/projects/{gone}", auth).status_int in (200, 204)
        upload_wheel(other, auth, dist_dir, "many-new", "1.0")
        after = {name: get(app, f"/simple/{name}/", JSON_V1) for name in names if name != gone}
        taken = calls.take()
        assert taken["get_project"] <= page_cache.CHECKS_BEFORE_LISTING + 1, taken
        assert (taken["list_projects"], renders.listings, renders.files) == (1, 1, Counter({changed: 1}))
        for name, resp in after.items():
            assert resp.body == cold_body(index, f"/simple/{name}/", JSON_V1), name
            assert (resp.headers["ETag"] != before[name].headers["ETag"]) == (name == changed), name
        assert get(app, f"/simple/{gone}/", JSON_V1).status_int == 404
        assert [f["yanked"] for f in get(app, "/simple/many-new/", JSON_V1).json["files"]] == [False]


def test_a_listing_is_brought_up_to_date_by_the_projects_changed_since_it_was_read(
    raw_settings: dict[str, Any], auth: dict[str, str], dist_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a serial move, /simple/ and the page checks need every project again: the listing read before is
    brought up to date by the projects stamped since (a fill's batch changes hundreds of thousands), unless a
    project came or went, which only a whole listing places."""
    names = [f"since-{n:02d}" for n in range(3)]
    with running(raw_settings) as app, running(raw_settings) as other:
        for name in names:
            upload_wheel(other, auth, dist_dir, name, "1.0")
        index = services(app.app).index
        get(app, "/simple/", JSON_V1)
        calls = CacheCalls(index.cache, monkeypatch)

        def listed_after(change: Callable[[], object]) -> dict[str, int]:
            change()
            served = get(app, "/simple/", JSON_V1).body
            taken = calls.take()
            assert served == cold_body(index, "/simple/", JSON_V1)
            calls.take()
            return {"whole": taken.get("list_projects", 0), "since": taken.get("projects_changed_since", 0)}

        # Another process changes a project this one listed: its new serial comes with the changes since.
        assert listed_after(lambda: upload_wheel(other, auth, dist_dir, names[0], "2.0")) == {"whole": 0, "since": 1}
        yank = f"/api/projects/{names[1]}/versions/1.0/yank"
        assert listed_after(lambda: call(other, "POST", yank, auth)) == {"whole": 0, "since": 1}
        # A project gone, or a new one: listed whole.
        gone = f"/api/projects/{names[2]}"
        assert listed_after(lambda: call(other, "DELETE", gone, auth)) == {"whole": 1, "since": 1}
        new = lambda: upload_wheel(other, auth, dist_dir, "since-new", "1.0")  # noqa: E731
        assert listed_after(new) == {"whole": 1, "since": 1}
        assert [p["name"] for p in get(app, "/simple/", JSON_V1).json["projects"]] == [*names[:2], "since-new"]


def _served_meanwhile(lock: Any, request: Callable[[], Response]) -> Response:
    """`request` made while `lock` is held (another thread renders or lists): answered without waiting."""
    with ThreadPoolExecutor(1) as pool:
        with lock:
            answer = pool.submit(request)
            assert wait([answer], timeout=10).done, "it waited for the page being made"
        return answer.result()


def _waits_for(lock: Any, request: Callable[[], Response]) -> Response:
    """`request` made while `lock` is held (another thread renders or lists): it must wait, and end once released."""
    with ThreadPoolExecutor(1) as pool:
        with lock:
            waiting = pool.submit(request)
            time.sleep(0.3)
            assert not waiting.done(), "served without waiting for the page this process's change made"
        return waiting.result(timeout=30)


@pytest.mark.parametrize("max_age", ["0", "0.001"])
def test_while_slash_simple_renders_again_requests_wait_unless_other_processes_changes_may_lag(
    raw_settings: dict[str, Any], auth: dict[str, str], dist_dir: Path, max_age: str
) -> None:
    """A fill moves the serial every second or so, and /simple/ takes tens of ms to render then. With
    `cache.serial_max_age` at 0 no change anywhere is missing from a page served after it: the requests wait
    for the new page. Above 0 (another process's changes may lag by that much anyway) they get the page before
    meanwhile, unless this process changed something since (twine upload, then pip install, on one process)."""
    with running({**raw_settings, "cache.serial_max_age": max_age}) as app, running(raw_settings) as other:
        upload_wheel(app, auth, dist_dir, "first", "1.0")
        before = get(app, "/simple/", HTML_V1)
        pages = services(app.app).pages
        upload_wheel(other, auth, dist_dir, "elsewhere", "1.0")
        time.sleep(0.01)  # the serial this process read is older than serial_max_age
        # Another thread renders /simple/ for the new serial.
        if max_age == "0":
            assert b"elsewhere" in _waits_for(pages._rendering, lambda: get(app, "/simple/", HTML_V1)).body
        else:
            assert _served_meanwhile(pages._rendering, lambda: get(app, "/simple/", HTML_V1)).body == before.body
            assert b"elsewhere" in get(app, "/simple/", HTML_V1).body
        upload_wheel(app, auth, dist_dir, "here", "1.0")
        assert b"here" in _waits_for(pages._rendering, lambda: get(app, "/simple/", HTML_V1)).body


@pytest.mark.parametrize("max_age", ["0", "0.001"])
def test_while_the_listing_is_read_again_project_pages_read_their_row_unless_other_processes_changes_may_lag(
    raw_settings: dict[str, Any], auth: dict[str, str], dist_dir: Path, max_age: str
) -> None:
    """Past CHECKS_BEFORE_LISTING pages at one serial, pages are checked against a listing of every project
    (tens of ms at thousands of projects). While another thread reads it, none waits: with `cache.serial_max_age`
    at 0, or when this process changed something since the listing before, a page reads its own row (current);
    above 0 the listing before serves meanwhile."""
    names = [f"listed-{n:02d}" for n in range(page_cache.CHECKS_BEFORE_LISTING + 2)]
    with running({**raw_settings, "cache.serial_max_age": max_age}) as app, running(raw_settings) as other:
        for name in names:
            upload_wheel(other, auth, dist_dir, name, "1.0")
        pages = services(app.app).pages

        def page(name: str) -> Response:
            return get(app, f"/simple/{name}/", JSON_V1)

        def yanked(response: Response) -> list[bool]:
            return [bool(f["yanked"]) for f in response.json["files"]]

        def past_the_row_checks(change: Callable[[], object]) -> None:
            """`change`, then the pages that read a row each, and one that reads the listing."""
            change()
            time.sleep(0.01)  # the serial this process read is older than serial_max_age
            for name in names[1 : page_cache.CHECKS_BEFORE_LISTING + 1]:
                page(name)

        for name in names:
            page(name)
        past_the_row_checks(lambda: None)
        past_the_row_checks(lambda: call(other, "POST", f"/api/projects/{names[0]}/versions/1.0/yank", auth))
        # Another thread reads the listing at the new serial.
        if max_age == "0":
            assert yanked(_served_meanwhile(pages._listing, lambda: page(names[0]))) == [True]
        else:
            assert yanked(_served_meanwhile(pages._listing, lambda: page(names[0]))) == [False]
            assert yanked(page(names[0])) == [True]
        past_the_row_checks(lambda: call(app, "POST", f"/api/projects/{names[-1]}/versions/1.0/yank", auth))
        assert yanked(_served_meanwhile(pages._listing, lambda: page(names[-1]))) == [True]


# -- the LRU -------------------------------------------------------------------------


def test_tiny_page_cache_evicts_and_stays_correct(
    raw_settings: dict[str, Any], auth: dict[str, str], dist_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = ["alpha", "beta", "gamma"]
    with running({**raw_settings, "web.page_cache_size": "1"}) as app:
        index = services(app.app).index
        for name in names:
            path = build_sdist(dist_dir, name, "1.0")
            assert upload_dist(app, auth, path, name, "1.0").status_int == 200
        expected = {(name, accept): cold_body(index, f"/simple/{name}/", accept) for name in names for accept in KINDS}
        renders = Renders(index, monkeypatch)
        for _ in range(2):
            for name in names:
                for accept in KINDS:
                    resp = get(app, f"/simple/{name}/", accept)
                    assert resp.body == expected[(name, accept)]
                    assert (
                        gzip.decompress(get(app, f"/simple/{name}/", accept, {"Accept-Encoding": "gzip"}).body)
                        == resp.body
                    )
        # One page fits at a time: every switch of page was a miss, and a repeat of the same page a hit.
        assert renders.files == Counter(dict.fromkeys(names, 4))
        assert len(services(app.app).pages) == 1


def test_lru_evicts_the_least_recently_used_page(
    raw_settings: dict[str, Any], auth: dict[str, str], dist_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = ["alpha", "beta", "gamma"]
    with running(raw_settings) as setup:
        for name in names:
            path = build_sdist(dist_dir, name, "1.0")
            assert upload_dist(setup, auth, path, name, "1.0").status_int == 200
        sizing = PageCache(services(setup.app).index, 1 << 30)
        sizes = {name: sizing.project_page(name, "json").size for name in names}
    # Room for any two of the pages, never for all three.
    room = sum(sizes.values()) - 1
    with running({**raw_settings, "web.page_cache_size": str(room)}) as app:
        index = services(app.app).index
        renders = Renders(index, monkeypatch)
        for name in ("alpha", "beta", "alpha", "gamma"):
            get(app, f"/simple/{name}/", JSON_V1)
        assert renders.files == Counter({"alpha": 1, "beta": 1, "gamma": 1})
        # beta was the least recently used: it went; alpha (used after beta) stayed.
        get(app, "/simple/alpha/", JSON_V1)
        assert renders.files["alpha"] == 1
        resp = get(app, "/simple/beta/", JSON_V1)
        assert renders.files["beta"] == 2
        assert resp.body == cold_body(index, "/simple/beta/", JSON_V1)


# -- authentication and filtered listings ---------------------------------------------


class Authentications:
    """Counts AccessBackend.authenticate calls."""

    def __init__(self, app: webtest.TestApp, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        access = services(app.app).access
        original = access.authenticate

        def authenticate(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            return original(*args, **kwargs)

        monkeypatch.setattr(access, "authenticate", authenticate)


@pytest.mark.parametrize("default_read", ["everyone", "authenticated", f"user:{UPLOADER}"])
@pytest.mark.parametrize("path", ["/simple/", "/simple/p-7/"])
def test_one_credential_check_per_request(
    raw_settings: dict[str, Any],
    auth: dict[str, str],
    dist_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    default_read: str,
    path: str,
) -> None:
    raw = {**raw_settings, "pypi.default_read": default_read, "auth.admins": ""}
    with running(raw) as app:
        for n in range(12):
            upload_dist(app, auth, build_sdist(dist_dir, f"p-{n}", "1.0"), f"p-{n}", "1.0")
        counter = Authentications(app, monkeypatch)
        for accept in KINDS:
            for encoding in (None, "gzip"):
                headers = {**auth, **({"Accept-Encoding": encoding} if encoding else {})}
                before = counter.calls
                resp = get(app, path, accept, headers)
                assert resp.status_int == 200, resp.body
                assert counter.calls == before + 1, (accept, encoding)
                assert resp.headers["Cache-Control"].startswith("private")
        listing = get(app, "/simple/", JSON_V1, auth).json
        assert len(listing["projects"]) == 12


@pytest.mark.parametrize("path", ["/simple/", f"/simple/{PROJECT}/"])
def test_wrong_credentials_are_one_failure(
    raw_settings: dict[str, Any], auth: dict[str, str], dist_dir: Path, monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    with running({**raw_settings, "auth.max_failed_logins": "2"}) as app:
        upload_dist(app, auth, build_sdist(dist_dir, "Foo.Bar", "1.0"), "Foo.Bar", "1.0")
        counter = Authentications(app, monkeypatch)
        wrong = basic_auth(UPLOADER, "wrong password")
        assert get(app, path, JSON_V1, wrong).status_int == 401
        assert counter.calls == 1
        # One failure of the two allowed (two would lock the user out): the right password still gets in...
        assert get(app, path, JSON_V1, auth).status_int == 200
        assert counter.calls == 2
        # ...while two wrong requests in a row do reach the limit (so these failures are counted at all).
        assert get(app, path, JSON_V1, wrong).status_int == 401
        assert get(app, path, JSON_V1, wrong).status_int == 401
        assert get(app, path, JSON_V1, auth).status_int == 429


def test_anonymous_pages_are_public_and_authenticated_ones_private(world: World) -> None:
    for path, accept in VIEWS:
        assert get(world.testapp, path, accept).headers["Cache-Control"].startswith("public"), path
        for encoding in ({}, {"Accept-Encoding": "gzip"}):
            for conditional in (False, True):
                headers = {**world.auth, **encoding}
                if conditional:
                    headers["If-None-Match"] = get(world.testapp, path, accept, headers).headers["ETag"]
                resp = get(world.testapp, path, accept, headers)
                assert resp.status_int == (304 if conditional else 200)
                assert resp.headers["Cache-Control"].startswith("private"), (path, accept, headers)


@pytest.fixture
def private_index(raw_settings: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Iterator[webtest.TestApp]:
    """SQL users and grants, nobody reads by default; admin uploads alpha, beta and gamma."""
    monkeypatch.setattr("pypicloud_lite.access.sql.hash_password", memo_hash)
    raw = {**sql_settings(raw_settings), "pypi.default_read": "", "pypi.default_write": ""}
    with running(raw) as app:
        access = services(app.app).access
        access.create_user(ADMIN, PASSWORD, is_admin=True)
        access.create_user("bob", PASSWORD)
        dists = Path(raw_settings["storage.dir"]).parent / "dist"
        for name in ("alpha", "beta", "gamma"):
            upload_dist(app, creds(ADMIN), build_sdist(dists, name, "1.0"), name, "1.0")
        yield app


def _listed(app: webtest.TestApp, headers: dict[str, str]) -> dict[str | None, set[str]]:
    found: dict[str | None, set[str]] = {}
    for accept in KINDS:
        resp = get(app, "/simple/", accept, headers)
        assert resp.status_int == 200, resp.body
        assert resp.headers["Cache-Control"].startswith("private")
        if accept == JSON_V1:
            found[accept] = {p["name"] for p in resp.json["projects"]}
        else:
            found[accept] = set(anchors(resp.text))
    return found


def _grant(app: webtest.TestApp, project: str, perms: str | None) -> None:
    url = f"/api/projects/{project}/grants/user/bob"
    resp = (
        call(app, "PUT", url, creds(ADMIN), json={"perms": perms}) if perms else call(app, "DELETE", url, creds(ADMIN))
    )
    assert resp.status_int == 200, resp.body


def test_filtered_listing_follows_grants(private_index: webtest.TestApp, monkeypatch: pytest.MonkeyPatch) -> None:
    app = private_index
    bob = creds("bob")
    assert _listed(app, bob) == {None: set(), JSON_V1: set()}
    assert _listed(app, creds(ADMIN)) == {None: {"alpha", "beta", "gamma"}, JSON_V1: {"alpha", "beta", "gamma"}}
    assert get(app, "/simple/", None).status_int == 401

    _grant(app, "alpha", "r")
    assert _listed(app, bob) == {None: {"alpha"}, JSON_V1: {"alpha"}}
    old_etag = get(app, "/simple/", JSON_V1, bob).headers["ETag"]
    _grant(app, "gamma", "rw")
    assert _listed(app, bob) == {None: {"alpha", "gamma"}, JSON_V1: {"alpha", "gamma"}}
    # Grants move no serial, yet the old listing no longer revalidates.
    resp = get(app, "/simple/", JSON_V1, {**bob, "If-None-Match": old_etag})
    assert resp.status_int == 200 and {p["name"] for p in resp.json["projects"]} == {"alpha", "gamma"}
    current = resp.headers["ETag"]
    assert get(app, "/simple/", JSON_V1, {**bob, "If-None-Match": current}).status_int == 304
    _grant(app, "alpha", None)
    assert _listed(app, bob) == {None: {"gamma"}, JSON_V1: {"gamma"}}
    assert get(app, "/simple/", JSON_V1, {**bob, "If-None-Match": current}).status_int == 200
    # The admin's full listing was not disturbed by bob's filtered ones (nor the reverse).
    assert _listed(app, creds(ADMIN))[JSON_V1] == {"alpha", "beta", "gamma"}
    assert _listed(app, bob)[JSON_V1] == {"gamma"}
    # Project pages follow the same grants, through the fast path.
    assert get(app, "/simple/gamma/", JSON_V1, bob).status_int == 200
    assert get(app, "/simple/alpha/", JSON_V1, bob).status_int == 404
    counter = Authentications(app, monkeypatch)
    get(app, "/simple/", JSON_V1, bob)
    get(app, "/simple/gamma/", JSON_V1, bob)
    assert counter.calls == 2
