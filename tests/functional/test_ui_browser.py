"""The web UI in headless Chromium (Playwright) against the real server: user journeys, asserted on the DOM."""

from __future__ import annotations

import base64
import json
import shutil
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.support.browser import TIMEOUT_MS, app_services, assert_reachable_at, chromium, shot
from tests.support.browser import publish as publish_as
from tests.support.distbuilder import build_wheel, digests
from tests.support.harness import JSON_V1, Clients, Server, start_server
from tests.support.upstreams import Hosted, JsonIndex

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page

ADMIN, BOB = "admin", "bob"
ADMIN_PASSWORD, BOB_PASSWORD = "admin password 1", "bob password 2"


def publish(server: Server, name: str, wheel: Path) -> None:
    """Index a wheel directly through the service, as a setup step (the tests upload through the UI)."""
    publish_as(server, name, wheel, ADMIN)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JsonIndex]:
    """`far-pkg` 1.0 from 2024 and 2.0 uploaded an hour ago: the server's one-day cooldown holds 2.0 back."""
    index = JsonIndex()
    dists = tmp_path_factory.mktemp("upstream-dists")
    recent = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    index.add(
        "far-pkg",
        Hosted(build_wheel(dists, "far-pkg", "1.0")),
        Hosted(build_wheel(dists, "far-pkg", "2.0"), upload_time=recent),
    )
    yield index
    index.stop()


@pytest.fixture(scope="module")
def ui_server(tmp_path_factory: pytest.TempPathFactory, upstream: JsonIndex) -> Iterator[Server]:
    """SQL users and grants; nobody may upload by default, so grants decide; three projects to search; an upstream
    with a one-day cooldown."""
    extra = {"auth.backend": "sql", "pypi.default_write": "", "web.session_secret": "x" * 40}
    extra.update({"upstream.indexes": "main", "upstream.main.url": upstream.url, "upstream.min_age": "1d"})
    server = start_server(tmp_path_factory.mktemp("ui-server"), with_uploader=False, extra=extra)
    with app_services(server) as found:
        found.access.create_user(ADMIN, ADMIN_PASSWORD, is_admin=True)
        found.access.create_user(BOB, BOB_PASSWORD)
    dists = tmp_path_factory.mktemp("ui-dists")
    for version in ("1.9", "1.10", "2.0"):
        publish(server, "alpha-tool", build_wheel(dists, "alpha-tool", version, summary="Alpha <b>tool</b>"))
    publish(server, "beta-lib", build_wheel(dists, "beta-lib", "0.1"))
    publish(server, "gamma", build_wheel(dists, "gamma", "3.0"))
    yield server
    server.stop()


@pytest.fixture
def context(browser: Browser, ui_server: Server) -> Iterator[BrowserContext]:
    made = browser.new_context(base_url=ui_server.url, viewport={"width": 1200, "height": 900})
    made.grant_permissions(["clipboard-read", "clipboard-write"], origin=ui_server.url)
    made.set_default_timeout(TIMEOUT_MS)
    yield made
    made.close()


@pytest.fixture
def page(context: BrowserContext, ui_server: Server) -> Iterator[Page]:
    opened = context.new_page()
    outside: list[str] = []
    # The UI must work inside a closed network: nothing may be fetched from elsewhere.
    opened.on("request", lambda request: None if request.url.startswith(ui_server.url) else outside.append(request.url))
    opened.outside_requests = outside  # type: ignore[attr-defined]
    # ... and within its Content-Security-Policy: the browser reports what the policy blocked.
    blocked: list[str] = []
    opened.on(
        "console", lambda message: blocked.append(message.text) if "Content Security Policy" in message.text else None
    )
    yield opened
    assert blocked == []


def wait_for_text(page: Page, selector: str, text: str, *, exact: bool = False) -> None:
    """Until the element holds `text` (a locator waits without evaluating script, which the CSP forbids)."""
    from playwright.sync_api import expect

    located = expect(page.locator(selector))
    if exact:
        located.to_have_text(text, timeout=TIMEOUT_MS)
    else:
        located.to_contain_text(text, timeout=TIMEOUT_MS)


def log_in(page: Page, user: str, password: str) -> None:
    page.goto("/ui/login")
    page.fill("#username", user)
    page.fill("#password", password)
    page.click("#login-submit")
    page.wait_for_selector("#whoami")
    assert page.inner_text("#whoami") == user


def api(server: Server, method: str, path: str, user: str, password: str) -> tuple[int, Any]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    request = urllib.request.Request(server.url + path, method=method, headers={"Authorization": f"Basic {token}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, None


def test_log_in_search_open_project_and_copy_install_line(page: Page, ui_server: Server, tmp_path: Path) -> None:
    page.goto("/ui/login")
    shot(page, tmp_path, "login")
    log_in(page, ADMIN, ADMIN_PASSWORD)
    assert "3 projects" in page.inner_text("#result-count")
    shot(page, tmp_path, "projects")

    page.fill("#q", "alp")  # typing, no submit: the script fetches the results
    wait_for_text(page, "#result-count", "matching")
    assert page.locator("a.project-link").all_inner_texts() == ["alpha-tool"]
    assert page.url.endswith("/ui/?q=alp")
    row = page.locator("#project-table tbody tr").first
    assert "2.0" in row.inner_text() and "Alpha <b>tool</b>" in row.inner_text()  # escaped text, not markup
    assert page.locator("#project-table b").count() == 0

    page.click("a.project-link")
    page.wait_for_selector("#project-name")
    assert page.inner_text("#project-name") == "alpha-tool"
    versions = page.locator(".release").evaluate_all("els => els.map(e => e.dataset.version)")
    assert versions == ["2.0", "1.10", "1.9"]  # PEP 440 order, not string order
    first_file = page.locator(".release").first.locator("tbody tr").first.inner_text()
    assert "alpha_tool-2.0-py3-none-any.whl" in first_file and "B" in first_file

    pip_line = f"pip install --index-url {ui_server.url}/simple/ alpha-tool"
    assert page.inner_text("#pip-line") == pip_line
    page.click("button[data-copy='#pip-line']")
    wait_for_text(page, "#copy-status", "Copied")
    assert page.evaluate("navigator.clipboard.readText()") == pip_line
    shot(page, tmp_path, "project")
    assert page.outside_requests == []  # type: ignore[attr-defined]


def test_upload_through_the_form_then_yank_shows_in_simple_json(page: Page, ui_server: Server, tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path, "delta-pkg", "1.0", requires_python=">=3.9")
    log_in(page, ADMIN, ADMIN_PASSWORD)
    page.click("details.panel > summary")
    page.set_input_files("#upload-file", str(wheel))
    page.click("#upload-submit")
    page.wait_for_selector("#project-name")
    assert "Uploaded: delta_pkg-1.0-py3-none-any.whl" in page.inner_text("main")
    row = page.locator("tr[data-filename='delta_pkg-1.0-py3-none-any.whl']")
    assert ">=3.9" in row.inner_text() and "available" in row.inner_text()

    page.fill("form.yank-form input[name=reason]", "broken <build>")
    page.click("form.yank-form button")
    page.wait_for_selector("text=Yanked delta-pkg 1.0")
    assert "yanked: broken <build>" in row.inner_text()
    shot(page, tmp_path, "project-yanked")
    doc = ui_server.project_json("delta-pkg")
    assert doc is not None
    assert [(f["filename"], f["yanked"]) for f in doc["files"]] == [
        ("delta_pkg-1.0-py3-none-any.whl", "broken <build>")
    ]
    page.click("form.yank-form button")  # now "Unyank 1.0"
    page.wait_for_selector("text=Unyanked delta-pkg 1.0")
    doc = ui_server.project_json("delta-pkg")
    assert doc is not None and doc["files"][0]["yanked"] is False


def test_create_and_revoke_a_token(page: Page, ui_server: Server, tmp_path: Path) -> None:
    log_in(page, BOB, BOB_PASSWORD)
    page.click("a[href$='/ui/tokens']")
    page.fill("#token-description", "laptop")
    page.click("#token-create")
    page.wait_for_selector("#new-token")
    secret = page.inner_text("#new-token")
    assert secret.startswith("ppc_")
    shot(page, tmp_path, "tokens")
    assert api(ui_server, "GET", "/api/users/bob", "__token__", secret)[0] == 200

    page.goto("/ui/tokens")
    assert secret not in page.content()  # shown once only
    assert "laptop" in page.inner_text("#token-table")
    page.click("button.revoke")
    page.wait_for_selector("#no-tokens")
    assert api(ui_server, "GET", "/api/users/bob", "__token__", secret)[0] == 401


def test_grant_write_access_then_the_user_uploads(page: Page, ui_server: Server, tmp_path: Path) -> None:
    clients = Clients(ui_server, tmp_path / "home")
    wheel = build_wheel(tmp_path / "dist", "beta-lib", "0.2")
    refused = clients.twine(wheel, username=BOB, password=BOB_PASSWORD)
    assert refused.returncode != 0 and "403" in refused.output

    log_in(page, ADMIN, ADMIN_PASSWORD)
    page.goto("/ui/admin/access")
    page.click("#grant-panel > summary")
    page.fill("#grant-project", "beta-lib")
    page.select_option("#grant-kind", "user")
    page.fill("#grant-name", BOB)
    page.check("#grant-w")
    page.click("#grant-submit")
    page.wait_for_selector("tr[data-grant='beta-lib/user/bob']")
    assert page.inner_text("tr[data-grant='beta-lib/user/bob']").split()[-2] == "rw"
    shot(page, tmp_path, "access")

    clients.twine(wheel, username=BOB, password=BOB_PASSWORD).check()
    assert "beta_lib-0.2-py3-none-any.whl" in ui_server.listed_files("beta-lib")


def test_a_second_reload_is_refused_with_a_message(page: Page, ui_server: Server) -> None:
    log_in(page, ADMIN, ADMIN_PASSWORD)
    page.goto("/ui/admin")
    with app_services(ui_server) as found:
        # Another server (this test process, on the same cache) holds the reload lease.
        held = found.index.begin_reload()
        try:
            page.click("#reload-button")
            wait_for_text(page, "#reload-message", "already")
            assert "A reload is already running" in page.inner_text("#reload-message")
            assert page.locator("#reload-button").is_enabled()
        finally:
            held.execute()


def test_reload_after_copying_into_storage_shows_the_counts(page: Page, ui_server: Server, tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path, "copied-in", "1.0")
    folder = ui_server.folder / "packages" / "copied-in"
    folder.mkdir(parents=True)
    shutil.copy(wheel, folder / wheel.name)
    assert ui_server.project_json("copied-in") is None

    log_in(page, ADMIN, ADMIN_PASSWORD)
    page.goto("/ui/admin")
    assert page.inner_text("#health-storage") == "ok" and page.inner_text("#health-cache") == "ok"
    projects_before, files_before = int(page.inner_text("#project-count")), int(page.inner_text("#file-count"))
    page.click("#reload-button")
    # Not the state cell: it already says "done" from the previous reload when the page loads.
    wait_for_text(page, "#reload-message", "Reload finished.", exact=True)
    assert page.inner_text("#reload-state") == "done"
    assert page.inner_text("#reload-added") == "1"
    # Package files only: not their sidecars, records or project states.
    assert page.inner_text("#reload-listed") == str(files_before + 1)
    wait_for_text(page, "#reload-line", f"done: {files_before + 1} of {files_before + 1} files (100%)")
    # The status box is fetched again once the reload is over: no page reload needed.
    wait_for_text(page, "#file-count", str(files_before + 1), exact=True)
    assert int(page.inner_text("#project-count")) == projects_before + 1
    assert_reachable_at(page, tmp_path, "admin-reload")
    assert ui_server.listed_files("copied-in") == {wheel.name: digests(wheel)["sha256_digest"]}


def test_phone_width_and_javascript_off(browser: Browser, ui_server: Server, tmp_path: Path) -> None:
    phone = browser.new_context(
        base_url=ui_server.url, viewport={"width": 360, "height": 740}, java_script_enabled=False
    )
    try:
        page = phone.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.goto("/ui/projects/alpha-tool")
        assert page.inner_text("#project-name") == "alpha-tool"
        # Wide tables scroll inside their box; the page itself never scrolls sideways.
        assert page.evaluate("document.documentElement.scrollWidth") <= 360
        assert page.locator("button[data-copy]").first.is_hidden()  # no script, no copy button
        shot(page, tmp_path, "project-phone-nojs")
        page.goto("/ui/")
        page.fill("#q", "gam")
        page.press("#q", "Enter")  # the plain form submit works without the script
        page.wait_for_url("**/ui/?q=gam")
        assert page.locator("a.project-link").all_inner_texts() == ["gamma"]
    finally:
        phone.close()


def test_simple_json_is_untouched_by_the_ui_session(ui_server: Server) -> None:
    # The UI adds pages; the index's own answers stay what clients expect.
    status, headers, _body = ui_server.get("/simple/alpha-tool/", JSON_V1)
    assert status == 200 and "Set-Cookie" not in headers


def test_an_admin_lets_a_held_back_upstream_release_through_then_blocks_the_upstream(
    page: Page, ui_server: Server, tmp_path: Path
) -> None:
    new = "far_pkg-2.0-py3-none-any.whl"
    log_in(page, ADMIN, ADMIN_PASSWORD)
    page.goto("/ui/projects/far-pkg")
    assert page.inner_text("#origin-badge") == "upstream" and page.inner_text("#origin-upstream") == "main"
    assert page.locator(f"#held-files tr[data-filename='{new}']").count() == 1
    assert new not in ui_server.listed_files("far-pkg")

    page.click("#exception-panel > summary")
    page.fill("#exception-form input[name=reason]", "needs the fix in 2.0")
    page.click("#exception-form button")
    page.wait_for_selector("text=Cooldown exception granted for far-pkg")
    assert "needs the fix in 2.0" in page.inner_text("#exception-text")
    assert page.locator(f"#upstream-files tr[data-filename='{new}']").count() == 1
    assert new in ui_server.listed_files("far-pkg")
    shot(page, tmp_path, "project-upstream-exception")

    page.click("#exception-panel > summary")
    page.click("#exception-revoke-form button")
    page.wait_for_selector("text=Cooldown exception for far-pkg revoked")
    assert page.locator(f"#held-files tr[data-filename='{new}']").count() == 1

    page.select_option("#origin-select", "local")
    page.click("#origin-form button")
    page.wait_for_selector("text=Upstream blocked for far-pkg")
    assert page.inner_text("#origin-badge") == "local"
    assert ui_server.project_json("far-pkg") is None


def test_a_user_changes_their_password_and_their_other_session_ends(
    browser: Browser, context: BrowserContext, ui_server: Server, tmp_path: Path
) -> None:
    with app_services(ui_server) as found:
        found.access.create_user("dora", "dora password 1")
    other = browser.new_context(base_url=ui_server.url)
    other.set_default_timeout(TIMEOUT_MS)
    try:
        elsewhere = other.new_page()
        log_in(elsewhere, "dora", "dora password 1")
        page = context.new_page()
        log_in(page, "dora", "dora password 1")
        page.click("#account-link")
        page.fill("#current-password", "not it")
        page.fill("#new-password", "dora password 2")
        page.fill("#repeat-password", "dora password 2")
        page.click("#password-submit")
        wait_for_text(page, "#password-error", "The current password is wrong.", exact=True)
        page.fill("#current-password", "dora password 1")
        page.fill("#new-password", "dora password 2")
        page.fill("#repeat-password", "dora password 2")
        assert_reachable_at(page, tmp_path, "password-change")
        page.click("#password-submit")
        wait_for_text(page, "main", "Your password was changed; your other sessions have ended.")
        assert page.inner_text("#whoami") == "dora"
        elsewhere.reload()
        assert elsewhere.locator("#login-link").is_visible() and elsewhere.locator("#whoami").count() == 0
        assert api(ui_server, "GET", "/api/users/dora", "dora", "dora password 1")[0] == 401
        assert api(ui_server, "GET", "/api/users/dora", "dora", "dora password 2")[0] == 200
    finally:
        other.close()


def test_an_admin_deletes_a_project_after_typing_its_name(page: Page, ui_server: Server, tmp_path: Path) -> None:
    publish(ui_server, "Delta-Doomed", build_wheel(tmp_path, "Delta-Doomed", "1.0"))
    log_in(page, ADMIN, ADMIN_PASSWORD)
    page.goto("/ui/projects/delta-doomed")
    page.click("#delete-project-panel summary")
    page.fill("#delete-project-name", "delta-doomed")
    assert_reachable_at(page, tmp_path, "project-delete")
    page.click("#delete-project-submit")
    wait_for_text(page, "main", "Deleted the project Delta-Doomed (1 file).")
    assert page.url.endswith("/ui/")
    assert "delta-doomed" not in page.locator("a.project-link").all_inner_texts()
    assert ui_server.project_json("delta-doomed") is None


def test_an_admin_lists_filters_and_revokes_any_users_tokens(page: Page, ui_server: Server, tmp_path: Path) -> None:
    expires = datetime.now(UTC) + timedelta(days=30)
    with app_services(ui_server) as found:
        for user in ("erin", "fred"):
            found.access.create_user(user, f"{user} password 1")
        used = found.access.create_token("erin", "erin-ci", expires=expires)
        laptop = found.access.create_token("erin", "erin-laptop").token.id
        fred = found.access.create_token("fred", "fred-ci").token.id
    assert api(ui_server, "GET", "/api/users/erin", "__token__", used.secret)[0] == 200  # now last used

    log_in(page, ADMIN, ADMIN_PASSWORD)
    page.goto("/ui/tokens?user=*")
    wait_for_text(page, "h1", "Every user's tokens", exact=True)
    row = page.locator(f"tr[data-token-id='{used.token.id}']")
    assert row.locator(".token-user").inner_text() == "erin"
    assert row.locator(".token-created").inner_text().endswith(" UTC")
    assert row.locator(".token-last-used").inner_text().endswith(" UTC")
    assert row.locator(".token-expires").inner_text() == expires.strftime("%Y-%m-%d %H:%M UTC")
    assert page.locator(f"tr[data-token-id='{laptop}'] .token-last-used").inner_text() == "never"
    assert page.locator(f"tr[data-token-id='{fred}'] .token-expires").inner_text() == "never"

    page.select_option("#token-user", "erin")
    page.click("#token-filter-submit")
    wait_for_text(page, "h1", "Tokens of erin", exact=True)
    assert page.url.endswith("/ui/tokens?user=erin")
    assert page.locator("#token-table tbody tr").evaluate_all("rows => rows.map(r => r.dataset.tokenId)") == [
        laptop,
        used.token.id,
    ]
    assert_reachable_at(page, tmp_path, "admin-tokens")

    page.click(f"tr[data-token-id='{used.token.id}'] button.revoke")
    wait_for_text(page, "h1", "Tokens of erin", exact=True)  # back on the filtered list
    assert page.locator(f"tr[data-token-id='{used.token.id}']").count() == 0
    assert api(ui_server, "GET", "/api/users/erin", "__token__", used.secret)[0] == 401
    with app_services(ui_server) as found:
        assert {t.id for t in found.access.list_tokens("fred")} == {fred}
