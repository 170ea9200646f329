"""The project page and the PyPI JSON API: the long description as PyPI renders it, what the metadata says,
releases newest first with older ones folded, and the description read back from storage by a reload."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import webtest

from pypicloud_lite.metadata import MAX_DESCRIPTION_BYTES
from tests.support.apiutil import running, upload_wheel
from tests.support.common import UPLOADER, UPLOADER_PASSWORD, basic_auth
from tests.support.readmes import hostile_metadata, readme_metadata
from tests.support.settings import server_settings

ADMIN_AUTH = basic_auth(UPLOADER, UPLOADER_PASSWORD)


def _page(testapp: webtest.TestApp, name: str) -> str:
    return str(testapp.get(f"/ui/projects/{name}").text)


def test_a_hostile_markdown_readme_is_rendered_and_sanitized(
    testapp: webtest.TestApp, auth: dict[str, str], dist_dir: Path
) -> None:
    upload_wheel(testapp, auth, dist_dir, "needed", "1.0")
    upload_wheel(testapp, auth, dist_dir, "shiny", "1.0", metadata=hostile_metadata("shiny", "1.0"))
    page = _page(testapp, "shiny")
    readme = page[page.index('id="project-description"') :]
    assert re.search(r"<h1[^>]*>Shiny", readme), readme[:500]
    assert "<strong>bold</strong>" in readme
    # The sanitizer's work: no script element, no script URL, no event handler survives.
    assert "<script" not in readme.lower().split("</article>")[0]
    assert not re.search(r"""(href|src)\s*=\s*["']?\s*javascript:""", page, re.IGNORECASE)
    assert "<code>javascript:alert(&#39;url&#39;)</code>" in page  # a script URL among the links: text only
    assert "onerror" not in readme.split("</article>")[0]
    # What the metadata says, with links to what this index holds and text for what it does not.
    assert 'id="meta-author">Mallory' in page
    assert 'id="meta-license">MIT' in page
    assert re.search(r'<a href="[^"]*/ui/projects/needed">needed&gt;=1.0</a>', page), page
    assert "<code>absent-dep; extra == &#34;x&#34;</code>" in page
    assert '<a href="https://example.invalid/src" rel="nofollow noopener">Source</a>' in page
    assert "UNKNOWN" not in page  # what old setuptools wrote for a missing Home-page
    assert "Topic :: Software Development" in page
    assert 'href="#project-description"' in page


@pytest.mark.parametrize(
    ("content_type", "body", "rendered"),
    [
        ("text/x-rst", "Title\n=====\n\nSome *emphasis*.\n", "<em>emphasis</em>"),
        (None, "Title\n=====\n\nSome *emphasis*.\n", "<em>emphasis</em>"),
        ("text/markdown; charset=UTF-8; variant=CommonMark", "# Title\n\nSome *emphasis*.\n", "<em>emphasis</em>"),
        ("text/plain", "Some *emphasis* <b>here</b>.\n", "Some *emphasis* &lt;b&gt;here&lt;/b&gt;."),
    ],
)
def test_each_content_type_renders_and_the_json_api_carries_the_text(
    testapp: webtest.TestApp,
    auth: dict[str, str],
    dist_dir: Path,
    content_type: str | None,
    body: str,
    rendered: str,
) -> None:
    upload_wheel(testapp, auth, dist_dir, "typed", "1.0", metadata=readme_metadata("typed", "1.0", body, content_type))
    assert rendered in _page(testapp, "typed")
    for url in ("/pypi/typed/json", "/pypi/typed/1.0/json"):
        info = testapp.get(url).json["info"]
        assert info["description"] == body
        assert info["description_content_type"] == content_type


def test_broken_rst_falls_back_to_plain_text(testapp: webtest.TestApp, auth: dict[str, str], dist_dir: Path) -> None:
    body = "Title\n=====\n\n.. raw:: html\n\n   <script>alert(1)</script>\n"
    upload_wheel(testapp, auth, dist_dir, "rawrst", "1.0", metadata=readme_metadata("rawrst", "1.0", body, None))
    readme = _page(testapp, "rawrst").split('id="project-description">')[1].split("</article>")[0]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in readme and "<script" not in readme


def test_a_long_description_is_kept_bounded_and_says_so(
    testapp: webtest.TestApp, auth: dict[str, str], dist_dir: Path
) -> None:
    body = "".join(f"Line {n} of a very long README.\n" for n in range(5000))
    assert len(body) > MAX_DESCRIPTION_BYTES
    upload_wheel(testapp, auth, dist_dir, "longread", "1.0", metadata=readme_metadata("longread", "1.0", body, None))
    kept = testapp.get("/pypi/longread/json").json["info"]["description"]
    assert len(kept.encode()) <= MAX_DESCRIPTION_BYTES and body.startswith(kept) and kept.endswith("\n")
    assert 'id="description-truncated"' in _page(testapp, "longread")


def test_releases_newest_first_and_older_ones_folded(
    testapp: webtest.TestApp, auth: dict[str, str], dist_dir: Path
) -> None:
    for version in ("1.0", "1.10", "1.2"):
        upload_wheel(testapp, auth, dist_dir, "many", version)
    page = _page(testapp, "many")
    order = re.findall(r'id="release-([0-9.]+)"', page)
    assert order == ["1.10", "1.2", "1.0"]
    assert re.search(r'<section class="release" id="release-1.10"', page)
    assert re.search(r'<details class="release" id="release-1.2"', page)
    assert "Older releases (2)" in page


def test_the_description_is_read_back_from_storage_by_a_reload(tmp_path: Path, dist_dir: Path) -> None:
    settings: dict[str, Any] = server_settings(tmp_path)
    body = "# Kept\n\nRead back from storage.\n"
    with running(settings) as first:
        upload_wheel(first, ADMIN_AUTH, dist_dir, "kept", "1.0", metadata=readme_metadata("kept", "1.0", body))
    # A new, empty cache over the same storage folder: everything it knows comes from the reload.
    rebuilt = {**settings, "cache.url": f"sqlite:///{tmp_path}/rebuilt.sqlite"}
    with running(rebuilt) as second:
        assert second.post("/admin/reload?wait=1", headers=ADMIN_AUTH).status_int == 200
        info = second.get("/pypi/kept/json").json["info"]
        assert (info["description"], info["description_content_type"]) == (body, "text/markdown")
        assert "Read back from storage." in _page(second, "kept")
