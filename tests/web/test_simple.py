"""The simple repository API: PEP 503 HTML and PEP 691 JSON pages, negotiation, redirects and caching."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote, unquote, urljoin, urlsplit

import pytest
import webtest
from packaging.utils import canonicalize_name
from packaging.version import Version

from pypicloud_lite.models import AddFile, PackageFile, Project
from pypicloud_lite.naming import DistFilename
from pypicloud_lite.service import PackageIndex
from pypicloud_lite.web import simple_pages
from tests.support.common import UPLOADER, UPLOADER_PASSWORD, basic_auth
from tests.support.distbuilder import build_sdist, build_wheel
from tests.support.legacy import HTML, HTML_V1, JSON_V1, PIP_ACCEPT, anchors, sha256, upload_dist, wheel_metadata
from tests.support.webapp import Shared, Uploaded

PAGES = ["/simple/", "/simple/foo-bar/"]
PROJECT_URL = "http://localhost/simple/foo-bar/"

# Accept header -> the Content-Type the page must be served with.
NEGOTIATION = [
    pytest.param(None, HTML, id="no-accept"),
    pytest.param("text/html", HTML, id="text-html"),
    pytest.param("*/*", HTML, id="star"),
    pytest.param(HTML_V1, HTML_V1, id="v1-html"),
    pytest.param("application/vnd.pypi.simple.latest+html", HTML_V1, id="latest-html"),
    pytest.param(JSON_V1, JSON_V1, id="v1-json"),
    pytest.param("application/vnd.pypi.simple.latest+json", JSON_V1, id="latest-json"),
    pytest.param(PIP_ACCEPT, JSON_V1, id="pip"),
    pytest.param(f"text/html, {JSON_V1};q=0.5", HTML, id="html-over-json"),
    pytest.param(f"{JSON_V1};q=0.5, text/html;q=0.9", HTML, id="html-higher-q-listed-second"),
    pytest.param(f"{HTML_V1};q=0.2, {JSON_V1}", JSON_V1, id="json-over-v1-html"),
    pytest.param(f"application/xml, {JSON_V1};q=0.1", JSON_V1, id="unknown-first"),
    pytest.param(f"text/html;q=0, {HTML_V1}", HTML_V1, id="refused-text-html"),
]


def get(
    testapp: webtest.TestApp,
    url: str,
    accept: str | None = None,
    *,
    headers: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
) -> webtest.TestResponse:
    """GET a page with an optional Accept header, returning error responses instead of raising."""
    sent = {} if accept is None else {"Accept": accept}
    sent.update(headers or {})
    return testapp.get(url, params=params or {}, headers=sent, expect_errors=True)


def vary(resp: webtest.TestResponse) -> list[str]:
    return [v.strip().lower() for v in resp.headers.get("Vary", "").split(",")]


def assert_page(resp: webtest.TestResponse, content_type: str) -> None:
    assert resp.status == "200 OK"
    assert resp.headers["Content-Type"] == content_type
    assert "accept" in vary(resp)
    assert resp.headers["ETag"].startswith('"') and resp.headers["ETag"].endswith('"')
    assert resp.headers["X-PyPI-Last-Serial"].isdigit()
    assert "max-age=" in resp.headers["Cache-Control"]
    assert resp.headers["Content-Length"] == str(len(resp.body))
    if content_type == JSON_V1:
        # PEP 752 (namespaces) moved the JSON API to 1.5; the HTML API stays at 1.1.
        assert resp.json["meta"]["api-version"] == "1.5"
    else:
        assert resp.text.startswith("<!DOCTYPE html>")
        assert '<meta name="pypi:repository-version" content="1.1">' in resp.text


def project_json(testapp: webtest.TestApp, name: str = "foo-bar") -> dict[str, object]:
    resp = get(testapp, f"/simple/{name}/", JSON_V1)
    assert resp.status_int == 200
    doc: dict[str, object] = resp.json
    return doc


def json_files(testapp: webtest.TestApp, name: str = "foo-bar") -> dict[str, dict[str, object]]:
    files = project_json(testapp, name)["files"]
    assert isinstance(files, list)
    return {f["filename"]: f for f in files}


# -- negotiation ---------------------------------------------------------------


@pytest.mark.parametrize("path", PAGES)
@pytest.mark.parametrize(("accept", "content_type"), NEGOTIATION)
def test_accept_negotiation(readonly: Shared, path: str, accept: str | None, content_type: str) -> None:
    assert_page(get(readonly.app, path, accept), content_type)


@pytest.mark.parametrize("path", PAGES)
@pytest.mark.parametrize(
    ("fmt", "content_type"),
    [
        (JSON_V1, JSON_V1),
        ("application/vnd.pypi.simple.latest+json", JSON_V1),
        ("text/html", HTML),
        (HTML_V1, HTML_V1),
        ("json", JSON_V1),
        ("html", HTML),
    ],
)
def test_format_query_parameter_overrides_accept(readonly: Shared, path: str, fmt: str, content_type: str) -> None:
    opposite = "text/html" if content_type == JSON_V1 else JSON_V1
    assert_page(get(readonly.app, path, opposite, params={"format": fmt}), content_type)


@pytest.mark.parametrize("path", [*PAGES, "/simple/unknown-project/"])
@pytest.mark.parametrize(
    ("accept", "params"),
    [
        ("application/xml", None),
        ("text/html;q=0, application/json", None),
        (None, {"format": "application/xml"}),
    ],
)
def test_not_acceptable(readonly: Shared, path: str, accept: str | None, params: dict[str, str] | None) -> None:
    resp = get(readonly.app, path, accept, params=params or {})
    assert resp.status_int == 406
    assert resp.headers["Content-Type"] == "application/json"
    message = resp.json["message"]
    assert resp.json["status"] == 406
    assert resp.status == f"406 {message}"
    # The message tells the client what it could have asked for.
    assert JSON_V1 in message and "text/html" in message


def test_head_answers_headers_only(readonly: Shared) -> None:
    full = get(readonly.app, "/simple/foo-bar/", JSON_V1)
    head = readonly.app.head("/simple/foo-bar/", headers={"Accept": JSON_V1})
    assert head.status == "200 OK"
    assert head.body == b""
    for header in ("Content-Type", "Content-Length", "ETag", "Vary", "Cache-Control", "X-PyPI-Last-Serial"):
        assert head.headers[header] == full.headers[header]


# -- page contents -------------------------------------------------------------


def test_empty_index(testapp: webtest.TestApp) -> None:
    resp = get(testapp, "/simple/", JSON_V1)
    assert_page(resp, JSON_V1)
    assert resp.json == {"meta": {"api-version": "1.5", "_last-serial": 0}, "projects": []}
    assert resp.headers["X-PyPI-Last-Serial"] == "0"
    html = get(testapp, "/simple/")
    assert_page(html, HTML)
    assert anchors(html.text) == {}


def test_index_lists_projects(testapp: webtest.TestApp, auth: dict[str, str], dist_dir: Path) -> None:
    upload_dist(testapp, auth, build_sdist(dist_dir, "Zeta_Pkg", "1.0"), "Zeta_Pkg", "1.0")
    upload_dist(testapp, auth, build_sdist(dist_dir, "alpha", "1.0"), "alpha", "1.0")
    doc = get(testapp, "/simple/", JSON_V1).json
    assert [p["name"] for p in doc["projects"]] == ["alpha", "Zeta_Pkg"]
    assert doc["meta"]["_last-serial"] == 2
    links = anchors(get(testapp, "/simple/").text)
    assert set(links) == {"alpha", "Zeta_Pkg"}
    assert urljoin("http://localhost/simple/", links["Zeta_Pkg"]["href"] or "") == "http://localhost/simple/zeta-pkg/"
    assert urljoin("http://localhost/simple/", links["alpha"]["href"] or "") == "http://localhost/simple/alpha/"


def test_project_json(readonly: Shared) -> None:
    doc = project_json(readonly.app)
    assert doc["meta"] == {"api-version": "1.5", "_last-serial": 2}
    assert doc["name"] == "foo-bar"
    assert doc["namespaces"] is None  # PEP 752: in no namespace
    assert doc["versions"] == ["1.0"]
    files = json_files(readonly.app)
    assert set(files) == {readonly.wheel.name, readonly.sdist.name}
    now = datetime.now(UTC)
    for path in (readonly.wheel, readonly.sdist):
        entry = files[path.name]
        data = path.read_bytes()
        assert urljoin(PROJECT_URL, str(entry["url"])) == f"http://localhost/packages/foo-bar/{path.name}"
        assert entry["hashes"] == {"sha256": sha256(data)}
        assert entry["size"] == len(data)
        assert entry["requires-python"] == ">=3.8"
        assert entry["yanked"] is False
        assert "dist-info-metadata" not in entry
        upload_time = str(entry["upload-time"])
        assert upload_time.endswith("Z")
        assert now - timedelta(minutes=5) < datetime.fromisoformat(upload_time) <= now
    assert files[readonly.wheel.name]["core-metadata"] == {"sha256": sha256(wheel_metadata(readonly.wheel))}
    assert files[readonly.sdist.name]["core-metadata"] is False


def test_project_json_without_requires_python(testapp: webtest.TestApp, auth: dict[str, str], dist_dir: Path) -> None:
    upload_dist(testapp, auth, build_wheel(dist_dir, "plain", "1.0"), "plain", "1.0")
    (entry,) = json_files(testapp, "plain").values()
    assert entry["requires-python"] is None


def test_versions_are_pep440_sorted(testapp: webtest.TestApp, auth: dict[str, str], dist_dir: Path) -> None:
    for version in ("1.10", "2.0.post1", "1.9", "1.0", "1.0a1"):
        upload_dist(testapp, auth, build_sdist(dist_dir, "Foo.Bar", version), "Foo.Bar", version)
    assert project_json(testapp)["versions"] == ["1.0a1", "1.0", "1.9", "1.10", "2.0.post1"]


def test_project_html(readonly: Shared) -> None:
    resp = get(readonly.app, "/simple/foo-bar/")
    assert_page(resp, HTML)
    # Attribute values are escaped in the markup...
    assert 'data-requires-python="&gt;=3.8"' in resp.text
    assert ">=3.8" not in resp.text
    links = anchors(resp.text)
    assert set(links) == {readonly.wheel.name, readonly.sdist.name}
    metadata_hash = f"sha256={sha256(wheel_metadata(readonly.wheel))}"
    for path in (readonly.wheel, readonly.sdist):
        attrs = links[path.name]
        href = urljoin(PROJECT_URL, attrs["href"] or "")
        assert href == f"http://localhost/packages/foo-bar/{path.name}#sha256={sha256(path.read_bytes())}"
        # ...and what a parser reads back is the original specifier.
        assert attrs["data-requires-python"] == ">=3.8"
        assert "data-yanked" not in attrs
    assert links[readonly.wheel.name]["data-core-metadata"] == metadata_hash
    assert links[readonly.wheel.name]["data-dist-info-metadata"] == metadata_hash
    assert "data-core-metadata" not in links[readonly.sdist.name]
    assert "data-dist-info-metadata" not in links[readonly.sdist.name]


def test_yanked_files(testapp: webtest.TestApp, auth: dict[str, str], dist_dir: Path, index: PackageIndex) -> None:
    wheels = {v: build_wheel(dist_dir, "Foo.Bar", v) for v in ("1.0", "2.0", "3.0")}
    for version, path in wheels.items():
        upload_dist(testapp, auth, path, "Foo.Bar", version)
    reason = 'broken <build> & "bad"'
    index.yank("foo-bar", "1.0", reason)
    index.yank("foo-bar", "2.0")

    files = json_files(testapp)
    assert files[wheels["1.0"].name]["yanked"] == reason
    assert files[wheels["2.0"].name]["yanked"] is True
    assert files[wheels["3.0"].name]["yanked"] is False
    # Yanked versions stay listed (PEP 592: only resolvers skip them).
    assert project_json(testapp)["versions"] == ["1.0", "2.0", "3.0"]

    html = get(testapp, "/simple/foo-bar/").text
    assert 'data-yanked="broken &lt;build&gt; &amp; &quot;bad&quot;"' in html
    links = anchors(html)
    assert links[wheels["1.0"].name]["data-yanked"] == reason
    assert links[wheels["2.0"].name]["data-yanked"] in ("", None)
    assert "data-yanked" in links[wheels["2.0"].name]
    assert "data-yanked" not in links[wheels["3.0"].name]

    index.unyank("foo-bar", "1.0")
    assert json_files(testapp)[wheels["1.0"].name]["yanked"] is False
    assert "data-yanked" not in anchors(get(testapp, "/simple/foo-bar/").text)[wheels["1.0"].name]


def test_markup_in_metadata_and_reasons_is_escaped(
    testapp: webtest.TestApp, auth: dict[str, str], dist_dir: Path, index: PackageIndex
) -> None:
    script = "<script>alert(1)</script>"
    wheel = build_wheel(dist_dir, "Foo.Bar", "1.0", summary=script, requires_python="<4,>=3.8")
    upload_dist(testapp, auth, wheel, "Foo.Bar", "1.0", overrides={"summary": script})
    index.yank("foo-bar", "1.0", script)
    for page in PAGES:
        for accept in (None, HTML_V1):
            body = get(testapp, page, accept).text
            assert "<script" not in body.lower()
    html = get(testapp, "/simple/foo-bar/").text
    assert 'data-yanked="&lt;script&gt;alert(1)&lt;/script&gt;"' in html
    assert 'data-requires-python="&lt;4,&gt;=3.8"' in html
    # JSON carries the text as data; it is the client's to escape.
    (entry,) = json_files(testapp).values()
    assert entry["yanked"] == script
    assert entry["requires-python"] == "<4,>=3.8"


# -- redirects and 404 ---------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "location"),
    [
        ("/simple", "/simple/"),
        ("/simple?format=json", "/simple/?format=json"),
        ("/simple/Foo.Bar", "/simple/foo-bar/"),
        ("/simple/Foo.Bar/", "/simple/foo-bar/"),
        ("/simple/foo-bar", "/simple/foo-bar/"),
        ("/simple/FOO__bar/", "/simple/foo-bar/"),
        ("/simple/Foo.Bar/?format=json", "/simple/foo-bar/?format=json"),
        ("/simple/Foo.Bar?format=json&x=1", "/simple/foo-bar/?format=json&x=1"),
        ("/simple/Foo.Bar?a=1&a=2", "/simple/foo-bar/?a=1&a=2"),
    ],
)
def test_redirects_to_normalized_name_and_trailing_slash(readonly: Shared, path: str, location: str) -> None:
    resp = get(readonly.app, path)
    assert resp.status == "301 Moved Permanently"
    target = urlsplit(resp.headers["Location"])
    assert target.netloc in ("", "localhost")
    assert target.path + (f"?{target.query}" if target.query else "") == location
    assert resp.follow(expect_errors=True).status_int == 200


@pytest.mark.parametrize("accept", [None, JSON_V1, PIP_ACCEPT])
@pytest.mark.parametrize(
    "headers",
    [{}, basic_auth(UPLOADER, UPLOADER_PASSWORD)],
    ids=["anonymous", "authenticated"],
)
def test_unknown_project_is_404(readonly: Shared, accept: str | None, headers: dict[str, str]) -> None:
    # 404, never 403: uv only falls through to the next index on 404.
    resp = get(readonly.app, "/simple/no-such-project/", accept, headers=headers)
    assert resp.status_int == 404
    assert resp.headers["Content-Type"] == "application/json"
    assert resp.json["status"] == 404
    assert "no-such-project" in resp.json["message"]
    assert resp.status == f"404 {resp.json['message']}"


@pytest.mark.parametrize("path", [*PAGES, "/simple/no-such-project/"])
def test_wrong_credentials_are_challenged(readonly: Shared, path: str) -> None:
    # Wrong credentials are refused, with a challenge so pip and uv ask again, never with 403.
    resp = get(readonly.app, path, headers=basic_auth(UPLOADER, "wrong password"))
    assert resp.status_int == 401
    assert resp.headers["WWW-Authenticate"] == 'Basic realm="pypicloud_lite"'
    assert resp.status == f"401 {resp.json['message']}"


def test_unknown_non_ascii_project_is_404(readonly: Shared) -> None:
    resp = get(readonly.app, "/simple/%E2%98%83/")
    assert resp.status_int == 404
    assert "\u2603" in resp.json["message"]
    # The status line is ISO-8859-1: the snowman is replaced there, not sent raw.
    assert resp.status == "404 " + resp.json["message"].replace("\u2603", "?")


def test_unknown_project_redirects_then_404(testapp: webtest.TestApp) -> None:
    resp = get(testapp, "/simple/No.Such")
    assert resp.status_int == 301
    assert urlsplit(resp.headers["Location"]).path == "/simple/no-such/"
    assert resp.follow(expect_errors=True).status_int == 404


# -- caching: ETag, 304, serials ----------------------------------------------


@pytest.mark.parametrize("path", PAGES)
@pytest.mark.parametrize("accept", [None, HTML_V1, JSON_V1])
def test_if_none_match_answers_304(readonly: Shared, path: str, accept: str | None) -> None:
    first = get(readonly.app, path, accept)
    etag = first.headers["ETag"]
    for if_none_match in (etag, f'"something-else", {etag}', f"W/{etag}"):
        resp = get(readonly.app, path, accept, headers={"If-None-Match": if_none_match})
        assert resp.status == "304 Not Modified", if_none_match
        assert resp.body == b""
        assert resp.headers["ETag"] == etag
        assert "accept" in vary(resp)
        assert resp.headers["X-PyPI-Last-Serial"] == first.headers["X-PyPI-Last-Serial"]


@pytest.mark.parametrize("path", PAGES)
def test_if_none_match_star_and_stale(readonly: Shared, path: str) -> None:
    assert get(readonly.app, path, headers={"If-None-Match": "*"}).status_int == 304
    stale = get(readonly.app, path, headers={"If-None-Match": '"0-text/html"'})
    assert_page(stale, HTML)


@pytest.mark.parametrize("path", PAGES)
def test_json_and_html_etags_differ(readonly: Shared, path: str) -> None:
    html = get(readonly.app, path).headers["ETag"]
    json_etag = get(readonly.app, path, JSON_V1).headers["ETag"]
    assert html != json_etag
    # An HTML validator must not revalidate the JSON page (the URL is the same).
    assert get(readonly.app, path, JSON_V1, headers={"If-None-Match": html}).status_int == 200


def test_serial_headers(testapp: webtest.TestApp, uploaded: Uploaded, index: PackageIndex) -> None:
    index_page = get(testapp, "/simple/", JSON_V1)
    assert index_page.headers["X-PyPI-Last-Serial"] == str(index.serial()) == "2"
    assert index_page.json["meta"]["_last-serial"] == 2
    project_page = get(testapp, "/simple/foo-bar/", JSON_V1)
    assert project_page.headers["X-PyPI-Last-Serial"] == "2"
    assert project_page.json["meta"]["_last-serial"] == 2
    assert get(testapp, "/simple/foo-bar/").headers["X-PyPI-Last-Serial"] == "2"


@pytest.mark.parametrize("path", PAGES)
@pytest.mark.parametrize("accept", [None, JSON_V1])
def test_cache_control(readonly: Shared, path: str, accept: str | None) -> None:
    directives = [d.strip() for d in get(readonly.app, path, accept).headers["Cache-Control"].split(",")]
    max_ages = [int(d.split("=", 1)[1]) for d in directives if d.startswith("max-age=")]
    assert max_ages == [600]  # web.page_max_age default
    assert "no-store" not in directives


def _change_upload(testapp: webtest.TestApp, auth: dict[str, str], dist_dir: Path, index: PackageIndex) -> None:
    upload_dist(testapp, auth, build_sdist(dist_dir, "Foo.Bar", "2.0"), "Foo.Bar", "2.0")


def _change_yank(testapp: webtest.TestApp, auth: dict[str, str], dist_dir: Path, index: PackageIndex) -> None:
    index.yank("foo-bar", "1.0", "bad")


def _change_delete(testapp: webtest.TestApp, auth: dict[str, str], dist_dir: Path, index: PackageIndex) -> None:
    index.delete_file("foo-bar", "foo_bar-1.0.tar.gz")


Change = Callable[[webtest.TestApp, dict[str, str], Path, PackageIndex], None]


@pytest.mark.parametrize("change", [_change_upload, _change_yank, _change_delete], ids=["upload", "yank", "delete"])
def test_etag_changes_with_the_index(
    testapp: webtest.TestApp,
    auth: dict[str, str],
    dist_dir: Path,
    index: PackageIndex,
    uploaded: Uploaded,
    change: Change,
) -> None:
    views = [(path, accept) for path in PAGES for accept in (None, JSON_V1)]
    before = {view: get(testapp, view[0], view[1]) for view in views}
    change(testapp, auth, dist_dir, index)
    for (path, accept), old in before.items():
        new = get(testapp, path, accept, headers={"If-None-Match": old.headers["ETag"]})
        assert new.status == "200 OK", (path, accept)
        assert new.headers["ETag"] != old.headers["ETag"], (path, accept)
        assert int(new.headers["X-PyPI-Last-Serial"]) == int(old.headers["X-PyPI-Last-Serial"]) + 1
        if path.endswith("foo-bar/"):
            assert new.body != old.body


def test_project_etag_ignores_other_projects(testapp: webtest.TestApp, auth: dict[str, str], dist_dir: Path) -> None:
    upload_dist(testapp, auth, build_sdist(dist_dir, "one", "1.0"), "one", "1.0")
    one = get(testapp, "/simple/one/").headers["ETag"]
    index_etag = get(testapp, "/simple/").headers["ETag"]
    upload_dist(testapp, auth, build_sdist(dist_dir, "two", "1.0"), "two", "1.0")
    assert get(testapp, "/simple/one/").headers["ETag"] == one
    assert get(testapp, "/simple/").headers["ETag"] != index_etag


def test_core_metadata_hash_matches_served_metadata(readonly: Shared) -> None:
    (wheel,) = [f for f in json_files(readonly.app).values() if str(f["filename"]).endswith(".whl")]
    served = readonly.app.get(urljoin(PROJECT_URL, str(wheel["url"])) + ".metadata").body
    assert wheel["core-metadata"] == {"sha256": hashlib.sha256(served).hexdigest()}


# -- hrefs are percent-encoded ---------------------------------------------------


def _row(filename: str) -> PackageFile:
    dist = DistFilename(filename, canonicalize_name("demo"), Version("1.0"), "bdist_wheel", "py3")
    return PackageFile.of(dist, size=1, sha256="ab" * 32, upload_time=datetime(2026, 1, 1, tzinfo=UTC))


# Names an upload refuses today, but a row from before the checks (or a hand-made one) may hold.
ODD_NAMES = [
    pytest.param("demo-1.0-py3-none-any x.whl", "demo-1.0-py3-none-any%20x.whl", id="space"),
    pytest.param("demo-1.0-py3-none-any#x.whl", "demo-1.0-py3-none-any%23x.whl", id="fragment"),
    pytest.param("demo-1.0-py3-none-any?x.whl", "demo-1.0-py3-none-any%3Fx.whl", id="query"),
    pytest.param("demo-1.0-py3-none-any%2F.whl", "demo-1.0-py3-none-any%252F.whl", id="percent"),
    pytest.param('demo-1.0-py3-none-any"><b>.whl', "demo-1.0-py3-none-any%22%3E%3Cb%3E.whl", id="markup"),
    pytest.param("demo-1.0+local.1-py3-none-any.whl", "demo-1.0+local.1-py3-none-any.whl", id="local-version"),
    pytest.param("demo-1!1.0-py3-none-any.whl", "demo-1!1.0-py3-none-any.whl", id="epoch"),
]


@pytest.mark.parametrize(("filename", "encoded"), ODD_NAMES)
def test_file_hrefs_are_percent_encoded(filename: str, encoded: str) -> None:
    project = Project("demo", "demo", 1)
    href = f"../../packages/demo/{encoded}"
    links = anchors(simple_pages.project_html(project, [_row(filename)]).decode())
    assert set(links) == {filename}
    assert links[filename]["href"] == f"{href}#sha256={'ab' * 32}"
    (entry,) = json.loads(simple_pages.project_json(project, [_row(filename)]))["files"]
    assert (entry["filename"], entry["url"]) == (filename, href)
    # What the files view gets back once the server decodes the path segment.
    assert unquote(urlsplit(urljoin(PROJECT_URL, href)).path) == f"/packages/demo/{filename}"


def test_unusual_legal_filenames_round_trip(testapp: webtest.TestApp, auth: dict[str, str], dist_dir: Path) -> None:
    wheel = build_wheel(dist_dir, "Foo.Bar", "1.0+local.1")
    assert "+" in wheel.name
    upload_dist(testapp, auth, wheel, "Foo.Bar", "1.0+local.1")
    data = wheel.read_bytes()
    html_href = urljoin(PROJECT_URL, anchors(get(testapp, "/simple/foo-bar/").text)[wheel.name]["href"] or "")
    json_href = urljoin(PROJECT_URL, str(json_files(testapp)[wheel.name]["url"]))
    (pypi_file,) = testapp.get("/pypi/foo-bar/json").json["urls"]
    for url in (html_href.partition("#")[0], json_href, pypi_file["url"]):
        assert get(testapp, urlsplit(url).path).body == data, url
    # pip re-quotes each path segment of a link, so it asks for %2B: the same file.
    assert get(testapp, f"/packages/foo-bar/{quote(wheel.name)}").body == data
    assert "%2B" in quote(wheel.name)


@pytest.mark.parametrize(
    "filename", ["demo-1.0-py3-none-any x#1.whl", "demo-1.0-py3-none-any%3F.whl", "demo-1.0-py3-none-any'&.whl"]
)
def test_a_row_stored_before_the_filename_checks_is_linked_and_served(
    testapp: webtest.TestApp, auth: dict[str, str], index: PackageIndex, filename: str
) -> None:
    data = b"old bytes"
    row = replace(_row(filename), size=len(data), sha256=hashlib.sha256(data).hexdigest())
    index.storage.put_bytes(row.object_key, data)
    index.cache.apply(AddFile(row, "demo"))
    html_href = anchors(get(testapp, "/simple/demo/").text)[filename]["href"] or ""
    json_href = str(json_files(testapp, "demo")[filename]["url"])
    (pypi_file,) = testapp.get("/pypi/demo/json").json["urls"]
    ui_page = testapp.get("/ui/projects/demo", headers=auth).text
    ui_href = next(attrs["href"] for text, attrs in anchors(ui_page).items() if text == filename) or ""
    for url in (
        urljoin("http://localhost/simple/demo/", html_href.partition("#")[0]),
        json_href,
        pypi_file["url"],
        ui_href,
    ):
        served = get(testapp, urlsplit(urljoin("http://localhost/simple/demo/", url)).path)
        assert (served.status_int, served.body) == (200, data), url
