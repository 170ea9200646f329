"""The server side: s-maxage on index pages, and the per-process timer that flushes after an upload."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import webtest

from pypicloud_lite.config import load_settings
from pypicloud_lite.web import CDN_TIMER_KEY, make_app
from tests.support.aws import Moto
from tests.support.cdn import create_distribution, invalidations
from tests.support.common import services
from tests.support.distbuilder import build_wheel
from tests.support.legacy import upload_dist

INDEX_PAGES = ("/simple/", "/simple/demo/", "/pypi/demo/json", "/pypi/demo/1.0/json")


@pytest.fixture
def distribution(moto: Moto) -> str:
    return create_distribution(moto)


@pytest.fixture
def cdn_app(raw_settings: dict[str, Any], moto: Moto, distribution: str) -> Iterator[webtest.TestApp]:
    raw = {
        **raw_settings,
        "cdn.backend": "cloudfront",
        "cdn.distribution_id": distribution,
        "cdn.endpoint_url": moto.endpoint_url,
        "cdn.window": "1",
    }
    app = make_app(load_settings(raw, environ={}))
    yield webtest.TestApp(app)
    app.registry[CDN_TIMER_KEY].stop()
    services(app).index.cache.close()


def directives(response: webtest.TestResponse) -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for part in response.headers["Cache-Control"].split(","):
        name, _, value = part.strip().partition("=")
        found[name] = value or None
    return found


def test_index_pages_are_long_at_the_edge_short_in_clients_and_private_when_unlocked(
    cdn_app: webtest.TestApp, auth: dict[str, str], tmp_path: Path, moto: Moto, distribution: str
) -> None:
    upload_dist(cdn_app, auth, build_wheel(tmp_path, "demo", "1.0"), "demo", "1.0")
    for page in INDEX_PAGES:
        assert directives(cdn_app.get(page)) == {"public": None, "max-age": "60", "s-maxage": "86400"}, page
        # What credentials unlocked never goes into a shared cache.
        assert directives(cdn_app.get(page, headers=auth)) == {"private": None, "max-age": "60"}, page
    # Files keep their own long, immutable caching.
    files = directives(cdn_app.get("/packages/demo/demo-1.0-py3-none-any.whl"))
    assert "s-maxage" not in files and "immutable" in files

    # The timer of this process flushes the upload once its window closed.
    deadline = time.monotonic() + 60
    while not invalidations(moto, distribution):
        assert time.monotonic() < deadline, "the flush timer never sent the invalidation"
        time.sleep(0.5)
    [sent] = invalidations(moto, distribution)
    assert sent["paths"] == sorted(["/simple/", "/simple/demo/", "/pypi/demo/json", "/pypi/demo/1.0/json"])


def test_without_a_cdn_index_pages_keep_page_max_age_everywhere(testapp: webtest.TestApp) -> None:
    assert directives(testapp.get("/simple/")) == {"public": None, "max-age": "600", "s-maxage": "600"}
