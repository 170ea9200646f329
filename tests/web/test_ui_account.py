"""The UI's account page: one's own password changed with the current one; the other sessions end."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import webtest

from tests.support.apiutil import PASSWORD, creds, running, static_users
from tests.support.common import services
from tests.support.owners import ui_login

pytestmark = pytest.mark.usefixtures("cheap_hashing")
BOB = "bob"
NEW = "a brand new secret"


def _logged_in(app: webtest.TestApp, user: str = BOB, password: str = PASSWORD) -> webtest.TestApp:
    """A browser of its own (cookies) on the same app, logged in."""
    browser = webtest.TestApp(app.app)
    ui_login(browser, user, password)
    return browser


@pytest.fixture
def app(sql_raw: dict[str, Any]) -> Iterator[webtest.TestApp]:
    with running(sql_raw) as testapp:
        services(testapp.app).access.create_user(BOB, PASSWORD)
        yield testapp


def _change(browser: webtest.TestApp, current: str, new: str, repeat: str | None = None) -> webtest.TestResponse:
    form = browser.get("/ui/account").forms["password-form"]
    form["current_password"], form["new_password"], form["repeat_password"] = current, new, repeat or new
    return form.submit(expect_errors=True)


@pytest.mark.parametrize(
    ("current", "new", "repeat", "error"),
    [
        ("wrong", NEW, NEW, "The current password is wrong."),
        (PASSWORD, NEW, NEW + "!", "The new passwords differ."),
        (PASSWORD, "short", "short", "The password is too short: use at least 8 characters."),
        (PASSWORD, "iloveyou", "iloveyou", "The password is one of the most common passwords: choose another."),
    ],
)
def test_a_refused_change_says_why_and_changes_nothing(
    app: webtest.TestApp, current: str, new: str, repeat: str, error: str
) -> None:
    answer = _change(_logged_in(app), current, new, repeat)
    assert answer.status_int == 400
    shown = re.search(r'id="password-error">([^<]*)<', answer.text)
    assert shown is not None and shown.group(1) == error
    assert app.get("/api/users/bob", headers=creds(BOB, PASSWORD)).status_int == 200


def test_a_change_keeps_this_session_and_ends_the_others(app: webtest.TestApp) -> None:
    this, other = _logged_in(app), _logged_in(app)
    answer = _change(this, PASSWORD, NEW)
    assert answer.status_int == 303
    page = answer.follow()
    assert "Your password was changed; your other sessions have ended." in page.text
    assert 'id="whoami">bob<' in page.text
    assert 'id="login-link"' in other.get("/ui/").text
    assert app.get("/api/users/bob", headers=creds(BOB, PASSWORD), expect_errors=True).status_int == 401
    assert app.get("/api/users/bob", headers=creds(BOB, NEW)).status_int == 200


def test_the_static_backend_offers_no_tokens_and_no_password_form(
    raw_settings: dict[str, Any], app: webtest.TestApp
) -> None:
    assert "My tokens" in _logged_in(app).get("/ui/").text
    with running({**raw_settings, **static_users(BOB)}) as static:
        page = _logged_in(static).get("/ui/account")
        assert 'id="password-unavailable"' in page.text and 'id="password-form"' not in page.text
        assert "My tokens" not in page.text


def test_an_admin_lists_filters_and_revokes_anyones_tokens(app: webtest.TestApp) -> None:
    access = services(app.app).access
    access.create_user("root", PASSWORD, is_admin=True)
    bobs = access.create_token(BOB, description="bob's CI").token
    roots = access.create_token("root", description="root's own").token
    admin = _logged_in(app, "root")
    own = admin.get("/ui/tokens")
    assert "My tokens" in own.text and bobs.id not in own.text and roots.id in own.text
    everyone = admin.get("/ui/tokens", params={"user": "*"})
    assert "Every user's tokens" in everyone.text and bobs.id in everyone.text and roots.id in everyone.text
    page = admin.get("/ui/tokens", params={"user": BOB})
    assert "Tokens of bob" in page.text and bobs.id in page.text and roots.id not in page.text
    revoke = next(form for form in page.forms.values() if form.action.endswith(f"/ui/tokens/{bobs.id}/revoke"))
    after = revoke.submit()
    assert after.location.endswith("/ui/tokens?user=bob")
    assert f"Revoked token {bobs.id} of bob." in after.follow().text
    assert access.get_token(bobs.id) is None
    # Anyone else asking for another user's tokens is refused, not shown their own.
    assert _logged_in(app).get("/ui/tokens", params={"user": "root"}, expect_errors=True).status_int == 403
