"""PackageIndex use cases over LocalStorage and an SQLite SQLCache: uploads, reads, yanks and deletes."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pypicloud_lite.cache.sql import SQLCache
from pypicloud_lite.config import CacheSettings, UploadSettings
from pypicloud_lite.errors import (
    BackendUnavailable,
    FileExists,
    FilenameReused,
    InvalidInput,
    InvalidUpload,
    NotFound,
    PermissionDenied,
    UploadTooLarge,
)
from pypicloud_lite.models import Applied, Change, PackageFile, Project, RemoveFile
from pypicloud_lite.service import PackageIndex, UploadForm, UploadResult
from pypicloud_lite.storage.local import LocalStorage
from tests.support.distbuilder import build_sdist, build_wheel, digests, metadata_text
from tests.support.legacy import wheel_metadata


@pytest.fixture
def spool_dir(tmp_path: Path) -> Path:
    return tmp_path / "spool"


@pytest.fixture
def index(tmp_path: Path, spool_dir: Path) -> Iterator[PackageIndex]:
    cache = SQLCache.from_settings(
        CacheSettings(
            backend="sql",
            url=f"sqlite:///{tmp_path / 'cache.sqlite'}",
            migrate_on_start=True,
            pool_size=5,
            echo=False,
        )
    )
    storage = LocalStorage(tmp_path / "packages")
    try:
        yield PackageIndex(storage, cache, UploadSettings(max_size=1_000_000, spool_dir=spool_dir))
    finally:
        cache.close()


@pytest.fixture
def dists(tmp_path: Path) -> Path:
    return tmp_path / "dists"


def form_for(path: Path, name: str = "demo", version: str = "1.0", **fields: Any) -> UploadForm:
    given: dict[str, Any] = {**digests(path), **fields}
    return UploadForm(name=name, version=version, **given)


def upload(index: PackageIndex, path: Path, name: str = "demo", version: str = "1.0", **fields: Any) -> UploadResult:
    with path.open("rb") as fh:
        return index.upload(form_for(path, name, version, **fields), path.name, fh, uploader="alice")


def stored_keys(index: PackageIndex) -> list[str]:
    return sorted(obj.key for obj in index.storage.list())


def read_key(index: PackageIndex, key: str) -> bytes:
    with index.storage.open(key) as fh:
        return fh.read()


def spool_leftovers(spool_dir: Path) -> list[str]:
    return sorted(p.name for p in spool_dir.iterdir()) if spool_dir.exists() else []


# -- uploads -------------------------------------------------------------------


def test_upload_stores_object_sidecar_and_row(index: PackageIndex, dists: Path, spool_dir: Path) -> None:
    wheel = build_wheel(dists, "Demo", "1.0", summary="Ünïcödé ☃", requires_python=">=3.9")
    data = wheel.read_bytes()
    meta = metadata_text("Demo", "1.0", summary="Ünïcödé ☃", requires_python=">=3.9").encode()

    result = upload(index, wheel, name="Demo")

    assert result.created is True
    file = result.file
    assert file.project == "demo"
    assert file.filename == "demo-1.0-py3-none-any.whl"
    assert file.version == "1.0"
    assert file.packagetype == "bdist_wheel"
    assert file.python_version == "py3"
    assert file.size == len(data)
    assert file.sha256 == hashlib.sha256(data).hexdigest()
    assert file.md5 == hashlib.md5(data).hexdigest()
    assert file.blake2_256 == hashlib.blake2b(data, digest_size=32).hexdigest()
    assert file.metadata_sha256 == hashlib.sha256(meta).hexdigest()
    assert file.summary == "Ünïcödé ☃"
    assert file.requires_python == ">=3.9"
    assert file.uploader == "alice"
    assert file.yanked is False
    assert file.upload_time.tzinfo is not None
    assert file.core_metadata is not None
    assert file.core_metadata.name == "Demo"

    # The file, its PEP 658 sidecar, its record (upload time, uploader, hashes) and its project's state.
    assert stored_keys(index) == [
        "_ppc/files/demo/demo-1.0-py3-none-any.whl.json",
        "_ppc/projects/demo.json",
        "demo/demo-1.0-py3-none-any.whl",
        "demo/demo-1.0-py3-none-any.whl.metadata",
    ]
    assert read_key(index, "demo/demo-1.0-py3-none-any.whl") == data
    assert read_key(index, "demo/demo-1.0-py3-none-any.whl.metadata") == meta

    row = index.cache.get_file(file.filename)
    assert row == file
    assert (row.sha256, row.md5, row.blake2_256) == (file.sha256, file.md5, file.blake2_256)
    project = index.get_project("DEMO")
    assert (project.name, project.display_name) == ("demo", "Demo")
    assert index.project_files(project) == [file]
    assert index.serial() == 1
    assert spool_leftovers(spool_dir) == []


def test_upload_of_an_sdist_publishes_no_metadata(index: PackageIndex, dists: Path) -> None:
    sdist = build_sdist(dists, "demo", "1.0", summary="From PKG-INFO")
    result = upload(index, sdist)
    assert result.created is True
    assert result.file.packagetype == "sdist"
    assert result.file.python_version == "source"
    assert result.file.metadata_sha256 is None
    assert result.file.summary == "From PKG-INFO"
    with pytest.raises(NotFound):
        index.read_metadata(result.file)
    with index.open_file(result.file) as fh:
        assert fh.read() == sdist.read_bytes()


def test_read_metadata_of_a_wheel(index: PackageIndex, dists: Path) -> None:
    wheel = build_wheel(dists, "demo", "1.0")
    file = upload(index, wheel).file
    body = index.read_metadata(file)
    assert hashlib.sha256(body).hexdigest() == file.metadata_sha256
    assert body == metadata_text("demo", "1.0", summary="A tiny test package").encode()


def test_form_fields_fill_in_what_the_metadata_lacks(index: PackageIndex, dists: Path) -> None:
    wheel = build_wheel(dists, "demo", "1.0", metadata="Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n")
    result = upload(index, wheel, summary="From the form", requires_python=">=3.11")
    assert result.file.summary == "From the form"
    assert result.file.requires_python == ">=3.11"


def test_identical_reupload_changes_nothing(index: PackageIndex, dists: Path) -> None:
    wheel = build_wheel(dists, "demo", "1.0")
    first = upload(index, wheel)
    serial = index.serial()
    again = upload(index, wheel)
    assert again.created is False
    assert again.file == first.file
    assert index.serial() == serial
    assert len(stored_keys(index)) == 4


def test_different_bytes_under_an_existing_filename(index: PackageIndex, dists: Path, spool_dir: Path) -> None:
    original = build_wheel(dists / "a", "demo", "1.0", summary="first")
    data = original.read_bytes()
    upload(index, original)
    serial = index.serial()
    changed = build_wheel(dists / "b", "demo", "1.0", summary="second")
    assert changed.name == original.name
    assert changed.read_bytes() != data

    with pytest.raises(FileExists, match="File already exists"):
        upload(index, changed)

    assert read_key(index, "demo/demo-1.0-py3-none-any.whl") == data
    stored = index.cache.get_file(original.name)
    assert stored is not None
    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    assert index.serial() == serial
    assert spool_leftovers(spool_dir) == []


@pytest.mark.parametrize("keep", ["md5_digest", "sha256_digest", "blake2_256_digest"])
def test_any_one_digest_is_enough(index: PackageIndex, dists: Path, keep: str) -> None:
    wheel = build_wheel(dists, "demo", "1.0")
    given = {keep: digests(wheel)[keep]}
    with wheel.open("rb") as fh:
        result = index.upload(UploadForm("demo", "1.0", **given), wheel.name, fh, uploader=None)
    assert result.created is True
    assert result.file.uploader is None


def test_digests_are_compared_ignoring_case_and_spaces(index: PackageIndex, dists: Path) -> None:
    wheel = build_wheel(dists, "demo", "1.0")
    sha256 = digests(wheel)["sha256_digest"]
    with wheel.open("rb") as fh:
        result = index.upload(UploadForm("demo", "1.0", sha256_digest=f" {sha256.upper()}\n"), wheel.name, fh, None)
    assert result.created is True


@pytest.mark.parametrize("blank", [None, "", "   "])
def test_at_least_one_digest_is_required(index: PackageIndex, dists: Path, spool_dir: Path, blank: str | None) -> None:
    wheel = build_wheel(dists, "demo", "1.0")
    form = UploadForm("demo", "1.0", md5_digest=blank, sha256_digest=blank, blake2_256_digest=blank)
    with wheel.open("rb") as fh, pytest.raises(InvalidUpload, match="at least one message digest"):
        index.upload(form, wheel.name, fh, uploader="alice")
    assert stored_keys(index) == []
    assert spool_leftovers(spool_dir) == []


@pytest.mark.parametrize("wrong", ["md5", "sha256", "blake2_256"])
def test_every_given_digest_is_verified(index: PackageIndex, dists: Path, spool_dir: Path, wrong: str) -> None:
    wheel = build_wheel(dists, "demo", "1.0")
    given = digests(wheel)
    given[f"{wrong}_digest"] = "0" * len(given[f"{wrong}_digest"])
    with wheel.open("rb") as fh, pytest.raises(InvalidUpload, match=rf"does not match.*\({wrong}\)"):
        index.upload(UploadForm("demo", "1.0", **given), wheel.name, fh, uploader="alice")
    assert stored_keys(index) == []
    assert index.cache.get_file(wheel.name) is None
    assert spool_leftovers(spool_dir) == []


@pytest.mark.parametrize(
    "digest",
    [
        pytest.param("ä" * 64, id="non-ascii-64-chars"),
        pytest.param("not hex at all", id="not-hex"),
        pytest.param("€", id="euro-sign"),
    ],
)
def test_a_garbage_digest_is_an_invalid_upload(index: PackageIndex, dists: Path, digest: str) -> None:
    wheel = build_wheel(dists, "demo", "1.0")
    with wheel.open("rb") as fh, pytest.raises(InvalidUpload, match="digest"):
        index.upload(UploadForm("demo", "1.0", sha256_digest=digest), wheel.name, fh, uploader="alice")
    assert stored_keys(index) == []


def test_the_size_limit(index: PackageIndex, dists: Path, spool_dir: Path, tmp_path: Path) -> None:
    wheel = build_wheel(dists, "demo", "1.0")
    size = wheel.stat().st_size
    small = PackageIndex(index.storage, index.cache, UploadSettings(max_size=size - 1, spool_dir=spool_dir))
    with pytest.raises(UploadTooLarge, match="File too large"):
        upload(small, wheel)
    assert spool_leftovers(spool_dir) == []
    assert stored_keys(index) == []
    assert index.cache.get_file(wheel.name) is None

    exact = PackageIndex(index.storage, index.cache, UploadSettings(max_size=size, spool_dir=spool_dir))
    assert upload(exact, wheel).created is True
    assert spool_leftovers(spool_dir) == []


def test_the_size_limit_stops_reading_early(index: PackageIndex, spool_dir: Path) -> None:
    class Endless(io.RawIOBase):
        def __init__(self) -> None:
            self.served = 0

        def readable(self) -> bool:
            return True

        def readinto(self, buffer: Any) -> int:
            n = len(buffer)
            buffer[:n] = b"\0" * n
            self.served += n
            return n

    stream = Endless()
    small = PackageIndex(index.storage, index.cache, UploadSettings(max_size=3_000_000, spool_dir=spool_dir))
    form = UploadForm("demo", "1.0", sha256_digest="0" * 64)
    with pytest.raises(UploadTooLarge):
        small.upload(form, "demo-1.0-py3-none-any.whl", stream, uploader="alice")  # type: ignore[arg-type]
    assert stream.served < 3_000_000 + 4 * 1024 * 1024
    assert spool_leftovers(spool_dir) == []


def test_an_empty_upload_is_refused(index: PackageIndex, spool_dir: Path) -> None:
    form = UploadForm("demo", "1.0", sha256_digest=hashlib.sha256(b"").hexdigest())
    with pytest.raises(InvalidUpload, match="empty"):
        index.upload(form, "demo-1.0.tar.gz", io.BytesIO(b""), uploader="alice")
    assert spool_leftovers(spool_dir) == []


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"name": "other"}, "Start filename"),
        ({"name": "bad name!"}, "Invalid value for name"),
        ({"name": ""}, "Invalid value for name"),
        ({"version": "2.0"}, "Version in filename"),
        ({"version": "not a version"}, "Invalid value for version"),
        ({"filetype": "sdist"}, "Invalid value for filetype"),
    ],
)
def test_form_must_match_the_file(index: PackageIndex, dists: Path, fields: dict[str, str], message: str) -> None:
    wheel = build_wheel(dists, "demo", "1.0")
    values = {"name": "demo", "version": "1.0", **fields}
    with wheel.open("rb") as fh, pytest.raises(InvalidUpload, match=message):
        index.upload(UploadForm(**values, **digests(wheel)), wheel.name, fh, uploader="alice")
    assert stored_keys(index) == []


def test_equivalent_name_and_version_spellings_are_accepted(index: PackageIndex, dists: Path) -> None:
    wheel = build_wheel(dists, "Demo.Pkg", "1.0")
    result = upload(index, wheel, name="demo_pkg", version="1.0.0", filetype="bdist_wheel")
    assert result.created is True
    assert result.file.project == "demo-pkg"


def test_a_bad_archive_stores_nothing(index: PackageIndex, dists: Path, spool_dir: Path) -> None:
    fake = dists / "demo-1.0-py3-none-any.whl"
    dists.mkdir(parents=True)
    fake.write_bytes(b"not a zip" * 100)
    with pytest.raises(InvalidUpload, match="not a readable wheel"):
        upload(index, fake)
    assert stored_keys(index) == []
    assert index.serial() == 0
    assert spool_leftovers(spool_dir) == []


def test_metadata_that_contradicts_the_filename_stores_nothing(index: PackageIndex, dists: Path) -> None:
    wheel = build_wheel(dists, "demo", "1.0", metadata=metadata_text("demo", "1.1"))
    with pytest.raises(InvalidUpload, match=r"version 1\.1"):
        upload(index, wheel)
    assert stored_keys(index) == []


def test_a_cache_failure_leaves_nothing_in_storage(
    index: PackageIndex, dists: Path, spool_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(change: Change) -> Applied:
        raise RuntimeError("database went away")

    monkeypatch.setattr(index.cache, "apply", broken)
    wheel = build_wheel(dists, "demo", "1.0")
    with pytest.raises(RuntimeError, match="database went away"):
        upload(index, wheel)
    # The new project's state (its display name) stays: it shows nowhere until a file joins the project.
    assert stored_keys(index) == ["_ppc/projects/demo.json"]
    assert index.cache.get_file(wheel.name) is None
    assert spool_leftovers(spool_dir) == []

    monkeypatch.undo()
    assert upload(index, wheel).created is True  # nothing is left behind to get in the way


def test_a_disk_error_in_the_spools_background_fsync_fails_the_upload(
    index: PackageIndex, dists: Path, spool_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Linux reports a write-back error to the first fsync only: the storage's own fsync, later, would pass.
    fsync, calls = os.fsync, []

    def failing_once(fd: int) -> None:
        calls.append(fd)
        if len(calls) == 1:
            raise OSError(errno.EIO, "Input/output error")
        fsync(fd)

    monkeypatch.setattr(os, "fsync", failing_once)
    wheel = build_wheel(dists, "demo", "1.0")
    with pytest.raises(BackendUnavailable, match="Input/output error"):
        upload(index, wheel)
    assert stored_keys(index) == []
    assert index.cache.get_file(wheel.name) is None
    assert spool_leftovers(spool_dir) == []
    monkeypatch.undo()
    assert upload(index, wheel).created is True


def test_a_cache_failure_with_an_unreadable_cache_still_cleans_up(
    index: PackageIndex, dists: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wheel = build_wheel(dists, "demo", "1.0")
    calls = {"get_file": 0}
    real_get_file = index.cache.get_file

    def get_file(filename: str) -> PackageFile | None:
        calls["get_file"] += 1
        if calls["get_file"] > 1:
            raise RuntimeError("cache unreadable")
        return real_get_file(filename)

    def broken(change: Change) -> Applied:
        raise RuntimeError("database went away")

    monkeypatch.setattr(index.cache, "get_file", get_file)
    monkeypatch.setattr(index.cache, "apply", broken)
    with pytest.raises(RuntimeError, match="database went away"):
        upload(index, wheel)
    assert stored_keys(index) == ["_ppc/projects/demo.json"]


def test_a_sidecar_failure_leaves_nothing_in_storage(
    index: PackageIndex, dists: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(key: str, data: bytes) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(index.storage, "put_bytes", broken)
    wheel = build_wheel(dists, "demo", "1.0")
    with pytest.raises(OSError, match="disk full"):
        upload(index, wheel)
    assert stored_keys(index) == []
    assert index.cache.get_file(wheel.name) is None


def test_an_unindexed_object_with_the_same_bytes_gets_indexed(index: PackageIndex, dists: Path) -> None:
    # What a crashed upload leaves: the object, but no row.
    wheel = build_wheel(dists, "demo", "1.0")
    assert index.storage.put_new("demo/demo-1.0-py3-none-any.whl", wheel)
    result = upload(index, wheel)
    assert result.created is True
    assert index.cache.get_file(wheel.name) == result.file
    assert stored_keys(index) == [
        "_ppc/files/demo/demo-1.0-py3-none-any.whl.json",
        "_ppc/projects/demo.json",
        "demo/demo-1.0-py3-none-any.whl",
        "demo/demo-1.0-py3-none-any.whl.metadata",
    ]


def test_an_unindexed_object_with_other_bytes_is_a_conflict(index: PackageIndex, dists: Path) -> None:
    wheel = build_wheel(dists / "a", "demo", "1.0", summary="first")
    leftover = build_wheel(dists / "b", "demo", "1.0", summary="other")
    assert index.storage.put_new("demo/demo-1.0-py3-none-any.whl", leftover)
    with pytest.raises(FileExists, match="File already exists"):
        upload(index, wheel)
    assert index.cache.get_file(wheel.name) is None
    assert read_key(index, "demo/demo-1.0-py3-none-any.whl") == leftover.read_bytes()


def test_an_unindexed_object_survives_a_cache_failure(
    index: PackageIndex, dists: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The object was there before this upload: a failing upload must not delete it.
    wheel = build_wheel(dists, "demo", "1.0")
    index.storage.put_new("demo/demo-1.0-py3-none-any.whl", wheel)

    def broken(change: Change) -> Applied:
        raise RuntimeError("database went away")

    monkeypatch.setattr(index.cache, "apply", broken)
    with pytest.raises(RuntimeError):
        upload(index, wheel)
    assert read_key(index, "demo/demo-1.0-py3-none-any.whl") == wheel.read_bytes()


# -- reads ---------------------------------------------------------------------


def test_get_file_checks_the_project(index: PackageIndex, dists: Path) -> None:
    upload(index, build_wheel(dists, "demo", "1.0"))
    upload(index, build_sdist(dists, "other", "1.0"), name="other")
    assert index.get_file("Demo", "demo-1.0-py3-none-any.whl").project == "demo"
    with pytest.raises(NotFound):
        index.get_file("other", "demo-1.0-py3-none-any.whl")
    with pytest.raises(NotFound):
        index.get_file("demo", "demo-9.9-py3-none-any.whl")


def test_get_project_of_an_unknown_name(index: PackageIndex) -> None:
    with pytest.raises(NotFound, match="No project named 'nothing'"):
        index.get_project("nothing")


def test_list_projects(index: PackageIndex, dists: Path) -> None:
    upload(index, build_sdist(dists, "Zeta", "1.0"), name="Zeta")
    upload(index, build_sdist(dists, "alpha", "1.0"), name="alpha")
    assert [(p.name, p.display_name) for p in index.list_projects()] == [("alpha", "alpha"), ("zeta", "Zeta")]


def test_download_url_of_local_storage_is_none(index: PackageIndex, dists: Path) -> None:
    file = upload(index, build_wheel(dists, "demo", "1.0")).file
    assert index.download_url(file) is None


# -- changes -------------------------------------------------------------------


def test_yank_and_unyank(index: PackageIndex, dists: Path) -> None:
    upload(index, build_wheel(dists, "demo", "1.0"))
    upload(index, build_sdist(dists, "demo", "1.0"))
    upload(index, build_sdist(dists, "demo", "2.0"), version="2.0")
    serial = index.serial()

    assert index.yank("Demo", "1.0", "broken on 3.12") == 2
    assert index.serial() > serial
    files = {f.filename: f for f in index.project_files(index.get_project("demo"))}
    assert files["demo-1.0-py3-none-any.whl"].yanked is True
    assert files["demo-1.0.tar.gz"].yanked_reason == "broken on 3.12"
    assert files["demo-2.0.tar.gz"].yanked is False

    assert index.unyank("demo", "1.0") == 2
    for file in index.project_files(index.get_project("demo")):
        assert file.yanked is False
        assert file.yanked_reason is None


def test_yank_with_an_empty_reason_stores_none(index: PackageIndex, dists: Path) -> None:
    upload(index, build_sdist(dists, "demo", "1.0"))
    index.yank("demo", "1.0", "")
    file = index.get_file("demo", "demo-1.0.tar.gz")
    assert file.yanked is True
    assert file.yanked_reason is None


def test_yank_finds_the_release_by_its_normalized_version(index: PackageIndex, dists: Path) -> None:
    upload(index, build_sdist(dists, "demo", "1.0rc1"), version="1.0rc1")
    assert index.yank("demo", "1.0-RC1") == 1
    assert index.get_file("demo", "demo-1.0rc1.tar.gz").yanked is True


def test_yanking_twice_is_fine(index: PackageIndex, dists: Path) -> None:
    upload(index, build_sdist(dists, "demo", "1.0"))
    index.yank("demo", "1.0", "bad")
    serial = index.serial()
    assert index.yank("demo", "1.0", "bad") >= 1
    assert index.serial() == serial


@pytest.mark.parametrize(("project", "version"), [("demo", "9.9"), ("nothing", "1.0"), ("demo", "not a version")])
def test_yank_of_an_unknown_release(index: PackageIndex, dists: Path, project: str, version: str) -> None:
    upload(index, build_sdist(dists, "demo", "1.0"))
    with pytest.raises(NotFound):
        index.yank(project, version, "why")
    with pytest.raises(NotFound):
        index.unyank(project, version)


def test_delete_file_removes_row_object_and_sidecar(index: PackageIndex, dists: Path) -> None:
    upload(index, build_wheel(dists, "demo", "1.0"))
    upload(index, build_sdist(dists, "demo", "1.0"))
    serial = index.serial()

    index.delete_file("Demo", "demo-1.0-py3-none-any.whl")

    assert index.serial() > serial
    assert index.cache.get_file("demo-1.0-py3-none-any.whl") is None
    assert stored_keys(index) == [
        "_ppc/deleted/demo/demo-1.0-py3-none-any.whl",  # the filename stays used
        "_ppc/files/demo/demo-1.0.tar.gz.json",
        "_ppc/projects/demo.json",
        "demo/demo-1.0.tar.gz",  # an sdist has no PEP 658 sidecar: its record keeps its metadata
    ]
    assert [f.filename for f in index.project_files(index.get_project("demo"))] == ["demo-1.0.tar.gz"]
    with pytest.raises(NotFound):
        index.get_file("demo", "demo-1.0-py3-none-any.whl")
    with pytest.raises(NotFound):
        index.delete_file("demo", "demo-1.0-py3-none-any.whl")


def test_a_deleted_filename_never_comes_back_with_other_bytes(index: PackageIndex, dists: Path) -> None:
    first = build_wheel(dists / "first", "demo", "1.0", summary="the first bytes")
    upload(index, first)
    index.delete_file("demo", first.name)
    other = build_wheel(dists / "other", "demo", "1.0", summary="other bytes, same name")
    assert other.name == first.name and other.read_bytes() != first.read_bytes()

    with pytest.raises(FilenameReused, match="already been used, use a different version") as raised:
        upload(index, other)
    assert "was deleted" in raised.value.message
    # Nothing of the refused upload was kept: only the deletion record and the project's state are in storage.
    assert stored_keys(index) == [f"_ppc/deleted/demo/{first.name}", "_ppc/projects/demo.json"]
    assert index.cache.get_file(first.name) is None


def test_a_deleted_file_may_come_back_with_the_same_bytes(index: PackageIndex, dists: Path) -> None:
    wheel = build_wheel(dists, "demo", "1.0")
    upload(index, wheel)
    index.delete_file("demo", wheel.name)
    again = upload(index, wheel)
    assert again.created
    assert index.get_file("demo", wheel.name).sha256 == digests(wheel)["sha256_digest"]


def test_the_rule_outlives_the_cache(index: PackageIndex, dists: Path) -> None:
    # The record is in storage: a cache rebuilt from storage (a replica, a restore) keeps the rule.
    first = build_wheel(dists / "first", "demo", "1.0", summary="the first bytes")
    upload(index, first)
    upload(index, build_sdist(dists, "demo", "1.0"))
    index.delete_file("demo", first.name)
    index.cache.apply(RemoveFile("demo-1.0.tar.gz"))  # the cache forgets more than storage did
    result = index.begin_reload().execute()
    assert (result.added, result.failed, result.skipped) == (1, 0, 0)  # the sdist came back; the record is no stray
    assert [p.name for p in index.list_projects()] == ["demo"]
    with pytest.raises(FilenameReused):
        upload(index, build_wheel(dists / "other", "demo", "1.0", summary="other bytes"))


def test_a_delete_racing_an_identical_reupload_never_loses_the_acknowledged_upload(
    index: PackageIndex, dists: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wheel = build_wheel(dists, "demo", "1.0")
    upload(index, wheel)
    key = f"demo/{wheel.name}"
    real_delete = index.storage.delete
    reached, resume = threading.Event(), threading.Event()

    def slow_delete(target: str) -> None:
        if target == key and not reached.is_set():
            reached.set()  # the delete has taken the row out; the object is still there
            resume.wait(30)
        real_delete(target)

    monkeypatch.setattr(index.storage, "delete", slow_delete)
    deleting = threading.Thread(target=index.delete_file, args=("demo", wheel.name))
    deleting.start()
    assert reached.wait(10)
    uploaded: list[UploadResult] = []
    uploading = threading.Thread(target=lambda: uploaded.append(upload(index, wheel)))
    uploading.start()
    uploading.join(2)  # unserialized, the upload is acknowledged here, before the delete goes on
    resume.set()
    deleting.join(30)
    uploading.join(30)

    assert len(uploaded) == 1 and uploaded[0].created  # acknowledged: it must be there, whole
    file = index.get_file("demo", wheel.name)
    assert read_key(index, file.object_key) == wheel.read_bytes()
    assert read_key(index, file.sidecar_key) == wheel_metadata(wheel)
    assert file.sha256 == digests(wheel)["sha256_digest"]


def test_delete_file_under_the_wrong_project(index: PackageIndex, dists: Path) -> None:
    upload(index, build_wheel(dists, "demo", "1.0"))
    upload(index, build_sdist(dists, "other", "1.0"), name="other")
    with pytest.raises(NotFound):
        index.delete_file("other", "demo-1.0-py3-none-any.whl")
    assert index.cache.get_file("demo-1.0-py3-none-any.whl") is not None
    assert "demo/demo-1.0-py3-none-any.whl" in stored_keys(index)


def test_delete_file_removes_the_row_before_the_object(
    index: PackageIndex, dists: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    upload(index, build_wheel(dists, "demo", "1.0"))

    def broken(change: Change) -> Applied:
        raise RuntimeError("database went away")

    monkeypatch.setattr(index.cache, "apply", broken)
    with pytest.raises(RuntimeError):
        index.delete_file("demo", "demo-1.0-py3-none-any.whl")
    # The row could not go, so the object stays: the index never lists a file storage lacks.
    # The deletion record came first: a half-done delete still keeps the filename used.
    assert stored_keys(index) == [
        "_ppc/deleted/demo/demo-1.0-py3-none-any.whl",
        "_ppc/files/demo/demo-1.0-py3-none-any.whl.json",
        "_ppc/projects/demo.json",
        "demo/demo-1.0-py3-none-any.whl",
        "demo/demo-1.0-py3-none-any.whl.metadata",
    ]


def test_a_deleted_filename_can_be_uploaded_again(index: PackageIndex, dists: Path) -> None:
    wheel = build_wheel(dists, "demo", "1.0")
    upload(index, wheel)
    index.delete_file("demo", wheel.name)
    assert upload(index, wheel).created is True


# -- project status (PEP 792) --------------------------------------------------


@pytest.mark.parametrize("status", ["archived", "quarantined"])
def test_a_closed_project_takes_no_uploads(index: PackageIndex, dists: Path, spool_dir: Path, status: str) -> None:
    upload(index, build_sdist(dists, "demo", "1.0"))
    project = index.set_status("Demo", status, "no more releases")
    assert (project.status, project.status_reason) == (status, "no more releases")
    with pytest.raises(InvalidUpload, match=status):
        upload(index, build_wheel(dists, "demo", "1.0"))
    assert stored_keys(index) == [
        "_ppc/files/demo/demo-1.0.tar.gz.json",
        "_ppc/projects/demo.json",
        "demo/demo-1.0.tar.gz",
    ]
    assert spool_leftovers(spool_dir) == []


def test_a_project_closed_while_an_upload_waits_for_its_lease_refuses_it(
    index: PackageIndex, dists: Path, spool_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    upload(index, build_sdist(dists, "demo", "1.0"))
    taking = index._file_lease

    @contextlib.contextmanager
    def closed_meanwhile(filename: str, project: str | None = None) -> Iterator[Any]:
        index.set_status("demo", "archived")  # while the upload waited for the filename's lease
        with taking(filename, project) as lease:
            yield lease

    monkeypatch.setattr(index, "_file_lease", closed_meanwhile)
    with pytest.raises(InvalidUpload, match="archived"):
        upload(index, build_wheel(dists, "demo", "1.0"))
    assert "demo/demo-1.0-py3-none-any.whl" not in stored_keys(index)
    assert spool_leftovers(spool_dir) == []


def test_an_upload_is_authorized_with_its_project_row_read_under_the_lease_before_anything_is_stored(
    index: PackageIndex, dists: Path, spool_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[Project | None] = []
    sdist, wheel = build_sdist(dists, "demo", "1.0"), build_wheel(dists, "demo", "1.0")
    with sdist.open("rb") as fh:
        index.upload(form_for(sdist, "Demo", "1.0"), sdist.name, fh, "alice", seen.append)
    assert seen == [None]  # a new project
    # The row is read in the lease's own call, not apart from it.
    monkeypatch.setattr(index.cache, "get_project", lambda name: pytest.fail("read outside the lease"))

    def refuse(project: Project | None) -> None:
        seen.append(project)
        raise PermissionDenied("no")

    with wheel.open("rb") as fh, pytest.raises(PermissionDenied):
        index.upload(form_for(wheel, "Demo", "1.0"), wheel.name, fh, "bob", refuse)
    assert seen[1] is not None and seen[1].display_name == "Demo"
    assert "demo/demo-1.0-py3-none-any.whl" not in stored_keys(index)
    assert spool_leftovers(spool_dir) == []
    assert index.cache.lock_state(f"file:{hashlib.sha256(wheel.name.encode()).hexdigest()[:48]}")[0] is False


def test_an_upload_reads_its_project_state_once(
    index: PackageIndex, dists: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    upload(index, build_sdist(dists, "demo", "1.0"))
    reads: list[str] = []
    read_project = index.state.read_project
    monkeypatch.setattr(index.state, "read_project", lambda name: reads.append(name) or read_project(name))
    assert upload(index, build_wheel(dists, "demo", "1.0")).created is True
    assert reads == ["demo"]


def test_a_deprecated_project_still_takes_uploads(index: PackageIndex, dists: Path) -> None:
    upload(index, build_sdist(dists, "demo", "1.0"))
    index.set_status("demo", "deprecated", "use demo2")
    assert upload(index, build_wheel(dists, "demo", "1.0")).created is True


def test_a_quarantined_project_offers_no_files(index: PackageIndex, dists: Path) -> None:
    upload(index, build_sdist(dists, "demo", "1.0"))
    index.set_status("demo", "quarantined")
    project = index.get_project("demo")
    assert index.offered_files(project) == []
    with pytest.raises(NotFound):
        index.downloadable_file("demo", "demo-1.0.tar.gz")
    project = index.set_status("demo", "active", "reasons are dropped when active")
    assert project.status_reason is None
    assert [f.filename for f in index.offered_files(project)] == ["demo-1.0.tar.gz"]
    assert index.downloadable_file("demo", "demo-1.0.tar.gz").filename == "demo-1.0.tar.gz"


def test_set_status_refuses_unknown_statuses_and_projects(index: PackageIndex, dists: Path) -> None:
    upload(index, build_sdist(dists, "demo", "1.0"))
    with pytest.raises(InvalidInput, match="Unknown project status"):
        index.set_status("demo", "deleted")
    with pytest.raises(NotFound):
        index.set_status("nothing", "archived")


def test_delete_version(index: PackageIndex, dists: Path) -> None:
    upload(index, build_wheel(dists, "demo", "1.0"))
    upload(index, build_sdist(dists, "demo", "1.0"))
    upload(index, build_sdist(dists, "demo", "2.0"), version="2.0")
    deleted = index.delete_version("Demo", "1.0.0")
    assert sorted(deleted) == ["demo-1.0-py3-none-any.whl", "demo-1.0.tar.gz"]
    assert stored_keys(index) == [
        "_ppc/deleted/demo/demo-1.0-py3-none-any.whl",
        "_ppc/deleted/demo/demo-1.0.tar.gz",
        "_ppc/files/demo/demo-2.0.tar.gz.json",
        "_ppc/projects/demo.json",
        "demo/demo-2.0.tar.gz",
    ]
    with pytest.raises(NotFound):
        index.delete_version("demo", "1.0")
    with pytest.raises(NotFound):
        index.delete_version("demo", "not a version")


def _aged(path: Path, seconds: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"half an upload")
    then = time.time() - seconds
    os.utime(path, (then, then))
    return path


def test_start_up_removes_only_stale_temporary_files(index: PackageIndex, spool_dir: Path, tmp_path: Path) -> None:
    # What `kill -9` mid-upload leaves: a spool file, and a storage write's temporary beside its object.
    stale = [
        _aged(spool_dir / "ppc-upload-abc123.part", 7200),
        _aged(tmp_path / "packages" / "foo" / ".tmp-xyz.part", 7200),
    ]
    # Another worker's upload in progress, and files that are not ours to remove.
    kept = [
        _aged(spool_dir / "ppc-upload-live.part", 10),
        _aged(tmp_path / "packages" / "foo" / ".tmp-live.part", 10),
        _aged(spool_dir / "notes.txt", 7200),
        _aged(tmp_path / "packages" / "foo" / "foo-1.0.tar.gz", 7200),
    ]
    assert index.remove_stale_temporary_files(3600) == 2
    assert [p for p in stale if p.exists()] == []
    assert [p for p in kept if not p.exists()] == []
    assert index.remove_stale_temporary_files(3600) == 0
