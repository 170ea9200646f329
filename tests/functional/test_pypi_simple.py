"""The pypi-simple client library reads the same index from the HTML and the JSON serializations."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import requests
from pypi_simple import ACCEPT_JSON_ONLY, NoMetadataError, PyPISimple

from tests.support.harness import FOO, FOO_DISPLAY, YANK_REASON, Corpus, Server
from tests.support.legacy import wheel_metadata
from tests.support.simple_client import MODES, PackageKey, expected_key, key

CONTENT_TYPES = {"html": "application/vnd.pypi.simple.v1+html", "json": "application/vnd.pypi.simple.v1+json"}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def client(server: Server) -> Iterator[PyPISimple]:
    session = requests.Session()
    session.trust_env = False  # no proxy from the environment for 127.0.0.1
    with PyPISimple(server.simple_url, session=session) as found:
        yield found


# PEP 752 (namespaces) moved the JSON API to 1.5; the HTML API stays at 1.1 (PEP 833 versions them apart).
REPOSITORY_VERSIONS = {"html": "1.1", "json": "1.5"}


def test_yankee_page_is_the_same_in_html_and_json(published: Corpus, server: Server, client: PyPISimple) -> None:
    base = f"{server.url}/packages/yankee/"

    def expected(path: Path, *, yanked: bool = False, reason: str | None = None) -> PackageKey:
        return expected_key(path, base + path.name, yanked=yanked, reason=reason)

    wheel_ok, sdist_ok = published.yankee_ok
    want = {
        expected(wheel_ok),
        expected(sdist_ok),
        expected(published.yankee_reason, yanked=True, reason=YANK_REASON),
        expected(published.yankee_no_reason, yanked=True),
    }
    for mode, accept in MODES.items():
        page = client.get_project_page("yankee", accept=accept)
        assert {key(pkg) for pkg in page.packages} == want, mode
        assert page.repository_version == REPOSITORY_VERSIONS[mode], mode
    # What only JSON carries (API 1.1: PEP 700).
    page = client.get_project_page("yankee", accept=ACCEPT_JSON_ONLY)
    assert page.versions == ["1.0", "2.0", "3.0"]
    local = {path.name: path for path in (wheel_ok, sdist_ok, published.yankee_reason, published.yankee_no_reason)}
    for pkg in page.packages:
        assert pkg.size == local[pkg.filename].stat().st_size
        assert pkg.upload_time is not None
        assert pkg.upload_time.utcoffset() == timedelta(0)


@pytest.mark.parametrize("project", [FOO, "pyreq", "localver"])
def test_project_pages_agree_between_html_and_json(
    published: Corpus, server: Server, client: PyPISimple, project: str
) -> None:
    pages = {mode: client.get_project_page(project, accept=accept) for mode, accept in MODES.items()}
    html, json = ({key(pkg) for pkg in pages[mode].packages} for mode in MODES)
    assert html == json
    assert html, "no files listed"
    for mode, page in pages.items():
        assert page.repository_version == REPOSITORY_VERSIONS[mode], mode
        for pkg in page.packages:
            assert pkg.url.startswith(f"{server.url}/packages/"), (mode, pkg.url)
    assert pages["html"].last_serial == str(pages["json"].last_serial)


def test_each_mode_gets_its_own_content_type(published: Corpus, server: Server) -> None:
    for mode, accept in MODES.items():
        for path in ("/simple/", "/simple/yankee/"):
            status, headers, _body = server.get(path, accept)
            assert status == 200
            assert headers["Content-Type"].split(";")[0] == CONTENT_TYPES[mode], (mode, path)


def test_project_list_is_the_same_in_html_and_json(published: Corpus, client: PyPISimple) -> None:
    pages = {mode: client.get_index_page(accept=accept) for mode, accept in MODES.items()}
    assert set(pages["html"].projects) == set(pages["json"].projects)
    assert {FOO_DISPLAY, "pyreq", "localver", "yankee"} <= set(pages["json"].projects)
    assert len(pages["html"].projects) == len(pages["json"].projects)
    for mode, page in pages.items():
        assert page.repository_version == REPOSITORY_VERSIONS[mode], mode


def test_files_and_metadata_verify_against_the_listed_digests(
    published: Corpus, client: PyPISimple, tmp_path: Path
) -> None:
    local = {path.name: path for path in published.published}
    for mode, accept in MODES.items():
        page = client.get_project_page("yankee", accept=accept)
        for pkg in page.packages:
            target = tmp_path / mode / pkg.filename
            client.download_package(pkg, target, verify=True)
            assert target.read_bytes() == local[pkg.filename].read_bytes()
            if pkg.filename.endswith(".whl"):
                assert client.get_package_metadata_bytes(pkg, verify=True) == wheel_metadata(local[pkg.filename])
            else:
                with pytest.raises(NoMetadataError):
                    client.get_package_metadata_bytes(pkg, verify=False)
