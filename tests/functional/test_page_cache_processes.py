"""Two server processes, each with warm page caches: a change through one is in the other's very next page."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from tests.support.consistency_harness import (
    HTML,
    SharedCache,
    request,
    shared_cache,
    start_shared_server,
    upload,
)
from tests.support.distbuilder import build_sdist, build_wheel
from tests.support.harness import JSON_V1, Server
from tests.support.legacy import anchors

PROJECT = "cached-demo"
YANK_REASON = "yanked through A"
PAGES = ("/simple/", f"/simple/{PROJECT}/")
ENCODINGS = ("identity", "gzip")
View = tuple[str, str, str]  # path, Accept, Accept-Encoding
VIEWS: list[View] = [(path, accept, encoding) for path in PAGES for accept in (HTML, JSON_V1) for encoding in ENCODINGS]


@pytest.fixture(params=["sqlite", "postgresql"])
def pair(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Server, Server]]:
    """Servers A and B on one cache and one storage folder."""
    with shared_cache(request.param, tmp_path, lambda: request.getfixturevalue("moto")) as cache:
        servers = start_pair(cache, tmp_path)
        try:
            yield servers
        finally:
            for server in servers:
                server.stop()


def start_pair(cache: SharedCache, tmp_path: Path) -> tuple[Server, Server]:
    a = start_shared_server(tmp_path / "a", tmp_path / "shared", cache)
    try:
        return a, start_shared_server(tmp_path / "b", tmp_path / "shared", cache)
    except BaseException:
        a.stop()
        raise


def fetch(server: Server, view: View, etag: str | None = None) -> requests.Response:
    """One GET of a view (requests undoes the gzip: `content` is the page either way)."""
    path, accept, encoding = view
    headers = {"Accept-Encoding": encoding, **({"If-None-Match": etag} if etag else {})}
    return request(server, "GET", path, accept=accept, headers=headers)


def snapshot(server: Server) -> dict[View, requests.Response]:
    """Every view, each answered 200 in the encoding asked for; both encodings carry the same page."""
    found = {view: fetch(server, view) for view in VIEWS}
    for view, response in found.items():
        assert response.status_code == 200, (server.url, view, response.text[:300])
        assert response.headers.get("Content-Encoding", "identity") == view[2], view
    for path, accept, _encoding in VIEWS:
        assert found[(path, accept, "gzip")].content == found[(path, accept, "identity")].content
    return found


def assert_next_pages_changed(
    server: Server, before: dict[View, requests.Response], what: str
) -> dict[View, requests.Response]:
    """The server's very next pages are new (bytes and ETag); old ETags get them, current ones get 304."""
    after = snapshot(server)
    for view, page in after.items():
        old = before[view]
        assert page.headers["ETag"] != old.headers["ETag"], (what, view)
        if view[0] != "/simple/" or view[1] == JSON_V1:  # the HTML listing holds names only
            assert page.content != old.content, (what, view)
        stale = fetch(server, view, old.headers["ETag"])
        assert (stale.status_code, stale.content) == (200, page.content), (what, view)
        assert fetch(server, view, page.headers["ETag"]).status_code == 304, (what, view)
    return after


def json_files(pages: dict[View, requests.Response]) -> dict[str, object]:
    doc = pages[(f"/simple/{PROJECT}/", JSON_V1, "gzip")].json()
    return {f["filename"]: f["yanked"] for f in doc["files"]}


def html_files(pages: dict[View, requests.Response]) -> dict[str, str | None]:
    links = anchors(pages[(f"/simple/{PROJECT}/", HTML, "identity")].text)
    return {name: attrs.get("data-yanked") for name, attrs in links.items()}


def ok(response: requests.Response) -> None:
    assert response.status_code == 200, response.text


def test_changes_through_one_process_are_on_the_others_next_page(pair: tuple[Server, Server], tmp_path: Path) -> None:
    a, b = pair
    dists = tmp_path / "dists"
    wheel, sdist = build_wheel(dists, PROJECT, "1.0"), build_sdist(dists, PROJECT, "1.0")
    second, copied = build_wheel(dists, PROJECT, "2.0"), build_wheel(dists, PROJECT, "3.0")
    # A new project through A is in B's next listing (B's listings warm, its project page a 404).
    listings = [view for view in VIEWS if view[0] == "/simple/"]
    empty = {view: fetch(b, view) for view in listings}
    assert fetch(b, VIEWS[-1]).status_code == 404
    ok(upload(a, wheel, PROJECT, "1.0"))
    for view in listings:
        listed = fetch(b, view, empty[view].headers["ETag"])
        assert listed.status_code == 200 and listed.content != empty[view].content, view
        assert listed.headers["ETag"] != empty[view].headers["ETag"]
    assert PROJECT in anchors(fetch(b, ("/simple/", HTML, "gzip")).text)
    for server in (a, b):
        snapshot(server)  # warm both processes' caches, every representation

    steps: list[tuple[str, Callable[[], None], Callable[[dict[View, requests.Response]], None]]] = [
        (
            "upload",
            lambda: ok(upload(a, second, PROJECT, "2.0")),
            lambda pages: assert_equal(set(json_files(pages)), {wheel.name, second.name}),
        ),
        (
            "yank",
            lambda: ok(
                request(
                    a, "POST", f"/api/projects/{PROJECT}/versions/1.0/yank", admin=True, json={"reason": YANK_REASON}
                )
            ),
            lambda pages: assert_equal(
                (json_files(pages), html_files(pages)),
                ({wheel.name: YANK_REASON, second.name: False}, {wheel.name: YANK_REASON, second.name: None}),
            ),
        ),
        (
            "delete",
            lambda: ok(request(a, "DELETE", f"/api/projects/{PROJECT}/files/{second.name}", admin=True)),
            lambda pages: assert_equal(html_files(pages), {wheel.name: YANK_REASON}),
        ),
        (
            "upload-sdist",
            lambda: ok(upload(a, sdist, PROJECT, "1.0")),
            lambda pages: assert_equal(set(json_files(pages)), {wheel.name, sdist.name}),
        ),
        (
            # Another tool copies a file straight into storage; a reload through A indexes it.
            "reload",
            lambda: reload_after_copying(a, copied, tmp_path / "shared" / "packages" / PROJECT),
            lambda pages: assert_equal(set(json_files(pages)), {wheel.name, sdist.name, copied.name}),
        ),
    ]
    for what, change, check in steps:
        before_b = snapshot(b)
        before_a = snapshot(a)
        change()
        after_b = assert_next_pages_changed(b, before_b, f"{what} through A, read on B")
        check(after_b)
        after_a = snapshot(a)
        # Both processes serve the same bytes under the same validators (either may get the conditional GET).
        for view, page in after_b.items():
            assert (page.content, page.headers["ETag"]) == (after_a[view].content, after_a[view].headers["ETag"])
            assert fetch(b, view, before_a[view].headers["ETag"]).status_code == 200, (what, view)


def reload_after_copying(server: Server, dist: Path, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / dist.name).write_bytes(dist.read_bytes())
    response = request(server, "POST", "/admin/reload?wait=1", admin=True)
    assert response.status_code == 200 and response.json()["added"] == 1, response.text


def assert_equal(found: object, expected: object) -> None:
    assert found == expected
