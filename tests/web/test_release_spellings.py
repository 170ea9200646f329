"""One release per PEP 440 version: files spelling it 1.0, 1.0.0, 1.0.0.0, 1.00 and v1.0 are one release everywhere."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import webtest

from tests.support.apiutil import assert_error, call, simple_json
from tests.support.distbuilder import build_sdist, build_wheel
from tests.support.legacy import HTML_V1, upload_dist

pytestmark = pytest.mark.usefixtures("cheap_hashing")


def spelled(dist_dir: Path, spelling: str, tag: str) -> Path:
    """A wheel of Foo.Bar 1.0 whose filename spells the version `spelling` (the metadata says 1.0)."""
    built = build_wheel(dist_dir / spelling, "Foo.Bar", "1.0", tag=tag)
    return built.rename(dist_dir / f"foo_bar-{spelling}-{tag}.whl")


@pytest.fixture
def release(testapp: webtest.TestApp, auth: dict[str, str], dist_dir: Path) -> list[str]:
    """Release 1.0 of Foo.Bar under five spellings (1.0 first), and release 2.0: the filenames of 1.0."""
    paths = [
        build_wheel(dist_dir, "Foo.Bar", "1.0"),
        build_sdist(dist_dir, "Foo.Bar", "1.0.0"),
        build_wheel(dist_dir, "Foo.Bar", "1.0.0.0"),
        spelled(dist_dir, "1.00", "py2-none-any"),
        spelled(dist_dir, "v1.0", "cp312-none-any"),
    ]
    for path in paths:
        resp = upload_dist(testapp, auth, path, "Foo.Bar", "1.0")
        assert resp.status_int == 200, resp.body
    resp = upload_dist(testapp, auth, build_wheel(dist_dir, "Foo.Bar", "2.0"), "Foo.Bar", "2.0")
    assert resp.status_int == 200, resp.body
    return sorted(p.name for p in paths)


def yanked_states(testapp: webtest.TestApp) -> dict[str, object]:
    return {f["filename"]: f["yanked"] for f in simple_json(testapp, "foo-bar")["files"]}


def html_yanked(testapp: webtest.TestApp) -> dict[str, bool]:
    html = testapp.get("/simple/foo-bar/", headers={"Accept": HTML_V1}).text
    return {name: "data-yanked" in attrs for attrs, name in re.findall(r"<a ([^>]*)>([^<]+)</a>", html)}


@pytest.mark.parametrize("spelling", ["1.0", "1.0.0", "1.0.0.0", "1.00", "v1.0", "1"])
def test_yanking_any_spelling_yanks_every_file_of_the_release(
    testapp: webtest.TestApp, auth: dict[str, str], release: list[str], spelling: str
) -> None:
    resp = call(testapp, "POST", f"/api/projects/foo-bar/versions/{spelling}/yank", auth, json={"reason": "r"})
    assert resp.status_int == 200, resp.body
    assert resp.json["files"] == len(release)
    states = yanked_states(testapp)
    assert {name: states[name] for name in release} == dict.fromkeys(release, "r")
    assert states["foo_bar-2.0-py3-none-any.whl"] is False
    in_html = html_yanked(testapp)
    assert {name: in_html[name] for name in release} == dict.fromkeys(release, True)
    # What pip does for `foo-bar==1.0`: every file of the release it may pick is yanked.
    offered = simple_json(testapp, "foo-bar")["files"]
    candidates = [f for f in offered if f["filename"] in release]
    assert candidates and not [f for f in candidates if f["yanked"] is False]

    resp = call(testapp, "DELETE", "/api/projects/foo-bar/versions/1.0.0.0/yank", auth)
    assert resp.status_int == 200, resp.body
    assert resp.json["files"] == len(release)
    assert set(yanked_states(testapp).values()) == {False}


def test_deleting_any_spelling_deletes_the_whole_release(
    testapp: webtest.TestApp, auth: dict[str, str], release: list[str]
) -> None:
    resp = call(testapp, "DELETE", "/api/projects/foo-bar/versions/1.0.0", auth)
    assert resp.status_int == 200, resp.body
    assert sorted(resp.json["deleted"]) == release
    assert [f["filename"] for f in simple_json(testapp, "foo-bar")["files"]] == ["foo_bar-2.0-py3-none-any.whl"]
    assert_error(call(testapp, "DELETE", "/api/projects/foo-bar/versions/1.00", auth), 404)


def test_the_api_lists_one_release(testapp: webtest.TestApp, release: list[str]) -> None:
    versions = testapp.get("/api/projects/foo-bar").json["versions"]
    assert [v["version"] for v in versions] == ["2.0", "1.0"]
    assert sorted(f["filename"] for f in versions[1]["files"]) == release
    listed = testapp.get("/api/projects").json["projects"]
    assert [(p["latest_version"], p["files"]) for p in listed] == [("2.0", 6)]


def test_the_simple_json_lists_one_version_per_release(testapp: webtest.TestApp, release: list[str]) -> None:
    assert simple_json(testapp, "foo-bar")["versions"] == ["1.0", "2.0"]


def test_the_pypi_json_has_one_release(testapp: webtest.TestApp, release: list[str]) -> None:
    doc = testapp.get("/pypi/foo-bar/json").json
    assert list(doc["releases"]) == ["1.0", "2.0"]
    assert sorted(f["filename"] for f in doc["releases"]["1.0"]) == release
    assert doc["info"]["version"] == "2.0"
    for spelling in ("1.0", "1.0.0", "1.0.0.0"):
        # Spellings the files carry are pages the CDN purge names: each is served, as the one release.
        one = testapp.get(f"/pypi/foo-bar/{spelling}/json").json
        assert one["info"]["version"] == "1.0"
        assert sorted(f["filename"] for f in one["urls"]) == release
    moved = testapp.get("/pypi/foo-bar/1.000/json", status=301)
    assert moved.headers["Location"].endswith("/pypi/foo-bar/1.0/json")


def test_the_ui_shows_one_release_card(testapp: webtest.TestApp, release: list[str]) -> None:
    page = testapp.get("/ui/projects/foo-bar").text
    # The latest release open, older ones collapsed: one card (or <details>) per release, whatever its spellings.
    assert re.findall(r'<(?:section|details) class="release[^"]*"[^>]*data-version="([^"]+)"', page) == ["2.0", "1.0"]


def test_the_latest_release_is_one_release_when_it_is_spelled_several_ways(
    testapp: webtest.TestApp, auth: dict[str, str], dist_dir: Path
) -> None:
    upload_dist(testapp, auth, build_wheel(dist_dir, "Foo.Bar", "1.0", summary="Old"), "Foo.Bar", "1.0")
    upload_dist(testapp, auth, build_wheel(dist_dir, "Foo.Bar", "2.0.0", summary="New"), "Foo.Bar", "2.0.0")
    upload_dist(testapp, auth, build_sdist(dist_dir, "Foo.Bar", "2.0", summary="New"), "Foo.Bar", "2.0")
    # The release is spelled as its first file was (as PyPI keeps the first upload's version).
    doc = testapp.get("/pypi/foo-bar/json").json
    assert doc["info"]["version"] == "2.0.0"
    assert list(doc["releases"]) == ["1.0", "2.0.0"]
    assert len(doc["urls"]) == 2
    assert [v["version"] for v in testapp.get("/api/projects/foo-bar").json["versions"]] == ["2.0.0", "1.0"]
    summary = testapp.get("/api/projects").json["projects"][0]
    assert (summary["latest_version"], summary["summary"]) == ("2.0.0", "New")


def test_a_file_added_to_a_yanked_release_is_yanked_too(
    testapp: webtest.TestApp, auth: dict[str, str], dist_dir: Path
) -> None:
    upload_dist(testapp, auth, build_wheel(dist_dir, "Foo.Bar", "1.0"), "Foo.Bar", "1.0")
    call(testapp, "POST", "/api/projects/foo-bar/versions/1.0/yank", auth, json={"reason": "broken"})
    resp = upload_dist(testapp, auth, build_sdist(dist_dir, "Foo.Bar", "1.0.0"), "Foo.Bar", "1.0.0")
    assert resp.status_int == 200, resp.body
    upload_dist(testapp, auth, build_wheel(dist_dir, "Foo.Bar", "2.0"), "Foo.Bar", "2.0")
    assert yanked_states(testapp) == {
        "foo_bar-1.0-py3-none-any.whl": "broken",
        "foo_bar-1.0.0.tar.gz": "broken",
        "foo_bar-2.0-py3-none-any.whl": False,
    }
