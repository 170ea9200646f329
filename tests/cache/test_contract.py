"""The Cache contract: every cache backend must pass these (SQLCache on SQLite, PostgreSQL, MariaDB; DynamoCache)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import create_engine, delete, update

from pypicloud_lite.cache.base import Cache
from pypicloud_lite.cache.sql import SQLCache
from pypicloud_lite.db.tables import DownloadCountRow, FileRow, IndexStateRow, ProjectRow
from pypicloud_lite.errors import BackendUnavailable
from pypicloud_lite.models import (
    AddFile,
    Applied,
    CoreMetadata,
    FillDetails,
    FillMany,
    HeldLease,
    PackageFile,
    ReloadChanges,
    RemoveFile,
    ReplaceFile,
    SetStatus,
    SetYanked,
)
from pypicloud_lite.naming import normalize
from tests.support.aws import Moto
from tests.support.cache import SQL_BACKENDS, cache_settings, dynamo_cache, fresh_database, statements_on

# A new backend is one more entry here and one more branch in the `cache` fixture.
CACHE_BACKENDS = [*(f"sql-{name}" for name in SQL_BACKENDS), "dynamo"]

UPLOADED = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)


@pytest.fixture(scope="module", params=CACHE_BACKENDS)
def cache_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One throw-away database per backend for this module; each test starts from it emptied."""
    kind, _, flavour = request.param.partition("-")
    if kind == "dynamo":
        yield "dynamo"
        return
    with fresh_database(flavour, tmp_path_factory.mktemp(flavour)) as url:
        yield url


@pytest.fixture
def cache(cache_url: str, request: pytest.FixtureRequest) -> Iterator[Cache]:
    if cache_url == "dynamo":
        # Fresh tables (a new prefix) on the shared moto server for every test.
        moto: Moto = request.getfixturevalue("moto")
        yield dynamo_cache(moto)
        return
    built = SQLCache.from_settings(cache_settings(cache_url, migrate_on_start=True))
    try:
        yield built
    finally:
        built.close()
        _empty(cache_url)


def _empty(url: str) -> None:
    """Back to the state `upgrade head` leaves: no projects, no files, serial 0."""
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(delete(FileRow))
            conn.execute(delete(ProjectRow))
            conn.execute(delete(DownloadCountRow))
            conn.execute(update(IndexStateRow).values(serial=0))
    finally:
        engine.dispose()


def make_file(
    filename: str = "demo-1.0-py3-none-any.whl",
    project: str = "demo",
    version: str = "1.0",
    **changes: Any,
) -> PackageFile:
    wheel = filename.endswith(".whl")
    fields: dict[str, Any] = {
        "project": project,
        "filename": filename,
        "version": version,
        "packagetype": "bdist_wheel" if wheel else "sdist",
        "python_version": "py3" if wheel else "source",
        "size": 1234,
        "sha256": "a" * 64,
        "md5": "b" * 32,
        "blake2_256": "c" * 64,
        "upload_time": UPLOADED,
        "requires_python": ">=3.9",
        "summary": "A demo",
        "metadata_sha256": "d" * 64 if wheel else None,
        "uploader": "alice",
    }
    fields.update(changes)
    return PackageFile(**fields)


def test_an_empty_cache_has_nothing_and_serial_zero(cache: Cache) -> None:
    assert cache.serial() == 0
    assert cache.list_projects() == []
    assert cache.get_file("demo-1.0-py3-none-any.whl") is None
    assert cache.get_project("demo") is None
    assert cache.project_files("demo") == []
    cache.check_health()


def test_add_file_adds_once_then_returns_the_existing_row(cache: Cache) -> None:
    first = make_file()
    applied = cache.apply(AddFile(first, "Demo"))
    stored, created = applied.file, applied.changed
    assert created is True
    assert stored == first
    serial = cache.serial()

    other_bytes = replace(first, sha256="f" * 64, size=99, uploader="mallory")
    applied = cache.apply(AddFile(other_bytes, "Demo"))
    again, created_again = applied.file, applied.changed
    assert created_again is False
    assert again == first
    assert again.sha256 == "a" * 64
    assert cache.get_file(first.filename) == first
    assert cache.serial() == serial


def test_a_file_lease_is_taken_with_the_row_and_ended_by_the_add_that_indexes_it(cache: Cache) -> None:
    file = make_file()
    lease = HeldLease("file:demo", "holder-a")
    assert cache.lease_file(lease, 60, file.filename, file.project) == (True, None, None)
    assert cache.lease_file(HeldLease("file:demo", "holder-b"), 60, file.filename, "demo") == (False, None, None)
    assert cache.lock_state("file:demo")[0] is True

    assert cache.apply(AddFile(file, "Demo", lease)).changed is True
    assert cache.lock_state("file:demo")[0] is False
    # The next holder reads the row under its lease; an add of the existing row ends that lease too.
    again = HeldLease("file:demo", "holder-b")
    # With the project's row when asked for (an upload checks its uploader's permission by it).
    taken = cache.lease_file(again, 60, file.filename, file.project)
    assert (taken.taken, taken.file) == (True, file)
    assert taken.project is not None and taken.project.display_name == "Demo"
    assert cache.apply(AddFile(file, "Demo", again)).changed is False
    assert cache.lock_state("file:demo")[0] is False


def test_get_file_round_trips_every_field(cache: Cache) -> None:
    file = make_file(
        "Demo_Pkg-2.0rc1+cpu.tar.gz",
        project="demo-pkg",
        version="2.0rc1+cpu",
        size=2**40,
        md5=None,
        blake2_256=None,
        requires_python=None,
        summary="Ünïcödé ☃ summary",
        yanked=True,
        yanked_reason="broken build",
        uploader=None,
    )
    cache.apply(AddFile(file, "Demo_Pkg"))
    got = cache.get_file(file.filename)
    assert got == file
    assert got is not None
    assert got.summary == "Ünïcödé ☃ summary"
    assert got.size == 2**40


def test_filenames_are_exact_keys(cache: Cache) -> None:
    # Storage keys are case-sensitive (S3, POSIX folders), so the cache's must be too.
    cache.apply(AddFile(make_file("Demo-1.0.tar.gz"), "Demo"))
    assert cache.get_file("demo-1.0.tar.gz") is None
    assert cache.get_file("DEMO-1.0.TAR.GZ") is None
    applied = cache.apply(AddFile(make_file("demo-1.0.tar.gz", sha256="e" * 64), "Demo"))
    stored, created = applied.file, applied.changed
    assert created is True
    assert stored.filename == "demo-1.0.tar.gz"
    assert [f.filename for f in cache.project_files("demo")] == ["Demo-1.0.tar.gz", "demo-1.0.tar.gz"]


def test_core_metadata_round_trips(cache: Cache) -> None:
    metadata = CoreMetadata(
        metadata_version="2.4",
        name="Demo",
        version="1.0",
        summary="Ünïcödé ☃",
        requires_python=">=3.11",
        requires_dist=("requests>=2", 'tomli; python_version < "3.11"'),
        author="Zoë",
        author_email="zoe@example.invalid",
        license="MIT",
        home_page="https://example.invalid/",
        project_urls=(("Homepage", "https://example.invalid/"), ("Issues", "https://example.invalid/issues")),
        classifiers=("Programming Language :: Python :: 3",),
    )
    cache.apply(AddFile(make_file(core_metadata=metadata), "Demo"))
    got = cache.get_file("demo-1.0-py3-none-any.whl")
    assert got is not None
    assert got.core_metadata == metadata
    assert cache.project_files("demo")[0].core_metadata == metadata
    cache.apply(AddFile(make_file("demo-1.0.tar.gz"), "Demo"))
    without = cache.get_file("demo-1.0.tar.gz")
    assert without is not None
    assert without.core_metadata is None


def test_upload_time_is_timezone_aware_and_round_trips(cache: Cache) -> None:
    plus_two = timezone(timedelta(hours=2))
    when = datetime(2024, 2, 29, 23, 59, 58, 123456, tzinfo=plus_two)
    applied = cache.apply(AddFile(make_file(upload_time=when), "Demo"))
    stored, _ = applied.file, applied.changed
    got = cache.get_file(stored.filename)
    assert got is not None
    assert got.upload_time.tzinfo is not None
    assert got.upload_time.utcoffset() == timedelta(0)
    assert got.upload_time == when
    assert got.upload_time == stored.upload_time
    assert cache.project_files("demo")[0].upload_time == when


def test_list_projects_is_ordered_by_normalized_name(cache: Cache) -> None:
    for display in ("Zeta", "alpha", "Mid.Dle", "alpha-beta"):
        name = normalize(display)
        cache.apply(AddFile(make_file(f"{name.replace('-', '_')}-1.0.tar.gz", project=name), display))
    projects = cache.list_projects()
    assert [p.name for p in projects] == ["alpha", "alpha-beta", "mid-dle", "zeta"]
    assert [p.display_name for p in projects] == ["alpha", "alpha-beta", "Mid.Dle", "Zeta"]


def test_project_files_lists_one_project_ordered_by_filename(cache: Cache) -> None:
    names = ["demo-2.0.tar.gz", "demo-1.0-py3-none-any.whl", "demo-1.0.tar.gz"]
    for filename in names:
        cache.apply(AddFile(make_file(filename, version=filename.split("-")[1].removesuffix(".tar.gz")), "demo"))
    cache.apply(AddFile(make_file("demox-1.0.tar.gz", project="demox"), "demox"))
    assert [f.filename for f in cache.project_files("demo")] == sorted(names)
    assert [f.filename for f in cache.project_files("demox")] == ["demox-1.0.tar.gz"]
    assert cache.project_files("nothing") == []


def test_display_name_is_kept_from_the_first_upload(cache: Cache) -> None:
    cache.apply(AddFile(make_file("Demo_Pkg-1.0.tar.gz", project="demo-pkg"), "Demo_Pkg"))
    cache.apply(AddFile(make_file("demo.pkg-2.0.tar.gz", project="demo-pkg", version="2.0"), "demo.pkg"))
    project = cache.get_project("demo-pkg")
    assert project is not None
    assert project.name == "demo-pkg"
    assert project.display_name == "Demo_Pkg"


def test_the_first_named_upload_names_a_project_a_reload_listed_and_no_later_one_renames_it(cache: Cache) -> None:
    # The listing knows the normalized name only; the first change that knows the name (an upload, whose name
    # storage recorded with it) names the project, as the fill does.
    cache.apply_reload(ReloadChanges(added=[make_file("foo_bar-1.0.tar.gz", project="foo-bar", sha256=None)]))
    assert [(p.name, p.display_name) for p in cache.list_projects()] == [("foo-bar", "foo-bar")]
    cache.apply(AddFile(make_file("Foo.Bar-2.0.tar.gz", project="foo-bar", version="2.0"), "Foo.Bar"))
    cache.apply(AddFile(make_file("FOO_BAR-3.0.tar.gz", project="foo-bar", version="3.0"), "FOO_BAR"))
    # A name that differs from the normalized one only in case is a name too (MySQL's collation would say equal).
    cache.apply(AddFile(make_file("Demo-1.0.tar.gz"), "Demo"))
    cache.apply(AddFile(make_file("DEMO-2.0.tar.gz", version="2.0"), "DEMO"))
    assert [(p.name, p.display_name) for p in cache.list_projects()] == [("demo", "Demo"), ("foo-bar", "Foo.Bar")]


def test_set_yanked_applies_to_one_release_with_its_reason(cache: Cache) -> None:
    cache.apply(AddFile(make_file(), "Demo"))
    cache.apply(AddFile(make_file("demo-1.0.tar.gz"), "Demo"))
    cache.apply(AddFile(make_file("demo-2.0.tar.gz", version="2.0"), "Demo"))
    cache.apply(AddFile(make_file("other-1.0.tar.gz", project="other"), "other"))

    assert cache.apply(SetYanked("demo", "1.0", True, "broken on 3.12")).count == 2
    by_name = {f.filename: f for f in cache.project_files("demo")}
    assert by_name["demo-1.0-py3-none-any.whl"].yanked is True
    assert by_name["demo-1.0.tar.gz"].yanked is True
    assert by_name["demo-1.0.tar.gz"].yanked_reason == "broken on 3.12"
    assert by_name["demo-2.0.tar.gz"].yanked is False
    assert by_name["demo-2.0.tar.gz"].yanked_reason is None
    other = cache.get_file("other-1.0.tar.gz")
    assert other is not None
    assert other.yanked is False

    assert cache.apply(SetYanked("demo", "1.0", False, "ignored when unyanking")).count == 2
    for file in cache.project_files("demo"):
        assert file.yanked is False
        assert file.yanked_reason is None


def test_set_yanked_applies_to_every_spelling_of_the_release(cache: Cache) -> None:
    # PEP 440: 1.0, 1.0.0 and 1.0.0.0 are one release, whatever spelling names it.
    cache.apply(AddFile(make_file(), "Demo"))
    cache.apply(AddFile(make_file("demo-1.0.0.tar.gz", version="1.0.0"), "Demo"))
    cache.apply(AddFile(make_file("demo-1.0.0.0-py2-none-any.whl", version="1.0.0.0"), "Demo"))
    cache.apply(AddFile(make_file("demo-1.0.1.tar.gz", version="1.0.1"), "Demo"))
    release = {"demo-1.0-py3-none-any.whl", "demo-1.0.0.tar.gz", "demo-1.0.0.0-py2-none-any.whl"}

    applied = cache.apply(SetYanked("demo", "1.0.0", True, "broken"))
    assert applied.count == 3
    assert {f.filename: f.yanked_reason for f in cache.project_files("demo") if f.yanked} == dict.fromkeys(
        release, "broken"
    )
    assert cache.apply(SetYanked("demo", "1", True, "broken")).changed is False
    assert cache.apply(SetYanked("demo", "1.0.0.0", False)).count == 3
    assert [f.filename for f in cache.project_files("demo") if f.yanked] == []


def test_files_know_their_release(cache: Cache) -> None:
    cache.apply(AddFile(make_file("demo-1.0.0-py3-none-any.whl", version="1.0.0"), "Demo"))
    cache.apply(AddFile(make_file("demo-1.0.0+local.tar.gz", version="1.0.0+local"), "Demo"))
    by_name = {f.filename: f for f in cache.project_files("demo")}
    assert by_name["demo-1.0.0-py3-none-any.whl"].version == "1.0.0"
    assert by_name["demo-1.0.0-py3-none-any.whl"].canonical_version == "1"
    assert by_name["demo-1.0.0+local.tar.gz"].canonical_version == "1+local"


def test_a_file_added_to_a_yanked_release_is_yanked_with_its_reason(cache: Cache) -> None:
    cache.apply(AddFile(make_file(), "Demo"))
    cache.apply(SetYanked("demo", "1.0", True, "broken"))
    applied = cache.apply(AddFile(make_file("demo-1.0.0.tar.gz", version="1.0.0"), "Demo"))
    assert applied.file is not None
    assert (applied.file.yanked, applied.file.yanked_reason) == (True, "broken")
    stored = cache.get_file("demo-1.0.0.tar.gz")
    assert stored is not None
    assert (stored.yanked, stored.yanked_reason) == (True, "broken")
    other = cache.apply(AddFile(make_file("demo-1.0.1.tar.gz", version="1.0.1"), "Demo")).file
    assert other is not None
    assert other.yanked is False
    # A release of which some files stay available is not yanked: a new file of it is not either.
    cache.apply(AddFile(make_file("demo-2.0.tar.gz", version="2.0"), "Demo"))
    cache.apply(AddFile(make_file("demo-2.0-py3-none-any.whl", version="2.0", yanked=True), "Demo"))
    joined = cache.apply(AddFile(make_file("demo-2.0.0-py2-none-any.whl", version="2.0.0"), "Demo")).file
    assert joined is not None
    assert joined.yanked is False


def test_a_file_a_reload_finds_in_a_yanked_release_is_yanked(cache: Cache) -> None:
    cache.apply(AddFile(make_file(), "Demo"))
    cache.apply(SetYanked("demo", "1.0", True, "broken"))
    found = [make_file("demo-1.0.0.tar.gz", version="1.0.0"), make_file("demo-2.0.tar.gz", version="2.0")]
    cache.apply_reload(ReloadChanges(added=found))
    states = {f.filename: (f.yanked, f.yanked_reason) for f in cache.project_files("demo")}
    assert states == {
        "demo-1.0-py3-none-any.whl": (True, "broken"),
        "demo-1.0.0.tar.gz": (True, "broken"),
        "demo-2.0.tar.gz": (False, None),
    }


def test_set_yanked_without_a_reason(cache: Cache) -> None:
    cache.apply(AddFile(make_file(), "Demo"))
    assert cache.apply(SetYanked("demo", "1.0", True, None)).count == 1
    got = cache.get_file("demo-1.0-py3-none-any.whl")
    assert got is not None
    assert got.yanked is True
    assert got.yanked_reason is None


def test_set_yanked_of_an_unknown_release_changes_nothing(cache: Cache) -> None:
    cache.apply(AddFile(make_file(), "Demo"))
    serial = cache.serial()
    assert cache.apply(SetYanked("demo", "9.9", True, "nope")).count == 0
    assert cache.apply(SetYanked("nothing", "1.0", True, "nope")).count == 0
    assert cache.serial() == serial


def test_serial_bumps_on_every_change_and_only_then(cache: Cache) -> None:
    assert cache.serial() == 0

    cache.apply(AddFile(make_file(), "Demo"))
    assert cache.serial() == 1
    demo = cache.get_project("demo")
    assert demo is not None
    assert demo.serial == 1

    cache.apply(AddFile(make_file("other-1.0.tar.gz", project="other"), "other"))
    assert cache.serial() == 2
    other = cache.get_project("other")
    demo = cache.get_project("demo")
    assert other is not None
    assert demo is not None
    assert other.serial == 2
    assert demo.serial == 1  # another project's change leaves this one's serial alone

    cache.apply(AddFile(make_file(), "Demo"))  # identical add: nothing written
    assert cache.serial() == 2
    assert cache.apply(RemoveFile("absent-1.0.tar.gz")).changed is False  # no-op delete
    assert cache.serial() == 2

    cache.apply(SetYanked("demo", "1.0", True, "bad"))
    assert cache.serial() == 3
    assert cache.get_project("demo") == replace(demo, serial=3)

    cache.apply(SetYanked("demo", "1.0", False, None))
    assert cache.serial() == 4

    cache.apply(AddFile(make_file("demo-1.0.tar.gz"), "Demo"))
    assert cache.serial() == 5
    cache.apply(RemoveFile("demo-1.0-py3-none-any.whl"))
    assert cache.serial() == 6
    demo = cache.get_project("demo")
    assert demo is not None
    assert demo.serial == 6
    other = cache.get_project("other")
    assert other is not None
    assert other.serial == 2


def test_the_projects_changed_since_a_serial_come_with_the_count_of_every_project(cache: Cache) -> None:
    cache.apply(AddFile(make_file(), "Demo"))
    cache.apply(AddFile(make_file("other-1.0.tar.gz", project="other"), "other"))
    serial = cache.serial()
    cache.apply(AddFile(make_file("demo-1.0.tar.gz"), "Demo"))
    answer = cache.projects_changed_since(serial)
    if not isinstance(cache, SQLCache):
        assert answer is None  # DynamoDB: a Query of the projects' partition costs what a listing does
        return
    assert answer is not None
    changed, total = answer
    assert ([(p.name, p.display_name, p.serial) for p in changed], total) == ([("demo", "Demo", serial + 1)], 2)
    assert cache.projects_changed_since(cache.serial()) == ([], 2)
    everything, total = cache.projects_changed_since(0) or ([], 0)
    assert (sorted(everything, key=lambda p: p.name), total) == (cache.list_projects(), 2)


def test_listeners_hear_each_committed_change_once_with_its_serial(cache: Cache) -> None:
    heard: list[Applied] = []
    cache.subscribe(heard.append)
    cache.apply(AddFile(make_file(), "Demo"))
    cache.apply(AddFile(make_file(), "Demo"))  # identical: nothing changes, nobody hears of it
    cache.apply(RemoveFile("absent-1.0.tar.gz"))
    cache.apply(SetYanked("demo", "1.0", True, "bad"))
    cache.apply(SetYanked("demo", "1.0", True, "bad"))  # already so
    cache.apply(SetStatus("demo", "deprecated", "use demo2"))
    cache.apply_reload(ReloadChanges())
    cache.apply_reload(ReloadChanges(added=[make_file("other-1.0.tar.gz", project="other")]))
    assert [(a.serial, a.projects) for a in heard] == [
        (1, frozenset({"demo"})),
        (2, frozenset({"demo"})),
        (3, frozenset({"demo"})),
        (4, frozenset({"other"})),
    ]
    assert cache.serial() == 4
    assert not any(a.cdn for a in heard)  # no CDN outbox configured: nothing recorded


def test_a_failing_listener_leaves_the_change_committed_and_others_told(cache: Cache) -> None:
    def broken(_applied: Applied) -> None:
        raise RuntimeError("listener broke")

    heard: list[Applied] = []
    cache.subscribe(broken)
    cache.subscribe(heard.append)
    applied = cache.apply(AddFile(make_file(), "Demo"))
    assert applied.changed and applied.serial == 1
    assert cache.get_file("demo-1.0-py3-none-any.whl") is not None
    assert heard == [applied]


def test_replace_file_makes_one_row_equal_and_stamps_its_project(cache: Cache) -> None:
    cache.apply(AddFile(make_file(), "Demo"))
    cache.apply(AddFile(make_file("demo-1.0.tar.gz"), "Demo"))
    rewritten = make_file(sha256="f" * 64, size=99, yanked=True, yanked_reason="kept by the caller")
    applied = cache.apply(ReplaceFile(rewritten))
    assert (applied.serial, applied.count, applied.projects) == (3, 1, frozenset({"demo"}))
    assert cache.get_file(rewritten.filename) == rewritten
    assert cache.get_file("demo-1.0.tar.gz") == make_file("demo-1.0.tar.gz")  # the other row is untouched
    demo = cache.get_project("demo")
    assert demo is not None and (demo.display_name, demo.serial) == ("Demo", 3)

    # A row that is missing (the object came before its first event) is created with its project.
    fresh = make_file("fresh-2.0.tar.gz", project="fresh", version="2.0")
    assert cache.apply(ReplaceFile(fresh)).changed
    assert cache.get_file(fresh.filename) == fresh
    assert [p.name for p in cache.list_projects()] == ["demo", "fresh"]


def _run_together(count: int, work: Callable[[int], Any]) -> list[Any]:
    """Run work(0..count-1) on `count` threads released at the same moment."""
    barrier = threading.Barrier(count)

    def start(i: int) -> Any:
        barrier.wait()
        return work(i)

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(start, range(count)))


def test_concurrent_adds_of_different_files_all_land_once(cache: Cache) -> None:
    # Like a CI matrix uploading every platform wheel of one new release at once.
    count = 8
    files = [make_file(f"demo-1.0-py3-none-manylinux_{i}_x86_64.whl") for i in range(count)]
    results = _run_together(count, lambda i: cache.apply(AddFile(files[i], "Demo")))
    assert [applied.changed for applied in results] == [True] * count
    assert sorted(f.filename for f in cache.project_files("demo")) == sorted(f.filename for f in files)
    assert cache.serial() == count
    demo = cache.get_project("demo")
    assert demo is not None
    assert demo.serial == count


def test_concurrent_adds_of_one_file_create_it_once(cache: Cache) -> None:
    count = 8
    files = [make_file(sha256=f"{i:064x}") for i in range(count)]
    results = _run_together(count, lambda i: cache.apply(AddFile(files[i], "Demo")))
    winners = [applied.file for applied in results if applied.changed]
    assert len(winners) == 1
    assert winners[0] is not None
    assert {applied.file.sha256 for applied in results if applied.file} == {winners[0].sha256}
    assert all(applied.file is not None for applied in results)
    assert cache.serial() == 1
    assert len(cache.project_files("demo")) == 1


def declaring(file: PackageFile, name: str) -> PackageFile:
    """The file with core metadata that spells its project `name`."""
    return replace(file, core_metadata=CoreMetadata(metadata_version="2.1", name=name, version=file.version))


def test_reload_creates_complete_projects_beyond_one_transaction(cache: Cache) -> None:
    # More projects than one DynamoDB transaction holds, so some are written outside it.
    count = 150
    added = [make_file(f"proj_{i}-1.0.tar.gz", project=f"proj-{i}", sha256=None) for i in range(count)]

    cache.apply_reload(ReloadChanges(added=added))

    serial = cache.serial()
    projects = cache.list_projects()
    assert sorted(p.name for p in projects) == sorted(f"proj-{i}" for i in range(count))
    # Listed from keys alone, a project has its normalized name until its metadata is read.
    assert all(p.display_name == p.name for p in projects)
    assert {(p.status, p.serial) for p in projects} == {("active", serial)}


def test_filling_in_a_reloaded_file_can_name_its_new_project_once(cache: Cache) -> None:
    listed = make_file("foo_bar-1.0.tar.gz", project="foo-bar", sha256=None)
    cache.apply(AddFile(declaring(make_file(), "Demo"), "Demo"))
    other = make_file("demo-2.0.tar.gz", version="2.0", sha256=None)
    cache.apply_reload(ReloadChanges(added=[listed, other]))
    serial = cache.serial()

    assert cache.apply(
        FillDetails(declaring(replace(listed, sha256="e" * 64), "Foo.Bar"), display_name="Foo.Bar")
    ).changed
    project = cache.get_project("foo-bar")
    assert project is not None
    assert (project.display_name, project.serial) == ("Foo.Bar", serial + 1)
    assert cache.apply(
        FillDetails(declaring(replace(listed, sha256="e" * 64), "FOO_BAR"), display_name="FOO_BAR")
    ).changed
    assert cache.apply(FillDetails(declaring(replace(other, sha256="f" * 64), "DEMO"), display_name="DEMO")).changed
    names = {p.name: p.display_name for p in cache.list_projects()}
    assert names == {"foo-bar": "Foo.Bar", "demo": "Demo"}  # named once; an uploaded name stays


def _listed(cache: Cache, count: int, project: str = "bulk") -> list[PackageFile]:
    """`count` files of one new project as a reload lists them: no hash yet, an ETag each."""
    files = [
        make_file(f"{project}-1.{n}.tar.gz", project=project, version=f"1.{n}", sha256=None, storage_etag=f"etag-{n}")
        for n in range(count)
    ]
    cache.apply_reload(ReloadChanges(added=files))
    return files


def test_fill_many_fills_every_row_under_one_serial(cache: Cache) -> None:
    listed = _listed(cache, 120)  # more than one DynamoDB transaction holds
    other = _listed(cache, 1, project="other")[0]
    heard: list[Applied] = []
    cache.subscribe(heard.append)
    serial = cache.serial()

    fills = [FillDetails(replace(f, sha256=f"{n:064x}", summary=f"bulk {n}")) for n, f in enumerate(listed)]
    applied = cache.apply(FillMany([*fills, FillDetails(replace(other, sha256="e" * 64))]))

    assert (applied.serial, applied.count, applied.projects) == (serial + 1, 121, frozenset({"bulk", "other"}))
    assert cache.serial() == serial + 1
    assert [a.serial for a in heard] == [serial + 1]
    rows = {f.filename: f for f in cache.project_files("bulk")}
    assert {name: (row.sha256, row.summary) for name, row in rows.items()} == {
        f.filename: (f"{n:064x}", f"bulk {n}") for n, f in enumerate(listed)
    }
    assert {(p.name, p.serial) for p in cache.list_projects()} == {("bulk", serial + 1), ("other", serial + 1)}


def test_fill_many_skips_rows_whose_etag_changed_or_that_are_gone(cache: Cache) -> None:
    kept, moved, gone = _listed(cache, 3)
    cache.apply(RemoveFile(gone.filename))
    serial = cache.serial()

    applied = cache.apply(
        FillMany(
            [
                FillDetails(replace(kept, sha256="1" * 64)),
                FillDetails(replace(moved, sha256="2" * 64, storage_etag="rewritten since")),
                FillDetails(replace(gone, sha256="3" * 64)),
            ]
        )
    )

    assert (applied.serial, applied.count) == (serial + 1, 1)
    assert cache.get_file(gone.filename) is None
    assert cache.get_file(moved.filename) == moved
    filled = cache.get_file(kept.filename)
    assert filled is not None and filled.sha256 == "1" * 64


def test_a_fill_that_replaces_a_hash_drops_the_digests_of_the_bytes_that_are_gone(cache: Cache) -> None:
    old, kept = _listed(cache, 2)  # listed with an upload's md5 and BLAKE2 digests
    assert old.md5 is not None and old.blake2_256 is not None
    cache.apply(FillMany([FillDetails(replace(old, sha256="0" * 64)), FillDetails(replace(kept, sha256="1" * 64))]))

    # The object under `old` was rewritten: its new hash replaces the old one; `kept` is read again, the same.
    cache.apply(FillMany([FillDetails(replace(old, sha256="9" * 64)), FillDetails(replace(kept, sha256="1" * 64))]))

    replaced, same = cache.get_file(old.filename), cache.get_file(kept.filename)
    assert replaced is not None and (replaced.sha256, replaced.md5, replaced.blake2_256) == ("9" * 64, None, None)
    assert same is not None and (same.sha256, same.md5, same.blake2_256) == ("1" * 64, kept.md5, kept.blake2_256)


def test_fill_many_that_fills_nothing_leaves_the_serial(cache: Cache) -> None:
    (listed,) = _listed(cache, 1)
    serial = cache.serial()
    heard: list[Applied] = []
    cache.subscribe(heard.append)

    applied = cache.apply(FillMany([FillDetails(replace(listed, sha256="1" * 64, storage_etag="other"))]))

    assert (applied.changed, cache.serial(), heard) == (False, serial, [])
    assert cache.apply(FillMany([])).changed is False
    assert cache.serial() == serial


def test_fill_many_reads_its_rows_once_after_the_serial_moves(cache: Cache) -> None:
    """On SQL: the rows are read under the serial's lock, once (not once before it as well); a batch that fills
    nothing rolls the serial's move back."""
    if not isinstance(cache, SQLCache):
        return  # DynamoDB: conditional writes, no serial lock
    listed = _listed(cache, 3)
    with statements_on(cache.engine) as seen:
        cache.apply(FillMany([FillDetails(replace(f, sha256=f"{n:064x}")) for n, f in enumerate(listed)]))
    said = [" ".join(statement.split()).upper() for statement in seen]
    bumps = [n for n, s in enumerate(said) if s.startswith("UPDATE PPC_INDEX_STATE")]
    reads = [n for n, s in enumerate(said) if s.startswith("SELECT PPC_FILES.FILENAME")]
    assert len(bumps) == 1 and len(reads) == 1 and bumps[0] < reads[0], said
    serial = cache.serial()
    assert cache.apply(FillMany([FillDetails(replace(listed[0], storage_etag="other"))])).changed is False
    assert cache.serial() == serial


def test_fill_many_names_a_new_project_once_as_fill_details_does(cache: Cache) -> None:
    first, second = _listed(cache, 2, project="foo-bar")
    cache.apply(AddFile(declaring(make_file(), "Demo"), "Demo"))
    (demo,) = _listed(cache, 1, project="demo")

    applied = cache.apply(
        FillMany(
            [
                FillDetails(declaring(replace(first, sha256="1" * 64), "Foo.Bar"), display_name="Foo.Bar"),
                FillDetails(declaring(replace(second, sha256="2" * 64), "FOO_BAR"), display_name="FOO_BAR"),
                FillDetails(declaring(replace(demo, sha256="3" * 64), "DEMO"), display_name="DEMO"),
            ]
        )
    )

    assert applied.count == 3
    names = {p.name: p.display_name for p in cache.list_projects()}
    assert names == {"foo-bar": "Foo.Bar", "demo": "Demo"}  # named once; an uploaded name stays


def test_counts(cache: Cache) -> None:
    assert cache.counts() == (0, 0)
    cache.apply(AddFile(make_file(), "Demo"))
    cache.apply(AddFile(make_file("demo-1.0.tar.gz"), "Demo"))
    cache.apply(AddFile(make_file("other-1.0.tar.gz", project="other"), "other"))
    assert cache.counts() == (2, 3)
    cache.apply(RemoveFile("demo-1.0.tar.gz"))
    assert cache.counts() == (2, 2)


def test_new_projects_are_active(cache: Cache) -> None:
    cache.apply(AddFile(make_file(), "Demo"))
    project = cache.get_project("demo")
    assert project is not None
    assert (project.status, project.status_reason) == ("active", None)


def test_set_project_status(cache: Cache) -> None:
    cache.apply(AddFile(make_file(), "Demo"))
    cache.apply(AddFile(make_file("other-1.0.tar.gz", project="other"), "other"))
    serial = cache.serial()

    assert cache.apply(SetStatus("demo", "archived", "moved to demo2")).count == 1
    assert cache.serial() == serial + 1
    project = cache.get_project("demo")
    assert project is not None
    assert (project.status, project.status_reason, project.serial) == ("archived", "moved to demo2", serial + 1)
    other = cache.get_project("other")
    assert other is not None
    assert other.status == "active"
    assert [p.status for p in cache.list_projects()] == ["archived", "active"]

    assert cache.apply(SetStatus("demo", "archived", "moved to demo2")).count == 1  # unchanged: no bump
    assert cache.serial() == serial + 1

    assert cache.apply(SetStatus("demo", "active", None)).count == 1
    project = cache.get_project("demo")
    assert project is not None
    assert (project.status, project.status_reason) == ("active", None)
    assert cache.serial() == serial + 2


def test_set_project_status_of_an_unknown_project(cache: Cache) -> None:
    assert cache.apply(SetStatus("nothing", "archived", None)).count == 0
    assert cache.get_project("nothing") is None
    assert cache.serial() == 0


@pytest.mark.parametrize("filename", ["demo-1.0-py3-none-any x.whl", "demo-1.0-py3-none-any!.whl", "demo-1.0 .tar.gz"])
def test_a_row_whose_name_the_upload_checks_now_refuse_can_still_be_read_and_removed(
    cache: Cache, filename: str
) -> None:
    # Stored before the check existed: the index must still find it, to serve or delete it.
    cache.apply(AddFile(make_file(filename), "Demo"))
    stored = cache.get_file(filename)
    assert stored is not None
    assert stored.filename == filename
    assert cache.apply(RemoveFile(filename)).changed is True
    assert cache.get_file(filename) is None


@pytest.mark.parametrize("filename", ["README", "", "-1.0.tar.gz", "x.whl.metadata"])
def test_names_of_no_file_find_nothing(cache: Cache, filename: str) -> None:
    assert cache.get_file(filename) is None


def test_dynamo_health_reads_every_table_not_only_the_serial(moto: Moto) -> None:
    """A lost files table (a deleted or mistyped table) must fail /health, not only a lost serial."""
    cache = dynamo_cache(moto)
    cache.check_health()
    cache.t.file.delete_table()  # type: ignore[attr-defined]
    with pytest.raises(BackendUnavailable):
        cache.check_health()


def test_a_project_whose_last_file_goes_leaves_the_index(cache: Cache) -> None:
    """Unknown to the index again (404, gone from /simple/), as PyPI answers for a name with nothing in it."""
    wheel, sdist = make_file(), make_file("demo-1.0.tar.gz")
    cache.apply(AddFile(wheel, "Demo"))
    cache.apply(AddFile(sdist, "Demo"))
    cache.apply(AddFile(make_file("other-1.0.tar.gz", project="other"), "other"))
    cache.apply(RemoveFile(wheel.filename))
    assert cache.get_project("demo") is not None  # a file is left
    before = cache.serial()
    applied = cache.apply(RemoveFile(sdist.filename))
    assert cache.get_project("demo") is None
    assert [p.name for p in cache.list_projects()] == ["other"]
    assert applied.serial == cache.serial() > before  # readers' page caches see the project go
    # Uploaded to again: a new project, named as the new upload names it.
    cache.apply(AddFile(make_file("demo-2.0.tar.gz", version="2.0"), "DEMO"))
    project = cache.get_project("demo")
    assert project is not None and project.display_name == "DEMO"


def test_a_project_with_a_status_keeps_its_row_without_files(cache: Cache) -> None:
    """A status is an admin's decision about the name: it outlives the files."""
    cache.apply(AddFile(make_file(), "demo"))
    cache.apply(SetStatus("demo", "archived", "moved to demo2"))
    cache.apply(RemoveFile(make_file().filename))
    project = cache.get_project("demo")
    assert project is not None and (project.status, project.status_reason) == ("archived", "moved to demo2")


def test_a_project_without_files_whose_status_goes_back_to_active_leaves_the_index(cache: Cache) -> None:
    """Only the status kept the empty project listed: with it gone (as a project delete does), so is the project."""
    cache.apply(AddFile(make_file(), "demo"))
    cache.apply(AddFile(make_file("other-1.0.tar.gz", project="other"), "other"))
    cache.apply(SetStatus("demo", "archived", "moved to demo2"))
    cache.apply(RemoveFile(make_file().filename))
    before = cache.serial()
    applied = cache.apply(SetStatus("demo", "active", None))
    assert cache.get_project("demo") is None
    assert [p.name for p in cache.list_projects()] == ["other"]
    assert applied.serial == cache.serial() > before  # readers' page caches see the project go


def test_a_reload_that_removes_a_projects_last_files_drops_the_project(cache: Cache) -> None:
    first, second, kept = make_file(), make_file("demo-1.0.tar.gz"), make_file("other-1.0.tar.gz", project="other")
    cache.apply_reload(ReloadChanges(added=[first, second, kept]))
    cache.apply_reload(ReloadChanges(removed=[first.filename, second.filename]))
    assert cache.get_project("demo") is None
    assert [p.name for p in cache.list_projects()] == ["other"]


def test_claim_once_holds_until_it_expires(cache: Cache) -> None:
    # What makes an OIDC token usable once (Trusted Publishing): every process asks the same cache.
    assert cache.claim_once("jti-a", 60)
    assert not cache.claim_once("jti-a", 60)
    assert cache.claim_once("jti-b", 60)
    assert cache.claim_once("jti-short", 0.2)
    time.sleep(0.3)
    assert cache.claim_once("jti-short", 60)
    assert not cache.claim_once("jti-short", 60)


def test_download_counts_add_up_per_file_and_stay_out_of_the_listing(cache: Cache) -> None:
    wheel = make_file()
    cache.apply(AddFile(wheel, "demo"))
    assert cache.download_counts("demo") == {}
    cache.add_downloads({("demo", wheel.filename): 2, ("demo", "demo-1.0.tar.gz"): 1, ("other", "other-1.zip"): 5})
    # Two servers flushing at once: every count arrives.
    batch = {("demo", wheel.filename): 1}
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda _n: cache.add_downloads(batch), range(8)))
    assert cache.download_counts("demo") == {wheel.filename: 10, "demo-1.0.tar.gz": 1}
    assert cache.download_counts("other") == {"other-1.zip": 5}
    assert [p.name for p in cache.list_projects()] == ["demo"]
    assert cache.counts() == (1, 1)
