"""Every kind of response carries nosniff and the referrer policy; HTML also a CSP that forbids framing."""

from __future__ import annotations

import pytest
import webtest

from pypicloud_lite.web.headers import CONTENT_SECURITY_POLICY
from tests.support.legacy import upload_dist
from tests.support.webapp import METADATA_URL, SDIST_URL, WHEEL_URL, Uploaded

JSON_V1 = "application/vnd.pypi.simple.v1+json"


def assert_secured(resp: webtest.TestResponse) -> None:
    what = f"{resp.request.method} {resp.request.path_qs} -> {resp.status}"
    assert resp.headers.get("X-Content-Type-Options") == "nosniff", what
    assert resp.headers.get("Referrer-Policy") == "same-origin", what
    assert resp.headers.getall("X-Content-Type-Options") == ["nosniff"], what
    if resp.content_type == "text/html":
        assert resp.headers.get("Content-Security-Policy") == CONTENT_SECURITY_POLICY, what
        assert "frame-ancestors 'none'" in CONTENT_SECURITY_POLICY
        assert resp.headers.get("X-Frame-Options") == "DENY", what


@pytest.mark.parametrize(
    ("method", "url", "headers"),
    [
        ("GET", "/simple/", {}),
        ("GET", "/simple/", {"Accept": JSON_V1}),
        ("GET", "/simple/foo-bar/", {}),
        ("GET", "/simple/foo-bar/", {"Accept": JSON_V1}),
        ("GET", "/simple/foo-bar/", {"Accept-Encoding": "gzip"}),
        ("HEAD", "/simple/foo-bar/", {}),
        ("GET", "/simple/Foo.Bar/", {}),  # the redirect to the normalized name
        ("GET", "/simple/foo-bar/?format=json", {}),  # the router, not the fast path
        ("GET", "/simple/nope/", {}),
        ("GET", "/simple/foo-bar/", {"Accept": "image/png"}),  # 406
        ("GET", WHEEL_URL, {}),
        ("HEAD", SDIST_URL, {}),
        ("GET", METADATA_URL, {}),
        ("GET", WHEEL_URL, {"Range": "bytes=0-9"}),
        ("GET", "/packages/foo-bar/nope-1.0.tar.gz", {}),
        ("GET", "/pypi/foo-bar/json", {}),
        ("GET", "/api/projects", {}),
        ("GET", "/api/users", {}),  # 401/403
        ("GET", "/ui/", {}),
        ("GET", "/ui/projects/foo-bar", {}),
        ("GET", "/ui/login", {}),
        ("GET", "/ui/projects/nope", {}),  # the UI's error page
        ("GET", "/ui/static/ui.js", {}),
        ("GET", "/ui/static/ui.css", {}),
        ("GET", "/health", {}),
        ("GET", "/", {}),
        ("GET", "/no/such/page", {}),
        ("DELETE", "/health", {}),  # 405
    ],
)
def test_every_route_kind(
    testapp: webtest.TestApp, uploaded: Uploaded, method: str, url: str, headers: dict[str, str]
) -> None:
    resp = testapp.request(url, method=method, headers=headers, expect_errors=True)
    assert_secured(resp)


def test_the_fast_path_page_and_its_304(testapp: webtest.TestApp, uploaded: Uploaded) -> None:
    first = testapp.get("/simple/foo-bar/")
    assert first.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    again = testapp.get("/simple/foo-bar/", headers={"If-None-Match": first.headers["ETag"]}, status=304)
    assert_secured(again)


def test_uploads(testapp: webtest.TestApp, auth: dict[str, str], uploaded: Uploaded) -> None:
    resp = upload_dist(testapp, auth, uploaded.wheel, "Foo.Bar", "1.0")
    assert_secured(resp)
    refused = testapp.post("/legacy/", {":action": "nothing"}, headers=auth, expect_errors=True)
    assert refused.status_int == 400
    assert_secured(refused)
    anonymous = testapp.post("/legacy/", {":action": "file_upload"}, expect_errors=True)
    assert anonymous.status_int == 401
    assert_secured(anonymous)
