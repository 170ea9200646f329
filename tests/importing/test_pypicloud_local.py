"""pypicloud's file storage: `<name>/<version>/<filename>` and `<filename>.meta`, as pypicloud 1.3.12 writes them."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pypicloud_lite.importing.pypicloud_local import read_pypicloud_local
from pypicloud_lite.service import PackageIndex
from tests.support.distbuilder import build_sdist, build_wheel
from tests.support.peers import files_of, import_all, md5, set_mtime, sha256, write_pypicloud_local

WHEEL_TIME = datetime(2022, 6, 1, 12, 30, 15, tzinfo=UTC)
SDIST_TIME = datetime(2019, 1, 2, 3, 4, 5, tzinfo=UTC)
WHEEL = "hello-pkg/1.0/hello_pkg-1.0-py3-none-any.whl"
SDIST = "hello-pkg/1.0/hello_pkg-1.0.tar.gz"


@pytest.fixture
def storage_dir(tmp_path: Path) -> Path:
    """A pypicloud storage.dir: a wheel with its .meta, an sdist of a pypicloud before 0.5 (no .meta)."""
    root = tmp_path / "pypicloud"
    wheel = build_wheel(tmp_path / "dist", "hello.pkg", "1.0", summary="Café greeter", requires_python=">=3.8")
    sdist = build_sdist(tmp_path / "dist", "hello.pkg", "1.0", summary=None)
    # FileStorage.upload: json.dump(package.get_metadata()), underscore keys, values as given.
    meta = {
        "requires_python": ">=3.8",
        "hash_sha256": sha256(wheel),
        "hash_md5": md5(wheel),
        "uploader": "alice",
        "summary": "Café  greeter",
    }
    write_pypicloud_local(root, "hello-pkg", "1.0", wheel, meta, WHEEL_TIME)
    write_pypicloud_local(root, "hello-pkg", "1.0", sdist, None, SDIST_TIME)
    return root


def test_files_move_in_with_mtime_uploader_and_summary(index: PackageIndex, storage_dir: Path) -> None:
    assert (storage_dir / (WHEEL + ".meta")).read_text(encoding="ascii").startswith('{"requires_python": ">=3.8", ')
    assert import_all(index, read_pypicloud_local(storage_dir)) == {WHEEL: "imported", SDIST: "imported"}
    assert [(p.name, p.display_name) for p in index.list_projects()] == [("hello-pkg", "hello.pkg")]
    files = files_of(index, "hello-pkg")
    wheel, sdist = files["hello_pkg-1.0-py3-none-any.whl"], files["hello_pkg-1.0.tar.gz"]
    assert (wheel.sha256, wheel.upload_time, wheel.uploader, wheel.summary, wheel.requires_python) == (
        sha256(storage_dir / WHEEL),
        WHEEL_TIME,
        "alice",
        "Café greeter",
        ">=3.8",
    )
    assert (sdist.sha256, sdist.upload_time, sdist.uploader, sdist.summary) == (
        sha256(storage_dir / SDIST),
        SDIST_TIME,
        None,
        None,
    )


def test_a_second_import_changes_nothing(index: PackageIndex, storage_dir: Path) -> None:
    import_all(index, read_pypicloud_local(storage_dir))
    serial, before = index.serial(), files_of(index, "hello-pkg")
    assert import_all(index, read_pypicloud_local(storage_dir)) == {WHEEL: "existing", SDIST: "existing"}
    assert (index.serial(), files_of(index, "hello-pkg")) == (serial, before)


def test_the_peer_summary_fills_in_what_the_file_lacks(index: PackageIndex, storage_dir: Path) -> None:
    (storage_dir / (SDIST + ".meta")).write_text(json.dumps({"summary": "From pypicloud"}), encoding="ascii")
    import_all(index, read_pypicloud_local(storage_dir))
    assert files_of(index, "hello-pkg")["hello_pkg-1.0.tar.gz"].summary == "From pypicloud"


def test_strays_are_skipped_with_the_reason(index: PackageIndex, storage_dir: Path, tmp_path: Path) -> None:
    folder = storage_dir / "hello-pkg" / "1.0"
    # What a killed pypicloud upload leaves (files.py upload(): ".metadata.<uid>", ".<filename>.<uid>").
    (folder / ".metadata.1a2b3c4d").write_text("{}", encoding="ascii")
    (folder / ".hello_pkg-1.0.tar.gz.1a2b3c4d").write_bytes(b"partial")
    (folder / "notes.txt").write_text("hi", encoding="utf-8")
    (folder / "orphan-1.0.tar.gz.meta").write_text("{}", encoding="ascii")
    (storage_dir / "stray-1.0.tar.gz").write_bytes((storage_dir / SDIST).read_bytes())
    other = storage_dir / "other" / "1.0"
    other.mkdir(parents=True)
    (other / "hello_pkg-1.0.tar.gz").write_bytes((storage_dir / SDIST).read_bytes())
    wrong_version = storage_dir / "hello-pkg" / "2.0"
    wrong_version.mkdir()
    (wrong_version / "hello_pkg-1.0.tar.gz").write_bytes((storage_dir / SDIST).read_bytes())
    secret = tmp_path / "secret-1.0.tar.gz"
    secret.write_bytes((storage_dir / SDIST).read_bytes())
    (folder / "secret-1.0.tar.gz").symlink_to(secret)
    outcomes = import_all(index, read_pypicloud_local(storage_dir))
    assert outcomes == {
        "hello-pkg/1.0/.hello_pkg-1.0.tar.gz.1a2b3c4d": "skipped: a dot file: hidden, or a temporary file of a write",
        "hello-pkg/1.0/.metadata.1a2b3c4d": "skipped: a dot file: hidden, or a temporary file of a write",
        WHEEL: "imported",
        SDIST: "imported",
        "hello-pkg/1.0/notes.txt": outcomes["hello-pkg/1.0/notes.txt"],
        "hello-pkg/1.0/orphan-1.0.tar.gz.meta": "skipped: a .meta sidecar without its file",
        "hello-pkg/1.0/secret-1.0.tar.gz": "skipped: a symbolic link: not followed",
        "hello-pkg/2.0/hello_pkg-1.0.tar.gz": "skipped: its folder '2.0' does not name the version of "
        "'hello_pkg-1.0.tar.gz'",
        "other/1.0/hello_pkg-1.0.tar.gz": "skipped: its folder 'other' does not name the project of "
        "'hello_pkg-1.0.tar.gz' ('hello-pkg')",
        "stray-1.0.tar.gz": "skipped: not <name>/<version>/<filename>, the layout of pypicloud's file storage",
    }
    assert outcomes["hello-pkg/1.0/notes.txt"].startswith("skipped: Invalid file extension in 'notes.txt'")
    assert [p.name for p in index.list_projects()] == ["hello-pkg"]


@pytest.mark.parametrize("meta", [b"not json", b"[1, 2]", b'{"uploader": "' + b"x" * 70_000 + b'"}'])
def test_a_broken_meta_is_ignored(index: PackageIndex, storage_dir: Path, meta: bytes) -> None:
    (storage_dir / (WHEEL + ".meta")).write_bytes(meta)
    assert import_all(index, read_pypicloud_local(storage_dir))[WHEEL] == "imported"
    assert files_of(index, "hello-pkg")["hello_pkg-1.0-py3-none-any.whl"].uploader is None


def test_hostile_meta_values_are_dropped(index: PackageIndex, storage_dir: Path) -> None:
    meta = {"uploader": "eve\x1b[31m", "summary": ["not", "text"]}
    (storage_dir / (SDIST + ".meta")).write_text(json.dumps(meta), encoding="ascii")
    import_all(index, read_pypicloud_local(storage_dir))
    sdist = files_of(index, "hello-pkg")["hello_pkg-1.0.tar.gz"]
    assert (sdist.uploader, sdist.summary) == (None, None)


def test_a_fifo_named_as_a_distribution_does_not_block(index: PackageIndex, storage_dir: Path) -> None:
    os.mkfifo(storage_dir / "hello-pkg" / "1.0" / "hello_pkg-1.0.zip")
    outcomes = import_all(index, read_pypicloud_local(storage_dir))
    assert outcomes["hello-pkg/1.0/hello_pkg-1.0.zip"] == "skipped: not a regular file"


def test_an_mtime_in_the_future_is_the_time_of_the_import(index: PackageIndex, storage_dir: Path) -> None:
    set_mtime(storage_dir / SDIST, datetime(2999, 1, 1, tzinfo=UTC))
    import_all(index, read_pypicloud_local(storage_dir))
    assert files_of(index, "hello-pkg")["hello_pkg-1.0.tar.gz"].upload_time < datetime(2999, 1, 1, tzinfo=UTC)
