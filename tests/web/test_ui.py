"""The web UI under webtest: login sessions, CSRF refusals, escaping, pagination, permissions and the reload form."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import webtest

from pypicloud_lite.config import load_settings
from pypicloud_lite.errors import ConfigError
from pypicloud_lite.models import AddFile, PackageFile, utcnow
from pypicloud_lite.web import session as session_module
from pypicloud_lite.web.session import COOKIE_NAME, ENDED_PREFIX, SECRET_STORAGE_KEY, SessionLedger, new_session_id
from tests.support.apiutil import ADMIN, PASSWORD, creds, running, static_users, upload_wheel
from tests.support.common import UPLOADER, UPLOADER_PASSWORD, services

BOB = "bob"
EVIL = '<script>alert("owned")</script>'


pytestmark = pytest.mark.usefixtures("cheap_hashing")


@pytest.fixture
def app(sql_raw: dict[str, Any]) -> Iterator[webtest.TestApp]:
    with running(sql_raw) as testapp:
        access = services(testapp.app).access
        access.create_user(ADMIN, PASSWORD, is_admin=True)
        access.create_user(BOB, PASSWORD)
        yield testapp


def login(
    app: webtest.TestApp, user: str, password: str = PASSWORD, environ: dict[str, str] | None = None
) -> webtest.TestResponse:
    form = app.get("/ui/login", extra_environ=environ or {}).forms["login-form"]
    form["username"], form["password"] = user, password
    return form.submit(expect_errors=True, extra_environ=environ or {})


def flashes(page: webtest.TestResponse) -> list[str]:
    return [m.strip() for m in re.findall(r'class="flash[^"]*"[^>]*>([^<]*)<', page.text)]


def token_of(page: webtest.TestResponse) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert found, page.text
    return found.group(1)


def test_login_sets_a_session_and_logout_ends_it(app: webtest.TestApp) -> None:
    assert login(app, BOB, "wrong").status_int == 400
    answer = login(app, BOB)
    assert answer.status_int == 303
    cookie = answer.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    page = answer.follow()
    assert 'id="whoami">bob<' in page.text
    page.forms[0].submit().follow()
    assert "whoami" not in app.get("/ui/").text


def test_guesses_from_one_address_do_not_lock_the_admin_out_of_the_ui(app: webtest.TestApp) -> None:
    attacker, owner = {"REMOTE_ADDR": "192.0.2.66"}, {"REMOTE_ADDR": "203.0.113.5"}
    for _ in range(12):
        login(app, ADMIN, "wrong", attacker)
    # Refused at that address even with the right password (a form error: back with the reason).
    refused = login(app, ADMIN, PASSWORD, attacker).follow(extra_environ=attacker)
    assert "Too many failed logins" in refused.text
    assert 'id="whoami"' not in refused.text
    app.reset()
    page = login(app, ADMIN, PASSWORD, owner).follow(extra_environ=owner)
    assert f'id="whoami">{ADMIN}<' in page.text


def test_login_redirects_only_to_this_site(app: webtest.TestApp) -> None:
    form = app.get("/ui/login?next=//evil.example/x").forms["login-form"]
    form["username"], form["password"] = BOB, PASSWORD
    assert form.submit().location == "http://localhost/ui/"
    form = app.get("/ui/login?next=/ui/tokens").forms["login-form"]
    form["username"], form["password"] = BOB, PASSWORD
    assert form.submit().location == "http://localhost/ui/tokens"


def test_a_token_is_not_a_web_login(app: webtest.TestApp) -> None:
    secret = services(app.app).access.create_token(BOB).secret
    assert login(app, "__token__", secret).status_int == 400


def test_a_password_change_ends_other_sessions(app: webtest.TestApp) -> None:
    login(app, BOB)
    assert "whoami" in app.get("/ui/").text
    services(app.app).access.update_user(BOB, password="a new password")
    assert "whoami" not in app.get("/ui/").text


def test_sessions_are_shared_by_processes_on_one_storage(sql_raw: dict[str, Any]) -> None:
    with running(sql_raw) as first, running(sql_raw) as second:
        services(first.app).access.create_user(BOB, PASSWORD)
        login(first, BOB)
        second.cookiejar = first.cookiejar
        assert 'id="whoami">bob<' in second.get("/ui/").text
        assert services(first.app).index.storage.stat(SECRET_STORAGE_KEY) is not None


def _copy_of_the_cookie(app: webtest.TestApp) -> str:
    value = app.cookies[COOKIE_NAME]
    assert isinstance(value, str)
    return value


def _is_logged_in(app: webtest.TestApp, cookie: str, user: str = BOB) -> bool:
    """With only this cookie (as an attacker who copied it would send it), is the UI logged in?"""
    app.reset()
    app.set_cookie(COOKIE_NAME, cookie)
    page = app.get("/ui/tokens", expect_errors=True)
    app.reset()
    if page.status_int == 200 and f'id="whoami">{user}<' in page.text:
        return True
    assert page.status_int == 303 and "/ui/login" in page.location, page
    return False


def test_a_copied_cookie_stops_working_after_logout(app: webtest.TestApp) -> None:
    page = login(app, BOB).follow()
    copied = _copy_of_the_cookie(app)
    page.forms[0].submit()  # log out in the browser
    assert not _is_logged_in(app, copied)


@pytest.mark.parametrize("backend", ["sql", "static"])
def test_logout_ends_the_session_on_every_process(
    sql_raw: dict[str, Any], raw_settings: dict[str, Any], backend: str
) -> None:
    # Two processes sharing storage (and, for sql, the access database); static has no database at all.
    raw = sql_raw if backend == "sql" else {**raw_settings, **static_users(BOB)}
    with running(raw) as first, running(raw) as second:
        if backend == "sql":
            services(first.app).access.create_user(BOB, PASSWORD)
        page = login(first, BOB).follow()
        copied = _copy_of_the_cookie(first)
        assert _is_logged_in(second, copied)
        page.forms[0].submit()
        assert not _is_logged_in(second, copied)
        assert not _is_logged_in(first, copied)
        # Logging in again is a new session: it works, and it ends on its own.
        login(second, BOB)
        assert _is_logged_in(first, _copy_of_the_cookie(second))


def test_a_copied_cookie_stops_working_after_a_password_change(app: webtest.TestApp) -> None:
    login(app, BOB)
    copied = _copy_of_the_cookie(app)
    assert _is_logged_in(app, copied)
    services(app.app).access.update_user(BOB, password="a new password")
    assert not _is_logged_in(app, copied)


def test_a_session_ends_after_its_absolute_lifetime_even_if_used(
    sql_raw: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [1_000_000.0]
    monkeypatch.setattr(session_module, "wall_clock", lambda: now[0])
    raw = {**sql_raw, "web.session_max_age": "3600", "web.session_absolute_max_age": "36000"}
    with running(raw) as testapp:
        services(testapp.app).access.create_user(BOB, PASSWORD)
        login(testapp, BOB)
        for _ in range(9):  # used every 50 minutes: never idle for long
            now[0] += 3000
            assert f'id="whoami">{BOB}<' in testapp.get("/ui/tokens").text
        now[0] += 3000  # 30,000 seconds in
        assert testapp.get("/ui/tokens").status_int == 200
        now[0] += 6001  # past 36,000
        refused = testapp.get("/ui/tokens", expect_errors=True)
        assert refused.status_int == 303 and "/ui/login" in refused.location
        login(testapp, BOB)  # a new login starts a new lifetime
        assert f'id="whoami">{BOB}<' in testapp.get("/ui/tokens").text


def test_ended_sessions_are_swept_once_past_the_absolute_lifetime(app: webtest.TestApp) -> None:
    storage = services(app.app).index.storage
    old, recent = new_session_id(), new_session_id()
    SessionLedger(storage, absolute_max_age=600).end(old)
    # Written as long ago as a whole lifetime and the sweep's hour of slack.
    then = time.time() - 600 - 3600 - 5
    os.utime(storage._path(ENDED_PREFIX + old), (then, then))  # type: ignore[attr-defined]
    ledger = SessionLedger(storage, absolute_max_age=600)
    assert ledger.is_ended(old) and not ledger.is_ended(recent)
    ledger.end(recent)  # a logout sweeps what no cookie can use any more
    assert {o.key for o in storage.list(ENDED_PREFIX)} == {ENDED_PREFIX + recent}
    assert ledger.is_ended(recent)
    assert ledger.is_ended("not an id")


def test_the_absolute_lifetime_setting(sql_raw: dict[str, Any]) -> None:
    assert load_settings(sql_raw, environ={}).web.session_absolute_max_age == 86400
    with pytest.raises(ConfigError, match=r"web\.session_absolute_max_age"):
        load_settings({**sql_raw, "web.session_absolute_max_age": "0"}, environ={})
    with pytest.raises(ConfigError, match=r"web\.session_absolute_max_age"):
        load_settings({**sql_raw, "web.session_absolute_max_age": "a day"}, environ={})


@pytest.mark.parametrize(("scheme", "secure"), [("https", True), ("http", False)])
def test_the_cookie_is_secure_over_https(app: webtest.TestApp, scheme: str, secure: bool) -> None:
    environ = {"wsgi.url_scheme": scheme}
    answer = login(app, BOB, environ=environ)
    assert answer.status_int == 303
    cookie = answer.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert ("; secure" in cookie.lower()) is secure, cookie


def test_session_secret_setting(sql_raw: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match=r"web\.session_secret"):
        load_settings({**sql_raw, "web.session_secret": "short"}, environ={})
    with running({**sql_raw, "web.session_secret": "s" * 40}) as testapp:
        services(testapp.app).access.create_user(BOB, PASSWORD)
        login(testapp, BOB)
        assert 'id="whoami">bob<' in testapp.get("/ui/").text
        # With the secret set, nothing is generated into storage.
        assert services(testapp.app).index.storage.stat(SECRET_STORAGE_KEY) is None


# -- CSRF ---------------------------------------------------------------------------------


@pytest.fixture
def foo(app: webtest.TestApp, tmp_path: Path) -> Path:
    return upload_wheel(app, creds(ADMIN), tmp_path / "dist", "foo", "1.0", summary=EVIL)


def _yanked(app: webtest.TestApp) -> bool:
    index = services(app.app).index
    return any(f.yanked for f in index.project_files(index.get_project("foo")))


def test_form_post_without_token_is_refused(app: webtest.TestApp, foo: Path) -> None:
    login(app, ADMIN)
    answer = app.post("/ui/projects/foo/versions/1.0/yank", {"action": "yank"}, expect_errors=True)
    assert answer.status_int == 403
    assert "security token" in answer.text
    assert not _yanked(app)
    token = token_of(app.get("/ui/projects/foo"))
    answer = app.post(
        "/ui/projects/foo/versions/1.0/yank", {"action": "yank", "csrf_token": "x" + token}, expect_errors=True
    )
    assert answer.status_int == 403
    assert not _yanked(app)


def test_form_post_from_another_origin_is_refused(app: webtest.TestApp, foo: Path) -> None:
    login(app, ADMIN)
    token = token_of(app.get("/ui/projects/foo"))
    fields = {"action": "yank", "csrf_token": token}
    for headers in ({"Origin": "http://evil.example"}, {"Sec-Fetch-Site": "cross-site"}):
        answer = app.post("/ui/projects/foo/versions/1.0/yank", fields, headers=headers, expect_errors=True)
        assert answer.status_int == 403
        assert not _yanked(app)
    app.post("/ui/projects/foo/versions/1.0/yank", fields, headers={"Origin": "http://localhost"})
    assert _yanked(app)


def test_login_form_needs_its_token(app: webtest.TestApp) -> None:
    answer = app.post("/ui/login", {"username": BOB, "password": PASSWORD}, expect_errors=True)
    assert answer.status_int == 403
    assert "whoami" not in app.get("/ui/").text


def test_json_api_with_the_session_cookie_needs_the_token_header(app: webtest.TestApp, foo: Path) -> None:
    login(app, ADMIN)
    url = "/api/projects/foo/versions/1.0/yank"
    assert app.post_json(url, {"reason": "x"}, expect_errors=True).status_int == 403
    token = token_of(app.get("/ui/projects/foo"))
    assert app.post_json(url, {"reason": "x"}, headers={"X-CSRF-Token": token}).status_int == 200
    # Basic credentials are not ambient: no token needed, as for twine and curl.
    app.reset()
    assert app.delete(url, headers=creds(ADMIN)).status_int == 200


# -- escaping ---------------------------------------------------------------------------


def test_stored_script_in_a_summary_renders_as_text(app: webtest.TestApp, foo: Path) -> None:
    for page in (app.get("/ui/"), app.get("/ui/projects/foo"), app.get("/ui/?q=foo&fragment=1")):
        assert EVIL not in page.text
        assert "&lt;script&gt;alert(&#34;owned&#34;)&lt;/script&gt;" in page.text


def test_yank_reason_and_status_reason_are_escaped(app: webtest.TestApp, foo: Path) -> None:
    login(app, ADMIN)
    page = app.get("/ui/projects/foo")
    yank = next(f for f in page.forms.values() if f.action.endswith("/yank"))
    yank["reason"] = "<b>broken</b>"
    page = yank.submit().follow()
    assert 'yanked: <span class="reason">&lt;b&gt;broken&lt;/b&gt;</span>' in page.text
    status = page.forms["status-form"]
    status["status"], status["reason"] = "deprecated", "<i>old</i>"
    page = status.submit().follow()
    assert "&lt;i&gt;old&lt;/i&gt;" in page.text and "<i>old</i>" not in page.text


# -- listing, permissions ---------------------------------------------------------------


def test_project_list_is_paginated_and_searchable(app: webtest.TestApp) -> None:
    cache = services(app.app).index.cache
    for number in range(120):
        name = f"pkg{number:03d}"
        file = PackageFile(
            project=name,
            filename=f"{name}-1.0-py3-none-any.whl",
            version="1.0",
            packagetype="bdist_wheel",
            python_version="py3",
            size=10,
            sha256="0" * 64,
            upload_time=utcnow(),
            summary=f"summary {number}",
        )
        cache.apply(AddFile(file, name))
    first = app.get("/ui/")
    assert "120 projects" in first.text and "Page 1 of 3" in first.text
    assert first.text.count('class="project-link"') == 50
    third = first.click(linkid=None, href=r"page=2").click(href=r"page=3")
    assert third.text.count('class="project-link"') == 20
    found = app.get("/ui/?q=pkg11&fragment=1")
    assert "10 projects" in found.text and "<html" not in found.text


def test_private_index_sends_anonymous_readers_to_login(sql_raw: dict[str, Any], tmp_path: Path) -> None:
    with running({**sql_raw, "pypi.default_read": "authenticated"}) as testapp:
        services(testapp.app).access.create_user(ADMIN, PASSWORD, is_admin=True)
        upload_wheel(testapp, creds(ADMIN), tmp_path / "dist", "secret-pkg", "1.0")
        assert "secret-pkg" not in testapp.get("/ui/").text
        answer = testapp.get("/ui/projects/secret-pkg")
        assert answer.status_int == 303 and "/ui/login?next=%2Fui%2Fprojects%2Fsecret-pkg" in answer.location


def test_the_root_page_wears_the_ui_look_and_says_how_to_use_the_index(app: webtest.TestApp) -> None:
    page = app.get("/").text
    # The UI's stylesheet (its dark mode with it), favicon and navigation.
    assert (
        'href="http://localhost/ui/static/ui.css"' in page and '<meta name="color-scheme" content="light dark">' in page
    )
    assert (
        'href="http://localhost/ui/static/favicon.svg"' in page and 'class="top"' in page and 'id="login-link"' in page
    )
    assert "pip install --index-url http://localhost/simple/ PROJECT" in page
    assert "uv pip install --index-url http://localhost/simple/ PROJECT" in page
    assert "twine upload --repository-url http://localhost/legacy/ dist/*" in page
    login(app, BOB)
    assert f'id="whoami">{BOB}<' in app.get("/").text


def test_admin_pages_refuse_non_admins(app: webtest.TestApp) -> None:
    assert app.get("/ui/admin").status_int == 303  # anonymous: log in first
    login(app, BOB)
    for url in ("/ui/admin", "/ui/admin/access"):
        answer = app.get(url, expect_errors=True)
        assert answer.status_int == 403 and "Only admins" in answer.text
    assert "Status &amp; reload" not in app.get("/ui/").text


def test_project_page_offers_actions_by_permission(app: webtest.TestApp, foo: Path) -> None:
    page = app.get("/ui/projects/foo")
    assert "pip install --index-url http://localhost/simple/ foo" in page.text
    assert "uv add --index http://localhost/simple/ foo" in page.text
    assert "upload-form" not in page.text and "/yank" not in page.text
    login(app, BOB)
    page = app.get("/ui/projects/foo")
    assert "upload-form" not in page.text and "status-form" not in page.text
    services(app.app).access.set_grant("foo", "user", BOB, "rwd")
    page = app.get("/ui/projects/foo")
    assert "upload-form" in page.text and "/yank" in page.text and "status-form" not in page.text


def test_delete_needs_the_confirmation(app: webtest.TestApp, foo: Path) -> None:
    login(app, ADMIN)
    page = app.get("/ui/projects/foo")
    form = next(f for f in page.forms.values() if f.action.endswith("/versions/1.0/delete"))
    # Browsers send the Referer that brings them back to the page; webtest does not.
    page = form.submit(headers={"Referer": "http://localhost/ui/projects/foo"}).follow()
    assert "Error: Tick the confirmation box to delete." in flashes(page)
    form = next(f for f in page.forms.values() if f.action.endswith("/versions/1.0/delete"))
    form["confirm"] = True
    listing = form.submit().follow()
    assert listing.request.path == "/ui/"
    assert services(app.app).index.find_project("foo") is None or not services(app.app).index.project_files(
        services(app.app).index.get_project("foo")
    )


def test_upload_form_refuses_what_the_api_refuses(app: webtest.TestApp, tmp_path: Path) -> None:
    from tests.support.distbuilder import build_wheel

    wheel = build_wheel(tmp_path, "bar", "1.0")
    login(app, BOB)  # may not create projects: default_write is empty
    page = app.get("/ui/")
    form = page.forms["upload-form"]
    form["content"] = webtest.Upload(wheel.name, wheel.read_bytes())
    answer = form.submit(expect_errors=True)
    assert answer.status_int == 403 and "may not upload" in answer.text


def test_upload_form_names_a_new_project_as_its_metadata_does(app: webtest.TestApp, tmp_path: Path) -> None:
    from tests.support.distbuilder import build_wheel

    wheel = build_wheel(tmp_path, "Foo.Bar", "1.0")  # the filename says only foo_bar
    login(app, ADMIN)
    form = app.get("/ui/").forms["upload-form"]
    form["content"] = webtest.Upload(wheel.name, wheel.read_bytes())
    page = form.submit().follow()
    assert '<h1 id="project-name">Foo.Bar</h1>' in page.text
    assert services(app.app).index.get_project("foo-bar").display_name == "Foo.Bar"


# -- tokens and admin ------------------------------------------------------------------


def test_tokens_are_shown_once_and_revoked(app: webtest.TestApp) -> None:
    login(app, BOB)
    form = app.get("/ui/tokens").forms["token-form"]
    form["description"] = "<ci>"
    page = form.submit()
    assert page.headers["Cache-Control"] == "no-store"
    secret = re.search(r'id="new-token">(ppc_[0-9a-f_]+)<', page.text)
    assert secret is not None
    assert services(app.app).access.authenticate("__token__", secret.group(1)) is not None
    listing = app.get("/ui/tokens")
    assert secret.group(1) not in listing.text and "&lt;ci&gt;" in listing.text
    revoke = next(f for f in listing.forms.values() if "/revoke" in f.action)
    assert "Revoked token" in flashes(revoke.submit().follow())[0]
    assert services(app.app).access.authenticate("__token__", secret.group(1)) is None


def test_reload_form_refuses_a_concurrent_reload(app: webtest.TestApp) -> None:
    login(app, ADMIN)
    page = app.get("/ui/admin")
    assert 'id="health-storage" class="ok">ok<' in page.text
    held = services(app.app).index.begin_reload()
    try:
        form = page.forms["reload-form"]
        answer = form.submit(headers={"Accept": "application/json"}, expect_errors=True)
        assert answer.status_int == 409 and "already running" in answer.json["message"]
        page = form.submit().follow()
        assert any("A reload is already running" in m for m in flashes(page))
    finally:
        held.execute()
    page = app.get("/ui/admin")
    assert 'id="reload-state">done' in page.text


def test_static_backend_access_page_is_read_only(testapp: webtest.TestApp) -> None:
    login(testapp, UPLOADER, UPLOADER_PASSWORD)
    page = testapp.get("/ui/admin/access")
    assert "read-only-note" in page.text and "grant-form" not in page.text
    assert f'data-user="{UPLOADER}"' in page.text
    assert "tokens-unavailable" in testapp.get("/ui/tokens").text


def test_pages_seen_with_a_login_cookie_are_private(app: webtest.TestApp, foo: Path) -> None:
    assert app.get("/simple/foo/").headers["Cache-Control"].startswith("public")
    login(app, BOB)
    assert app.get("/simple/foo/").headers["Cache-Control"].startswith("private")


def test_an_oversized_form_post_is_refused_before_parsing(app: webtest.TestApp) -> None:
    login(app, BOB)
    token = token_of(app.get("/ui/"))
    body = b"x" * (3 * 1024 * 1024)  # the conftest limit is 1MB, plus 1MiB of form overhead
    answer = app.post(
        "/ui/upload",
        {"csrf_token": token},
        upload_files=[("content", "foo-1.0-py3-none-any.whl", body)],
    )
    assert any(m.startswith("Error: File too large.") for m in flashes(answer.follow()))
