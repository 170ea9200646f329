"""The project page's origin panel under webtest: where files come from, what the cooldown holds back, the forms."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import webtest

from tests.support.apiutil import ADMIN, BOB, creds, upload_wheel
from tests.support.common import services
from tests.support.owners import shipped_app, ui_login
from tests.support.upstreams import Clock, JsonIndex, use_clock

OLD, NEW, TIMELESS = "cpkg-1.0-py3-none-any.whl", "cpkg-2.0-py3-none-any.whl", "cpkg-3.0-py3-none-any.whl"
JSON_ACCEPT = {"Accept": "application/vnd.pypi.simple.v1+json"}

pytestmark = pytest.mark.usefixtures("cheap_hashing")


@pytest.fixture
def upstream(cpkg_upstream: JsonIndex) -> JsonIndex:
    return cpkg_upstream


@pytest.fixture
def clock() -> Clock:
    return Clock("2024-04-01T12:00:00+00:00")


def proxying(raw_settings: dict[str, Any], upstream: JsonIndex, clock: Clock, **options: str) -> Any:
    settings = {"upstream.indexes": "main", "upstream.main.url": upstream.url}
    settings.update({f"upstream.{k}": v for k, v in options.items()})
    return shipped_app(raw_settings, **settings)


@pytest.fixture
def app(raw_settings: dict[str, Any], upstream: JsonIndex, clock: Clock) -> Iterator[webtest.TestApp]:
    with proxying(raw_settings, upstream, clock, min_age="1d") as testapp:
        use_clock(testapp, clock)
        yield testapp


def row(page: webtest.TestResponse, table: str, filename: str) -> str:
    """The text of the row for `filename` in the table (or section) with id `table`."""
    section = page.html.find(id=table)
    assert section is not None, f"no #{table} in the page"
    found = section.find("tr", attrs={"data-filename": filename})
    return found.get_text(" ", strip=True) if found is not None else ""


def token_of(page: webtest.TestResponse) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert found, page.text
    return found.group(1)


def test_a_name_served_from_upstream_has_a_page_with_its_origin_and_what_the_cooldown_holds_back(
    app: webtest.TestApp,
) -> None:
    page = app.get("/ui/projects/cpkg")
    assert page.html.find(id="origin-badge").text == "upstream"
    assert page.html.find(id="origin-upstream").text == "main"
    assert row(page, "upstream-files", OLD) and not row(page, "upstream-files", NEW)
    # Held back: when each was uploaded upstream and when it appears.
    assert "2024-04-01 00:00 UTC" in row(page, "held-files", NEW)
    assert "2024-04-02 00:00 UTC" in row(page, "held-files", NEW)
    assert "no upload time" in row(page, "held-files", TIMELESS)
    assert not row(page, "held-files", OLD)
    # Anonymous: information, no controls.
    for form in ("origin-form", "exception-form"):
        assert page.html.find(id=form) is None
    # Neither here nor upstream: no page (as /simple/ answers).
    app.get("/ui/projects/nowhere", status=404)


def test_freeze_at_is_named_as_what_holds_files_back(
    raw_settings: dict[str, Any], upstream: JsonIndex, clock: Clock
) -> None:
    with proxying(raw_settings, upstream, clock, freeze_at="2024-03-15") as app:
        use_clock(app, clock)
        page = app.get("/ui/projects/cpkg")
        assert "upstream.freeze_at" in row(page, "held-files", NEW)
        assert "2024-03-15 00:00 UTC" in row(page, "held-files", NEW)


def test_a_cached_project_says_which_upstream_its_files_came_from(
    raw_settings: dict[str, Any], upstream: JsonIndex, clock: Clock
) -> None:
    # page_ttl 0: every page asks the upstream, so its failure shows at once.
    with proxying(raw_settings, upstream, clock, min_age="1d", page_ttl="0") as app:
        use_clock(app, clock)
        app.get(f"/packages/cpkg/{OLD}")
        page = app.get("/ui/projects/cpkg")
        assert page.html.find(id="origin-badge").text == "cached"
        assert page.html.find(id="origin-upstream").text == "main"
        assert "cached from main" in row(page, "release-1.0", OLD)
        assert "cached" in row(page, "upstream-files", OLD)
        # The upstream down: the page says so, and the cached file is still offered.
        upstream.failing = True
        page = app.get("/ui/projects/cpkg")
        assert "did not answer" in page.html.find(id="origin-problem").text
        assert "cached from main" in row(page, "release-1.0", OLD)
        # A name never held here cannot be shown: the upstream failure, not a 404.
        assert "try again" in app.get("/ui/projects/other", status=502).text


def test_a_non_admin_sees_no_controls_and_cannot_post_them(app: webtest.TestApp) -> None:
    ui_login(app, BOB)
    page = app.get("/ui/projects/cpkg")
    assert page.html.find(id="origin-form") is None and page.html.find(id="exception-form") is None
    token = token_of(page)
    app.post("/ui/projects/cpkg/origin", {"csrf_token": token, "origin": "local"}, status=403)
    app.post(
        "/ui/projects/cpkg/cooldown-exception", {"csrf_token": token, "action": "grant", "reason": "x"}, status=403
    )
    assert app.get("/api/projects/cpkg/origin", headers=creds(ADMIN)).json["origin"] == "none"


def test_admins_grant_and_revoke_a_cooldown_exception_from_the_page(app: webtest.TestApp) -> None:
    ui_login(app, ADMIN)
    page = app.get("/ui/projects/cpkg")
    # Without the form's token: refused.
    app.post("/ui/projects/cpkg/cooldown-exception", {"action": "grant", "reason": "x"}, status=403)
    form = page.forms["exception-form"]
    form["until"] = "2024-04-01T13:00"
    form["reason"] = ""
    assert "reason" in form.submit().follow().html.find(class_="flash error").text
    form["reason"] = "CVE fix"
    page = form.submit().follow()
    assert "granted" in page.html.find(class_="flash").text
    assert "CVE fix" in page.html.find(id="exception-text").text
    assert "2024-04-01 13:00 UTC" in page.html.find(id="exception-text").text
    assert row(page, "upstream-files", NEW) and row(page, "upstream-files", TIMELESS)
    assert page.html.find(id="held-files").text == "Nothing is held back now."
    stored = services(app.app).index.storage.read_versioned("_ppc/cooldown-exceptions/cpkg.json")
    assert stored is not None and b'"by": "admin"' in stored.data
    app.get(f"/packages/cpkg/{NEW}")  # cached under the exception
    page = page.forms["exception-revoke-form"].submit().follow()
    assert "revoked" in page.html.find(class_="flash").text
    assert row(page, "held-files", NEW)
    # Cached, but held back again by its upstream upload time.
    assert "held back by the cooldown" in row(page, "release-2.0", NEW)
    assert NEW not in app.get("/simple/cpkg/").text


def test_admins_block_and_allow_the_upstream_from_the_page(app: webtest.TestApp, upstream: JsonIndex) -> None:
    ui_login(app, ADMIN)
    form = app.get("/ui/projects/cpkg").forms["origin-form"]
    form["origin"] = "local"
    page = form.submit().follow()
    assert "Upstream blocked" in page.html.find(class_="flash").text
    assert page.html.find(id="origin-badge").text == "local"
    assert "upstream blocked" in page.html.find(id="origin-text").text
    assert page.html.find(id="upstream-files") is None
    app.get("/simple/cpkg/", status=404)
    assert app.get("/api/projects/cpkg/origin", headers=creds(ADMIN)).json["origin"] == "local"
    bad = page.forms["origin-form"]
    bad["origin"].force_value("elsewhere")
    assert "Unknown origin" in bad.submit().follow().html.find(class_="flash error").text
    form = page.forms["origin-form"]
    form["origin"] = "upstream"
    page = form.submit().follow()
    assert "Upstream allowed" in page.html.find(class_="flash").text
    assert OLD in app.get("/simple/cpkg/").text


def test_the_namespace_a_project_falls_in_links_admins_to_its_admin_page(app: webtest.TestApp, tmp_path: Path) -> None:
    access = services(app.app).access
    access.add_namespace("Corp", "user", ADMIN)
    upload_wheel(app, creds(ADMIN), tmp_path, "corp-tool", "1.0")
    page = app.get("/ui/projects/corp-tool")
    assert page.html.find(id="origin-badge").text == "local"
    assert "Corp" in page.html.find(id="namespaces").text and page.html.find(id="namespaces").find("a") is None
    ui_login(app, ADMIN)
    page = app.get("/ui/projects/corp-tool")
    assert "no longer listed" in page.html.find(id="origin-warning").text
    link = page.html.find(id="namespaces").find("a")
    assert link.text == "Corp" and link["href"].endswith("/ui/admin/access#namespace-corp")
    assert app.get(link["href"]).html.find(id="namespace-corp") is not None
    # A reserved name never held here has no page (it is never resolved upstream).
    app.get("/ui/projects/corp-other", status=404)


def test_without_an_upstream_the_page_shows_only_the_namespaces(raw_settings: dict[str, Any], tmp_path: Path) -> None:
    with shipped_app(raw_settings) as app:
        services(app.app).access.add_namespace("corp", "user", ADMIN)
        for project in ("corp-lib", "plain"):
            upload_wheel(app, creds(ADMIN), tmp_path, project, "1.0")
        page = app.get("/ui/projects/corp-lib")
        assert page.html.find(id="origin-text") is None and page.html.find(id="origin-form") is None
        assert "corp" in page.html.find(id="namespaces").text
        assert app.get("/ui/projects/plain").html.find(id="origin") is None
        app.get("/ui/projects/nowhere", status=404)
