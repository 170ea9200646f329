"""An index only authenticated users may read: challenges, and responses no shared cache may keep for others."""

from __future__ import annotations

from typing import Any

import pytest
import webtest

from tests.support.legacy import JSON_V1
from tests.support.webapp import Uploaded

URLS = [
    "/simple/",
    "/simple/foo-bar/",
    "/packages/foo-bar/foo_bar-1.0-py3-none-any.whl",
    "/packages/foo-bar/foo_bar-1.0-py3-none-any.whl.metadata",
]


@pytest.fixture
def raw_settings(raw_settings: dict[str, Any]) -> dict[str, Any]:
    return {**raw_settings, "pypi.default_read": "authenticated"}


@pytest.mark.parametrize("url", URLS)
def test_anonymous_reader_is_challenged(testapp: webtest.TestApp, uploaded: Uploaded, url: str) -> None:
    resp = testapp.get(url, headers={"Accept": JSON_V1}, expect_errors=True)
    assert resp.status_int == 401
    assert resp.headers["WWW-Authenticate"] == 'Basic realm="pypicloud_lite"'
    assert resp.status == f"401 {resp.json['message']}"


@pytest.mark.parametrize("url", URLS)
def test_authenticated_responses_are_not_shared(
    testapp: webtest.TestApp, auth: dict[str, str], uploaded: Uploaded, url: str
) -> None:
    resp = testapp.get(url, headers=auth)
    assert resp.status_int == 200
    directives = {d.strip().split("=")[0] for d in resp.headers["Cache-Control"].split(",")}
    vary = {v.strip().lower() for v in resp.headers.get("Vary", "").split(",")}
    # `public` lets a shared cache (a CDN, a proxy) keep a response to a request with Authorization
    # and hand it to anyone (RFC 9111 3.5): private projects would leak to anonymous clients.
    assert "public" not in directives or "authorization" in vary, resp.headers["Cache-Control"]
    assert "private" in directives or "no-store" in directives or "authorization" in vary
