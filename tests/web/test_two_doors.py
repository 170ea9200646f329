"""The JSON API and the web UI apply one rule each: token expiry, who may revoke a token, project status changes.

Every test runs once per door with the same expectations, so the doors cannot drift apart again.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import webtest

from pypicloud_lite.errors import InvalidInput
from pypicloud_lite.web.forms import EXPIRY_ERROR, parse_expiry, status_change
from tests.support.apiutil import ADMIN, PASSWORD, call, creds, running, token_auth, upload_wheel
from tests.support.common import services

BOB = "bob"
CAROL = "carol"
DOORS = ["api", "ui"]

# What a door answered: ("ok", ""), ("invalid", message) for input or a target it will not act on
# (API 400/404, UI 303 back with an error flash), or ("refused", message) (403 in both).
Answer = tuple[str, str]
OK: Answer = ("ok", "")

pytestmark = pytest.mark.usefixtures("cheap_hashing")


@pytest.fixture
def app(sql_raw: dict[str, Any], tmp_path: Path) -> Iterator[webtest.TestApp]:
    with running(sql_raw) as testapp:
        access = services(testapp.app).access
        access.create_user(ADMIN, PASSWORD, is_admin=True)
        for name in (BOB, CAROL):
            access.create_user(name, PASSWORD)
        upload_wheel(testapp, creds(ADMIN), tmp_path / "dist", "foo", "1.0")
        yield testapp


def api_answer(resp: webtest.TestResponse, ok_status: int = 200) -> Answer:
    if resp.status_int == ok_status:
        return OK
    return ("refused" if resp.status_int == 403 else "invalid", resp.json["message"])


def ui_post(app: webtest.TestApp, user: str, url: str, fields: dict[str, str]) -> Answer:
    """Log `user` in to a fresh browser session and post the form as its page would, CSRF token included."""
    app.reset()
    form = app.get("/ui/login").forms["login-form"]
    form["username"], form["password"] = user, PASSWORD
    assert form.submit().status_int == 303
    found = re.search(r'name="csrf_token" value="([^"]+)"', app.get("/ui/tokens").text)
    assert found is not None
    resp = app.post(url, {**fields, "csrf_token": found.group(1)}, expect_errors=True)
    if resp.status_int >= 400:
        shown = re.search(r'id="error-message">([^<]*)<', resp.text)
        assert shown is not None, resp.text
        return ("refused" if resp.status_int == 403 else "invalid", html.unescape(shown.group(1)))
    if resp.status_int == 303:
        page = resp.follow()
        flashes = [html.unescape(m.strip()) for m in re.findall(r'class="flash[^"]*"[^>]*>([^<]*)<', page.text)]
        errors = [m.removeprefix("Error: ") for m in flashes if m.startswith("Error: ")]
        if errors:
            return ("invalid", errors[0])
    return OK


# -- token expiry ------------------------------------------------------------------------------


def create_token(app: webtest.TestApp, door: str, user: str, expires: str) -> Answer:
    if door == "api":
        return api_answer(call(app, "POST", "/api/tokens", creds(user), json={"expires": expires}), 201)
    return ui_post(app, user, "/ui/tokens", {"expires": expires})


@pytest.mark.parametrize("door", DOORS)
@pytest.mark.parametrize(
    ("given", "stored"),
    [
        # A bare date (what the UI's date picker sends) is the end of that day in UTC.
        ("2999-01-31", datetime(2999, 1, 31, 23, 59, 59, 999999, tzinfo=UTC)),
        ("2999-06-01T12:00:00Z", datetime(2999, 6, 1, 12, tzinfo=UTC)),
        ("2999-06-01T12:00:00+02:00", datetime(2999, 6, 1, 10, tzinfo=UTC)),
        ("2999-06-01T12:00:00", datetime(2999, 6, 1, 12, tzinfo=UTC)),
        ("", None),
    ],
)
def test_token_expiry_is_read_alike(app: webtest.TestApp, door: str, given: str, stored: datetime | None) -> None:
    assert create_token(app, door, BOB, given) == OK
    (token,) = services(app.app).access.list_tokens(BOB)
    assert token.expires == stored


@pytest.mark.parametrize("door", DOORS)
@pytest.mark.parametrize("given", ["tomorrow", "2999-13-01", "31/01/2999", "2999-06-01T25:00:00Z"])
def test_token_expiry_is_refused_alike(app: webtest.TestApp, door: str, given: str) -> None:
    assert create_token(app, door, BOB, given) == ("invalid", EXPIRY_ERROR)
    assert services(app.app).access.list_tokens(BOB) == []


def test_expiry_parser() -> None:
    assert parse_expiry(None) is None and parse_expiry("  ") is None
    assert parse_expiry(" 2999-01-31 ") == datetime(2999, 1, 31, 23, 59, 59, 999999, tzinfo=UTC)
    for wrong in (5, ["2999-01-31"], "2999-01-31 or so"):
        with pytest.raises(InvalidInput, match="expires"):
            parse_expiry(wrong)


# -- revoking tokens ---------------------------------------------------------------------------


def revoke(app: webtest.TestApp, door: str, user: str, token_id: str) -> Answer:
    if door == "api":
        return api_answer(call(app, "DELETE", f"/api/tokens/{token_id}", creds(user)))
    return ui_post(app, user, f"/ui/tokens/{token_id}/revoke", {})


def works(app: webtest.TestApp, secret: str) -> bool:
    return bool(call(app, "GET", f"/api/users/{CAROL}", token_auth(secret)).status_int == 200)


@pytest.mark.parametrize("door", DOORS)
def test_a_user_revokes_only_their_own_tokens(app: webtest.TestApp, door: str) -> None:
    access = services(app.app).access
    carols = access.create_token(CAROL)
    # Someone else's token is as unknown as one that does not exist.
    assert revoke(app, door, BOB, carols.token.id) == ("invalid", f"No token {carols.token.id!r}.")
    assert revoke(app, door, BOB, "0123456789abcdef") == ("invalid", "No token '0123456789abcdef'.")
    assert works(app, carols.secret)
    assert revoke(app, door, CAROL, carols.token.id) == OK
    assert not works(app, carols.secret)


@pytest.mark.parametrize("door", DOORS)
def test_an_admin_revokes_anyones_token(app: webtest.TestApp, door: str) -> None:
    carols = services(app.app).access.create_token(CAROL)
    assert revoke(app, door, ADMIN, carols.token.id) == OK
    assert not works(app, carols.secret)
    assert services(app.app).access.list_tokens(CAROL) == []


# -- project status ----------------------------------------------------------------------------


def set_status(app: webtest.TestApp, door: str, user: str, status: str, reason: str) -> Answer:
    if door == "api":
        return api_answer(
            call(app, "PUT", "/api/projects/foo/status", creds(user), json={"status": status, "reason": reason})
        )
    return ui_post(app, user, "/ui/projects/foo/status", {"status": status, "reason": reason})


def status_of(app: webtest.TestApp) -> tuple[str, str | None]:
    project = services(app.app).index.get_project("foo")
    return project.status, project.status_reason


@pytest.mark.parametrize("door", DOORS)
@pytest.mark.parametrize(("reason", "kept"), [("  use bar instead  ", "use bar instead"), ("", None), ("   ", None)])
def test_status_change_is_applied_alike(app: webtest.TestApp, door: str, reason: str, kept: str | None) -> None:
    assert set_status(app, door, ADMIN, "deprecated", reason) == OK
    assert status_of(app) == ("deprecated", kept)


@pytest.mark.parametrize("door", DOORS)
@pytest.mark.parametrize("status", ["frozen", "", "ARCHIVED", " archived"])
def test_unknown_statuses_are_refused_alike(app: webtest.TestApp, door: str, status: str) -> None:
    message = f"Unknown project status {status!r}: use one of active, archived, quarantined, deprecated."
    assert set_status(app, door, ADMIN, status, "") == ("invalid", message)
    assert status_of(app) == ("active", None)


@pytest.mark.parametrize("door", DOORS)
def test_status_changes_need_an_admin_alike(app: webtest.TestApp, door: str) -> None:
    assert set_status(app, door, BOB, "archived", "") == ("refused", "Only admins may do this; 'bob' is not one.")
    assert status_of(app) == ("active", None)


def test_status_change_types() -> None:
    assert status_change("archived", None).reason is None
    for status, reason in ((None, None), (1, None), ("archived", ["a"])):
        with pytest.raises(InvalidInput, match="'status' must be a string"):
            status_change(status, reason)
