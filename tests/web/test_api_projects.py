"""The JSON management API for projects: listing, details, file and release deletion, yanking and PEP 792 status."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import webtest

from pypicloud_lite.config import Settings
from pypicloud_lite.naming import sidecar_key, storage_key
from pypicloud_lite.service import PackageIndex
from tests.support.apiutil import (
    ADMIN,
    BOB,
    assert_error,
    base_settings,
    call,
    creds,
    running,
    simple_filenames,
    simple_json,
    static_users,
    upload_sdist,
    upload_wheel,
)
from tests.support.distbuilder import build_wheel
from tests.support.legacy import HTML_V1, anchors, upload_dist
from tests.support.webapp import Uploaded

# BOB: an ordinary user here, who may read and upload (the defaults), not delete or change status.


@pytest.fixture
def raw_settings(raw_settings: dict[str, Any]) -> dict[str, Any]:
    return {**raw_settings, **static_users(BOB)}


def recent(value: str) -> bool:
    assert value.endswith("Z"), value
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return datetime.now(UTC) - timedelta(minutes=5) < moment <= datetime.now(UTC)


def listing(testapp: webtest.TestApp, headers: dict[str, str] | None = None, **params: str) -> dict[str, Any]:
    found: dict[str, Any] = testapp.get("/api/projects", params=params, headers=headers or {}).json
    return found


def names(doc: dict[str, Any]) -> list[str]:
    return [p["name"] for p in doc["projects"]]


# -- GET /api/projects -------------------------------------------------------------


def test_list_empty(testapp: webtest.TestApp) -> None:
    assert listing(testapp) == {"projects": [], "page": 1, "per_page": 50, "total": 0}


def test_list_summaries(testapp: webtest.TestApp, auth: dict[str, str], uploaded: Uploaded) -> None:
    doc = listing(testapp, auth)
    assert doc["total"] == 1
    (entry,) = doc["projects"]
    assert recent(entry.pop("last_upload"))
    assert entry == {
        "name": "foo-bar",
        "display_name": "Foo.Bar",
        "status": "active",
        "latest_version": "1.0",
        "summary": "A tiny test package",
        "files": 2,
    }


def test_latest_version_is_newest_unyanked_final_release(
    testapp: webtest.TestApp, auth: dict[str, str], dist_dir: Path
) -> None:
    for version, summary in [("1.0", "one"), ("1.10", "one-ten"), ("1.9", "one-nine"), ("2.0", "two"), ("3.0b1", "b")]:
        upload_wheel(testapp, auth, dist_dir, "Foo.Bar", version, summary=summary)
    call(testapp, "POST", "/api/projects/foo-bar/versions/2.0/yank", auth, json={"reason": "broken"})
    (entry,) = listing(testapp)["projects"]
    # 2.0 is yanked and 3.0b1 a pre-release: pip would pick 1.10 (PEP 440, not string order).
    assert entry["latest_version"] == "1.10"
    assert entry["summary"] == "one-ten"
    assert entry["files"] == 5


def test_only_prereleases(testapp: webtest.TestApp, auth: dict[str, str], dist_dir: Path) -> None:
    for version in ("1.0a1", "1.0b2", "1.0a3"):
        upload_wheel(testapp, auth, dist_dir, "pre", version)
    assert listing(testapp)["projects"][0]["latest_version"] == "1.0b2"


def test_last_upload_is_the_newest_file(
    testapp: webtest.TestApp, auth: dict[str, str], dist_dir: Path, index: PackageIndex
) -> None:
    upload_wheel(testapp, auth, dist_dir, "Foo.Bar", "2.0")
    upload_wheel(testapp, auth, dist_dir, "Foo.Bar", "1.0")
    newest = max(f.upload_time for f in index.project_files(index.get_project("foo-bar")))
    entry = listing(testapp)["projects"][0]
    assert entry["last_upload"] == newest.astimezone(UTC).isoformat().replace("+00:00", "Z")


FIVE = ["alpha", "beta-two", "delta", "epsilon-ray", "gamma-ray"]


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Iterator[webtest.TestApp]:
    """Five projects, uploaded once, for the tests that only list and search."""
    root = tmp_path_factory.mktemp("catalog")
    with running({**base_settings(root), **static_users(ADMIN), "auth.admins": ADMIN}) as testapp:
        for name in ["Alpha", "beta.two", "Gamma_Ray", "delta", "epsilon-ray"]:
            upload_wheel(testapp, creds(ADMIN), root / "dist", name, "1.0")
        yield testapp


@pytest.fixture(scope="module")
def refusing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[webtest.TestApp]:
    """Foo.Bar 1.0 (wheel and sdist) and other 1.0, shared by tests of requests that must change nothing."""
    root = tmp_path_factory.mktemp("refusing")
    with running({**base_settings(root), **static_users(ADMIN), "auth.admins": ADMIN}) as testapp:
        upload_wheel(testapp, creds(ADMIN), root / "dist", "Foo.Bar", "1.0")
        upload_sdist(testapp, creds(ADMIN), root / "dist", "Foo.Bar", "1.0")
        upload_wheel(testapp, creds(ADMIN), root / "dist", "other", "1.0")
        yield testapp


def unchanged(testapp: webtest.TestApp) -> None:
    doc = testapp.get("/api/projects/foo-bar").json
    assert doc["status"] == "active"
    (release,) = doc["versions"]
    assert [(f["yanked"], f["yanked_reason"]) for f in release["files"]] == [(False, None), (False, None)]


def test_pagination(catalog: webtest.TestApp) -> None:
    pages = [listing(catalog, page=str(page), per_page="2") for page in (1, 2, 3, 4)]
    assert [names(doc) for doc in pages] == [FIVE[0:2], FIVE[2:4], FIVE[4:], []]
    assert {doc["total"] for doc in pages} == {5}
    assert [(doc["page"], doc["per_page"]) for doc in pages] == [(1, 2), (2, 2), (3, 2), (4, 2)]
    assert names(listing(catalog, per_page="200")) == FIVE


@pytest.mark.parametrize(
    "params",
    [
        {"page": "0"},
        {"page": "-1"},
        {"page": "abc"},
        {"page": "1.5"},
        {"page": ""},
        {"per_page": "0"},
        {"per_page": "201"},
        {"per_page": "x"},
        {"page": "1000001"},
    ],
)
def test_pagination_bounds(catalog: webtest.TestApp, params: dict[str, str]) -> None:
    resp = catalog.get("/api/projects", params=params, expect_errors=True)
    (name,) = params
    assert_error(resp, 400, name)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("ray", ["epsilon-ray", "gamma-ray"]),
        ("Gamma_Ray", ["gamma-ray"]),  # the query is normalized like the names
        ("BETA.TWO", ["beta-two"]),
        ("a-r", ["gamma-ray"]),
        ("", ["alpha", "beta-two", "delta", "epsilon-ray", "gamma-ray"]),
        ("zzz", []),
        ("%", []),  # no SQL wildcards
        ("-", ["beta-two", "epsilon-ray", "gamma-ray"]),
    ],
)
def test_search(catalog: webtest.TestApp, query: str, expected: list[str]) -> None:
    doc = listing(catalog, q=query)
    assert names(doc) == expected
    assert doc["total"] == len(expected)


def test_search_with_pagination(catalog: webtest.TestApp) -> None:
    doc = listing(catalog, q="a", per_page="2", page="2")
    assert doc["total"] == 5
    assert names(doc) == ["delta", "epsilon-ray"]


# -- GET /api/projects/<project> ---------------------------------------------------


def test_project_detail(testapp: webtest.TestApp, auth: dict[str, str], dist_dir: Path, index: PackageIndex) -> None:
    for version in ("1.0", "1.10", "1.9", "2.0rc1", "1.0.post1"):
        upload_wheel(testapp, auth, dist_dir, "Foo.Bar", version, requires_python=">=3.8")
    sdist = upload_sdist(testapp, auth, dist_dir, "Foo.Bar", "1.9")
    call(testapp, "POST", "/api/projects/foo-bar/versions/1.9/yank", auth, json={"reason": "oops"})
    doc = testapp.get("/api/projects/foo-bar").json
    assert (doc["name"], doc["display_name"], doc["status"], doc["status_reason"]) == (
        "foo-bar",
        "Foo.Bar",
        "active",
        None,
    )
    assert doc["serial"] == index.get_project("foo-bar").serial
    # Newest first, in PEP 440 order.
    assert [v["version"] for v in doc["versions"]] == ["2.0rc1", "1.10", "1.9", "1.0.post1", "1.0"]
    by_version = {v["version"]: v for v in doc["versions"]}
    assert by_version["1.9"]["yanked"] is True
    assert by_version["1.10"]["yanked"] is False
    nine = {f["filename"]: f for f in by_version["1.9"]["files"]}
    assert set(nine) == {"foo_bar-1.9-py3-none-any.whl", sdist.name}
    entry = nine[sdist.name]
    data = sdist.read_bytes()
    assert recent(entry.pop("upload_time"))
    assert entry == {
        "filename": sdist.name,
        "version": "1.9",
        "packagetype": "sdist",
        "size": len(data),
        "sha256": index.get_file("foo-bar", sdist.name).sha256,
        "requires_python": None,
        "yanked": True,
        "yanked_reason": "oops",
        "uploader": "uploader",
        "url": f"http://localhost/packages/foo-bar/{sdist.name}",
        "downloads": 0,
    }
    assert testapp.get(entry["url"]).body == data
    assert by_version["2.0rc1"]["files"][0]["requires_python"] == ">=3.8"
    assert by_version["2.0rc1"]["files"][0]["packagetype"] == "bdist_wheel"


def test_project_detail_accepts_any_spelling(testapp: webtest.TestApp, uploaded: Uploaded) -> None:
    assert testapp.get("/api/projects/Foo_Bar").json["name"] == "foo-bar"


def test_project_detail_unknown(testapp: webtest.TestApp, auth: dict[str, str]) -> None:
    assert_error(testapp.get("/api/projects/nothing", headers=auth, expect_errors=True), 404, "nothing")
    assert_error(testapp.get("/api/projects/nothing", expect_errors=True), 404)


def test_project_detail_wrong_password(testapp: webtest.TestApp, uploaded: Uploaded) -> None:
    resp = testapp.get("/api/projects/foo-bar", headers=creds(BOB, "wrong"), expect_errors=True)
    assert_error(resp, 401)


# -- DELETE /api/projects/<project>/files/<filename> ---------------------------------


def test_delete_file(
    testapp: webtest.TestApp, auth: dict[str, str], uploaded: Uploaded, settings: Settings, index: PackageIndex
) -> None:
    assert settings.storage.dir is not None
    wheel = uploaded.wheel.name
    object_path = settings.storage.dir / storage_key("foo-bar", wheel)
    sidecar = settings.storage.dir / sidecar_key(storage_key("foo-bar", wheel))
    assert object_path.is_file()
    assert sidecar.is_file()
    serial = index.get_project("foo-bar").serial

    resp = call(testapp, "DELETE", f"/api/projects/foo-bar/files/{wheel}", auth)
    assert resp.status_int == 200
    assert resp.json == {"deleted": [wheel]}
    assert not object_path.exists()
    assert not sidecar.exists()
    assert index.cache.get_file(wheel) is None
    assert index.get_project("foo-bar").serial > serial
    assert simple_filenames(testapp, "foo-bar") == [uploaded.sdist.name]
    assert wheel not in testapp.get("/simple/foo-bar/", headers={"Accept": HTML_V1}).text
    assert testapp.get(f"/packages/foo-bar/{wheel}", expect_errors=True).status_int == 404
    assert testapp.get(f"/packages/foo-bar/{wheel}.metadata", expect_errors=True).status_int == 404
    # The sdist is untouched.
    assert testapp.get(f"/packages/foo-bar/{uploaded.sdist.name}").body == uploaded.sdist.read_bytes()

    again = call(testapp, "DELETE", f"/api/projects/foo-bar/files/{wheel}", auth)
    assert_error(again, 404, wheel)


def test_deleted_file_can_be_uploaded_again(testapp: webtest.TestApp, auth: dict[str, str], uploaded: Uploaded) -> None:
    call(testapp, "DELETE", f"/api/projects/foo-bar/files/{uploaded.wheel.name}", auth)
    assert upload_dist(testapp, auth, uploaded.wheel, "Foo.Bar", "1.0").status_int == 200
    assert sorted(simple_filenames(testapp, "foo-bar")) == sorted([uploaded.wheel.name, uploaded.sdist.name])


def test_a_deleted_filename_with_other_bytes_is_refused(
    testapp: webtest.TestApp, auth: dict[str, str], uploaded: Uploaded, dist_dir: Path
) -> None:
    call(testapp, "DELETE", f"/api/projects/foo-bar/files/{uploaded.wheel.name}", auth)
    other = build_wheel(dist_dir / "other", "Foo.Bar", "1.0", summary="other bytes under a used name")
    assert other.name == uploaded.wheel.name and other.read_bytes() != uploaded.wheel.read_bytes()
    resp = upload_dist(testapp, auth, other, "Foo.Bar", "1.0")
    assert resp.status_int == 400
    assert resp.status.startswith("400 This filename has already been used, use a different version")
    assert "was deleted" in resp.json["message"]
    assert simple_filenames(testapp, "foo-bar") == [uploaded.sdist.name]


def test_delete_file_with_unnormalized_project(
    testapp: webtest.TestApp, auth: dict[str, str], uploaded: Uploaded
) -> None:
    resp = call(testapp, "DELETE", f"/api/projects/Foo.Bar/files/{uploaded.wheel.name}", auth)
    assert resp.status_int == 200
    assert simple_filenames(testapp, "foo-bar") == [uploaded.sdist.name]


# -- DELETE /api/projects/<project>/versions/<version> -------------------------------


def test_delete_version(
    testapp: webtest.TestApp, auth: dict[str, str], dist_dir: Path, settings: Settings, index: PackageIndex
) -> None:
    one = [
        upload_wheel(testapp, auth, dist_dir, "Foo.Bar", "1.0"),
        upload_sdist(testapp, auth, dist_dir, "Foo.Bar", "1.0"),
    ]
    two = upload_wheel(testapp, auth, dist_dir, "Foo.Bar", "2.0")
    resp = call(testapp, "DELETE", "/api/projects/foo-bar/versions/1.0", auth)
    assert resp.status_int == 200
    assert sorted(resp.json["deleted"]) == sorted(p.name for p in one)
    assert simple_filenames(testapp, "foo-bar") == [two.name]
    assert simple_json(testapp, "foo-bar")["versions"] == ["2.0"]
    assert settings.storage.dir is not None
    for path in one:
        assert not (settings.storage.dir / storage_key("foo-bar", path.name)).exists()
        assert index.cache.get_file(path.name) is None
    assert not (settings.storage.dir / sidecar_key(storage_key("foo-bar", one[0].name))).exists()
    assert [v["version"] for v in testapp.get("/api/projects/foo-bar").json["versions"]] == ["2.0"]
    assert_error(call(testapp, "DELETE", "/api/projects/foo-bar/versions/1.0", auth), 404, "1.0")


def test_delete_version_by_equivalent_spelling(
    testapp: webtest.TestApp, auth: dict[str, str], uploaded: Uploaded
) -> None:
    resp = call(testapp, "DELETE", "/api/projects/foo-bar/versions/1.0.0", auth)
    assert resp.status_int == 200
    assert sorted(resp.json["deleted"]) == sorted([uploaded.wheel.name, uploaded.sdist.name])
    # Its only release gone, the project is unknown again.
    assert testapp.get("/simple/foo-bar/", expect_errors=True).status_int == 404


@pytest.mark.parametrize(
    "url",
    [
        "/api/projects/foo-bar/files/foo_bar-9.9-py3-none-any.whl",
        "/api/projects/nothing/files/foo_bar-1.0-py3-none-any.whl",
        # A file of foo-bar named under another (existing) project.
        "/api/projects/other/files/foo_bar-1.0-py3-none-any.whl",
        "/api/projects/foo-bar/versions/2.0",
        "/api/projects/foo-bar/versions/not-a-version",
        "/api/projects/nothing/versions/1.0",
    ],
)
def test_delete_not_found(refusing: webtest.TestApp, url: str) -> None:
    assert_error(call(refusing, "DELETE", url, creds(ADMIN)), 404)
    unchanged(refusing)


@pytest.mark.parametrize("what", ["files/foo_bar-1.0-py3-none-any.whl", "versions/1.0"], ids=["file", "version"])
def test_delete_anonymous_and_unprivileged(
    testapp: webtest.TestApp, bob: dict[str, str], uploaded: Uploaded, what: str
) -> None:
    url = f"/api/projects/foo-bar/{what}"
    assert_error(call(testapp, "DELETE", url), 401)
    assert_error(call(testapp, "DELETE", url, creds(BOB, "wrong")), 401)
    assert_error(call(testapp, "DELETE", url, bob), 403, BOB)
    assert len(simple_filenames(testapp, "foo-bar")) == 2


# -- yank and unyank -----------------------------------------------------------------


def yanked_states(testapp: webtest.TestApp) -> dict[str, object]:
    return {f["filename"]: f["yanked"] for f in simple_json(testapp, "foo-bar")["files"]}


def test_yank_with_reason(testapp: webtest.TestApp, auth: dict[str, str], uploaded: Uploaded) -> None:
    reason = 'Broken <build> & "bad"'
    resp = call(testapp, "POST", "/api/projects/foo-bar/versions/1.0/yank", auth, json={"reason": reason})
    assert resp.status_int == 200
    assert resp.json == {"yanked": True, "reason": reason, "files": 2}
    assert set(yanked_states(testapp).values()) == {reason}
    html = testapp.get("/simple/foo-bar/", headers={"Accept": HTML_V1}).text
    for attrs in anchors(html).values():
        assert attrs["data-yanked"] == reason
    detail = testapp.get("/api/projects/foo-bar").json["versions"][0]
    assert detail["yanked"] is True
    assert {f["yanked_reason"] for f in detail["files"]} == {reason}
    # Yanked files stay downloadable (PEP 592).
    assert testapp.get(f"/packages/foo-bar/{uploaded.wheel.name}").body == uploaded.wheel.read_bytes()


@pytest.mark.parametrize("body", [None, {}, {"reason": None}, {"reason": ""}])
def test_yank_without_reason(
    testapp: webtest.TestApp, auth: dict[str, str], uploaded: Uploaded, body: dict[str, Any] | None
) -> None:
    url = "/api/projects/foo-bar/versions/1.0/yank"
    resp = call(testapp, "POST", url, auth, json=body) if body is not None else call(testapp, "POST", url, auth)
    assert resp.status_int == 200
    assert resp.json == {"yanked": True, "reason": None, "files": 2}
    assert set(yanked_states(testapp).values()) == {True}
    html = testapp.get("/simple/foo-bar/", headers={"Accept": HTML_V1}).text
    for attrs in anchors(html).values():
        assert attrs["data-yanked"] in ("", None)
        assert "data-yanked" in attrs


def test_unyank(testapp: webtest.TestApp, auth: dict[str, str], uploaded: Uploaded) -> None:
    url = "/api/projects/foo-bar/versions/1.0/yank"
    call(testapp, "POST", url, auth, json={"reason": "bad"})
    resp = call(testapp, "DELETE", url, auth)
    assert resp.status_int == 200
    assert resp.json == {"yanked": False, "files": 2}
    assert set(yanked_states(testapp).values()) == {False}
    html = testapp.get("/simple/foo-bar/", headers={"Accept": HTML_V1}).text
    assert all("data-yanked" not in attrs for attrs in anchors(html).values())
    detail = testapp.get("/api/projects/foo-bar").json["versions"][0]
    assert detail["yanked"] is False
    assert {f["yanked_reason"] for f in detail["files"]} == {None}
    # Unyanking what is not yanked is harmless.
    assert call(testapp, "DELETE", url, auth).status_int == 200


def test_yank_only_touches_its_release(testapp: webtest.TestApp, auth: dict[str, str], dist_dir: Path) -> None:
    one = upload_wheel(testapp, auth, dist_dir, "Foo.Bar", "1.0")
    two = upload_wheel(testapp, auth, dist_dir, "Foo.Bar", "2.0")
    call(testapp, "POST", "/api/projects/foo-bar/versions/2.0/yank", auth, json={"reason": "r"})
    assert yanked_states(testapp) == {one.name: False, two.name: "r"}


def test_yank_by_equivalent_spelling(testapp: webtest.TestApp, auth: dict[str, str], uploaded: Uploaded) -> None:
    # DELETE /versions/1.0.0 and /pypi/foo-bar/1.0.0/json both find release 1.0 (PEP 440 equality);
    # yanking must find the same release.
    resp = call(testapp, "POST", "/api/projects/foo-bar/versions/1.0.0/yank", auth, json={"reason": "r"})
    assert resp.status_int == 200, resp.body
    assert set(yanked_states(testapp).values()) == {"r"}


@pytest.mark.parametrize("method", ["POST", "DELETE"])
@pytest.mark.parametrize(
    "url",
    [
        "/api/projects/foo-bar/versions/2.0/yank",
        "/api/projects/foo-bar/versions/not-a-version/yank",
        "/api/projects/nothing/versions/1.0/yank",
    ],
)
def test_yank_not_found(refusing: webtest.TestApp, method: str, url: str) -> None:
    assert_error(call(refusing, method, url, creds(ADMIN)), 404)
    unchanged(refusing)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"reason": 5}', "reason"),
        (b'{"reason": ["a"]}', "reason"),
        (b"not json", "JSON"),
        (b'["a list"]', "object"),
    ],
)
def test_yank_bad_body(refusing: webtest.TestApp, body: bytes, message: str) -> None:
    resp = call(refusing, "POST", "/api/projects/foo-bar/versions/1.0/yank", creds(ADMIN), body=body)
    assert_error(resp, 400, message)
    unchanged(refusing)


@pytest.mark.parametrize("method", ["POST", "DELETE"])
def test_yank_anonymous_and_unprivileged(
    testapp: webtest.TestApp, auth: dict[str, str], bob: dict[str, str], uploaded: Uploaded, method: str
) -> None:
    url = "/api/projects/foo-bar/versions/1.0/yank"
    if method == "DELETE":
        call(testapp, "POST", url, auth, json={"reason": "kept"})
    before = yanked_states(testapp)
    assert_error(call(testapp, method, url), 401)
    assert_error(call(testapp, method, url, creds(BOB, "wrong")), 401)
    assert_error(call(testapp, method, url, bob), 403, BOB)
    assert yanked_states(testapp) == before


def test_permission_messages_read_well(testapp: webtest.TestApp, bob: dict[str, str], uploaded: Uploaded) -> None:
    message = assert_error(call(testapp, "POST", "/api/projects/foo-bar/versions/1.0/yank", bob), 403)
    # "User 'bob' may not yanking releases on project 'foo-bar'." is not English.
    assert "may not yanking" not in message
    message = assert_error(call(testapp, "DELETE", f"/api/projects/foo-bar/files/{uploaded.wheel.name}", bob), 403)
    assert "may not deleting" not in message


# -- PUT /api/projects/<project>/status (PEP 792) ------------------------------------


def set_status(
    testapp: webtest.TestApp, headers: dict[str, str], status: str, reason: str | None = None, project: str = "foo-bar"
) -> webtest.TestResponse:
    body: dict[str, Any] = {"status": status}
    if reason is not None:
        body["reason"] = reason
    return call(testapp, "PUT", f"/api/projects/{project}/status", headers, json=body)


def html_head(testapp: webtest.TestApp) -> str:
    return testapp.get("/simple/foo-bar/", headers={"Accept": HTML_V1}).text.split("<body>")[0]


@pytest.mark.parametrize("status", ["archived", "quarantined", "deprecated"])
def test_status_is_published(testapp: webtest.TestApp, auth: dict[str, str], uploaded: Uploaded, status: str) -> None:
    resp = set_status(testapp, auth, status, "see <docs> & more")
    assert resp.status_int == 200
    assert resp.json == {"name": "foo-bar", "status": status, "status_reason": "see <docs> & more"}
    doc = simple_json(testapp, "foo-bar")
    assert doc["meta"]["api-version"] == "1.5"  # PEP 752's JSON version, which includes 1.4's status
    assert doc["project-status"] == {"status": status, "reason": "see <docs> & more"}
    head = html_head(testapp)
    assert '<meta name="pypi:repository-version" content="1.4">' in head
    assert f'<meta name="pypi:project-status" content="{status}">' in head
    assert '<meta name="pypi:project-status-reason" content="see &lt;docs&gt; &amp; more">' in head
    detail = testapp.get("/api/projects/foo-bar").json
    assert (detail["status"], detail["status_reason"]) == (status, "see <docs> & more")
    assert listing(testapp)["projects"][0]["status"] == status


def test_status_without_reason(testapp: webtest.TestApp, auth: dict[str, str], uploaded: Uploaded) -> None:
    assert set_status(testapp, auth, "archived").json == {
        "name": "foo-bar",
        "status": "archived",
        "status_reason": None,
    }
    assert simple_json(testapp, "foo-bar")["project-status"] == {"status": "archived"}
    assert "pypi:project-status-reason" not in html_head(testapp)


def test_back_to_active(testapp: webtest.TestApp, auth: dict[str, str], uploaded: Uploaded) -> None:
    set_status(testapp, auth, "archived", "old")
    resp = set_status(testapp, auth, "active", "ignored")
    assert resp.json == {"name": "foo-bar", "status": "active", "status_reason": None}
    doc = simple_json(testapp, "foo-bar")
    assert doc["meta"]["api-version"] == "1.5"
    assert "project-status" not in doc
    assert "pypi:project-status" not in html_head(testapp)


def test_status_bumps_the_serial(testapp: webtest.TestApp, auth: dict[str, str], uploaded: Uploaded) -> None:
    before = testapp.get("/simple/foo-bar/").headers["ETag"]
    set_status(testapp, auth, "deprecated")
    assert testapp.get("/simple/foo-bar/").headers["ETag"] != before


@pytest.mark.parametrize("status", ["archived", "quarantined"])
def test_closed_projects_refuse_uploads(
    testapp: webtest.TestApp, auth: dict[str, str], uploaded: Uploaded, dist_dir: Path, status: str
) -> None:
    set_status(testapp, auth, status)
    path = build_wheel(dist_dir, "Foo.Bar", "2.0")
    assert_error(upload_dist(testapp, auth, path, "Foo.Bar", "2.0"), 400, status)
    assert "2.0" not in [v["version"] for v in testapp.get("/api/projects/foo-bar").json["versions"]]
    set_status(testapp, auth, "active")
    assert upload_dist(testapp, auth, path, "Foo.Bar", "2.0").status_int == 200


def test_deprecated_project_takes_uploads(
    testapp: webtest.TestApp, auth: dict[str, str], uploaded: Uploaded, dist_dir: Path
) -> None:
    set_status(testapp, auth, "deprecated", "use baz")
    upload_wheel(testapp, auth, dist_dir, "Foo.Bar", "2.0")
    assert simple_json(testapp, "foo-bar")["versions"] == ["1.0", "2.0"]


def test_quarantined_project_offers_no_files(
    testapp: webtest.TestApp, auth: dict[str, str], uploaded: Uploaded
) -> None:
    set_status(testapp, auth, "quarantined", "malware")
    doc = simple_json(testapp, "foo-bar")
    assert doc["files"] == []
    assert doc["versions"] == []
    assert doc["project-status"] == {"status": "quarantined", "reason": "malware"}
    assert anchors(testapp.get("/simple/foo-bar/", headers={"Accept": HTML_V1}).text) == {}
    for url in (
        f"/packages/foo-bar/{uploaded.wheel.name}",
        f"/packages/foo-bar/{uploaded.wheel.name}.metadata",
        f"/packages/foo-bar/{uploaded.sdist.name}",
    ):
        assert testapp.get(url, headers=auth, expect_errors=True).status_int == 404
    pypi = testapp.get("/pypi/foo-bar/json").json
    assert pypi["urls"] == []
    assert pypi["releases"] == {}
    # Lifting the quarantine offers the files again.
    set_status(testapp, auth, "active")
    assert len(simple_json(testapp, "foo-bar")["files"]) == 2
    assert testapp.get(f"/packages/foo-bar/{uploaded.wheel.name}").body == uploaded.wheel.read_bytes()


@pytest.mark.parametrize(
    "body",
    [
        b'{"status": "frozen"}',
        b'{"status": ""}',
        b'{"status": "ARCHIVED"}',
        b"{}",
        b"",
        b"archived",
        b'"archived"',
        b'{"status": "archived", "reason": ["a", "list"]}',
        b'{"status": "archived", "reason": {"a": 1}}',
    ],
)
def test_invalid_status(refusing: webtest.TestApp, body: bytes) -> None:
    resp = call(refusing, "PUT", "/api/projects/foo-bar/status", creds(ADMIN), body=body)
    assert_error(resp, 400)
    unchanged(refusing)


def test_status_of_unknown_project(refusing: webtest.TestApp) -> None:
    assert_error(set_status(refusing, creds(ADMIN), "archived", project="nothing"), 404, "nothing")


def test_status_needs_an_admin(testapp: webtest.TestApp, bob: dict[str, str], uploaded: Uploaded) -> None:
    assert_error(set_status(testapp, {}, "archived"), 401)
    assert_error(set_status(testapp, creds(BOB, "wrong"), "archived"), 401)
    assert_error(set_status(testapp, bob, "archived"), 403, "admin")
    assert testapp.get("/api/projects/foo-bar").json["status"] == "active"


# -- wrong methods ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "url", "allow"),
    [
        ("POST", "/api/projects", "GET, HEAD"),
        ("DELETE", "/api/projects", "GET, HEAD"),
        ("PUT", "/api/projects/foo-bar", "DELETE, GET, HEAD"),
        ("PATCH", "/api/projects/foo-bar", "DELETE, GET, HEAD"),
        ("GET", "/api/projects/foo-bar/status", "PUT"),
        ("POST", "/api/projects/foo-bar/status", "PUT"),
        ("GET", "/api/projects/foo-bar/files/foo_bar-1.0-py3-none-any.whl", "DELETE"),
        ("POST", "/api/projects/foo-bar/files/foo_bar-1.0-py3-none-any.whl", "DELETE"),
        ("GET", "/api/projects/foo-bar/versions/1.0", "DELETE"),
        ("PATCH", "/api/projects/foo-bar/versions/1.0", "DELETE"),
        ("GET", "/api/projects/foo-bar/versions/1.0/yank", "DELETE, POST"),
        ("PUT", "/api/projects/foo-bar/versions/1.0/yank", "DELETE, POST"),
        ("POST", "/api/projects/foo-bar/grants", "GET, HEAD"),
        ("GET", "/api/projects/foo-bar/grants/user/bob", "DELETE, PUT"),
        ("PATCH", "/api/users", "GET, HEAD, POST"),
        ("POST", "/api/users/bob", "DELETE, GET, HEAD, PUT"),
        ("POST", "/api/groups", "GET, HEAD"),
        ("GET", "/api/groups/devs", "DELETE, PUT"),
        ("PUT", "/api/tokens", "GET, HEAD, POST"),
        ("GET", "/api/tokens/abc", "DELETE"),
        ("POST", "/pypi/foo-bar/json", "GET, HEAD"),
        ("DELETE", "/pypi/foo-bar/1.0/json", "GET, HEAD"),
        ("POST", "/health", "GET, HEAD"),
    ],
)
def test_wrong_method(catalog: webtest.TestApp, method: str, url: str, allow: str) -> None:
    # Answered before any view runs: nothing can change.
    resp = call(catalog, method, url.replace("foo-bar", "alpha"), creds(ADMIN))
    assert_error(resp, 405, method)
    assert resp.headers["Allow"] == allow


def test_unknown_api_path_is_json_404(catalog: webtest.TestApp) -> None:
    assert_error(catalog.get("/api/nothing", expect_errors=True), 404)
