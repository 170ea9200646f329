"""pypiserver's packages folder: flat uploads, nested folders, hidden dot paths and GPG signatures."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pypicloud_lite.errors import InvalidInput
from pypicloud_lite.importing.pypiserver import read_pypiserver
from pypicloud_lite.service import PackageIndex
from tests.support.distbuilder import build_sdist, build_wheel
from tests.support.peers import files_of, import_all, set_mtime, sha256

FLAT_TIME = datetime(2020, 5, 6, 7, 8, 9, tzinfo=UTC)
NESTED_TIME = datetime(2023, 10, 11, 12, 13, 14, tzinfo=UTC)


@pytest.fixture
def packages(tmp_path: Path) -> Path:
    """Uploads land flat in the first root under the client's filename; an admin may have sorted some into folders."""
    root = tmp_path / "packages"
    root.mkdir()
    dist = tmp_path / "dist"
    wheel = build_wheel(dist, "Hello.Pkg", "1.0", summary="Hello")
    shutil.copyfile(wheel, root / wheel.name)
    (root / (wheel.name + ".asc")).write_text("-----BEGIN PGP SIGNATURE-----\n", encoding="ascii")
    set_mtime(root / wheel.name, FLAT_TIME)
    nested = root / "team" / "other"
    nested.mkdir(parents=True)
    sdist = build_sdist(dist, "Other_Lib", "2.0rc1", fmt="zip")
    shutil.copyfile(sdist, nested / sdist.name)
    set_mtime(nested / sdist.name, NESTED_TIME)
    # pypiserver lists no dot path (is_listed_path): a hidden file and a hidden folder.
    shutil.copyfile(wheel, root / ".hello_pkg-0.9-py3-none-any.whl")
    (root / ".cache").mkdir()
    shutil.copyfile(sdist, root / ".cache" / sdist.name)
    (root / "README").write_text("our packages", encoding="utf-8")
    return root


def test_flat_and_nested_files_move_in(index: PackageIndex, packages: Path) -> None:
    assert import_all(index, read_pypiserver(packages), uploader="ops") == {
        ".cache": "skipped: a dot folder: hidden, not read",
        ".hello_pkg-0.9-py3-none-any.whl": "skipped: a dot file: hidden, or a temporary file of a write",
        "README": "skipped: Invalid file extension in 'README': use .whl, .tar.gz or .zip "
        "(see https://packaging.python.org/specifications/).",
        "hello_pkg-1.0-py3-none-any.whl": "imported",
        "hello_pkg-1.0-py3-none-any.whl.asc": "skipped: a GPG signature (.asc), not a distribution",
        "team/other/other_lib-2.0rc1.zip": "imported",
    }
    assert [(p.name, p.display_name) for p in index.list_projects()] == [
        ("hello-pkg", "Hello.Pkg"),
        ("other-lib", "Other-Lib"),
    ]
    hello = files_of(index, "hello-pkg")["hello_pkg-1.0-py3-none-any.whl"]
    other = files_of(index, "other-lib")["other_lib-2.0rc1.zip"]
    assert (hello.sha256, hello.upload_time, hello.uploader, hello.summary) == (
        sha256(packages / hello.filename),
        FLAT_TIME,
        "ops",
        "Hello",
    )
    assert (other.sha256, other.upload_time, other.version) == (
        sha256(packages / "team/other" / other.filename),
        NESTED_TIME,
        "2.0rc1",
    )


def test_a_second_import_changes_nothing(index: PackageIndex, packages: Path) -> None:
    import_all(index, read_pypiserver(packages))
    serial = index.serial()
    outcomes = import_all(index, read_pypiserver(packages))
    assert [s for s, o in outcomes.items() if o == "existing"] == [
        "hello_pkg-1.0-py3-none-any.whl",
        "team/other/other_lib-2.0rc1.zip",
    ]
    assert index.serial() == serial


def test_a_dry_run_imports_nothing(index: PackageIndex, packages: Path) -> None:
    outcomes = import_all(index, read_pypiserver(packages), dry_run=True)
    assert outcomes["hello_pkg-1.0-py3-none-any.whl"] == "would import"
    assert index.list_projects() == []


def test_a_file_the_index_refuses_is_reported_and_the_rest_go_on(index: PackageIndex, packages: Path) -> None:
    (packages / "broken-1.0.tar.gz").write_bytes(b"not a tarball")
    outcomes = import_all(index, read_pypiserver(packages))
    assert outcomes["broken-1.0.tar.gz"].startswith("failed: Invalid distribution file: broken-1.0.tar.gz")
    assert outcomes["team/other/other_lib-2.0rc1.zip"] == "imported"


def test_the_source_must_be_a_folder(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="not a folder"):
        list(read_pypiserver(tmp_path / "missing"))
