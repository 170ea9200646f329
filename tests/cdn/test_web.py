"""The server side: s-maxage on index pages, and the per-process timer that flushes after an upload."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import webtest

from pypicloud_lite.cdn import INDEX_LOCK, index_distribution
from pypicloud_lite.config import load_settings
from pypicloud_lite.errors import ConfigError
from pypicloud_lite.scripts import cdn_report
from pypicloud_lite.web import CDN_TIMER_KEY, make_app
from tests.support.aws import Moto
from tests.support.cdn import create_distribution, invalidations
from tests.support.common import services
from tests.support.distbuilder import build_wheel
from tests.support.legacy import upload_dist
from tests.support.settings import write_ini

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


def wait_invalidations(moto: Moto, distribution: str, count: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 60
    while len(sent := invalidations(moto, distribution)) < count:
        assert time.monotonic() < deadline, "the flush timer never sent the invalidation"
        time.sleep(0.5)
    return sent


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


def test_a_server_without_cdn_settings_records_its_changes_for_the_index_cdn(
    cdn_app: webtest.TestApp,
    raw_settings: dict[str, Any],
    auth: dict[str, str],
    tmp_path: Path,
    moto: Moto,
    distribution: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="pypicloud_lite.cdn"):
        app = make_app(load_settings(raw_settings, environ={}))
    plain = webtest.TestApp(app)
    try:
        assert f"the index has CDN distribution {distribution}" in caplog.text
        upload_dist(plain, auth, build_wheel(tmp_path, "demo", "1.0"), "demo", "1.0")
        [uploaded] = wait_invalidations(moto, distribution, 1)
        assert "/simple/demo/" in uploaded["paths"]
        # The yank through the server without cdn.* is purged too: the edge stops offering the release.
        assert plain.post_json("/api/projects/demo/versions/1.0/yank", {}, headers=auth).status_int == 200
        yanked = wait_invalidations(moto, distribution, 2)
        assert [i["id"] for i in yanked if i["id"] != uploaded["id"]]
        assert all("/pypi/demo/1.0/json" in i["paths"] for i in yanked)
    finally:
        services(app).index.cache.close()


def test_a_server_naming_another_distribution_refuses_to_start(
    cdn_app: webtest.TestApp, raw_settings: dict[str, Any], moto: Moto, distribution: str
) -> None:
    other = {**raw_settings, "cdn.backend": "cloudfront", "cdn.distribution_id": "EOTHER"}
    with pytest.raises(ConfigError, match=f"the index's CDN is distribution {distribution} .*not EOTHER"):
        make_app(load_settings(other, environ={}))


def test_turning_the_index_cdn_off_stops_recording_everywhere(
    cdn_app: webtest.TestApp, raw_settings: dict[str, Any], tmp_path: Path, distribution: str
) -> None:
    cache = services(cdn_app.app).index.cache
    assert index_distribution(cache) == distribution
    ini = write_ini(tmp_path / "server.ini", raw_settings)
    assert cdn_report.main([str(ini), "--turn-off"]) == 0
    assert index_distribution(cache) is None and cache.lock_state(INDEX_LOCK)[0] is False
    app = make_app(load_settings(raw_settings, environ={}))
    try:
        assert services(app).index.cache.cdn_outbox is False
    finally:
        services(app).index.cache.close()
