"""The upstream proxy: proxied pages, cache and redirect modes, the origin rule, failures, single-flight, ETags."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import waitress
import webtest

from pypicloud_lite.errors import Conflict
from pypicloud_lite.upstream.stored_pages import page_key
from tests.support.apiutil import assert_error, build_app, close_app, upload_wheel
from tests.support.common import UPLOADER, services
from tests.support.distbuilder import build_sdist, build_wheel
from tests.support.legacy import upload_dist
from tests.support.settings import server_settings
from tests.support.upstreams import Hosted, JsonIndex, StaticTree, joined, proxy_settings, wheel_metadata

JSON_ACCEPT = {"Accept": "application/vnd.pypi.simple.v1+json"}


@pytest.fixture
def upstream(tmp_path: Path) -> Iterator[JsonIndex]:
    index = JsonIndex()
    dists = tmp_path / "upstream-dists"
    index.add(
        "upkg",
        Hosted(build_wheel(dists, "upkg", "1.0", requires_python=">=3.8"), requires_python=">=3.8"),
        Hosted(build_sdist(dists, "upkg", "1.0"), upload_time="2024-03-01T12:00:01.000000Z"),
        Hosted(build_wheel(dists, "upkg", "2.0"), yanked="broken build", upload_time="2024-04-01T00:00:00Z"),
    )
    index.add("corp-tool", Hosted(build_wheel(dists, "corp-tool", "99.0")))
    yield index
    index.stop()


@pytest.fixture
def proxied(raw_settings: dict[str, Any], upstream: JsonIndex) -> Iterator[webtest.TestApp]:
    app = build_app(proxy_settings(raw_settings, upstream.url))
    yield app
    close_app(app)


def by_name(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["filename"]: f for f in doc["files"]}


def test_a_name_never_held_is_served_from_the_upstream_in_json(proxied: webtest.TestApp, upstream: JsonIndex) -> None:
    resp = proxied.get("/simple/upkg/", headers=JSON_ACCEPT)
    assert resp.headers["X-PPC-Upstream"] == "fresh"
    files = by_name(resp.json)
    hosted = {f.filename: f for f in upstream.projects["upkg"]}
    assert set(files) == set(hosted)
    for filename, entry in files.items():
        assert entry["url"] == f"../../packages/upkg/{filename}"
        assert entry["hashes"] == {"sha256": hosted[filename].sha256}
        assert entry["size"] == len(hosted[filename].data)
    wheel = files["upkg-1.0-py3-none-any.whl"]
    metadata = wheel_metadata(hosted["upkg-1.0-py3-none-any.whl"].path)
    assert metadata is not None
    assert wheel["core-metadata"] == {"sha256": hashlib.sha256(metadata).hexdigest()}
    assert wheel["requires-python"] == ">=3.8"
    assert wheel["upload-time"] == "2024-03-01T12:00:00.000000Z"
    assert files["upkg-1.0.tar.gz"]["upload-time"] == "2024-03-01T12:00:01.000000Z"
    assert files["upkg-1.0.tar.gz"]["core-metadata"] is False
    assert files["upkg-2.0-py3-none-any.whl"]["yanked"] == "broken build"
    assert wheel["yanked"] is False
    assert resp.json["versions"] == ["1.0", "2.0"]


def test_the_html_page_of_a_static_pep503_tree_is_proxied(raw_settings: dict[str, Any], tmp_path: Path) -> None:
    tree = StaticTree(tmp_path / "tree")
    wheel = build_wheel(tmp_path / "d", "treepkg", "1.0", requires_python=">=3.9")
    tree.add(
        "treepkg",
        Hosted(wheel, requires_python=">=3.9"),
        Hosted(build_sdist(tmp_path / "d", "treepkg", "0.9"), yanked="old"),
    )
    app = build_app(proxy_settings(raw_settings, tree.url))
    try:
        html = app.get("/simple/treepkg/").text
        sha = hashlib.sha256(wheel.read_bytes()).hexdigest()
        assert f'href="../../packages/treepkg/treepkg-1.0-py3-none-any.whl#sha256={sha}"' in html
        assert 'data-requires-python="&gt;=3.9"' in html
        assert 'data-yanked="old"' in html
        metadata = wheel_metadata(wheel)
        assert metadata is not None
        assert f'data-core-metadata="sha256={hashlib.sha256(metadata).hexdigest()}"' in html
        # From an HTML upstream no size is known: the JSON page says API 1.0, not a 1.1 page without sizes.
        doc = app.get("/simple/treepkg/", headers=JSON_ACCEPT).json
        assert doc["meta"]["api-version"] == "1.0"
        assert app.get("/packages/treepkg/treepkg-1.0-py3-none-any.whl").body == wheel.read_bytes()
        assert app.get("/packages/treepkg/treepkg-1.0-py3-none-any.whl.metadata").body == metadata
    finally:
        close_app(app)
        tree.stop()


def test_cache_mode_fetches_a_file_once_and_keeps_its_upload_time(
    proxied: webtest.TestApp, upstream: JsonIndex
) -> None:
    filename = "upkg-1.0-py3-none-any.whl"
    hosted = next(f for f in upstream.projects["upkg"] if f.filename == filename)
    assert proxied.get(f"/packages/upkg/{filename}").body == hosted.data
    assert proxied.get(f"/packages/upkg/{filename}").body == hosted.data
    assert upstream.hits[f"/files/{filename}"] == 1
    index = services(proxied.app).index
    row = index.get_file("upkg", filename)
    assert row.sha256 == hosted.sha256
    assert row.upload_time == datetime(2024, 3, 1, 12, tzinfo=UTC)
    assert row.uploader == "upstream:main"
    state = index.state.read_project("upkg")
    assert state is not None and state.origin == "upstream"
    # Cached: its PEP 658 metadata comes from our sidecar, not the upstream.
    assert proxied.get(f"/packages/upkg/{filename}.metadata").body == wheel_metadata(hosted.path)
    assert upstream.hits[f"/files/{filename}.metadata"] == 0
    # Still the upstream's listing (an upstream-origin project), every file linked through this index.
    assert set(by_name(proxied.get("/simple/upkg/", headers=JSON_ACCEPT).json)) == {
        f.filename for f in upstream.projects["upkg"]
    }


def test_metadata_of_a_wheel_not_cached_is_the_upstreams(proxied: webtest.TestApp, upstream: JsonIndex) -> None:
    filename = "upkg-2.0-py3-none-any.whl"
    hosted = next(f for f in upstream.projects["upkg"] if f.filename == filename)
    assert proxied.get(f"/packages/upkg/{filename}.metadata").body == wheel_metadata(hosted.path)
    assert upstream.hits[f"/files/{filename}"] == 0
    assert services(proxied.app).index.find_project("upkg") is None


def test_redirect_mode_sends_clients_to_the_upstream(raw_settings: dict[str, Any], upstream: JsonIndex) -> None:
    app = build_app(proxy_settings(raw_settings, upstream.url, mode="redirect"))
    try:
        resp = app.get("/packages/upkg/upkg-1.0-py3-none-any.whl", status=302)
        assert resp.headers["Location"] == f"{upstream.root}/files/upkg-1.0-py3-none-any.whl"
        assert services(app.app).index.find_project("upkg") is None
    finally:
        close_app(app)


def test_a_local_name_never_shows_upstream_files(
    proxied: webtest.TestApp, upstream: JsonIndex, auth: dict[str, str], tmp_path: Path
) -> None:
    upload_wheel(proxied, auth, tmp_path, "corp-tool", "1.0")
    assert [f["filename"] for f in proxied.get("/simple/corp-tool/", headers=JSON_ACCEPT).json["files"]] == [
        "corp_tool-1.0-py3-none-any.whl"
    ]
    assert "99.0" not in proxied.get("/simple/corp-tool/").text
    proxied.get("/packages/corp-tool/corp_tool-99.0-py3-none-any.whl", status=404)
    assert proxied.get("/pypi/corp-tool/json").json["info"]["version"] == "1.0"
    assert not [path for path in upstream.hits if "corp" in path]


def test_a_name_that_once_existed_here_is_never_resolved_upstream(
    proxied: webtest.TestApp, upstream: JsonIndex, auth: dict[str, str], tmp_path: Path
) -> None:
    upload_wheel(proxied, auth, tmp_path, "corp-tool", "1.0")
    index = services(proxied.app).index
    index.delete_file("corp-tool", "corp_tool-1.0-py3-none-any.whl")
    # Its state and its deletion record both say it was here; without its state, the deletion record still does.
    index.storage.delete("_ppc/projects/corp-tool.json")
    proxied.get("/simple/corp-tool/", status=404)
    assert not [path for path in upstream.hits if "corp" in path]


def test_a_local_upload_to_a_name_cached_from_upstream_needs_an_admin(
    proxied: webtest.TestApp, auth: dict[str, str], tmp_path: Path
) -> None:
    proxied.get("/packages/upkg/upkg-1.0-py3-none-any.whl")
    build = tmp_path / "local"
    path = build_wheel(build, "upkg", "3.0")
    assert_error(upload_dist(proxied, auth, path, "upkg", "3.0"), 409, "needs an admin")
    assert proxied.get("/api/projects/upkg/origin", headers=auth).json["origin"] == "upstream"
    answer = proxied.put_json("/api/projects/upkg/origin", {"origin": "local"}, headers=auth).json
    assert answer == {"name": "upkg", "origin": "local", "served_from_upstream": False}
    assert upload_dist(proxied, auth, path, "upkg", "3.0").status_int == 200
    assert [f["filename"] for f in proxied.get("/simple/upkg/", headers=JSON_ACCEPT).json["files"]] == [
        "upkg-1.0-py3-none-any.whl",
        "upkg-3.0-py3-none-any.whl",
    ]


def test_a_cached_project_keeps_serving_while_the_upstream_is_down(
    raw_settings: dict[str, Any], upstream: JsonIndex
) -> None:
    settings = proxy_settings(raw_settings, upstream.url, page_ttl="0")
    app = build_app(settings)
    try:
        app.get("/packages/upkg/upkg-1.0-py3-none-any.whl")
        upstream.failing = True
        resp = app.get("/simple/upkg/", headers=JSON_ACCEPT)
        assert resp.headers["X-PPC-Upstream"] == "stale"
        assert len(resp.json["files"]) == 3
    finally:
        close_app(app)
    # A new process serves the copy of the page the first one stored.
    again = build_app(settings)
    try:
        resp = again.get("/simple/upkg/", headers=JSON_ACCEPT)
        assert resp.headers["X-PPC-Upstream"] == "stale"
        assert len(resp.json["files"]) == 3
        services(again.app).index.storage.delete(page_key("upkg"))
    finally:
        close_app(again)
    # With no copy anywhere, a new process serves the files it cached, saying so.
    bare = build_app(settings)
    try:
        resp = bare.get("/simple/upkg/", headers=JSON_ACCEPT)
        assert resp.headers["X-PPC-Upstream"] == "stale"
        assert [f["filename"] for f in resp.json["files"]] == ["upkg-1.0-py3-none-any.whl"]
        assert bare.get("/packages/upkg/upkg-1.0-py3-none-any.whl").status_int == 200
    finally:
        close_app(bare)


def test_an_unknown_name_answers_502_while_the_upstream_fails_and_404_when_it_has_none(
    proxied: webtest.TestApp, upstream: JsonIndex
) -> None:
    proxied.get("/simple/nowhere/", status=404)
    upstream.failing = True
    assert_error(proxied.get("/simple/upkg/", expect_errors=True), 502, "upstream")
    assert_error(proxied.get("/simple/upkg/", headers=JSON_ACCEPT, expect_errors=True), 502, "upstream")
    assert_error(proxied.get("/packages/upkg/upkg-1.0-py3-none-any.whl", expect_errors=True), 502, "upstream")


def test_an_unreachable_upstream_is_502_too(raw_settings: dict[str, Any], upstream: JsonIndex) -> None:
    url = upstream.url
    upstream.stop()
    app = build_app(proxy_settings(raw_settings, url, connect_timeout="2", read_timeout="2"))
    try:
        assert_error(app.get("/simple/upkg/", expect_errors=True), 502, "did not answer")
    finally:
        close_app(app)


def test_concurrent_requests_for_one_name_make_one_upstream_request(
    proxied: webtest.TestApp, upstream: JsonIndex
) -> None:
    pages = services(proxied.app).upstream
    assert pages is not None
    gate = upstream.gate = threading.Event()
    results: list[int] = []

    def fetch() -> None:
        results.append(len(pages.project_page("upkg", "json").body))

    threads = [threading.Thread(target=fetch) for _ in range(8)]
    for thread in threads:
        thread.start()
    assert upstream.waiting.acquire(timeout=30)  # the leader's request reached the upstream
    joined("upkg", 7, pages.proxy)
    gate.set()
    for thread in threads:
        thread.join(30)
    assert len(results) == 8 and len(set(results)) == 1
    assert upstream.hits["/simple/upkg/"] == 1


def test_pages_are_revalidated_with_their_etag_after_the_ttl(
    raw_settings: dict[str, Any], upstream: JsonIndex, tmp_path: Path
) -> None:
    app = build_app(proxy_settings(raw_settings, upstream.url, page_ttl="0"))
    try:
        first = app.get("/simple/upkg/", headers=JSON_ACCEPT).json
        second = app.get("/simple/upkg/", headers=JSON_ACCEPT).json
        assert first == second
        assert upstream.hits["/simple/upkg/"] == 2
        assert upstream.not_modified == 1
        upstream.add("upkg", Hosted(build_wheel(tmp_path / "new", "upkg", "4.0")))
        assert "upkg-4.0-py3-none-any.whl" in by_name(app.get("/simple/upkg/", headers=JSON_ACCEPT).json)
    finally:
        close_app(app)


def test_within_the_ttl_the_upstream_is_not_asked(proxied: webtest.TestApp, upstream: JsonIndex) -> None:
    proxied.get("/simple/upkg/")
    proxied.get("/simple/upkg/", headers=JSON_ACCEPT)
    assert upstream.hits["/simple/upkg/"] == 1


def test_pypi_json_of_a_proxied_name(proxied: webtest.TestApp) -> None:
    doc = proxied.get("/pypi/upkg/json").json
    assert doc["info"]["version"] == "1.0"
    assert sorted(doc["releases"]) == ["1.0", "2.0"]
    assert {f["url"] for f in doc["urls"]} == {
        "http://localhost/packages/upkg/upkg-1.0-py3-none-any.whl",
        "http://localhost/packages/upkg/upkg-1.0.tar.gz",
    }


def test_the_index_lists_only_this_indexs_projects(proxied: webtest.TestApp) -> None:
    proxied.get("/simple/upkg/")
    proxied.get("/packages/upkg/upkg-1.0-py3-none-any.whl")
    assert "corp-tool" not in proxied.get("/simple/").text


def test_a_rebuilt_cache_keeps_a_projects_upstream_origin(
    raw_settings: dict[str, Any], upstream: JsonIndex, auth: dict[str, str], tmp_path: Path
) -> None:
    app = build_app(proxy_settings(raw_settings, upstream.url))
    try:
        app.get("/packages/upkg/upkg-1.0-py3-none-any.whl")
    finally:
        close_app(app)
    # The same storage, an empty cache database: the reload brings the file back, the state its origin.
    fresh = {**raw_settings, "cache.url": f"sqlite:///{tmp_path}/rebuilt.sqlite"}
    rebuilt = build_app(proxy_settings(fresh, upstream.url))
    try:
        services(rebuilt.app).index.begin_reload().execute()
        assert services(rebuilt.app).index.find_project("upkg") is not None
        assert len(rebuilt.get("/simple/upkg/", headers=JSON_ACCEPT).json["files"]) == 3
        path = build_wheel(tmp_path / "local", "upkg", "3.0")
        assert_error(upload_dist(rebuilt, auth, path, "upkg", "3.0"), 409, "needs an admin")
    finally:
        close_app(rebuilt)


def test_a_second_pypicloud_lite_is_an_upstream(
    raw_settings: dict[str, Any], auth: dict[str, str], tmp_path: Path
) -> None:
    peer_root = tmp_path / "peer"
    peer = build_app(server_settings(peer_root))
    wheel = upload_wheel(peer, auth, tmp_path / "peer-dists", "peer-lib", "1.5", requires_python=">=3.9")
    server = waitress.create_server(peer.app, host="127.0.0.1", port=0, threads=4)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    app = build_app(proxy_settings(raw_settings, f"http://127.0.0.1:{server.effective_port}/simple/"))
    try:
        doc = app.get("/simple/peer-lib/", headers=JSON_ACCEPT).json
        (entry,) = doc["files"]
        peer_row = services(peer.app).index.get_file("peer-lib", wheel.name)
        assert entry["hashes"]["sha256"] == peer_row.sha256
        assert entry["upload-time"] == peer_row.upload_time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        assert entry["requires-python"] == ">=3.9"
        assert entry["core-metadata"] == {"sha256": peer_row.metadata_sha256}
        assert app.get(f"/packages/peer-lib/{wheel.name}.metadata").body == wheel_metadata(wheel)
        assert app.get(f"/packages/peer-lib/{wheel.name}").body == wheel.read_bytes()
        assert services(app.app).index.get_file("peer-lib", wheel.name).upload_time == peer_row.upload_time
    finally:
        close_app(app)
        server.close()
        close_app(peer)


def test_a_file_joins_a_project_of_its_own_origin_only(
    proxied: webtest.TestApp, auth: dict[str, str], tmp_path: Path
) -> None:
    """Checked on the state the file joins, so an upload racing the first upstream fetch loses, either way."""
    index = services(proxied.app).index
    proxied.get("/packages/upkg/upkg-1.0-py3-none-any.whl")
    local = build_wheel(tmp_path / "local", "upkg", "5.0")
    with local.open("rb") as fh, pytest.raises(Conflict, match="needs an admin"):
        index.import_file(local.name, fh, upload_time=None, uploader="someone", display_name=None, summary=None)
    upload_wheel(proxied, auth, tmp_path / "mine", "mine", "1.0")
    theirs = build_wheel(tmp_path / "theirs", "mine", "2.0")
    with theirs.open("rb") as fh, pytest.raises(Conflict, match="held in this index"):
        index.import_file(
            theirs.name,
            fh,
            upload_time=None,
            uploader="upstream:main",
            display_name=None,
            summary=None,
            origin="upstream",
        )
    assert [f.filename for f in index.project_files(index.get_project("mine"))] == ["mine-1.0-py3-none-any.whl"]
    assert index.storage.stat(f"mine/{theirs.name}") is None


def test_an_admin_blocks_a_name_upstream_before_it_was_ever_held(
    proxied: webtest.TestApp, upstream: JsonIndex, auth: dict[str, str]
) -> None:
    assert proxied.get("/api/projects/upkg/origin", headers=auth).json == {
        "name": "upkg",
        "origin": "none",
        "served_from_upstream": True,
    }
    proxied.put_json("/api/projects/UpKg/origin", {"origin": "local"}, headers=auth)
    proxied.get("/simple/upkg/", status=404)
    proxied.get("/packages/upkg/upkg-1.0-py3-none-any.whl", status=404)
    assert upstream.hits["/simple/upkg/"] == 0
    assert_error(
        proxied.put_json("/api/projects/upkg/origin", {"origin": "pypi"}, headers=auth, expect_errors=True), 400
    )
    assert_error(proxied.put_json("/api/projects/upkg/origin", {"origin": "local"}, expect_errors=True), 401)


def test_origin_control_works_without_an_upstream_configured(
    testapp: webtest.TestApp, auth: dict[str, str], tmp_path: Path
) -> None:
    """An upstream removed from the settings leaves its projects refusing local uploads until an admin decides."""
    testapp.put_json("/api/projects/gone/origin", {"origin": "upstream"}, headers=auth)
    assert testapp.get("/api/projects/gone/origin", headers=auth).json == {
        "name": "gone",
        "origin": "upstream",
        "served_from_upstream": False,
    }
    upload_wheel(testapp, auth, tmp_path, "gone", "1.0", status=409)
    testapp.put_json("/api/projects/gone/origin", {"origin": "local"}, headers=auth)
    upload_wheel(testapp, auth, tmp_path, "gone", "1.0")


def test_a_quarantined_project_cached_from_upstream_offers_nothing(
    proxied: webtest.TestApp, upstream: JsonIndex, auth: dict[str, str]
) -> None:
    proxied.get("/packages/upkg/upkg-1.0-py3-none-any.whl")
    proxied.put_json("/api/projects/upkg/status", {"status": "quarantined"}, headers=auth)
    assert proxied.get("/simple/upkg/", headers=JSON_ACCEPT).json["files"] == []
    proxied.get("/packages/upkg/upkg-1.0-py3-none-any.whl", status=404)
    proxied.get("/packages/upkg/upkg-1.0.tar.gz", status=404)
    assert upstream.hits["/files/upkg-1.0.tar.gz"] == 0


def test_a_name_no_upstream_has_is_remembered_for_the_ttl(proxied: webtest.TestApp, upstream: JsonIndex) -> None:
    proxied.get("/simple/nowhere/", status=404)
    proxied.get("/simple/nowhere/", headers=JSON_ACCEPT, status=404)
    proxied.get("/packages/nowhere/nowhere-1.0.tar.gz", status=404)
    assert upstream.hits["/simple/nowhere/"] == 1


def test_concurrent_requests_for_one_file_make_one_download(proxied: webtest.TestApp, upstream: JsonIndex) -> None:
    pages = services(proxied.app).upstream
    assert pages is not None
    filename = "upkg-1.0-py3-none-any.whl"
    pages.proxy.listing("upkg")
    upstream.gated = "/files/"
    gate = upstream.gate = threading.Event()
    rows: list[str | None] = []

    def fetch() -> None:
        rows.append(pages.proxy.cache_file("upkg", filename).sha256)

    threads = [threading.Thread(target=fetch) for _ in range(4)]
    for thread in threads:
        thread.start()
    assert upstream.waiting.acquire(timeout=30)
    joined(f"file:{filename}", 3, pages.proxy)
    gate.set()
    for thread in threads:
        thread.join(30)
    assert len(rows) == 4 and len(set(rows)) == 1
    assert upstream.hits[f"/files/{filename}"] == 1


def test_a_cached_project_gone_upstream_keeps_its_cached_files(
    raw_settings: dict[str, Any], upstream: JsonIndex
) -> None:
    app = build_app(proxy_settings(raw_settings, upstream.url, page_ttl="0"))
    try:
        app.get("/packages/upkg/upkg-1.0-py3-none-any.whl")
        storage = services(app.app).index.storage
        assert storage.read_versioned(page_key("upkg")) is not None
        del upstream.projects["upkg"]
        resp = app.get("/simple/upkg/", headers=JSON_ACCEPT)
        assert resp.headers["X-PPC-Upstream"] == "gone"
        assert [f["filename"] for f in resp.json["files"]] == ["upkg-1.0-py3-none-any.whl"]
        assert "max-age=0" in resp.headers["Cache-Control"]
        # No process serves the page the upstreams no longer have, not even stale.
        assert storage.read_versioned(page_key("upkg")) is None
    finally:
        close_app(app)


def test_pypi_json_of_one_proxied_release(proxied: webtest.TestApp) -> None:
    doc = proxied.get("/pypi/upkg/2.0/json").json
    assert doc["info"]["version"] == "2.0" and doc["info"]["yanked"] is True
    assert [f["filename"] for f in doc["urls"]] == ["upkg-2.0-py3-none-any.whl"]
    assert proxied.get("/pypi/upkg/1.0.0/json").json["info"]["version"] == "1.0"
    proxied.get("/pypi/upkg/3.0/json", status=404)
    proxied.get("/pypi/upkg/not-a-version/json", status=404)


def test_a_name_in_a_reserved_namespace_is_never_resolved_upstream(
    raw_settings: dict[str, Any], upstream: JsonIndex
) -> None:
    """PEP 752: `corp` is reserved here, so `corp-tool`, which only the upstream has, is unknown: 404."""
    app = build_app({**proxy_settings(raw_settings, upstream.url), "namespace.corp": f"user:{UPLOADER}"})
    try:
        app.get("/simple/corp-tool/", status=404)
        app.get("/simple/corp-tool/", headers=JSON_ACCEPT, status=404)
        app.get("/packages/corp-tool/corp_tool-99.0-py3-none-any.whl", status=404)
        assert not [path for path in upstream.hits if "corp" in path], "a reserved name was asked upstream"
        assert app.get("/simple/upkg/", headers=JSON_ACCEPT).json["files"], "other names are still proxied"
    finally:
        close_app(app)


def test_an_upstream_file_over_the_upload_limit_is_refused_naming_the_setting(
    raw_settings: dict[str, Any], upstream: JsonIndex
) -> None:
    limit = len(upstream.projects["upkg"][0].data) - 1
    app = build_app({**proxy_settings(raw_settings, upstream.url), "upload.max_size": str(limit)})
    try:
        resp = app.get("/packages/upkg/upkg-1.0-py3-none-any.whl", expect_errors=True)
        assert resp.status_int == 502
        assert "upload.max_size" in resp.json["message"] and "try again" not in resp.json["message"]
        assert upstream.hits["/files/upkg-1.0-py3-none-any.whl"] == 0, "the page's size said so: nothing downloaded"
    finally:
        close_app(app)
