"""PackageIndex.import_file: a file moved in from another index keeps its upload time, uploader and name."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pypicloud_lite.errors import FileExists, FilenameReused, InvalidUpload
from pypicloud_lite.models import utcnow
from pypicloud_lite.service import PackageIndex, UploadResult
from tests.support.distbuilder import build_sdist, build_wheel
from tests.support.peers import local_index, sha256

WHEN = datetime(2021, 3, 4, 5, 6, 7, tzinfo=UTC)


@pytest.fixture
def index(tmp_path: Path) -> Iterator[PackageIndex]:
    with local_index(tmp_path) as opened:
        yield opened


def import_path(
    index: PackageIndex,
    path: Path,
    *,
    upload_time: datetime | None = WHEN,
    uploader: str | None = "carol",
    display_name: str | None = None,
    summary: str | None = None,
) -> UploadResult:
    with path.open("rb") as fh:
        return index.import_file(
            path.name, fh, upload_time=upload_time, uploader=uploader, display_name=display_name, summary=summary
        )


def test_an_imported_file_keeps_its_time_uploader_and_display_name(index: PackageIndex, tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path / "d", "hello.pkg", "1.0", summary="Hi")
    result = import_path(index, wheel, display_name="Hello.Pkg")
    assert result.created
    project = index.get_project("hello-pkg")
    assert project.display_name == "Hello.Pkg"
    file = index.get_file("hello-pkg", wheel.name)
    assert (file.upload_time, file.uploader, file.sha256, file.summary) == (WHEN, "carol", sha256(wheel), "Hi")
    assert file.metadata_sha256 is not None
    assert index.read_metadata(file).startswith(b"Metadata-Version")


def test_without_a_display_name_the_metadata_names_the_project(index: PackageIndex, tmp_path: Path) -> None:
    import_path(index, build_wheel(tmp_path / "d", "hello.pkg", "1.0"))
    assert index.get_project("hello-pkg").display_name == "hello.pkg"


def test_a_display_name_of_another_project_is_ignored(index: PackageIndex, tmp_path: Path) -> None:
    import_path(index, build_wheel(tmp_path / "d", "hello.pkg", "1.0"), display_name="other")
    assert index.get_project("hello-pkg").display_name == "hello.pkg"


def test_no_time_is_now_and_a_future_time_is_now(index: PackageIndex, tmp_path: Path) -> None:
    before = utcnow()
    import_path(index, build_wheel(tmp_path / "d", "demo", "1.0"), upload_time=None)
    import_path(index, build_sdist(tmp_path / "d", "demo", "1.0"), upload_time=utcnow() + timedelta(days=400))
    after = utcnow()
    assert all(before <= f.upload_time <= after for f in index.project_files(index.get_project("demo")))


def test_the_summary_fills_in_only_what_the_metadata_lacks(index: PackageIndex, tmp_path: Path) -> None:
    import_path(index, build_wheel(tmp_path / "d", "demo", "1.0", summary="Own"), summary="Peer")
    import_path(index, build_sdist(tmp_path / "d", "demo", "1.0", summary=None), summary="Peer")
    summaries = {f.packagetype: f.summary for f in index.project_files(index.get_project("demo"))}
    assert summaries == {"bdist_wheel": "Own", "sdist": "Peer"}


def test_a_second_import_changes_nothing(index: PackageIndex, tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path / "d", "demo", "1.0")
    first = import_path(index, wheel)
    serial = index.serial()
    again = import_path(index, wheel, upload_time=WHEN + timedelta(days=1), uploader="mallory")
    assert not again.created
    assert again.file == first.file
    assert index.serial() == serial


def test_other_bytes_under_an_imported_filename_are_refused(index: PackageIndex, tmp_path: Path) -> None:
    import_path(index, build_wheel(tmp_path / "a", "demo", "1.0", summary="A"))
    with pytest.raises(FileExists):
        import_path(index, build_wheel(tmp_path / "b", "demo", "1.0", summary="B"))


def test_a_deleted_filename_is_not_imported_with_other_bytes(index: PackageIndex, tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path / "a", "demo", "1.0", summary="A")
    import_path(index, wheel)
    index.delete_file("demo", wheel.name)
    with pytest.raises(FilenameReused):
        import_path(index, build_wheel(tmp_path / "b", "demo", "1.0", summary="B"))


def test_import_checks_the_file_as_an_upload_does(index: PackageIndex, tmp_path: Path) -> None:
    with pytest.raises(InvalidUpload, match="Invalid file extension"):
        index.import_file(
            "demo-1.0.exe", io.BytesIO(b"x"), upload_time=WHEN, uploader=None, display_name=None, summary=None
        )
    with pytest.raises(InvalidUpload):
        index.import_file(
            "demo-1.0-py3-none-any.whl",
            io.BytesIO(b"not a zip"),
            upload_time=WHEN,
            uploader=None,
            display_name=None,
            summary=None,
        )
    assert index.list_projects() == []


def test_a_closed_project_takes_no_imports(index: PackageIndex, tmp_path: Path) -> None:
    import_path(index, build_wheel(tmp_path / "d", "demo", "1.0"))
    index.set_status("demo", "archived")
    with pytest.raises(InvalidUpload, match="archived"):
        import_path(index, build_sdist(tmp_path / "d", "demo", "1.0"))
