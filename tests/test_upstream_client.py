"""The upstream client and page readers: credentials, bounds, and what PEP 691 / PEP 503 pages say."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pypicloud_lite.upstream.client import Fetched, Missing, UpstreamError, download, fetch_page
from pypicloud_lite.upstream.parse import parse_html, parse_json
from pypicloud_lite.upstream_settings import UpstreamIndex
from tests.support.distbuilder import build_wheel
from tests.support.upstreams import Hosted, JsonIndex


@pytest.fixture
def pages(tmp_path: Path) -> Iterator[JsonIndex]:
    index = JsonIndex()
    index.add("upkg", Hosted(build_wheel(tmp_path, "upkg", "1.0")))
    yield index
    index.stop()


@pytest.fixture
def files(pages: JsonIndex) -> Iterator[JsonIndex]:
    """Another host serving the files the first one's page lists."""
    other = JsonIndex()
    other.projects = pages.projects
    pages.file_root = other.root
    yield other
    other.stop()


def test_credentials_go_to_the_index_host_only(pages: JsonIndex, files: JsonIndex) -> None:
    index = UpstreamIndex("main", pages.url, username="reader", password="secret")
    answer = fetch_page(index, "upkg", None, 1 << 20)
    assert isinstance(answer, Fetched)
    (file,) = answer.page.files
    assert file.url.startswith(files.root)
    assert pages.authorizations["/simple/upkg/"] == "Basic cmVhZGVyOnNlY3JldA=="
    sink = io.BytesIO()
    assert file.sha256 is not None
    download(index, file.url, sink, 1 << 20, file.sha256)
    assert files.authorizations[f"/files/{file.filename}"] is None
    token = UpstreamIndex("main", pages.url, token="t0k")
    fetch_page(token, "upkg", None, 1 << 20)
    assert pages.authorizations["/simple/upkg/"] == "Bearer t0k"


def test_bounds_and_hashes_are_enforced(pages: JsonIndex) -> None:
    index = UpstreamIndex("main", pages.url)
    with pytest.raises(UpstreamError, match="more than 10 bytes"):
        fetch_page(index, "upkg", None, 10)
    assert isinstance(fetch_page(index, "nothere", None, 1 << 20), Missing)
    answer = fetch_page(index, "upkg", None, 1 << 20)
    assert isinstance(answer, Fetched)
    (file,) = answer.page.files
    with pytest.raises(UpstreamError, match="larger than"):
        download(index, file.url, io.BytesIO(), 10, file.sha256 or "")
    with pytest.raises(UpstreamError, match="does not match"):
        download(index, file.url, io.BytesIO(), 1 << 20, "0" * 64)


def test_html_pages_are_read_with_every_attribute() -> None:
    sha = "a" * 64
    body = f"""<html><body>
    <a href="https://files.example/p/upkg-1.0-py3-none-any.whl#sha256={sha}" data-requires-python="&gt;=3.8"
       data-core-metadata="true" data-yanked="">upkg-1.0-py3-none-any.whl</a>
    <a href="../../f/upkg%2D2.0.tar.gz#md5=abc" data-dist-info-metadata="sha256={"b" * 64}" data-yanked="bad">x</a>
    <a href="/other-1.0.tar.gz">other-1.0.tar.gz</a>
    <a href="/notadist.txt">junk</a>
    </body></html>""".encode()
    page = parse_html(body, "https://up.example/simple/upkg/", "upkg")
    first, second = page.files
    assert (first.sha256, first.requires_python, first.has_metadata, first.metadata_sha256) == (
        sha,
        ">=3.8",
        True,
        None,
    )
    assert first.yanked and first.yanked_reason is None
    assert second.filename == "upkg-2.0.tar.gz" and second.url == "https://up.example/f/upkg%2D2.0.tar.gz"
    assert second.sha256 is None and second.metadata_sha256 == "b" * 64 and second.yanked_reason == "bad"


def test_json_pages_keep_only_well_formed_facts() -> None:
    body = b"""{"meta": {"api-version": "1.1"}, "name": "upkg", "files": [
      {"filename": "upkg-1.0.tar.gz", "url": "f/upkg-1.0.tar.gz", "hashes": {"sha256": "XYZ"}, "size": -1,
       "upload-time": "2024-01-02T03:04:05Z", "dist-info-metadata": true, "yanked": true},
      {"filename": "evil-1.0.tar.gz", "url": "f/evil-1.0.tar.gz", "hashes": {}},
      {"filename": 7, "url": "x"}
    ]}"""
    (file,) = parse_json(body, "https://up.example/simple/upkg/", "upkg").files
    assert file.url == "https://up.example/simple/upkg/f/upkg-1.0.tar.gz"
    assert file.sha256 is None and file.size is None and file.has_metadata and file.yanked
    assert file.upload_time == datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
