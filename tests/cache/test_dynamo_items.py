"""DynamoCache items: stored without `canonical_version`, a file joining a release being yanked, unnamed projects."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from pypicloud_lite.cache.dynamo import DynamoCache
from pypicloud_lite.cache.dynamo.tables import PROJECT_PARTITION
from pypicloud_lite.models import AddFile, FillDetails, FillMany, PackageFile, ReloadChanges, SetYanked
from tests.support.aws import Moto
from tests.support.cache import dynamo_cache


def _file(filename: str, version: str) -> PackageFile:
    return PackageFile(
        project="demo",
        filename=filename,
        version=version,
        packagetype="sdist",
        python_version="source",
        size=1,
        sha256="a" * 64,
        upload_time=datetime(2024, 1, 1, tzinfo=UTC),
    )


def test_items_without_a_canonical_version_are_read_and_yanked_by_release(moto: Moto) -> None:
    cache = dynamo_cache(moto)
    assert isinstance(cache, DynamoCache)
    cache.apply(AddFile(_file("demo-1.0.tar.gz", "1.0"), "demo"))
    cache.apply(AddFile(_file("demo-1.0.0.zip", "1.0.0"), "demo"))
    items = cache.t.file
    assert items.get("demo", "demo-1.0.0.zip").canonical_version == "1"
    # As an item written before the attribute existed: without it.
    items("demo", "demo-1.0.0.zip").update(actions=[items.canonical_version.remove()])
    assert items.get("demo", "demo-1.0.0.zip", consistent_read=True).canonical_version is None

    stored = cache.get_file("demo-1.0.0.zip")
    assert stored is not None
    assert stored.canonical_version == "1"
    assert cache.apply(SetYanked("demo", "1", True, "r")).count == 2
    assert {f.filename: f.yanked_reason for f in cache.project_files("demo")} == {
        "demo-1.0.tar.gz": "r",
        "demo-1.0.0.zip": "r",
    }


def test_a_file_joining_while_its_release_is_yanked_is_yanked_too(moto: Moto, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = dynamo_cache(moto)
    cache.apply(AddFile(_file("demo-1.0.tar.gz", "1.0"), "demo"))
    read = cache.project_files
    joined: list[bool] = []

    def read_then_upload(name: str) -> list[PackageFile]:
        files = read(name)
        if not joined:
            # An upload of the release lands just after the yank read it (and read it unyanked itself).
            joined.append(True)
            cache.apply(AddFile(_file("demo-1.0.0.zip", "1.0.0"), "demo"))
        return files

    monkeypatch.setattr(cache, "project_files", read_then_upload)
    assert cache.apply(SetYanked("demo", "1.0", True, "r")).count == 2
    monkeypatch.undo()
    assert {f.filename: f.yanked_reason for f in cache.project_files("demo")} == {
        "demo-1.0.tar.gz": "r",
        "demo-1.0.0.zip": "r",
    }


def test_a_project_a_reload_lists_has_no_name_until_a_change_names_it(moto: Moto) -> None:
    """The listing knows the normalized name only: the row reads as it, and the first named change names it."""
    cache = dynamo_cache(moto)
    assert isinstance(cache, DynamoCache)
    listed = replace(_file("foo_bar-1.0.tar.gz", "1.0"), project="foo-bar", sha256=None)
    cache.apply_reload(ReloadChanges(added=[listed]))
    assert cache.t.project.get(PROJECT_PARTITION, "foo-bar", consistent_read=True).display_name is None
    project = cache.get_project("foo-bar")
    assert project is not None and project.display_name == "foo-bar"

    cache.apply(AddFile(replace(_file("Foo.Bar-2.0.tar.gz", "2.0"), project="foo-bar"), "Foo.Bar"))
    cache.apply(AddFile(replace(_file("FOO_BAR-3.0.tar.gz", "3.0"), project="foo-bar"), "FOO_BAR"))
    assert [(p.name, p.display_name) for p in cache.list_projects()] == [("foo-bar", "Foo.Bar")]


def test_projects_beyond_one_transaction_are_stamped_in_transactions_never_lowering_a_serial(moto: Moto) -> None:
    cache = dynamo_cache(moto)
    assert isinstance(cache, DynamoCache)
    names = [f"p{n:03d}" for n in range(250)]
    listed = [replace(_file(f"{name}-1.0.tar.gz", "1.0"), project=name, sha256=None) for name in names]
    cache.apply_reload(ReloadChanges(added=listed))
    serial = cache.serial()
    assert {p.serial for p in cache.list_projects()} == {serial}
    # One project beyond the first transaction has moved on meanwhile (as if a later change had stamped it).
    projects = cache.t.project
    projects(PROJECT_PARTITION, "p200").update(actions=[projects.serial.set(serial + 100)])

    filled = [FillDetails(replace(f, sha256="b" * 64), display_name=f.project.upper()) for f in listed]
    assert cache.apply(FillMany(filled)).count == 250
    stamped = {p.name: (p.serial, p.display_name) for p in cache.list_projects()}
    assert stamped.pop("p200") == (serial + 100, "P200")  # its serial as the later change left it, named
    assert stamped == {name: (serial + 1, name.upper()) for name in names if name != "p200"}
