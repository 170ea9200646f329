"""The PyPI JSON API: /pypi/<project>/json and /pypi/<project>/<version>/json as pip tooling and humans read them."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import webtest

from tests.support.apiutil import assert_error, base_settings, call, creds, running, static_users
from tests.support.common import UPLOADER, UPLOADER_PASSWORD, basic_auth
from tests.support.distbuilder import build_sdist, build_wheel
from tests.support.legacy import upload_dist
from tests.support.webapp import Shared

REQUIRES = ("requests>=2", "rich; extra == 'cli'")


@pytest.fixture
def raw_settings(raw_settings: dict[str, Any]) -> dict[str, Any]:
    # The function-scoped apps of this module are private indexes: reader may read foo-bar, outsider nothing.
    return {
        **raw_settings,
        **static_users("reader", "outsider"),
        "pypi.default_read": "",
        "package.foo-bar.user.reader": "r",
    }


@pytest.fixture(scope="module")
def released(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[webtest.TestApp, dict[str, Path]]]:
    """Foo.Bar 1.0 (wheel + sdist), 1.5 (yanked), 2.0 (a wheel) and 3.0b1: read-only for every test here."""
    root = tmp_path_factory.mktemp("pypi-json")
    raw = {
        **base_settings(root),
        **static_users(UPLOADER),
        "auth.admins": UPLOADER,
    }
    dist = root / "dist"
    paths = {
        "1.0-wheel": build_wheel(dist, "Foo.Bar", "1.0", requires_python=">=3.8", requires_dist=REQUIRES),
        "1.0-sdist": build_sdist(dist, "Foo.Bar", "1.0", requires_python=">=3.8"),
        "1.5-wheel": build_wheel(dist, "Foo.Bar", "1.5"),
        "2.0-wheel": build_wheel(dist, "Foo.Bar", "2.0", summary="Version two", requires_python=">=3.10"),
        "3.0b1-wheel": build_wheel(dist, "Foo.Bar", "3.0b1"),
    }
    with running(raw) as testapp:
        headers = creds(UPLOADER)
        for key, path in paths.items():
            resp = upload_dist(testapp, headers, path, "Foo.Bar", key.split("-")[0])
            assert resp.status_int == 200, resp.body
        call(testapp, "POST", "/api/projects/foo-bar/versions/1.5/yank", headers, json={"reason": "broken build"})
        call(testapp, "POST", "/api/projects/foo-bar/versions/2.0/yank", headers, json={"reason": "bad"})
        call(testapp, "DELETE", "/api/projects/foo-bar/versions/2.0/yank", headers)
        yield testapp, paths


def check_file(testapp: webtest.TestApp, entry: dict[str, Any], path: Path) -> None:
    data = path.read_bytes()
    wheel = path.name.endswith(".whl")
    assert entry["filename"] == path.name
    assert entry["url"] == f"http://localhost/packages/foo-bar/{path.name}"
    assert testapp.get(entry["url"]).body == data
    assert entry["digests"] == {
        "sha256": hashlib.sha256(data).hexdigest(),
        "md5": hashlib.md5(data).hexdigest(),
        "blake2b_256": hashlib.blake2b(data, digest_size=32).hexdigest(),
    }
    assert entry["md5_digest"] == hashlib.md5(data).hexdigest()
    assert entry["size"] == len(data)
    assert entry["packagetype"] == ("bdist_wheel" if wheel else "sdist")
    assert entry["python_version"] == ("py3" if wheel else "source")
    assert entry["has_sig"] is False
    iso = entry["upload_time_iso_8601"]
    assert iso.endswith("Z")
    moment = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    assert datetime.now(UTC) - timedelta(hours=1) < moment <= datetime.now(UTC)
    assert entry["upload_time"] == moment.strftime("%Y-%m-%dT%H:%M:%S")


def test_project(released: tuple[webtest.TestApp, dict[str, Path]]) -> None:
    testapp, paths = released
    resp = testapp.get("/pypi/foo-bar/json")
    assert resp.content_type == "application/json"
    doc = resp.json
    info = doc["info"]
    # The latest release is the newest final one that is not yanked: 2.0, not 3.0b1.
    assert info["name"] == "Foo.Bar"
    assert info["version"] == "2.0"
    assert info["summary"] == "Version two"
    assert info["requires_python"] == ">=3.10"
    assert info["yanked"] is False
    assert info["yanked_reason"] is None
    assert info["release_url"] == "http://localhost/pypi/foo-bar/2.0/json"
    assert info["project_url"] == "http://localhost/simple/foo-bar/"
    assert list(doc["releases"]) == ["1.0", "1.5", "2.0", "3.0b1"]
    assert [f["filename"] for f in doc["urls"]] == [paths["2.0-wheel"].name]
    check_file(testapp, doc["urls"][0], paths["2.0-wheel"])
    assert doc["urls"][0]["requires_python"] == ">=3.10"
    assert doc["vulnerabilities"] == []
    assert doc["last_serial"] == int(resp.headers["X-PyPI-Last-Serial"])


def test_releases(released: tuple[webtest.TestApp, dict[str, Path]]) -> None:
    testapp, paths = released
    releases = testapp.get("/pypi/foo-bar/json").json["releases"]
    one = {f["filename"]: f for f in releases["1.0"]}
    assert set(one) == {paths["1.0-wheel"].name, paths["1.0-sdist"].name}
    for key in ("1.0-wheel", "1.0-sdist"):
        check_file(testapp, one[paths[key].name], paths[key])
        assert one[paths[key].name]["requires_python"] == ">=3.8"
        assert one[paths[key].name]["yanked"] is False
    (yanked,) = releases["1.5"]
    assert (yanked["yanked"], yanked["yanked_reason"]) == (True, "broken build")
    (unyanked,) = releases["2.0"]
    assert (unyanked["yanked"], unyanked["yanked_reason"]) == (False, None)


def test_release(released: tuple[webtest.TestApp, dict[str, Path]]) -> None:
    testapp, paths = released
    resp = testapp.get("/pypi/foo-bar/1.0/json")
    doc = resp.json
    assert "releases" not in doc
    info = doc["info"]
    assert info["name"] == "Foo.Bar"
    assert info["version"] == "1.0"
    assert info["summary"] == "A tiny test package"
    assert info["requires_python"] == ">=3.8"
    assert info["requires_dist"] == list(REQUIRES)
    assert info["author"] == "Test Author"
    assert info["license"] == "MIT"
    assert info["project_urls"] == {"Homepage": "https://example.invalid/"}
    assert info["yanked"] is False
    assert info["yanked_reason"] is None
    assert info["release_url"] == "http://localhost/pypi/foo-bar/1.0/json"
    assert sorted(f["filename"] for f in doc["urls"]) == sorted([paths["1.0-wheel"].name, paths["1.0-sdist"].name])
    for entry in doc["urls"]:
        check_file(testapp, entry, paths["1.0-wheel"] if entry["filename"].endswith(".whl") else paths["1.0-sdist"])
    assert resp.headers["X-PyPI-Last-Serial"] == str(doc["last_serial"])


def test_release_without_requirements(released: tuple[webtest.TestApp, dict[str, Path]]) -> None:
    testapp, _ = released
    info = testapp.get("/pypi/foo-bar/2.0/json").json["info"]
    assert info["requires_dist"] is None
    assert info["requires_python"] == ">=3.10"


def test_yanked_release(released: tuple[webtest.TestApp, dict[str, Path]]) -> None:
    testapp, _ = released
    doc = testapp.get("/pypi/foo-bar/1.5/json").json
    assert doc["info"]["yanked"] is True
    assert doc["info"]["yanked_reason"] == "broken build"
    assert [(f["yanked"], f["yanked_reason"]) for f in doc["urls"]] == [(True, "broken build")]


def test_prerelease_is_reachable(released: tuple[webtest.TestApp, dict[str, Path]]) -> None:
    testapp, paths = released
    doc = testapp.get("/pypi/foo-bar/3.0b1/json").json
    assert doc["info"]["version"] == "3.0b1"
    assert [f["filename"] for f in doc["urls"]] == [paths["3.0b1-wheel"].name]


@pytest.mark.parametrize(("spelling", "version"), [("1.0.0", "1.0"), ("3.0beta1", "3.0b1"), ("v2.0", "2.0")])
def test_release_by_equivalent_version_redirects_to_its_own_spelling(
    released: tuple[webtest.TestApp, dict[str, Path]], spelling: str, version: str
) -> None:
    testapp, _ = released
    moved = testapp.get(f"/pypi/foo-bar/{spelling}/json", status=301)
    # The redirect is as public as the page it points to, and for as long (the CDN may keep it).
    assert moved.headers["Cache-Control"] == testapp.get(f"/pypi/foo-bar/{version}/json").headers["Cache-Control"]
    assert moved.follow().json["info"]["version"] == version
    assert moved.headers["Location"].endswith(f"/pypi/foo-bar/{version}/json")


def test_a_private_release_is_redirected_only_for_its_readers(
    testapp: webtest.TestApp, auth: dict[str, str], dist_dir: Path
) -> None:
    upload_dist(testapp, auth, build_wheel(dist_dir, "Foo.Bar", "1.0"), "Foo.Bar", "1.0")
    # The redirect would tell that the release exists: strangers get the 404 of an unknown project.
    assert_error(testapp.get("/pypi/foo-bar/1.0.0/json", headers=creds("outsider"), expect_errors=True), 404)
    assert_error(testapp.get("/pypi/foo-bar/1.0.0/json", expect_errors=True), 401)
    moved = testapp.get("/pypi/foo-bar/1.0.0/json", headers=creds("reader"), status=301)
    assert moved.headers["Cache-Control"].startswith("private")
    assert moved.headers["Location"].endswith("/pypi/foo-bar/1.0/json")


@pytest.mark.parametrize(
    ("path", "location"),
    [
        ("/pypi/Foo.Bar/json", "/pypi/foo-bar/json"),
        ("/pypi/FOO_BAR/json", "/pypi/foo-bar/json"),
        ("/pypi/foo.bar/1.0/json", "/pypi/foo-bar/1.0/json"),
        # Names that do not exist are normalized too: nothing to learn from the redirect.
        ("/pypi/No_Such/json", "/pypi/no-such/json"),
    ],
)
def test_redirect_to_normalized_name(
    released: tuple[webtest.TestApp, dict[str, Path]], path: str, location: str
) -> None:
    testapp, _ = released
    resp = testapp.get(path, status=301)
    assert resp.headers["Location"] in (location, f"http://localhost{location}")
    assert testapp.get(resp.headers["Location"], expect_errors=True).status_int in (200, 404)


@pytest.mark.parametrize(
    "path",
    [
        "/pypi/no-such/json",
        "/pypi/no-such/1.0/json",
        "/pypi/foo-bar/9.9/json",
        "/pypi/foo-bar/not-a-version/json",
        "/pypi/foo-bar/1.0.1/json",
    ],
)
def test_not_found(released: tuple[webtest.TestApp, dict[str, Path]], path: str) -> None:
    testapp, _ = released
    assert_error(testapp.get(path, expect_errors=True), 404)


def test_cache_headers(released: tuple[webtest.TestApp, dict[str, Path]]) -> None:
    testapp, _ = released
    assert testapp.get("/pypi/foo-bar/json").headers["Cache-Control"].startswith("public")
    assert testapp.get("/pypi/foo-bar/json", headers=creds(UPLOADER)).headers["Cache-Control"].startswith("private")


def test_quarantined_project_lists_no_files(testapp: webtest.TestApp, auth: dict[str, str], dist_dir: Path) -> None:
    upload_dist(testapp, auth, build_wheel(dist_dir, "Foo.Bar", "1.0"), "Foo.Bar", "1.0")
    call(testapp, "PUT", "/api/projects/foo-bar/status", auth, json={"status": "quarantined"})
    doc = testapp.get("/pypi/foo-bar/json", headers=auth).json
    assert (doc["urls"], doc["releases"]) == ([], {})
    assert_error(testapp.get("/pypi/foo-bar/1.0/json", headers=auth, expect_errors=True), 404)


def test_uses_the_shared_index(readonly: Shared) -> None:
    # The shared Foo.Bar of the other web tests: one wheel and one sdist of 1.0.
    doc = readonly.app.get("/pypi/foo-bar/json").json
    assert doc["info"]["version"] == "1.0"
    assert sorted(f["filename"] for f in doc["urls"]) == sorted([readonly.wheel.name, readonly.sdist.name])


@pytest.mark.parametrize("path", ["/pypi/foo-bar/json", "/pypi/foo-bar/1.0/json"])
def test_private_project(testapp: webtest.TestApp, auth: dict[str, str], dist_dir: Path, path: str) -> None:
    upload_dist(testapp, auth, build_wheel(dist_dir, "Foo.Bar", "1.0"), "Foo.Bar", "1.0")
    assert_error(testapp.get(path, expect_errors=True), 401)
    assert_error(testapp.get(path, headers=creds("reader", "wrong"), expect_errors=True), 401)
    # Unreadable looks exactly like unknown: 404, never 403.
    unreadable = testapp.get(path, headers=creds("outsider"), expect_errors=True)
    unknown = testapp.get(path.replace("foo-bar", "no-such"), headers=creds("outsider"), expect_errors=True)
    assert_error(unreadable, 404)
    assert_error(unknown, 404)
    assert testapp.get(path, headers=creds("reader")).json["info"]["name"] == "Foo.Bar"
    assert testapp.get(path, headers=basic_auth(UPLOADER, UPLOADER_PASSWORD)).status_int == 200


def test_every_spelling_a_release_was_uploaded_under_is_served(
    testapp: webtest.TestApp, auth: dict[str, str], dist_dir: Path
) -> None:
    # One release whose files spell its version two ways: each spelling is a page the CDN purge names,
    # and each shows the one release, spelled as its first file was.
    upload_dist(testapp, auth, build_wheel(dist_dir, "Foo.Bar", "1.0"), "Foo.Bar", "1.0")
    upload_dist(testapp, auth, build_sdist(dist_dir, "Foo.Bar", "1.0.0"), "Foo.Bar", "1.0.0")
    for spelling in ("1.0", "1.0.0"):
        doc = testapp.get(f"/pypi/foo-bar/{spelling}/json", headers=auth).json
        assert doc["info"]["version"] == "1.0"
        assert doc["info"]["release_url"] == "http://localhost/pypi/foo-bar/1.0/json"
        assert len(doc["urls"]) == 2
    moved = testapp.get("/pypi/foo-bar/1.00/json", headers=auth, status=301)
    assert moved.headers["Location"].endswith("/pypi/foo-bar/1.0/json")
