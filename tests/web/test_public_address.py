"""Absolute URLs and redirects come from web.public_url or an allowed Host, never from whatever Host a client sends."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import webtest

from pypicloud_lite.config import load_settings
from pypicloud_lite.errors import ConfigError
from pypicloud_lite.web import main, make_app
from pypicloud_lite.web.public_address import listen_hosts
from tests.support.apiutil import running, upload_wheel
from tests.support.common import UPLOADER, UPLOADER_PASSWORD, services
from tests.support.settings import write_ini

EVIL = "evil.example"
PUBLIC = "https://pypi.example.com/base"
PROJECT = "foo-bar"

# A request's address (Host, scheme) -> what the links and redirects it gets start with.
EVIL_HOST = {"HTTP_HOST": EVIL}


@pytest.fixture
def seeded(raw_settings: dict[str, Any], auth: dict[str, str], dist_dir: Path) -> dict[str, Any]:
    """raw_settings whose storage holds Foo.Bar 1.0 (uploaded through a plain app, then closed)."""
    with running(raw_settings) as testapp:
        upload_wheel(testapp, auth, dist_dir, "Foo.Bar", "1.0")
    return raw_settings


@pytest.fixture
def public(seeded: dict[str, Any]) -> Iterator[webtest.TestApp]:
    with running({**seeded, "web.public_url": PUBLIC}) as testapp:
        yield testapp


def every_answer(app: webtest.TestApp, environ: dict[str, str], prefix: str = "") -> list[webtest.TestResponse]:
    """What the app answers at the pages and redirects that hold absolute URLs, asked with `environ`."""
    paths = [
        "/",
        f"/simple/{PROJECT}",  # 301 to the slashed page
        "/simple",
        f"/pypi/{PROJECT}/json",
        f"/pypi/{PROJECT}/1.0/json",
        "/ui/",
        f"/ui/projects/{PROJECT}",
        "/ui/tokens",  # 303 to the login page
        "/ui/login",
    ]
    return [app.get(prefix + path, extra_environ=environ, expect_errors=True) for path in paths]


def mentions(answer: webtest.TestResponse, text: str) -> bool:
    return text in answer.headers.get("Location", "") or text in answer.text


def test_without_a_public_url_an_unknown_host_is_refused(seeded: dict[str, Any]) -> None:
    with running(seeded) as app:
        fast_path = app.get(f"/simple/{PROJECT}/", extra_environ=EVIL_HOST, expect_errors=True)
        for answer in [*every_answer(app, EVIL_HOST), fast_path]:
            assert answer.status_int == 400, (answer.request.path, answer.status)
            assert "web.allowed_hosts" in answer.json["message"] and EVIL in answer.json["message"]
            assert "Location" not in answer.headers
            assert answer.headers["X-Content-Type-Options"] == "nosniff"
        # The fast path for pip's requests, and uploads, are refused alike.
        app.post("/legacy/", extra_environ=EVIL_HOST, status=400)


def test_health_answers_whatever_the_host(seeded: dict[str, Any]) -> None:
    """A load balancer's health check names the target by its address: /health makes no URL, so it answers."""
    with running(seeded) as app:
        answer = app.get("/health", extra_environ={"HTTP_HOST": "10.1.2.3:6543"})
        assert answer.json["status"] == "ok"
        app.get("/health/x", extra_environ={"HTTP_HOST": "10.1.2.3:6543"}, status=400)


@pytest.mark.parametrize("host", ["localhost", "localhost:80", "LOCALHOST:6543", "127.0.0.1:6543", "[::1]:8080"])
def test_the_loopback_names_are_allowed_by_default(seeded: dict[str, Any], host: str) -> None:
    with running(seeded) as app:
        moved = app.get(f"/simple/{PROJECT}", extra_environ={"HTTP_HOST": host}, status=301)
        assert moved.headers["Location"] == f"http://{host.removesuffix(':80')}/simple/{PROJECT}/"
        doc = app.get(f"/pypi/{PROJECT}/json", extra_environ={"HTTP_HOST": host}).json
        assert doc["info"]["project_url"] == f"http://{host.removesuffix(':80')}/simple/{PROJECT}/"


@pytest.mark.parametrize(
    ("host", "scheme", "allowed"),
    [
        ("pypi.example.com:8443", "http", True),
        ("PyPI.Example.COM:8443", "http", True),
        ("pypi.example.com", "http", False),  # port 80 is not 8443
        ("pypi.example.com:443", "https", True),
        ("pypi.example.com", "https", True),  # the default port of https
        ("pypi.lan", "http", True),  # no port listed: any port
        ("pypi.lan:1234", "http", True),
        ("localhost", "http", False),  # a list replaces the default
        ("evil.example", "http", False),
        ("pypi.lan@evil.example", "http", False),
        ("", "http", False),
    ],
)
def test_allowed_hosts(seeded: dict[str, Any], host: str, scheme: str, allowed: bool) -> None:
    raw = {**seeded, "web.allowed_hosts": "pypi.example.com:8443 pypi.example.com:443 pypi.lan"}
    with running(raw) as app:
        answer = app.get("/simple/", extra_environ={"HTTP_HOST": host, "wsgi.url_scheme": scheme}, expect_errors=True)
        assert answer.status_int == (200 if allowed else 400), answer.text


def test_a_star_allows_every_host(seeded: dict[str, Any]) -> None:
    with running({**seeded, "web.allowed_hosts": "*"}) as app:
        assert app.get("/simple/", extra_environ=EVIL_HOST).status_int == 200


def test_the_listen_address_is_allowed_by_default() -> None:
    assert listen_hosts("0.0.0.0:6543 [::]:6543 *:80 PyPI.lan:80 [::1]:1 10.1.2.3:5 ::1") == (
        "pypi.lan",
        "[::1]",
        "10.1.2.3",
    )


def test_pserve_allows_the_host_it_listens_on(seeded: dict[str, Any], tmp_path: Path) -> None:
    ini = write_ini(tmp_path / "server.ini", {}, None)
    ini.write_text(ini.read_text().replace("use = egg:waitress#main", "use = egg:waitress#main\nlisten = pypi.lan:80"))
    app = webtest.TestApp(main({"__file__": str(ini)}, **seeded))
    try:
        assert app.get("/simple/", extra_environ={"HTTP_HOST": "pypi.lan"}).status_int == 200
        assert app.get("/simple/", extra_environ={"HTTP_HOST": "localhost"}).status_int == 200
        app.get("/simple/", extra_environ=EVIL_HOST, status=400)
    finally:
        services(app.app).index.cache.close()


@pytest.mark.parametrize("prefix", ["", "/base"], ids=["proxy-strips-the-prefix", "proxy-keeps-the-prefix"])
def test_a_public_url_makes_every_link_whatever_the_host(public: webtest.TestApp, prefix: str) -> None:
    answers = every_answer(public, {"HTTP_HOST": EVIL, "HTTP_X_FORWARDED_HOST": EVIL}, prefix)
    for answer in answers:
        assert answer.status_int in (200, 301, 303), (answer.request.path, answer.status)
        assert not mentions(answer, EVIL), (answer.request.path, answer.headers, answer.text)
    root, moved, moved_index, project, release, projects, _project_page, tokens, login = answers
    assert moved.status_int == 301 and moved.headers["Location"] == f"{PUBLIC}/simple/{PROJECT}/"
    assert moved_index.headers["Location"] == f"{PUBLIC}/simple/"
    assert f'href="{PUBLIC}/simple/"' in root.text and f"{PUBLIC}/legacy/" in root.text
    assert project.json["info"]["project_url"] == f"{PUBLIC}/simple/{PROJECT}/"
    assert project.json["urls"][0]["url"] == f"{PUBLIC}/packages/{PROJECT}/foo_bar-1.0-py3-none-any.whl"
    assert release.json["info"]["release_url"] == f"{PUBLIC}/pypi/{PROJECT}/1.0/json"
    assert f'href="{PUBLIC}/ui/login?next=%2Fbase%2Fui%2F"' in projects.text
    assert tokens.status_int == 303
    assert tokens.headers["Location"] == f"{PUBLIC}/ui/login?next=%2Fbase%2Fui%2Ftokens"
    assert f'action="{PUBLIC}/ui/login"' in login.text


@pytest.mark.parametrize("prefix", ["", "/base"], ids=["proxy-strips-the-prefix", "proxy-keeps-the-prefix"])
def test_every_link_of_the_ui_is_the_public_url(public: webtest.TestApp, auth: dict[str, str], prefix: str) -> None:
    pages = ["/ui/", f"/ui/projects/{PROJECT}", "/ui/tokens", "/ui/admin", "/ui/admin/access", "/ui/login"]
    # Besides this index's own URLs, a project page links to the sites its metadata names and to its own parts.
    info = public.get(f"{prefix}/pypi/{PROJECT}/json", headers=auth, extra_environ=EVIL_HOST).json["info"]
    elsewhere = {info.get("home_page"), *(info.get("project_urls") or {}).values()} - {None, ""}
    for path in pages:
        page = public.get(prefix + path, headers=auth, extra_environ=EVIL_HOST)
        links = re.findall(r'(?:href|action|src)="([^"]*)"', page.text)
        own = [link for link in links if not link.startswith("#") and link not in elsewhere]
        assert own and all(link.startswith(PUBLIC + "/") for link in own), (path, links)
        assert EVIL not in page.text
    project_page = public.get(f"{prefix}/ui/projects/{PROJECT}", headers=auth, extra_environ=EVIL_HOST).text
    assert f"--index-url {PUBLIC}/simple/" in project_page
    assert f'action="{PUBLIC}/ui/upload"' in project_page


@pytest.mark.parametrize("path", ["/simple/", f"/simple/{PROJECT}/", "/base/simple/", f"/base/simple/{PROJECT}/"])
def test_the_simple_pages_route_with_or_without_the_prefix(public: webtest.TestApp, path: str) -> None:
    for accept in ("text/html", "application/vnd.pypi.simple.v1+json"):
        answer = public.get(path, headers={"Accept": accept}, extra_environ=EVIL_HOST)
        assert answer.status_int == 200
        assert "Foo.Bar" in answer.text or "foo_bar-1.0" in answer.text
        assert EVIL not in answer.text


def test_a_public_url_with_https_makes_the_login_cookie_secure(seeded: dict[str, Any]) -> None:
    with running({**seeded, "web.public_url": PUBLIC}) as app:
        # The request reaches the server over plain HTTP, as from a proxy that ends TLS.
        form = app.get("/base/ui/login").forms["login-form"]
        form["username"], form["password"] = UPLOADER, UPLOADER_PASSWORD
        answer = form.submit(extra_environ={"HTTP_ORIGIN": "https://pypi.example.com"}, status=303)
        assert answer.headers["Location"] == f"{PUBLIC}/ui/"
        cookies = answer.headers.getall("Set-Cookie")
        assert cookies and all("; secure" in cookie.lower() for cookie in cookies), cookies


def test_a_public_url_sets_the_origin_state_changing_requests_must_come_from(
    public: webtest.TestApp, auth: dict[str, str]
) -> None:
    url = f"/api/projects/{PROJECT}/versions/1.0/yank"
    for origin, status in [("http://localhost", 403), (f"https://{EVIL}", 403), ("https://pypi.example.com", 200)]:
        headers = {**auth, "Origin": origin, "Content-Type": "application/json"}
        answer = public.post(url, json.dumps({"reason": "x"}), headers=headers, expect_errors=True)
        assert answer.status_int == status, (origin, answer.text)


def test_an_explicit_host_list_still_applies_with_a_public_url(seeded: dict[str, Any]) -> None:
    with running({**seeded, "web.public_url": PUBLIC, "web.allowed_hosts": "pypi.internal"}) as app:
        app.get("/simple/", extra_environ=EVIL_HOST, status=400)
        moved = app.get(f"/simple/{PROJECT}", extra_environ={"HTTP_HOST": "pypi.internal:6543"}, status=301)
        assert moved.headers["Location"] == f"{PUBLIC}/simple/{PROJECT}/"


@pytest.mark.parametrize("prefix", ["/simple", "/packages/x", "/ui", "/api", "/pypi", "/legacy"])
def test_a_prefix_that_starts_like_a_path_of_the_server_is_refused(seeded: dict[str, Any], prefix: str) -> None:
    settings = load_settings({**seeded, "web.public_url": f"https://pypi.example.com{prefix}"}, environ={})
    with pytest.raises(ConfigError, match=r"'web\.public_url'.*choose another prefix"):
        make_app(settings)


def test_a_refused_form_goes_back_to_its_page_under_the_prefix(seeded: dict[str, Any]) -> None:
    with running({**seeded, "web.public_url": PUBLIC}) as app:
        form = app.get(f"{PUBLIC}/ui/login").forms["login-form"]
        form["username"], form["password"] = UPLOADER, UPLOADER_PASSWORD
        form.submit(status=303)
        page_url = f"{PUBLIC}/ui/projects/{PROJECT}"
        status_form = app.get(page_url).forms["status-form"]
        status_form["status"].force_value("bogus")
        headers = {"Referer": page_url, "Origin": "https://pypi.example.com"}
        answer = status_form.submit(headers=headers, status=303)
        assert answer.headers["Location"] == page_url
