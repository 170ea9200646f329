"""Upstream passwords and tokens from SSM and Secrets Manager: read with a max age, again after a 401, never logged."""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pypicloud_lite.upstream.client import Fetched, UpstreamError, fetch_page
from pypicloud_lite.upstream.credentials import REFETCH_INTERVAL, UpstreamCredentials
from pypicloud_lite.upstream_settings import UpstreamIndex
from tests.support.apiutil import assert_error, build_app, close_app
from tests.support.distbuilder import build_wheel
from tests.support.upstreams import Hosted, JsonIndex

PASSWORD_PARAMETER = "/ppc/upstream/password"
TOKEN_SECRET = "ppc/upstream/token"


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def guarded(tmp_path: Path) -> Iterator[JsonIndex]:
    """An upstream that answers only requests with the credentials it is told to expect."""
    index = JsonIndex()
    index.add("upkg", Hosted(build_wheel(tmp_path / "dists", "upkg", "1.0")))
    yield index
    index.stop()


@pytest.fixture
def logged(caplog: pytest.LogCaptureFixture) -> Callable[[], str]:
    """What this package logged so far, at every level (botocore's own debug lines carry response bodies)."""
    caplog.set_level(logging.DEBUG, logger="pypicloud_lite")
    return lambda: "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("pypicloud_lite"))


def test_a_password_from_ssm_is_read_once_and_again_when_the_upstream_refuses_it(
    guarded: JsonIndex,
    fetches: list[str],
    ssm: Callable[[str, str], None],
    logged: Callable[[], str],
) -> None:
    clock = Clock()
    credentials = UpstreamCredentials(300, clock=clock)
    index = UpstreamIndex("main", guarded.url, username="reader", password=f"ssm:{PASSWORD_PARAMETER}")
    ssm(PASSWORD_PARAMETER, "first-pass")
    guarded.required_authorization = basic("reader", "first-pass")
    for _ in range(2):
        assert isinstance(fetch_page(index, "upkg", None, 1 << 20, credentials=credentials), Fetched)
    assert fetches == [PASSWORD_PARAMETER]

    # Rotated on both sides: the held password is refused, read again, and the request made once more.
    ssm(PASSWORD_PARAMETER, "second-pass")
    guarded.required_authorization = basic("reader", "second-pass")
    assert isinstance(fetch_page(index, "upkg", None, 1 << 20, credentials=credentials), Fetched)
    assert fetches == [PASSWORD_PARAMETER, PASSWORD_PARAMETER]
    assert guarded.authorizations["/simple/upkg/"] == basic("reader", "second-pass")

    # A password the upstream refuses even when read again: one more read, then the 401 stands; and within
    # REFETCH_INTERVAL a refusal is not worth another read.
    guarded.required_authorization = basic("reader", "unknown")
    clock.now += REFETCH_INTERVAL + 1
    with pytest.raises(UpstreamError, match="answered 401"):
        fetch_page(index, "upkg", None, 1 << 20, credentials=credentials)
    assert len(fetches) == 3
    with pytest.raises(UpstreamError, match="answered 401"):
        fetch_page(index, "upkg", None, 1 << 20, credentials=credentials)
    assert len(fetches) == 3
    text = logged()
    assert "refused its credentials (401)" in text
    assert "first-pass" not in text and "second-pass" not in text


def test_a_token_from_secrets_manager_is_read_again_after_its_max_age(
    guarded: JsonIndex, fetches: list[str], secret: Callable[[str, str], None]
) -> None:
    clock = Clock()
    credentials = UpstreamCredentials(60, clock=clock)
    index = UpstreamIndex("main", guarded.url, token=f"secretsmanager:{TOKEN_SECRET}")
    secret(TOKEN_SECRET, "tok-1")
    fetch_page(index, "upkg", None, 1 << 20, credentials=credentials)
    assert guarded.authorizations["/simple/upkg/"] == "Bearer tok-1"
    secret(TOKEN_SECRET, "tok-2")
    clock.now += 59
    fetch_page(index, "upkg", None, 1 << 20, credentials=credentials)
    assert guarded.authorizations["/simple/upkg/"] == "Bearer tok-1"
    clock.now += 2
    fetch_page(index, "upkg", None, 1 << 20, credentials=credentials)
    assert guarded.authorizations["/simple/upkg/"] == "Bearer tok-2"
    assert fetches == [TOKEN_SECRET, TOKEN_SECRET]
    # Read while a request waits: bounded, not the SDK's 60 s reads with retries.
    config = credentials.resolver._clients["secretsmanager"].meta.config
    assert (config.connect_timeout, config.read_timeout) == (5, 10)
    # Literal credentials cannot change: a refusal is final at once, with no second request.
    literal = UpstreamIndex("main", guarded.url, token="not-a-reference")
    guarded.required_authorization = "Bearer tok-2"
    guarded.hits.clear()
    with pytest.raises(UpstreamError, match="answered 401"):
        fetch_page(literal, "upkg", None, 1 << 20, credentials=credentials)
    assert guarded.hits["/simple/upkg/"] == 1


def test_the_server_sends_secrets_to_its_upstream_and_names_a_missing_one(
    raw_settings: dict[str, Any],
    guarded: JsonIndex,
    fetches: list[str],
    ssm: Callable[[str, str], None],
    logged: Callable[[], str],
) -> None:
    ssm(PASSWORD_PARAMETER, "served-pass")
    guarded.required_authorization = basic("reader", "served-pass")
    settings = {
        **raw_settings,
        "upstream.indexes": "main",
        "upstream.main.url": guarded.url,
        "upstream.main.username": "reader",
        "upstream.main.password": f"ssm:{PASSWORD_PARAMETER}",
        "upstream.secret_max_age": "600",
    }
    app = build_app(settings)
    try:
        page = app.get("/simple/upkg/").text
        assert "upkg-1.0-py3-none-any.whl" in page
        # Cache mode: the file is fetched with the same credentials (the upstream refuses any other request).
        assert app.get("/packages/upkg/upkg-1.0-py3-none-any.whl").body[:2] == b"PK"
        assert fetches == [PASSWORD_PARAMETER]
    finally:
        close_app(app)
    broken = {**raw_settings, "upstream.indexes": "broken", "upstream.broken.url": guarded.url}
    broken["upstream.broken.token"] = "ssm:/ppc/upstream/missing"
    app = build_app(broken)
    try:
        message = assert_error(app.get("/simple/elsewhere/", status=502), 502, "upstream.broken.token")
        assert "/ppc/upstream/missing" in message
    finally:
        close_app(app)
    assert "served-pass" not in logged()
