"""The upstream cooldown: `upstream.min_age` and `upstream.freeze_at` hide young upstream files and refuse them."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import webtest

from pypicloud_lite.config import load_settings
from pypicloud_lite.errors import ConfigError
from tests.support.apiutil import assert_error, build_app, close_app, upload_wheel
from tests.support.common import UPLOADER, services
from tests.support.upstreams import Clock, JsonIndex, use_clock

JSON_ACCEPT = {"Accept": "application/vnd.pypi.simple.v1+json"}
OLD, NEW, TIMELESS = "cpkg-1.0-py3-none-any.whl", "cpkg-2.0-py3-none-any.whl", "cpkg-3.0-py3-none-any.whl"


@pytest.fixture
def upstream(cpkg_upstream: JsonIndex) -> JsonIndex:
    return cpkg_upstream


def cooled(raw: dict[str, Any], url: str, clock: Clock, **options: str) -> webtest.TestApp:
    settings = {**raw, "upstream.indexes": "main", "upstream.main.url": url}
    settings.update({f"upstream.{k}": v for k, v in options.items()})
    app = build_app(settings)
    use_clock(app, clock)
    return app


def listed(app: webtest.TestApp) -> set[str]:
    return {f["filename"] for f in app.get("/simple/cpkg/", headers=JSON_ACCEPT).json["files"]}


def test_a_young_upstream_file_is_hidden_and_refused_until_its_window_passes(
    raw_settings: dict[str, Any], upstream: JsonIndex
) -> None:
    clock = Clock("2024-04-01T12:00:00+00:00")
    app = cooled(raw_settings, upstream.url, clock, min_age="1d")
    try:
        assert listed(app) == {OLD}
        assert NEW not in app.get("/simple/cpkg/").text
        assert set(app.get("/pypi/cpkg/json").json["releases"]) == {"1.0"}
        message = assert_error(app.get(f"/packages/cpkg/{NEW}", status=403), 403, "cooldown")
        assert "2024-04-02T00:00:00Z" in message
        assert_error(app.get(f"/packages/cpkg/{NEW}.metadata", status=403), 403, "cooldown")
        # Refused before anything is fetched: never cached, the upstream never asked for the file.
        assert upstream.hits[f"/files/{NEW}"] == 0
        assert upstream.hits[f"/files/{NEW}.metadata"] == 0
        assert app.get(f"/packages/cpkg/{OLD}").body == (upstream.projects["cpkg"][0].data)
        # A file without an upload time is hidden while the cooldown is on (fail closed).
        assert_error(app.get(f"/packages/cpkg/{TIMELESS}", status=403), 403, "upload time")
        clock.set("2024-04-02T00:00:01+00:00")
        assert listed(app) == {OLD, NEW}
        assert NEW in app.get("/simple/cpkg/").text
        assert set(app.get("/pypi/cpkg/json").json["releases"]) == {"1.0", "2.0"}
        assert app.get(f"/packages/cpkg/{NEW}").body == upstream.projects["cpkg"][1].data
    finally:
        close_app(app)


def test_freeze_at_hides_files_uploaded_after_it(raw_settings: dict[str, Any], upstream: JsonIndex) -> None:
    clock = Clock("2025-01-01T00:00:00+00:00")
    app = cooled(raw_settings, upstream.url, clock, freeze_at="2024-03-15")
    try:
        assert listed(app) == {OLD}
        message = assert_error(app.get(f"/packages/cpkg/{NEW}", status=403), 403, "freeze")
        assert "2024-03-15" in message
        assert upstream.hits[f"/files/{NEW}"] == 0
    finally:
        close_app(app)


def test_without_a_cooldown_every_upstream_file_is_shown(raw_settings: dict[str, Any], upstream: JsonIndex) -> None:
    app = cooled(raw_settings, upstream.url, Clock("2024-04-01T00:00:01+00:00"))
    try:
        assert listed(app) == {OLD, NEW, TIMELESS}
    finally:
        close_app(app)


def test_this_indexs_own_uploads_are_never_held_back(
    raw_settings: dict[str, Any], upstream: JsonIndex, auth: dict[str, str], tmp_path: Path
) -> None:
    app = cooled(raw_settings, upstream.url, Clock("2024-04-01T00:00:00+00:00"), min_age="365d")
    try:
        upload_wheel(app, auth, tmp_path, "mine", "1.0")
        assert [f["filename"] for f in app.get("/simple/mine/", headers=JSON_ACCEPT).json["files"]] == [
            "mine-1.0-py3-none-any.whl"
        ]
        app.get("/packages/mine/mine-1.0-py3-none-any.whl", status=200)
    finally:
        close_app(app)


def test_a_break_glass_exception_lets_a_project_through_until_it_expires_or_is_revoked(
    raw_settings: dict[str, Any], upstream: JsonIndex, auth: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock("2024-04-01T12:00:00+00:00")
    app = cooled(raw_settings, upstream.url, clock, min_age="1d")
    url = "/api/projects/cpkg/cooldown-exception"
    try:
        assert listed(app) == {OLD}
        assert_error(app.post_json(url, {"reason": "CVE fix"}, status=401), 401)
        assert_error(app.post_json(url, {"until": "2024-04-01T13:00Z"}, headers=auth, status=400), 400, "reason")
        with caplog.at_level(logging.INFO):
            answer = app.post_json(url, {"reason": "CVE fix", "until": "2024-04-01T13:00Z"}, headers=auth).json
        assert answer["reason"] == "CVE fix" and answer["by"] == UPLOADER
        assert answer["until"] == "2024-04-01T13:00:00+00:00"
        assert any("audit" in r.message and "cpkg" in r.message and "CVE fix" in r.message for r in caplog.records)
        # At once, this process: the young file and the one without an upload time are listed and served.
        assert listed(app) == {OLD, NEW, TIMELESS}
        assert app.get(f"/packages/cpkg/{NEW}").body == upstream.projects["cpkg"][1].data
        stored = services(app.app).index.storage.read_versioned("_ppc/cooldown-exceptions/cpkg.json")
        assert stored is not None and b"CVE fix" in stored.data
        # Expired: held back again.
        clock.set("2024-04-01T13:00:01+00:00")
        assert listed(app) == {OLD}
        assert_error(app.get(f"/packages/cpkg/{TIMELESS}", status=403), 403, "cooldown")
        clock.set("2024-04-01T12:30:00+00:00")
        app.post_json(url, {"reason": "again"}, headers=auth)
        assert listed(app) == {OLD, NEW, TIMELESS}
        with caplog.at_level(logging.INFO):
            app.delete(url, headers=auth)
        assert any("cooldown.revoke" in r.message and "cpkg" in r.message for r in caplog.records)
        assert listed(app) == {OLD}
    finally:
        close_app(app)


def test_cached_upstream_files_are_served_while_the_upstream_is_down_and_still_judged_by_the_cooldown(
    raw_settings: dict[str, Any], upstream: JsonIndex, auth: dict[str, str]
) -> None:
    """A file cached under an exception that was then revoked: the cooldown still holds it back by its
    upstream upload time, in the process that has the listing and in one that only has our storage."""
    clock = Clock("2024-04-01T12:00:00+00:00")
    # page_ttl 0: every page asks the upstream, so the failure is seen at once.
    app = cooled(raw_settings, upstream.url, clock, min_age="1d", page_ttl="0")
    other = None
    url = "/api/projects/cpkg/cooldown-exception"
    try:
        old_bytes, new_bytes = upstream.projects["cpkg"][0].data, upstream.projects["cpkg"][1].data
        assert app.get(f"/packages/cpkg/{OLD}").body == old_bytes
        app.post_json(url, {"reason": "CVE fix"}, headers=auth)
        assert app.get(f"/packages/cpkg/{NEW}").body == new_bytes
        app.delete(url, headers=auth)
        upstream.failing = True
        # Another process on the same storage and cache, which never saw the upstream's listing.
        other = cooled(raw_settings, upstream.url, clock, min_age="1d", page_ttl="0")
        for each in (app, other):
            page = each.get("/simple/cpkg/", headers=JSON_ACCEPT)
            assert page.headers["X-PPC-Upstream"] == "stale"
            assert {f["filename"] for f in page.json["files"]} == {OLD}
            assert NEW not in each.get("/simple/cpkg/").text
            assert each.get(f"/packages/cpkg/{OLD}").body == old_bytes
            message = assert_error(each.get(f"/packages/cpkg/{NEW}", status=403), 403, "cooldown")
            assert "2024-04-02T00:00:00Z" in message
            assert_error(each.get(f"/packages/cpkg/{NEW}.metadata", status=403), 403, "cooldown")
        clock.set("2024-04-02T00:00:01+00:00")
        for each in (app, other):
            assert {f["filename"] for f in each.get("/simple/cpkg/", headers=JSON_ACCEPT).json["files"]} == {OLD, NEW}
            assert each.get(f"/packages/cpkg/{NEW}").body == new_bytes
        assert upstream.hits[f"/files/{NEW}"] == 1
    finally:
        close_app(app)
        if other is not None:
            close_app(other)


MAIN = {"upstream.indexes": "main", "upstream.main.url": "http://127.0.0.1:9/simple/"}


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"upstream.min_age": "3 weeks"}, r"upstream\.min_age.*expected a duration"),
        ({"upstream.freeze_at": "yesterday"}, r"upstream\.freeze_at.*ISO 8601"),
    ],
)
def test_bad_cooldown_settings_are_refused(raw_settings: dict[str, Any], options: dict[str, str], error: str) -> None:
    with pytest.raises(ConfigError, match=error):
        load_settings({**raw_settings, **MAIN, **options}, environ={})


def test_cooldown_settings_are_parsed(raw_settings: dict[str, Any]) -> None:
    def parsed(**options: str) -> Any:
        raw = {**raw_settings, **MAIN, **{f"upstream.{k}": v for k, v in options.items()}}
        return load_settings(raw, environ={}).upstream

    found = parsed(min_age="12h", freeze_at="2024-03-15T10:00")
    assert found.min_age == 12 * 3600
    assert found.freeze_at == datetime(2024, 3, 15, 10, tzinfo=UTC)
    assert parsed(min_age="3d").min_age == 3 * 86400
    assert parsed(min_age="90").min_age == 90
    assert parsed().min_age == 0 and parsed().freeze_at is None


@pytest.mark.parametrize(
    "body",
    [
        b"\x00not json",
        b'{"name": "cpkg"}',
        b'{"name": "cpkg", "reason": "r", "by": "x", "at": "2024-04-01T00:00:00", "until": null}',
        b"[" * 70_000,
    ],
)
def test_a_malformed_exception_in_storage_is_no_exception(
    raw_settings: dict[str, Any], upstream: JsonIndex, caplog: pytest.LogCaptureFixture, body: bytes
) -> None:
    """Hostile or broken: the cooldown holds (fail closed), and the page is served, not a 500."""
    clock = Clock("2024-04-01T12:00:00+00:00")
    app = cooled(raw_settings, upstream.url, clock, min_age="1d")
    try:
        services(app.app).index.storage.put_bytes("_ppc/cooldown-exceptions/cpkg.json", body)
        with caplog.at_level(logging.WARNING):
            assert listed(app) == {OLD}
        assert_error(app.get(f"/packages/cpkg/{NEW}", status=403), 403, "cooldown")
        assert any("cooldown exception" in r.message for r in caplog.records)
    finally:
        close_app(app)
