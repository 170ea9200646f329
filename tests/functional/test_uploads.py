"""Uploads through the legacy API with the real twine 7, twine 6.1 and `uv publish`."""

from __future__ import annotations

import hashlib
import os
import re
import zipfile
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name

from tests.support.common import UPLOADER, UPLOADER_PASSWORD
from tests.support.distbuilder import build_sdist, build_wheel
from tests.support.harness import (
    FOO,
    FOO_DISPLAY,
    FOO_NORMALIZED,
    UNICODE_SUMMARY,
    Clients,
    Corpus,
    Server,
    legacy_twine,
    plain,
)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_twine7_uploads_a_wheel_and_both_sdist_formats(published: Corpus, server: Server) -> None:
    listed = server.listed_files(FOO_NORMALIZED)
    for path in (published.foo_wheel, published.foo_tar, published.foo_zip):
        assert listed.get(path.name) == sha256(path), listed
        status, _headers, body = server.get(f"/packages/{FOO_NORMALIZED}/{path.name}")
        assert status == 200
        assert body == path.read_bytes()
    # The project keeps the name it was uploaded under; its URL is the normalized one.
    assert FOO_DISPLAY in server.project_names()


def test_every_published_file_is_listed_with_its_sha256(published: Corpus, server: Server) -> None:
    for path in published.published:
        project = canonicalize_name(path.name.split("-")[0])
        assert server.listed_files(project).get(path.name) == sha256(path), path.name


def test_non_ascii_summary_round_trips(published: Corpus, server: Server) -> None:
    files = (published.foo_wheel, published.foo_tar, published.foo_zip)
    stored = {f.filename: f for f in server.stored_files(FOO)}
    for path in files:
        assert stored[path.name].summary == UNICODE_SUMMARY
        assert stored[path.name].requires_python == ">=3.8"
    status, headers, body = server.get(f"/packages/{FOO_NORMALIZED}/{published.foo_wheel.name}.metadata")
    assert status == 200
    assert f"Summary: {UNICODE_SUMMARY}\n" in body.decode("utf-8")
    assert "charset=utf-8" in headers.get("Content-Type", "").lower()


def test_local_version_is_indexed_under_its_full_version(published: Corpus, server: Server) -> None:
    (stored,) = server.stored_files("localver")
    assert stored.version == "1.0+cpu"
    doc = server.project_json("localver")
    assert doc is not None
    assert doc["versions"] == ["1.0+cpu"]


def test_twine_6_1_legacy_upload_with_md5(published: Corpus, server: Server, clients: Clients) -> None:
    twine = legacy_twine()
    assert "twine version 6.1" in clients.run(twine, "--version").check().output
    clients.twine(*published.foo_legacy, executable=twine).check()
    listed = server.listed_files(FOO_NORMALIZED)
    stored = {f.filename: f for f in server.stored_files(FOO)}
    for path in published.foo_legacy:
        assert listed.get(path.name) == sha256(path)
        assert stored[path.name].md5 == hashlib.md5(path.read_bytes()).hexdigest()
        assert stored[path.name].summary == UNICODE_SUMMARY


def test_identical_reupload_succeeds_and_changes_nothing(published: Corpus, server: Server, clients: Clients) -> None:
    files = (published.foo_wheel, published.foo_tar, published.foo_zip)
    _status, before_headers, _body = server.get(f"/simple/{FOO_NORMALIZED}/")
    before = server.listed_files(FOO_NORMALIZED)
    clients.twine(*files).check()
    _status, after_headers, _body = server.get(f"/simple/{FOO_NORMALIZED}/")
    assert server.listed_files(FOO_NORMALIZED) == before
    assert after_headers["X-PyPI-Last-Serial"] == before_headers["X-PyPI-Last-Serial"]


def test_other_bytes_under_an_existing_filename_are_refused(
    published: Corpus, server: Server, clients: Clients, tmp_path: Path
) -> None:
    impostor = build_wheel(tmp_path, FOO, "1.0", summary="Different bytes, same filename")
    assert impostor.name == published.foo_wheel.name
    assert sha256(impostor) != sha256(published.foo_wheel)
    done = clients.twine(impostor)
    assert done.returncode != 0, done.output
    assert "File already exists" in plain(done.output), done.output
    assert server.listed_files(FOO_NORMALIZED)[impostor.name] == sha256(published.foo_wheel)
    _status, _headers, body = server.get(f"/packages/{FOO_NORMALIZED}/{impostor.name}")
    assert body == published.foo_wheel.read_bytes()


@pytest.mark.parametrize(
    ("username", "password"),
    [(UPLOADER, "not the password"), ("nobody", UPLOADER_PASSWORD)],
    ids=["wrong-password", "unknown-user"],
)
def test_bad_credentials_are_refused_with_401(
    server: Server, clients: Clients, tmp_path: Path, username: str, password: str
) -> None:
    project = f"refused-{username}"
    wheel = build_wheel(tmp_path, project, "1.0")
    done = clients.twine(wheel, username=username, password=password)
    assert done.returncode != 0, done.output
    assert "401" in plain(done.output), done.output
    assert server.project_json(project) is None
    assert project not in server.project_names()
    status, _headers, _body = server.get(f"/packages/{project}/{wheel.name}")
    assert status == 404


def test_uv_publish(server: Server, clients: Clients, tmp_path: Path) -> None:
    dists = (build_wheel(tmp_path, "uv-published", "0.1"), build_sdist(tmp_path, "uv-published", "0.1"))
    want = {path.name: sha256(path) for path in dists}
    publish = (
        "publish",
        "--publish-url",
        server.upload_url,
        "-u",
        UPLOADER,
        f"--password={UPLOADER_PASSWORD}",
        "--trusted-publishing",
        "never",
    )
    clients.uv(*publish, *dists).check()
    assert server.listed_files("uv-published") == want
    # Publishing the same files again is a success, as with twine...
    clients.uv(*publish, *dists).check()
    # ...and with --check-url uv reads the simple API first and skips what is already there.
    skipped = clients.uv(*publish, "--check-url", server.simple_url, *dists).check()
    for path in dists:
        assert f"File {path.name} already exists, skipping" in skipped.output, skipped.output
    other = build_wheel(tmp_path / "other", "uv-published", "0.1", summary="Other bytes")
    refused = clients.uv(*publish, other)
    assert refused.returncode != 0, refused.output
    assert "File already exists" in refused.output, refused.output
    assert server.listed_files("uv-published") == want


@pytest.mark.parametrize("path", ["/", "/simple/", "/legacy"], ids=["root", "simple", "legacy-noslash"])
def test_every_upload_url_accepts_twine(server: Server, clients: Clients, tmp_path: Path, path: str) -> None:
    project = f"endpoint-{path.strip('/') or 'root'}"
    wheel = build_wheel(tmp_path, project, "1.0")
    clients.twine(wheel, url=server.url + path).check()
    assert server.listed_files(project) == {wheel.name: sha256(wheel)}


def test_skip_existing_recognizes_the_conflict(
    published: Corpus, server: Server, clients: Clients, tmp_path: Path
) -> None:
    # twine 7 refuses --skip-existing for any index but PyPI's; twine 6.1 still offers it everywhere.
    twine = legacy_twine()
    impostor = build_wheel(tmp_path, FOO, "1.0", summary="Yet other bytes")
    assert impostor.name == published.foo_wheel.name
    done = clients.twine(impostor, executable=twine, options=("--skip-existing",)).check()
    assert f"Skipping {impostor.name}" in plain(done.output), done.output
    assert server.listed_files(FOO_NORMALIZED)[impostor.name] == sha256(published.foo_wheel)


def with_payload(wheel: Path, size: int) -> Path:
    """The wheel with `size` incompressible bytes added (RECORD goes stale: neither twine nor the index reads it)."""
    with zipfile.ZipFile(wheel, "a", zipfile.ZIP_STORED) as zf:
        zf.writestr("payload.bin", os.urandom(size))
    return wheel


def test_oversized_uploads_are_refused_with_413(server: Server, clients: Clients, tmp_path: Path) -> None:
    # The ini sets upload.max_size = 1MB. 1.5 MB passes the Content-Length pre-check (limit + 1 MiB of
    # form overhead) and is stopped while spooling; 3 MB is stopped by the pre-check.
    limits = []
    for size in (1_500_000, 3_000_000):
        project = f"oversized-{size}"
        wheel = with_payload(build_wheel(tmp_path / project, project, "1.0"), size)
        done = clients.twine(wheel)
        output = plain(done.output)
        assert done.returncode != 0, output
        assert "413" in output, output
        found = re.search(r"Limit for this index is (.+?)\.(?:\s|$)", output)
        assert found, output
        limits.append(found.group(1))
        assert server.project_json(project) is None
        assert not (server.folder / "packages" / project).exists() or not any(
            (server.folder / "packages" / project).iterdir()
        )
    assert not list((server.folder / "spool").glob("ppc-upload-*")), "spooled upload left behind"
    # Both checks must state the configured limit, and the same way.
    assert not limits[1].startswith("0 "), f"the Content-Length pre-check reports the limit as {limits[1]!r}"
    assert limits[0] == limits[1]
