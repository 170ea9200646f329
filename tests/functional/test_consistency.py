"""Several pserve processes on one shared cache and storage: a change through one is on every other's next page."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.support.consistency_harness import (
    CACHES,
    HTML,
    SharedCache,
    listed,
    request,
    sha256,
    shared_cache,
    start_shared_server,
    stored_objects,
    upload,
)
from tests.support.distbuilder import build_sdist, build_wheel
from tests.support.harness import JSON_V1, Server
from tests.support.legacy import anchors

PROJECT = "consist-demo"
YANK_REASON = "broken on A, seen on B"
# (path, Accept) of every page that lists the project's files, besides /simple/ itself.
PROJECT_PAGES = (
    (f"/simple/{PROJECT}/", HTML),
    (f"/simple/{PROJECT}/", JSON_V1),
    (f"/pypi/{PROJECT}/json", None),
)
INDEX_PAGES = (("/simple/", HTML), ("/simple/", JSON_V1))


@dataclass(frozen=True)
class Page:
    """What one GET of one page answered."""

    status: int
    etag: str | None
    serial: int | None
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")

    def json(self) -> Any:
        return json.loads(self.body)


def get_page(server: Server, path: str, accept: str | None, etag: str | None = None) -> Page:
    response = request(server, "GET", path, accept=accept, headers={"If-None-Match": etag} if etag else None)
    serial = response.headers.get("X-PyPI-Last-Serial")
    return Page(response.status_code, response.headers.get("ETag"), int(serial) if serial else None, response.content)


def pages(server: Server, wanted: tuple[tuple[str, str | None], ...]) -> dict[tuple[str, str | None], Page]:
    found = {key: get_page(server, *key) for key in wanted}
    for key, page in found.items():
        assert page.status == 200, (server.url, key, page.status, page.body[:300])
    return found


def assert_lists(found: dict[tuple[str, str | None], Page], filename: str, version: str, present: bool) -> None:
    """Each project page lists `filename` (or none of them does)."""
    html = found[(f"/simple/{PROJECT}/", HTML)]
    assert (filename in anchors(html.text)) is present, html.text
    simple = found[(f"/simple/{PROJECT}/", JSON_V1)].json()
    assert (filename in {f["filename"] for f in simple["files"]}) is present, simple
    pypi = found[(f"/pypi/{PROJECT}/json", None)].json()
    in_releases = filename in {f["filename"] for f in pypi["releases"].get(version, [])}
    assert in_releases is present, pypi["releases"]


def assert_all_changed(
    before: dict[tuple[str, str | None], Page], after: dict[tuple[str, str | None], Page], what: str
) -> None:
    for key, page in after.items():
        old = before[key]
        assert page.serial is not None and old.serial is not None, (key, what)
        assert page.serial > old.serial, f"{what}: X-PyPI-Last-Serial of {key} stayed {old.serial}"
        if old.etag is not None or page.etag is not None:
            assert page.etag != old.etag, f"{what}: ETag of {key} stayed {old.etag}"


def assert_revalidates(server: Server, old: dict[tuple[str, str | None], Page], what: str) -> None:
    """A conditional GET with an ETag from before the change gets the new page (200), not 304."""
    for (path, accept), page in old.items():
        if page.etag is None:
            continue
        again = get_page(server, path, accept, etag=page.etag)
        assert again.status == 200, f"{what}: If-None-Match {page.etag} on {path} ({accept}) answered {again.status}"


def assert_not_modified(server: Server, current: dict[tuple[str, str | None], Page]) -> None:
    """The current ETag does revalidate (so a 200 above means the validator changed, not that ETags are ignored)."""
    for (path, accept), page in current.items():
        if page.etag is None:
            continue
        assert get_page(server, path, accept, etag=page.etag).status == 304, (path, accept, page.etag)


@pytest.fixture(params=CACHES)
def cache(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SharedCache]:
    with shared_cache(request.param, tmp_path, lambda: request.getfixturevalue("moto")) as found:
        yield found


@pytest.fixture
def shared(tmp_path: Path) -> Path:
    """The storage folder every server of the test writes to."""
    return tmp_path / "shared"


@pytest.fixture
def pair(cache: SharedCache, shared: Path, tmp_path: Path) -> Iterator[tuple[Server, Server]]:
    """Servers A and B: two processes on one cache and one storage folder (started one after the other)."""
    a = start_shared_server(tmp_path / "a", shared, cache)
    try:
        b = start_shared_server(tmp_path / "b", shared, cache)
    except BaseException:
        a.stop()
        raise
    yield a, b
    b.stop()
    a.stop()


def test_a_change_through_one_server_is_on_the_others_next_page(
    pair: tuple[Server, Server], shared: Path, tmp_path: Path
) -> None:
    a, b = pair
    dists = tmp_path / "dists"
    first = build_wheel(dists, PROJECT, "1.0")
    second = build_wheel(dists, PROJECT, "2.0")
    sdist = build_sdist(dists, PROJECT, "1.0")

    # A new project through A: B's next /simple/ lists it.
    empty = pages(b, INDEX_PAGES)
    assert upload(a, first, PROJECT, "1.0").status_code == 200
    indexed = pages(b, INDEX_PAGES)
    assert PROJECT in anchors(indexed[("/simple/", HTML)].text)
    assert PROJECT in {p["name"] for p in indexed[("/simple/", JSON_V1)].json()["projects"]}
    assert_all_changed(empty, indexed, "new project through A, read on B")
    assert_revalidates(b, empty, "new project through A, read on B")

    # Both servers describe the same state with the same validators (a load balancer may send
    # the conditional GET of a page to either).
    assert upload(a, sdist, PROJECT, "1.0").status_code == 200
    before_a = pages(a, INDEX_PAGES + PROJECT_PAGES)
    before_b = pages(b, INDEX_PAGES + PROJECT_PAGES)
    for key, page in before_b.items():
        assert (page.etag, page.serial) == (before_a[key].etag, before_a[key].serial), key
    assert_not_modified(b, before_a)

    # A new release through A: B's very next pages list it, with new serials and ETags.
    assert upload(a, second, PROJECT, "2.0").status_code == 200
    after_b = pages(b, INDEX_PAGES + PROJECT_PAGES)
    assert_lists(after_b, second.name, "2.0", present=True)
    assert_lists(after_b, sdist.name, "1.0", present=True)
    assert listed(b, PROJECT)[second.name]["hashes"] == {"sha256": sha256(second)}
    assert after_b[(f"/pypi/{PROJECT}/json", None)].json()["info"]["version"] == "2.0"
    assert_all_changed(before_b, after_b, "upload through A, read on B")
    assert_revalidates(b, before_a, "upload through A, A's old ETag sent to B")
    assert_not_modified(b, after_b)
    download = request(b, "GET", f"/packages/{PROJECT}/{second.name}")
    assert download.status_code == 200
    assert download.content == second.read_bytes()
    metadata = request(b, "GET", f"/packages/{PROJECT}/{second.name}.metadata")
    assert metadata.status_code == 200
    assert b"Version: 2.0" in metadata.content

    # A file deleted through B is gone from A's next pages, and from storage.
    before_delete = pages(a, INDEX_PAGES + PROJECT_PAGES)
    response = request(b, "DELETE", f"/api/projects/{PROJECT}/files/{second.name}", admin=True)
    assert response.status_code == 200, response.text
    after_delete = pages(a, INDEX_PAGES + PROJECT_PAGES)
    assert_lists(after_delete, second.name, "2.0", present=False)
    assert_lists(after_delete, first.name, "1.0", present=True)
    assert "2.0" not in after_delete[(f"/pypi/{PROJECT}/json", None)].json()["releases"]
    assert after_delete[(f"/pypi/{PROJECT}/json", None)].json()["info"]["version"] == "1.0"
    assert_all_changed(before_delete, after_delete, "delete through B, read on A")
    assert_revalidates(a, before_delete, "delete through B, read on A")
    assert request(a, "GET", f"/packages/{PROJECT}/{second.name}").status_code == 404
    assert f"{PROJECT}/{second.name}" not in stored_objects(shared)

    # A yank through A shows on B at once: PEP 592 in HTML and JSON, and the PyPI JSON API.
    before_yank = pages(b, INDEX_PAGES + PROJECT_PAGES)
    response = request(
        a, "POST", f"/api/projects/{PROJECT}/versions/1.0/yank", admin=True, json={"reason": YANK_REASON}
    )
    assert response.status_code == 200, response.text
    after_yank = pages(b, INDEX_PAGES + PROJECT_PAGES)
    html = anchors(after_yank[(f"/simple/{PROJECT}/", HTML)].text)
    assert html[first.name].get("data-yanked") == YANK_REASON
    assert html[sdist.name].get("data-yanked") == YANK_REASON
    files = {f["filename"]: f for f in after_yank[(f"/simple/{PROJECT}/", JSON_V1)].json()["files"]}
    assert files[first.name]["yanked"] == YANK_REASON
    assert files[sdist.name]["yanked"] == YANK_REASON
    pypi = after_yank[(f"/pypi/{PROJECT}/json", None)].json()
    assert all(f["yanked"] and f["yanked_reason"] == YANK_REASON for f in pypi["releases"]["1.0"])
    assert_all_changed(before_yank, after_yank, "yank through A, read on B")
    assert_revalidates(b, before_yank, "yank through A, read on B")


def expected_objects(paths: Iterable[Path]) -> list[str]:
    """Storage keys of the files, their records, the wheels' metadata sidecars and the project's state."""
    keys = [f"_ppc/projects/{PROJECT}.json"]
    for p in paths:
        keys += [f"{PROJECT}/{p.name}", f"_ppc/files/{PROJECT}/{p.name}.json"]
        if p.name.endswith(".whl"):
            keys.append(f"{PROJECT}/{p.name}.metadata")
    return sorted(keys)


def _versions(count: int) -> list[str]:
    return [f"1.{n}" for n in range(count)]


@pytest.fixture
def busy_server(cache: SharedCache, shared: Path, tmp_path: Path) -> Iterator[Server]:
    """One server with 8 waitress threads on a fresh cache."""
    server = start_shared_server(tmp_path / "server", shared, cache, threads=8)
    yield server
    server.stop()


def test_concurrent_uploads_of_different_files_are_each_indexed_once(
    busy_server: Server, shared: Path, tmp_path: Path
) -> None:
    dists = tmp_path / "dists"
    paths: list[tuple[Path, str]] = []
    for version in _versions(8):
        paths.append((build_wheel(dists, PROJECT, version), version))
        paths.append((build_sdist(dists, PROJECT, version), version))
    assert len({p.name for p, _v in paths}) == 16

    def send(item: tuple[Path, str]) -> requests.Response:
        return upload(busy_server, item[0], PROJECT, item[1])

    with ThreadPoolExecutor(max_workers=16) as pool:
        answers = list(pool.map(send, paths))
    failed = {p.name: (r.status_code, r.text[:200]) for (p, _v), r in zip(paths, answers, strict=True) if r.ok is False}
    assert not failed, failed
    assert all(r.status_code == 200 for r in answers)
    assert all(r.json()["message"] == "OK" for r in answers), [r.json() for r in answers]

    page = request(busy_server, "GET", f"/simple/{PROJECT}/", accept=JSON_V1)
    entries = page.json()["files"]
    assert sorted(f["filename"] for f in entries) == sorted(p.name for p, _v in paths)  # each exactly once
    assert {f["filename"]: f["hashes"]["sha256"] for f in entries} == {p.name: sha256(p) for p, _v in paths}
    assert stored_objects(shared) == expected_objects(p for p, _v in paths)
    for path, _version in paths:
        assert (shared / "packages" / PROJECT / path.name).read_bytes() == path.read_bytes()
    # Every upload bumped the serial exactly once, in order: none lost, none counted twice.
    assert page.json()["meta"]["_last-serial"] == 16
    assert page.headers["X-PyPI-Last-Serial"] == "16"
    index = request(busy_server, "GET", "/simple/", accept=JSON_V1).json()
    assert index["meta"]["_last-serial"] == 16
    assert index["projects"] == [{"name": PROJECT, "_last-serial": 16}]


def test_concurrent_identical_uploads_through_two_servers_store_each_file_once(
    pair: tuple[Server, Server], shared: Path, tmp_path: Path
) -> None:
    """twine retries and parallel CI jobs: the same bytes sent to both servers at once all answer 200."""
    a, b = pair
    dists = tmp_path / "dists"
    paths = [(build_wheel(dists, PROJECT, v), v) for v in _versions(2)] + [
        (build_sdist(dists, PROJECT, v), v) for v in _versions(2)
    ]
    attempts = [(server, path, version) for path, version in paths for server in (a, b, a, b)]

    def send(item: tuple[Server, Path, str]) -> requests.Response:
        return upload(item[0], item[1], PROJECT, item[2])

    with ThreadPoolExecutor(max_workers=len(attempts)) as pool:
        answers = list(pool.map(send, attempts))
    assert [r.status_code for r in answers] == [200] * len(attempts), [r.text[:200] for r in answers]
    created = [r.json()["filename"] for r in answers if r.json()["message"] == "OK"]
    assert sorted(created) == sorted(p.name for p, _v in paths), [r.json() for r in answers]

    for server in (a, b):
        assert {name: f["hashes"]["sha256"] for name, f in listed(server, PROJECT).items()} == {
            p.name: sha256(p) for p, _v in paths
        }
        assert request(server, "GET", f"/simple/{PROJECT}/", accept=JSON_V1).json()["meta"]["_last-serial"] == len(
            paths
        )
    assert stored_objects(shared) == expected_objects(p for p, _v in paths)
