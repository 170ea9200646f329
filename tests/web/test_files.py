"""The files view: package files and their PEP 658 metadata with HEAD, Range, If-Range and conditional GET."""

from __future__ import annotations

import gc
import warnings
from datetime import datetime
from email.utils import format_datetime, parsedate_to_datetime
from pathlib import Path

import pytest
import webtest

from pypicloud_lite.service import PackageIndex
from tests.support.distbuilder import build_sdist
from tests.support.legacy import JSON_V1, sha256, upload_dist, wheel_metadata
from tests.support.webapp import ALL_URLS, METADATA_URL, SDIST_URL, WHEEL_URL, Shared, Uploaded


def expected(shared: Shared, url: str) -> tuple[bytes, str]:
    """The bytes a URL must serve and their Content-Type."""
    if url == WHEEL_URL:
        return shared.wheel.read_bytes(), "application/zip"
    if url == SDIST_URL:
        return shared.sdist.read_bytes(), "application/gzip"
    return wheel_metadata(shared.wheel), "text/plain; charset=utf-8"


def upload_time(shared: Shared, filename: str) -> datetime:
    files = shared.app.get("/simple/foo-bar/", headers={"Accept": JSON_V1}).json["files"]
    (entry,) = [f for f in files if f["filename"] == filename]
    return datetime.fromisoformat(entry["upload-time"])


def assert_file_headers(resp: webtest.TestResponse, shared: Shared, url: str) -> None:
    body, content_type = expected(shared, url)
    assert resp.headers["Content-Type"] == content_type
    assert resp.headers["Content-Length"] == str(len(body))
    assert resp.headers["ETag"] == f'"{sha256(body)}"'
    assert resp.headers["Accept-Ranges"] == "bytes"
    # The bytes go over the wire as they are: a Content-Encoding would make clients gunzip the sdist.
    assert "Content-Encoding" not in resp.headers
    directives = {d.strip() for d in resp.headers["Cache-Control"].split(",")}
    assert {"public", "immutable", "max-age=31536000"} <= directives
    filename = url.rsplit("/", 1)[1].removesuffix(".metadata")
    uploaded_at = upload_time(shared, filename).replace(microsecond=0)
    assert parsedate_to_datetime(resp.headers["Last-Modified"]) == uploaded_at


@pytest.mark.parametrize("url", ALL_URLS)
def test_get(readonly: Shared, url: str) -> None:
    resp = readonly.app.get(url)
    assert resp.status == "200 OK"
    assert resp.body == expected(readonly, url)[0]
    assert_file_headers(resp, readonly, url)


@pytest.mark.parametrize("url", ALL_URLS)
def test_head(readonly: Shared, url: str) -> None:
    resp = readonly.app.head(url)
    assert resp.status == "200 OK"
    assert resp.body == b""
    assert_file_headers(resp, readonly, url)


def test_zip_sdist_content_type(testapp: webtest.TestApp, auth: dict[str, str], dist_dir: Path) -> None:
    sdist = build_sdist(dist_dir, "zipped", "1.0", fmt="zip")
    upload_dist(testapp, auth, sdist, "zipped", "1.0")
    resp = testapp.get(f"/packages/zipped/{sdist.name}")
    assert resp.headers["Content-Type"] == "application/zip"
    assert resp.body == sdist.read_bytes()


def test_metadata_hash_is_the_advertised_core_metadata(readonly: Shared) -> None:
    served = readonly.app.get(METADATA_URL).body
    assert served == wheel_metadata(readonly.wheel)
    files = readonly.app.get("/simple/foo-bar/", headers={"Accept": JSON_V1}).json["files"]
    (wheel,) = [f for f in files if f["filename"] == readonly.wheel.name]
    assert wheel["core-metadata"] == {"sha256": sha256(served)}
    assert f'data-core-metadata="sha256={sha256(served)}"' in readonly.app.get("/simple/foo-bar/").text


@pytest.mark.parametrize("url", ALL_URLS)
def test_range(readonly: Shared, url: str) -> None:
    body, content_type = expected(readonly, url)
    resp = readonly.app.get(url, headers={"Range": "bytes=0-9"}, status=206)
    assert resp.status == "206 Partial Content"
    assert resp.body == body[:10]
    assert resp.headers["Content-Range"] == f"bytes 0-9/{len(body)}"
    assert resp.headers["Content-Length"] == "10"
    assert resp.headers["Content-Type"] == content_type
    assert resp.headers["ETag"] == f'"{sha256(body)}"'

    tail = readonly.app.get(url, headers={"Range": "bytes=-5"}, status=206)
    assert tail.body == body[-5:]
    assert tail.headers["Content-Range"] == f"bytes {len(body) - 5}-{len(body) - 1}/{len(body)}"


@pytest.mark.parametrize("url", ALL_URLS)
def test_unsatisfiable_range(readonly: Shared, url: str) -> None:
    size = len(expected(readonly, url)[0])
    resp = readonly.app.get(url, headers={"Range": f"bytes={size + 100}-"}, status=416)
    assert resp.headers["Content-Range"] == f"bytes */{size}"


@pytest.mark.parametrize("url", ALL_URLS)
def test_if_range(readonly: Shared, url: str) -> None:
    body = expected(readonly, url)[0]
    etag = f'"{sha256(body)}"'
    matching = readonly.app.get(url, headers={"Range": "bytes=0-9", "If-Range": etag}, status=206)
    assert matching.body == body[:10]
    assert matching.headers["Content-Range"] == f"bytes 0-9/{len(body)}"
    # A changed validator means the client's partial copy is stale: send everything.
    stale = readonly.app.get(url, headers={"Range": "bytes=0-9", "If-Range": '"0000"'}, status=200)
    assert stale.body == body
    assert "Content-Range" not in stale.headers
    assert stale.headers["Content-Length"] == str(len(body))
    # If-Range with the Last-Modified date works as well.
    dated = readonly.app.get(url)
    last_modified = dated.headers["Last-Modified"]
    assert (
        readonly.app.get(url, headers={"Range": "bytes=0-9", "If-Range": last_modified}, status=206).body == (body[:10])
    )
    older = format_datetime(parsedate_to_datetime(last_modified).replace(year=2000), usegmt=True)
    assert readonly.app.get(url, headers={"Range": "bytes=0-9", "If-Range": older}, status=200).body == body


@pytest.mark.parametrize("url", ALL_URLS)
def test_if_none_match(readonly: Shared, url: str) -> None:
    body = expected(readonly, url)[0]
    etag = f'"{sha256(body)}"'
    # If-None-Match uses the weak comparison (RFC 9110 13.1.2), so W/ matches too.
    for header in (etag, f'"other", {etag}', f"W/{etag}"):
        resp = readonly.app.get(url, headers={"If-None-Match": header}, status=304)
        assert resp.body == b""
        assert resp.headers["ETag"] == etag
        assert "Content-Range" not in resp.headers
    assert readonly.app.get(url, headers={"If-None-Match": '"other"'}, status=200).body == body
    # HEAD revalidates the same way.
    assert readonly.app.head(url, headers={"If-None-Match": etag}, status=304).body == b""


@pytest.mark.parametrize("url", ALL_URLS)
def test_if_none_match_star(readonly: Shared, url: str) -> None:
    # RFC 9110 13.1.2: `*` matches any current representation, so GET/HEAD of an existing file is 304
    # (the simple pages already answer so).
    assert readonly.app.get(url, headers={"If-None-Match": "*"}, expect_errors=True).status == "304 Not Modified"
    assert readonly.app.head(url, headers={"If-None-Match": "*"}, expect_errors=True).status == "304 Not Modified"


@pytest.mark.parametrize(
    "url",
    [
        SDIST_URL + ".metadata",  # PEP 658 metadata is published for wheels only
        "/packages/foo-bar/foo_bar-9.9-py3-none-any.whl",
        "/packages/foo-bar/foo_bar-9.9-py3-none-any.whl.metadata",
        "/packages/foo-bar/nothing",
        "/packages/other-project/foo_bar-1.0-py3-none-any.whl",  # a real file under the wrong project
        "/packages/other-project/foo_bar-1.0-py3-none-any.whl.metadata",
        "/packages/no-such-project/foo_bar-1.0.tar.gz",
    ],
)
def test_not_found(readonly: Shared, url: str) -> None:
    for resp in (readonly.app.get(url, status=404), readonly.app.head(url, status=404)):
        assert resp.headers["Content-Type"] == "application/json"
    resp = readonly.app.get(url, status=404)
    assert resp.json["status"] == 404
    assert resp.status == f"404 {resp.json['message']}"
    assert resp.json["message"]


def test_wrong_project_with_existing_other_project(
    testapp: webtest.TestApp, auth: dict[str, str], dist_dir: Path, uploaded: Uploaded
) -> None:
    other = build_sdist(dist_dir, "other", "1.0")
    upload_dist(testapp, auth, other, "other", "1.0")
    testapp.get(f"/packages/foo-bar/{other.name}", status=404)
    testapp.get(f"/packages/other/{uploaded.wheel.name}", status=404)
    testapp.get(f"/packages/other/{uploaded.wheel.name}.metadata", status=404)
    assert testapp.get(f"/packages/other/{other.name}").body == other.read_bytes()


@pytest.mark.parametrize("headers", [{}, {"Range": "bytes=0-9"}])
def test_head_and_get_agree_when_the_object_is_gone(
    testapp: webtest.TestApp, uploaded: Uploaded, index: PackageIndex, headers: dict[str, str]
) -> None:
    # The row is there, the object is not (deleted behind the index's back, or lost).
    for url in (WHEEL_URL, METADATA_URL):
        file = index.get_file("foo-bar", uploaded.wheel.name)
        index.storage.delete(file.object_key if url == WHEEL_URL else file.sidecar_key)
        got = testapp.get(url, headers=headers, status=404)
        head = testapp.head(url, headers=headers, status=404)
        assert head.status == got.status
        assert got.json["message"] in head.status
        assert head.body == b""


def test_yanked_files_are_still_served(testapp: webtest.TestApp, uploaded: Uploaded, index: PackageIndex) -> None:
    index.yank("foo-bar", "1.0", "broken")
    assert testapp.get(WHEEL_URL).body == uploaded.wheel.read_bytes()
    assert testapp.get(METADATA_URL).body == wheel_metadata(uploaded.wheel)


def test_deleted_file_is_gone(testapp: webtest.TestApp, uploaded: Uploaded, index: PackageIndex) -> None:
    index.delete_file("foo-bar", uploaded.wheel.name)
    testapp.get(WHEEL_URL, status=404)
    testapp.get(METADATA_URL, status=404)
    assert testapp.get(SDIST_URL).body == uploaded.sdist.read_bytes()


@pytest.mark.parametrize(
    ("method", "headers", "status"),
    [
        pytest.param("GET", {}, 200, id="get"),
        pytest.param("GET", {"Range": "bytes=0-9"}, 206, id="range"),
        pytest.param("HEAD", {}, 200, id="head"),
        pytest.param("GET", {"Range": "bytes=100000-"}, 416, id="unsatisfiable"),
        pytest.param("GET", {"If-None-Match": "*"}, 304, id="not-modified"),
        pytest.param("HEAD", {"If-None-Match": "*"}, 304, id="head-not-modified"),
    ],
)
def test_no_file_left_open(readonly: Shared, method: str, headers: dict[str, str], status: int) -> None:
    # A body that is never sent must still be closed: with S3 streaming it holds a pooled connection.
    gc.collect()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        resp = readonly.app.request(WHEEL_URL, method=method, headers=headers, status=status)
        del resp
        gc.collect()
    leaks = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    assert not [leak for leak in leaks if "foo_bar-1.0" in leak], leaks
