"""devpi-export: the real export in tests/data (devpi-server 6.20.3), and hostile changes to a copy of it."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from pypicloud_lite.errors import InvalidInput
from pypicloud_lite.importing import devpi
from pypicloud_lite.importing.devpi import read_devpi_export
from pypicloud_lite.service import PackageIndex
from tests.support.distbuilder import build_wheel
from tests.support.peers import DEVPI_EXPORT, copy_devpi_export, files_of, import_all, sha256

WHEEL = "alice/dev/hello-pkg/1.0/hello_pkg-1.0-py3-none-any.whl"
SDIST = "alice/dev/hello-pkg/1.0/hello_pkg-1.0.tar.gz"
DOCZIP = "alice/dev/hello-pkg-1.0.doc.zip"
# entrymapping.last_modified of both files: "Sat, 05 Dec 2026 17:18:53 GMT".
UPLOADED = datetime(2026, 12, 5, 17, 18, 53, tzinfo=UTC)


def dataindex(root: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((root / "dataindex.json").read_text(encoding="utf-8"))
    return data


def rewrite(root: Path, data: dict[str, Any]) -> None:
    (root / "dataindex.json").write_text(json.dumps(data, indent=2), encoding="utf-8")


def entries(data: dict[str, Any], index: str = "alice/dev") -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = data["indexes"][index]["files"]
    return found


def test_the_real_export_moves_in(index: PackageIndex) -> None:
    outcomes = import_all(index, read_devpi_export(DEVPI_EXPORT))
    assert outcomes == {
        WHEEL: "imported",
        SDIST: "imported",
        DOCZIP: "skipped: a devpi documentation zip, not a distribution",
    }
    assert [(p.name, p.display_name) for p in index.list_projects()] == [("hello-pkg", "hello.pkg")]
    files = files_of(index, "hello-pkg")
    assert sorted(files) == ["hello_pkg-1.0-py3-none-any.whl", "hello_pkg-1.0.tar.gz"]
    for relpath in (WHEEL, SDIST):
        file = files[Path(relpath).name]
        assert file.sha256 == sha256(DEVPI_EXPORT / relpath)
        assert (file.upload_time, file.uploader, file.summary, file.version) == (
            UPLOADED,
            "alice",
            "Café greeter",
            "1.0",
        )
    # The hashes devpi recorded are the ones the index computed.
    recorded = {
        Path(e["relpath"]).name: e["entrymapping"]["hashes"]["sha256"] for e in entries(dataindex(DEVPI_EXPORT))
    }
    assert {name: f.sha256 for name, f in files.items()} == {k: v for k, v in recorded.items() if k in files}


def test_a_second_import_changes_nothing(index: PackageIndex) -> None:
    import_all(index, read_devpi_export(DEVPI_EXPORT))
    serial = index.serial()
    before = files_of(index, "hello-pkg")
    assert import_all(index, read_devpi_export(DEVPI_EXPORT))[WHEEL] == "existing"
    assert import_all(index, read_devpi_export(DEVPI_EXPORT))[SDIST] == "existing"
    assert files_of(index, "hello-pkg") == before
    assert index.serial() == serial


def test_without_last_modified_the_upload_log_gives_the_time(index: PackageIndex, tmp_path: Path) -> None:
    root = copy_devpi_export(tmp_path / "export")
    data = dataindex(root)
    del entries(data)[0]["entrymapping"]["last_modified"]
    entries(data)[0]["log"][0]["when"] = [2024, 2, 29, 23, 59, 1]
    entries(data)[1]["entrymapping"]["last_modified"] = "not a date"
    del entries(data)[1]["log"]
    rewrite(root, data)
    import_all(index, read_devpi_export(root))
    files = files_of(index, "hello-pkg")
    assert files["hello_pkg-1.0-py3-none-any.whl"].upload_time == datetime(2024, 2, 29, 23, 59, 1, tzinfo=UTC)
    assert files["hello_pkg-1.0.tar.gz"].upload_time > UPLOADED  # nothing recorded: the time of the import
    assert files["hello_pkg-1.0.tar.gz"].uploader is None


def test_a_reused_filename_with_other_bytes_is_reported_and_the_rest_imported(
    index: PackageIndex, tmp_path: Path
) -> None:
    other = build_wheel(tmp_path / "other", "hello.pkg", "1.0", summary="Not the same")
    with other.open("rb") as fh:
        index.import_file(other.name, fh, upload_time=None, uploader="bob", display_name=None, summary=None)
    outcomes = import_all(index, read_devpi_export(DEVPI_EXPORT))
    assert outcomes[WHEEL].startswith("failed: File already exists")
    assert outcomes[SDIST] == "imported"
    assert files_of(index, "hello-pkg")[other.name].sha256 == sha256(other)


@pytest.mark.parametrize(
    ("relpath", "reason"),
    [
        ("alice/dev/../../../../etc/hello_pkg-1.0.tar.gz", "not alice/dev/<project>/<version>/<filename>"),
        ("alice/dev/../../hello_pkg-1.0.tar.gz", "not alice/dev/<project>/<version>/<filename>"),
        ("/alice/dev/hello-pkg/hello_pkg-1.0.tar.gz", "not alice/dev/<project>/<version>/<filename>"),
        ("bob/dev/hello-pkg/1.0/hello_pkg-1.0.tar.gz", "not alice/dev/<project>/<version>/<filename>"),
        ("alice/dev/hello-pkg/1.0/hello_pkg-1.0.exe", "Invalid file extension"),
        ("alice/dev/hello-pkg/1.0/other-1.0.tar.gz", "its entry names project 'hello-pkg', its filename 'other'"),
        ("alice/dev/hello-pkg/1.1/hello_pkg-1.1.tar.gz", "listed in dataindex.json but missing from the export"),
    ],
)
def test_hostile_entries_are_skipped_with_the_reason(
    index: PackageIndex, tmp_path: Path, relpath: str, reason: str
) -> None:
    root = copy_devpi_export(tmp_path / "export")
    data = dataindex(root)
    entries(data)[1]["relpath"] = relpath
    rewrite(root, data)
    outcomes = import_all(index, read_devpi_export(root))
    assert reason in outcomes[relpath]
    assert outcomes[relpath].startswith("skipped: ")
    assert outcomes[WHEEL] == "imported"


def test_a_symbolic_link_out_of_the_export_is_skipped(index: PackageIndex, tmp_path: Path) -> None:
    root = copy_devpi_export(tmp_path / "export")
    outside = tmp_path / "outside.tar.gz"
    (root / SDIST).rename(outside)
    (root / SDIST).symlink_to(outside)
    assert (
        import_all(index, read_devpi_export(root))[SDIST] == "skipped: leads out of the export folder (a symbolic link)"
    )


def test_entries_that_are_not_file_records_are_skipped(index: PackageIndex, tmp_path: Path) -> None:
    root = copy_devpi_export(tmp_path / "export")
    data = dataindex(root)
    entries(data).extend(["junk", {"relpath": 7}])
    entries(data)[0]["entrymapping"] = "junk"
    entries(data)[0]["log"] = {"what": "upload"}
    data["indexes"]["alice/dev"]["projects"]["hello-pkg"]["1.0"] = ["junk"]
    rewrite(root, data)
    outcomes = import_all(index, read_devpi_export(root))
    assert outcomes["alice/dev files[3]"] == "skipped: not a file entry with a relpath"
    assert outcomes["alice/dev files[4]"] == "skipped: not a file entry with a relpath"
    assert outcomes[WHEEL] == "imported"
    assert files_of(index, "hello-pkg")["hello_pkg-1.0-py3-none-any.whl"].uploader is None


def add_index(data: dict[str, Any], name: str, files: list[dict[str, Any]]) -> None:
    data["indexes"][name] = {"indexconfig": {"type": "stage", "bases": []}, "projects": {}, "files": files}


def test_several_indexes_with_one_project_need_a_choice(index: PackageIndex, tmp_path: Path) -> None:
    root = copy_devpi_export(tmp_path / "export")
    data = dataindex(root)
    pushed = json.loads(json.dumps(entries(data)[:1]))
    pushed[0]["relpath"] = WHEEL.replace("alice/dev", "bob/prod")
    add_index(data, "bob/prod", pushed)
    rewrite(root, data)
    with pytest.raises(InvalidInput) as exc:
        import_all(index, read_devpi_export(root))
    assert exc.value.message == (
        "indexes alice/dev and bob/prod both hold project 'hello-pkg': choose one with --index "
        "(the export has: alice/dev (3 files), bob/prod (1 files), root/pypi (0 files))"
    )
    assert index.list_projects() == []
    assert import_all(index, read_devpi_export(root, "alice/dev"))[WHEEL] == "imported"
    with pytest.raises(InvalidInput, match="no index 'carol/dev' in this export; it has: alice/dev"):
        import_all(index, read_devpi_export(root, "carol/dev"))


def test_indexes_with_other_projects_are_all_imported_mirrors_left_out(index: PackageIndex, tmp_path: Path) -> None:
    root = copy_devpi_export(tmp_path / "export")
    data = dataindex(root)
    wheel = build_wheel(root / "bob/prod/other/2.0", "other", "2.0")
    record = {"relpath": "bob/prod/other/2.0/" + wheel.name, "type": "releasefile", "projectname": "other"}
    add_index(data, "bob/prod", [record])
    mirrored = {**record, "relpath": "root/pypi/other/2.0/" + wheel.name}
    data["indexes"]["root/pypi"].update(projects={}, files=[mirrored])
    rewrite(root, data)
    outcomes = import_all(index, read_devpi_export(root))
    assert set(outcomes) == {WHEEL, SDIST, DOCZIP, record["relpath"]}
    assert [p.name for p in index.list_projects()] == ["hello-pkg", "other"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"indexes": {}, "dumpversion": "9"}', "dumpversion '9' is not one this import reads"),
        ('{"users": {}}', "not a devpi export (no indexes)"),
        ("[" * 100_000, "not JSON"),
        ('{"indexes": {"alice/dev": {"indexconfig": {}}}, "dumpversion": "2"}', "no index of this export holds"),
    ],
)
def test_a_dataindex_that_is_not_an_export(index: PackageIndex, tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / "dataindex.json").write_text(content, encoding="utf-8")
    with pytest.raises(InvalidInput, match=re.escape(message)):
        list(read_devpi_export(tmp_path))


def test_the_dataindex_is_read_within_a_bound(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = copy_devpi_export(tmp_path / "export")
    monkeypatch.setattr(devpi, "DATAINDEX_MAX_BYTES", 1000)
    with pytest.raises(InvalidInput, match="larger than 1000 bytes, not read"):
        list(read_devpi_export(root))
