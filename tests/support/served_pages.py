"""Every page an index shows, fetched through its public routes with the serial fields taken out: what any two
servers over the same storage must agree on, whatever cache each has (its own, a replica's, a rebuilt one)."""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

import webtest

from pypicloud_lite.naming import normalize
from tests.support.legacy import JSON_V1

# The fields that count changes to one cache: another cache over the same storage counts its own.
SERIAL_KEYS = frozenset({"_last-serial", "last_serial", "serial"})
HTML_ACCEPT = "text/html"

# page -> (status, body): parsed JSON without serial fields, or the text of an HTML page.
Pages = dict[str, tuple[int, Any]]


def without_serials(doc: Any) -> Any:
    """The document with every serial field removed, at any depth."""
    if isinstance(doc, dict):
        return {key: without_serials(value) for key, value in doc.items() if key not in SERIAL_KEYS}
    if isinstance(doc, list):
        return [without_serials(item) for item in doc]
    return doc


def _page(testapp: webtest.TestApp, url: str, headers: dict[str, str], accept: str | None = None) -> tuple[int, Any]:
    sent = {**headers, **({"Accept": accept} if accept else {})}
    resp = testapp.get(url, headers=sent, expect_errors=True)
    if resp.status_int != 200:
        return resp.status_int, None
    if resp.content_type.endswith("json"):
        return 200, without_serials(resp.json)
    return 200, resp.text


def served_pages(testapp: webtest.TestApp, headers: dict[str, str], names: Iterable[str] = ()) -> Pages:
    """/simple/ (HTML and PEP 691 JSON), each project's simple page (both), /pypi/<p>/json and each release's
    /pypi/<p>/<v>/json, /api/projects/<p> and /api/projects; for the projects /simple/ lists and `names`
    (so a project one server still shows and another dropped is a difference too)."""
    pages: Pages = {
        "/simple/ (HTML)": _page(testapp, "/simple/", headers, HTML_ACCEPT),
        "/simple/ (JSON)": _page(testapp, "/simple/", headers, JSON_V1),
        "/api/projects": _page(testapp, "/api/projects?per_page=200", headers),
    }
    listed = pages["/simple/ (JSON)"][1] or {"projects": []}
    projects = {normalize(p["name"]) for p in listed["projects"]} | {normalize(n) for n in names}
    for name in sorted(projects):
        base = f"/simple/{quote(name)}/"
        pages[f"{base} (HTML)"] = _page(testapp, base, headers, HTML_ACCEPT)
        pages[f"{base} (JSON)"] = _page(testapp, base, headers, JSON_V1)
        pages[f"/api/projects/{name}"] = _page(testapp, f"/api/projects/{quote(name)}", headers)
        pypi = f"/pypi/{quote(name)}/json"
        pages[pypi] = _page(testapp, pypi, headers)
        status, doc = pages[pypi]
        for version in sorted(doc["releases"]) if status == 200 else []:
            url = f"/pypi/{quote(name)}/{quote(version, safe='+!')}/json"
            pages[url] = _page(testapp, url, headers)
    return pages


def _show(page: tuple[int, Any] | None) -> list[str]:
    if page is None:
        return ["(not fetched)"]
    status, body = page
    text = body if isinstance(body, str) else json.dumps(body, indent=1, sort_keys=True, ensure_ascii=False)
    return [f"status {status}", *text.splitlines()]


def differences(expected: Pages, actual: Pages, limit: int = 3) -> str:
    """'' if the pages are the same, else how many differ and a diff of the first `limit` of them."""
    differing = sorted(key for key in expected.keys() | actual.keys() if expected.get(key) != actual.get(key))
    if not differing:
        return ""
    shown = []
    for key in differing[:limit]:
        diff = difflib.unified_diff(_show(expected.get(key)), _show(actual.get(key)), "expected", "actual", lineterm="")
        shown.append(f"--- {key}\n" + "\n".join(list(diff)[:60]))
    return f"{len(differing)} of {len(expected.keys() | actual.keys())} pages differ: {differing}\n" + "\n".join(shown)


def assert_same_pages(expected: Pages, actual: Pages, what: str) -> None:
    """Fails with `what` and a diff of the first pages that differ."""
    found = differences(expected, actual)
    assert not found, f"{what}: {found}"


def upload_times(pages: Pages) -> dict[str, tuple[str, str]]:
    """filename -> (its PEP 691 `upload-time`, its /pypi/<p>/json `upload_time_iso_8601`), from fetched pages."""
    simple: dict[str, str] = {}
    pypi: dict[str, str] = {}
    for key, (status, doc) in pages.items():
        if status != 200:
            continue
        if key.startswith("/simple/") and key.endswith("/ (JSON)") and key != "/simple/ (JSON)":
            simple.update({f["filename"]: f["upload-time"] for f in doc["files"]})
        elif key.startswith("/pypi/") and "releases" in doc:
            pypi.update({f["filename"]: f["upload_time_iso_8601"] for files in doc["releases"].values() for f in files})
    return {
        name: (simple.get(name, "not listed"), pypi.get(name, "not listed")) for name in simple.keys() | pypi.keys()
    }
