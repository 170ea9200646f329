"""Reloading the cache from storage: the diff, the fill, races, readers, S3 faults and costs, and the lease."""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import shutil
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import webtest
from sqlalchemy import select

from pypicloud_lite import reload as reload_module
from pypicloud_lite.cache.sql import SQLCache
from pypicloud_lite.config import UploadSettings, load_settings
from pypicloud_lite.db.tables import FileRow
from pypicloud_lite.errors import BackendUnavailable, Conflict, FileExists
from pypicloud_lite.metadata import parse_core_metadata
from pypicloud_lite.models import AddFile, PackageFile, ProjectState
from pypicloud_lite.naming import file_record_key, parse_filename, parse_key, project_state_key
from pypicloud_lite.reload import ReloadProgress, begin_reload
from pypicloud_lite.service import PackageIndex, UploadResult
from pypicloud_lite.storage.base import Storage, StoredObject
from pypicloud_lite.storage.local import LocalStorage
from pypicloud_lite.storage.s3 import S3Storage
from pypicloud_lite.stored_state import file_record, project_state
from tests.support.aws import Moto
from tests.support.cache import cache_settings
from tests.support.distbuilder import build_sdist, build_wheel, metadata_text
from tests.support.legacy import JSON_V1, wheel_metadata
from tests.support.reload import (
    S3_FAULTS,
    Env,
    S3Calls,
    S3Faults,
    counts,
    delete_raw,
    insert_rows,
    key_of,
    open_env,
    put_raw,
    read,
    rows_of,
    sha256,
    sighted,
    sightings_keys,
    stored_keys,
    upload,
)


@pytest.fixture(params=["local", "s3"])
def env(request: pytest.FixtureRequest, raw_settings: dict[str, Any], tmp_path: Path) -> Iterator[Env]:
    with open_env(request.param, raw_settings, request, tmp_path / "dists") as opened:
        yield opened


@pytest.fixture(params=["local", "s3", "local+postgresql"])
def any_env(request: pytest.FixtureRequest, raw_settings: dict[str, Any], tmp_path: Path) -> Iterator[Env]:
    with open_env(request.param, raw_settings, request, tmp_path / "dists") as opened:
        yield opened


@pytest.fixture
def s3_env(request: pytest.FixtureRequest, raw_settings: dict[str, Any], tmp_path: Path) -> Iterator[Env]:
    with open_env("s3", raw_settings, request, tmp_path / "dists") as opened:
        yield opened


def spy(storage: Storage, monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Count the storage calls a reload makes (on this storage object only)."""
    calls: Counter[str] = Counter()
    for name in ("stat", "open", "put_bytes", "put_new", "delete", "read_versioned", "put_if"):
        real = getattr(storage, name)

        def counted(*args: Any, _real: Any = real, _name: str = name, **kwargs: Any) -> Any:
            calls[_name] += 1
            return _real(*args, **kwargs)

        monkeypatch.setattr(storage, name, counted)
    return calls


# -- keys ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "filename"),
    [
        ("demo/demo-1.0.tar.gz", "demo-1.0.tar.gz"),
        ("demo/demo-1.0-py3-none-any.whl", "demo-1.0-py3-none-any.whl"),
        ("foo-bar/foo_bar-1.0.zip", "foo_bar-1.0.zip"),
        ("foo-bar/Foo.Bar-1.0.tar.gz", "Foo.Bar-1.0.tar.gz"),
        ("README", None),
        ("README.md", None),
        ("demo/not-a-dist.txt", None),
        ("other/demo-1.0.tar.gz", None),
        # A folder spelled as another tool spells it (my_lib/, Demo/) still names the project.
        ("Demo/Demo-1.0.tar.gz", "Demo-1.0.tar.gz"),
        ("my_lib/my_lib-1.0.tar.gz", "my_lib-1.0.tar.gz"),
        ("demo/demo-1.0.tar.gz.metadata", None),
        ("demo/demo-1.0-py3-none-any.whl.metadata", None),
        ("demo/sub/demo-1.0.tar.gz", None),
        ("demo/.tmp-x1y2.part", None),
        ("/demo-1.0.tar.gz", None),
        ("demo/", None),
        ("demo/demo-1.0-py3-none-any x.whl", None),
        ("demo/demo-1.0-py3-none-any%2F.whl", None),
        ("demo/demo-1.0-py3-none-any!.whl", None),
        ("demo/demo..x-1.0.tar.gz", None),
        ("demo/demo-1.0+local.1-py3-none-any.whl", "demo-1.0+local.1-py3-none-any.whl"),
    ],
)
def test_parse_key(key: str, filename: str | None) -> None:
    parsed = parse_key(key)
    assert (parsed.filename if parsed else None) == filename


# -- what a reload finds ---------------------------------------------------------


def test_objects_put_straight_into_storage_are_indexed(any_env: Env, caplog: pytest.LogCaptureFixture) -> None:
    env = any_env
    wheel = build_wheel(env.dists, "Foo.Bar", "1.0", summary="Wheel summary", requires_python=">=3.9")
    sdist = build_sdist(env.dists, "Foo.Bar", "1.0", summary="Sdist summary", requires_python=">=3.8")
    zipped = build_sdist(env.dists, "Other-Proj", "2.0", fmt="zip", summary=None)
    for path in (wheel, sdist, zipped):
        env.put(path)
    strays = {
        "README": b"not a package\n",
        "foo-bar/not-a-dist.txt": b"notes\n",
        "wrong-folder/foo_bar-3.0.tar.gz": sdist.read_bytes(),
        "foo-bar/nested/foo_bar-5.0.tar.gz": sdist.read_bytes(),
        "foo-bar/foo_bar-9.0.tar.gz.metadata": metadata_text("Foo.Bar", "9.0").encode(),
        # Names an upload refuses, put there by another tool: skipped, not a crash, not a broken link.
        "foo-bar/foo_bar-1.0-py3-none-any x.whl": wheel.read_bytes(),
        "foo-bar/foo_bar-1.0-py3-none-any%2F.whl": wheel.read_bytes(),
        'foo-bar/foo_bar-1.0-py3-none-any.whl"><b>.whl': wheel.read_bytes(),
        "foo-bar/foo_bar-1.0-py3-none-any!.whl": wheel.read_bytes(),
    }
    for key, data in strays.items():
        put_raw(env.storage, key, data)

    with caplog.at_level(logging.WARNING, logger="pypicloud_lite.reload"):
        result = env.reload()

    assert result.state == "done"
    assert result.error is None
    assert (result.listed, result.objects) == (3, 3 + len(strays))  # package files; every object
    assert result.skipped == len(strays) - 1  # all but the sidecar
    # Each skipped key is logged with why: not one folder deep, not a distribution, another project's folder.
    skips = {r.args[0]: r.args[1] for r in caplog.records if r.msg == "reload skips %r: %s"}
    assert set(skips) == set(strays) - {"foo-bar/foo_bar-9.0.tar.gz.metadata"}
    assert (
        "one folder per project" in skips["README"]
        and "one folder per project" in skips["foo-bar/nested/foo_bar-5.0.tar.gz"]
    )
    assert "Invalid file extension" in skips["foo-bar/not-a-dist.txt"]
    assert "does not name the project" in skips["wrong-folder/foo_bar-3.0.tar.gz"]
    assert counts(result) == {"added": 3, "removed": 0, "changed": 0, "unchanged": 0, "hashed": 3, "failed": 0}
    assert isinstance(result.visible_seconds, float)
    assert isinstance(result.complete_seconds, float)
    assert result.visible_seconds <= result.complete_seconds
    rows = env.rows()
    assert set(rows) == {wheel.name, sdist.name, zipped.name}
    assert sorted(p.name for p in env.index.list_projects()) == ["foo-bar", "other-proj"]
    expected = {
        wheel.name: ("foo-bar", "1.0", "bdist_wheel", "py3", ">=3.9", "Wheel summary"),
        sdist.name: ("foo-bar", "1.0", "sdist", "source", ">=3.8", "Sdist summary"),
        zipped.name: ("other-proj", "2.0", "sdist", "source", None, None),
    }
    for path in (wheel, sdist, zipped):
        row = rows[path.name]
        data = path.read_bytes()
        assert (row.sha256, row.size) == (sha256(data), len(data)), path.name
        fields = (row.project, row.version, row.packagetype, row.python_version, row.requires_python, row.summary)
        assert fields == expected[path.name]
        assert row.core_metadata is not None
        assert row.storage_etag

    # The wheel's PEP 658 metadata goes into its record (no sidecar: one new object per file), advertised on
    # both page formats and served next to the file.
    meta = wheel_metadata(wheel)
    assert rows[wheel.name].metadata_sha256 == sha256(meta)
    assert env.storage.stat(f"foo-bar/{wheel.name}.metadata") is None
    assert sighted(env.storage, "foo-bar")[wheel.name]["metadata"] == meta.decode()
    assert rows[sdist.name].metadata_sha256 is None
    files = env.json_page("foo-bar")
    assert files[wheel.name]["core-metadata"] == {"sha256": sha256(meta)}
    assert files[wheel.name]["hashes"] == {"sha256": sha256(wheel.read_bytes())}
    assert files[wheel.name]["requires-python"] == ">=3.9"
    assert files[wheel.name]["size"] == wheel.stat().st_size
    assert files[sdist.name]["core-metadata"] is False
    assert files[sdist.name]["hashes"] == {"sha256": sha256(sdist.read_bytes())}
    assert files[sdist.name]["requires-python"] == ">=3.8"
    html = env.testapp.get("/simple/foo-bar/").text
    assert f'data-core-metadata="sha256={sha256(meta)}"' in html
    assert env.testapp.get(f"/packages/foo-bar/{wheel.name}.metadata").body == meta
    assert env.testapp.get(f"/packages/foo-bar/{wheel.name}").status_int in (200, 302)
    assert env.testapp.get(f"/packages/foo-bar/{sdist.name}.metadata", expect_errors=True).status_int == 404

    # Strays are neither indexed nor touched.
    keys = stored_keys(env.storage)
    assert set(strays) <= keys
    for key, data in strays.items():
        assert read(env.storage, key) == data


def test_objects_deleted_from_storage_disappear(env: Env) -> None:
    wheel = build_wheel(env.dists, "Demo", "1.0")
    sdist = build_sdist(env.dists, "Demo", "1.0")
    uploaded = build_sdist(env.dists, "Demo", "2.0")
    env.put(wheel)
    env.put(sdist)
    upload(env.index, uploaded)
    assert env.reload().added == 2

    delete_raw(env.storage, key_of(wheel))
    delete_raw(env.storage, key_of(uploaded))
    result = env.reload()

    assert counts(result) == {"added": 0, "removed": 2, "changed": 0, "unchanged": 1, "hashed": 0, "failed": 0}
    assert set(env.rows()) == {sdist.name}
    assert set(env.json_page("demo")) == {sdist.name}
    assert env.testapp.get(f"/packages/demo/{wheel.name}", expect_errors=True).status_int == 404


@pytest.mark.parametrize("kind", ["wheel", "sdist"])
def test_an_identical_reupload_writes_back_an_object_gone_from_storage(any_env: Env, kind: str) -> None:
    """A row whose object is gone: uploading the same bytes again stores them (and a wheel's sidecar) again."""
    env = any_env
    dist = (build_wheel if kind == "wheel" else build_sdist)(env.dists, "Demo", "1.0")
    row = upload(env.index, dist).file
    delete_raw(env.storage, key_of(dist))
    if kind == "wheel":
        delete_raw(env.storage, key_of(dist) + ".metadata")

    again = upload(env.index, dist)

    assert again.file.sha256 == row.sha256
    with env.storage.open(key_of(dist)) as fh:
        assert fh.read() == dist.read_bytes()
    assert (env.storage.stat(key_of(dist) + ".metadata") is not None) == (kind == "wheel")
    other = build_wheel(env.dists / "other", "Demo", "1.0", summary="other bytes") if kind == "wheel" else None
    if other is not None:
        delete_raw(env.storage, key_of(dist))
        with pytest.raises(FileExists):
            upload(env.index, other)
        assert env.storage.stat(key_of(dist)) is None


def one_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    """A small fill's rows in one batch: its reads, a few ms apart, can straddle a tick of the wall clock, which
    applies a batch (and records its first sightings) on its own. Tests that count those objects pin the ticks."""
    monkeypatch.setattr(reload_module, "FILL_BATCH_SECONDS", 3600.0)


def test_second_reload_changes_nothing_and_reads_nothing(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    one_batch(monkeypatch)
    env.put(build_wheel(env.dists, "Demo", "1.0"))
    env.put(build_sdist(env.dists, "Demo", "1.0"))
    upload(env.index, build_wheel(env.dists, "Demo", "2.0"))
    first = env.reload()
    assert (first.added, first.unchanged) == (2, 1)
    rows, serial = env.rows(), env.index.serial()

    calls = spy(env.storage, monkeypatch)
    second = env.reload()

    assert second.state == "done"
    # Three files, the uploaded wheel's sidecar, its record, one object of the others' first sightings, one state.
    assert second.objects == 7
    assert second.listed == 3  # the package files alone
    assert counts(second) == {"added": 0, "removed": 0, "changed": 0, "unchanged": 3, "hashed": 0, "failed": 0}
    # An unchanged index costs one listing, its project states and its first sightings (one object here).
    assert calls == Counter({"read_versioned": 2})
    assert env.rows() == rows
    assert env.index.serial() == serial, "a reload that changes nothing must not bump the serial (page ETags)"


def _same_size_wheels(dists: Path) -> tuple[Path, Path]:
    old = build_wheel(dists / "old", "Demo", "1.0", summary="Original summary")
    # Deflate may take a byte more or less for other text: pick a summary that compresses to the same size.
    for letter in "ABCDEFGHIJKLMNOPQRSTUVWXYZ":
        new = build_wheel(dists / "new", "Demo", "1.0", summary=f"Original summar{letter}")
        if new.stat().st_size == old.stat().st_size:
            return old, new
    raise AssertionError("no same-size variant of the wheel found")


def _other_size_wheels(dists: Path) -> tuple[Path, Path]:
    old = build_wheel(dists / "old", "Demo", "1.0", summary="Original summary")
    new = build_wheel(
        dists / "new", "Demo", "1.0", summary="A much longer summary than before", requires_python=">=3.10"
    )
    assert old.stat().st_size != new.stat().st_size
    return old, new


VARIANTS = {"same-size": _same_size_wheels, "other-size": _other_size_wheels}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_changed_object_is_rehashed_and_keeps_its_yank(env: Env, variant: str) -> None:
    old, new = VARIANTS[variant](env.dists)
    env.put(old)
    env.reload()
    env.index.yank("demo", "1.0", "broken build")

    env.put(new)  # another tool overwrites the key with other bytes
    result = env.reload()

    assert counts(result) == {"added": 0, "removed": 0, "changed": 1, "unchanged": 0, "hashed": 1, "failed": 0}
    row = env.rows()[new.name]
    assert (row.sha256, row.size) == (sha256(new.read_bytes()), new.stat().st_size)
    new_meta = parse_core_metadata(wheel_metadata(new), parse_filename(new.name))
    assert (row.summary, row.requires_python) == (new_meta.summary, new_meta.requires_python), "stale sidecar used"
    assert row.metadata_sha256 == sha256(wheel_metadata(new))
    assert read(env.storage, key_of(new) + ".metadata") == wheel_metadata(new)
    assert (row.yanked, row.yanked_reason) == (True, "broken build")
    assert env.json_page("demo")[new.name]["yanked"] == "broken build"


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_changed_object_of_an_uploaded_file_is_rehashed(env: Env, variant: str) -> None:
    old, new = VARIANTS[variant](env.dists)
    upload(env.index, old)

    env.put(new)  # e.g. replication from another region that holds other bytes under this filename
    result = env.reload()

    assert (result.changed, result.unchanged) == (1, 0), "an overwritten object must not pass as unchanged"
    assert env.rows()[new.name].sha256 == sha256(new.read_bytes()), "the index advertises the old bytes' hash"


def test_yank_survives_reloads(env: Env) -> None:
    sdist = build_sdist(env.dists, "Demo", "1.0")
    wheel = build_wheel(env.dists, "Demo", "2.0")
    upload(env.index, sdist)
    env.put(wheel)
    env.reload()
    env.index.yank("demo", "1.0", "bad")
    env.index.yank("demo", "2.0")

    for _ in range(2):
        env.reload()
        rows = env.rows()
        assert (rows[sdist.name].yanked, rows[sdist.name].yanked_reason) == (True, "bad")
        assert (rows[wheel.name].yanked, rows[wheel.name].yanked_reason) == (True, None)
    page = env.json_page("demo")
    assert (page[sdist.name]["yanked"], page[wheel.name]["yanked"]) == ("bad", True)


def test_uploaded_files_are_unchanged_on_reload(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    wheel = build_wheel(env.dists, "Demo", "1.0", requires_python=">=3.8")
    sdist = build_sdist(env.dists, "Demo", "1.0")
    for path in (wheel, sdist):
        assert upload(env.index, path).created
    before = env.rows()

    result = env.reload()

    assert (result.listed, result.objects) == (2, 6)  # two files; and the wheel's sidecar, two records, the state
    assert counts(result) == {"added": 0, "removed": 0, "changed": 0, "unchanged": 2, "hashed": 0, "failed": 0}
    after = env.rows()
    for name, row in before.items():
        # Only the storage ETag is learnt; the upload's own facts stay.
        assert after[name].storage_etag
        assert after[name] == replace(row, storage_etag=after[name].storage_etag)
        assert (after[name].md5, after[name].blake2_256, after[name].uploader) == (row.md5, row.blake2_256, "alice")

    # A later upload is unchanged too, and the reload after reads nothing.
    later = build_wheel(env.dists, "Demo", "1.1")
    upload(env.index, later)
    calls = spy(env.storage, monkeypatch)
    result = env.reload()
    assert counts(result) == {"added": 0, "removed": 0, "changed": 0, "unchanged": 3, "hashed": 0, "failed": 0}
    assert calls == Counter({"read_versioned": 1})  # the project's state
    assert upload(env.index, later).created is False


def test_a_cache_rebuilt_from_storage_names_projects_as_uploads_did(
    local_env: Env, raw_settings: dict[str, Any], request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    env = local_env
    # The form name twine sends for Name `Foo.Bar_baz` (its safe_name); another tool copies Other_Proj in.
    upload(env.index, build_wheel(env.dists, "Foo.Bar_baz", "1.0"), name="Foo.Bar-baz")
    env.put(build_sdist(env.dists, "Other_Proj", "2.0"))
    env.reload()
    rebuilt_settings = {**raw_settings, "cache.url": f"sqlite:///{tmp_path / 'rebuilt.sqlite'}"}
    with open_env("local", rebuilt_settings, request, env.dists) as other:
        assert counts(other.reload())["added"] == 2

        def names(app: webtest.TestApp) -> list[str]:
            listing = app.get("/simple/", headers={"Accept": JSON_V1}).json["projects"]
            return sorted(p["name"] for p in listing)

        assert names(env.testapp) == names(other.testapp) == ["Foo.Bar-baz", "Other-Proj"]
        for app in (env.testapp, other.testapp):
            assert app.get("/pypi/foo-bar-baz/json").json["info"]["name"] == "Foo.Bar-baz"
            assert ">Foo.Bar-baz</a>" in app.get("/simple/").text


def test_unreadable_distribution_is_listed_with_its_hash(env: Env) -> None:
    good = build_sdist(env.dists, "Demo", "1.0")
    env.put(good)
    junk = b"this is not a zip file" * 10
    put_raw(env.storage, "demo/demo-2.0-py3-none-any.whl", junk)

    result = env.reload()

    assert result.state == "done"
    assert (result.added, result.hashed, result.failed) == (2, 2, 0)
    row = env.rows()["demo-2.0-py3-none-any.whl"]
    assert (row.sha256, row.size, row.metadata_sha256, row.requires_python) == (sha256(junk), len(junk), None, None)
    assert "demo/demo-2.0-py3-none-any.whl.metadata" not in stored_keys(env.storage)
    assert env.json_page("demo")["demo-2.0-py3-none-any.whl"]["core-metadata"] is False


def test_metadata_naming_another_release_still_gives_the_hash(env: Env) -> None:
    # A wheel renamed by hand: its METADATA says 2.0, its filename 1.0.
    wheel = build_wheel(env.dists, "Demo", "1.0", metadata=metadata_text("Demo", "2.0"))
    env.put(wheel)

    result = env.reload()

    assert result.state == "done"
    row = env.rows()[wheel.name]
    assert row.sha256 == sha256(wheel.read_bytes()), "the reload read and hashed the file, then dropped the hash"
    assert row.metadata_sha256 is None  # metadata that contradicts the filename is not published


def test_file_that_failed_to_fill_is_filled_by_the_next_reload(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    flaky = build_wheel(env.dists, "Demo", "1.0")
    fine = build_sdist(env.dists, "Demo", "1.0")
    env.put(flaky)
    env.put(fine)
    real_open = env.storage.open

    def failing_open(key: str, *args: Any) -> Any:
        if key == key_of(flaky):
            raise BackendUnavailable("S3 could not read demo/... (SlowDown); try again shortly.")
        return real_open(key, *args)

    monkeypatch.setattr(env.storage, "open", failing_open)
    first = env.reload()
    assert (first.state, first.added, first.hashed, first.failed) == ("done", 2, 1, 1)
    assert env.rows()[flaky.name].sha256 is None  # listed at once, hash still to come
    assert env.rows()[fine.name].sha256 == sha256(fine.read_bytes())

    monkeypatch.setattr(env.storage, "open", real_open)
    env.reload()

    row = env.rows()[flaky.name]
    assert row.sha256 == sha256(flaky.read_bytes()), "a file left unhashed is never hashed by a later reload"
    assert row.metadata_sha256 == sha256(wheel_metadata(flaky))


def test_file_deleted_while_storage_is_listed(local_env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    env = local_env
    keep, gone = build_sdist(env.dists, "Demo", "1.0"), build_sdist(env.dists, "Demo", "2.0")
    upload(env.index, keep)
    upload(env.index, gone)
    real_walk = os.walk

    def walk(top: Any, *args: Any, **kwargs: Any) -> Iterator[tuple[str, list[str], list[str]]]:
        for dirpath, dirs, files in real_walk(top, *args, **kwargs):
            if gone.name in files:
                # Deleted after its folder was read and before its files are looked at.
                env.index.delete_file("demo", gone.name)
            yield dirpath, dirs, files

    monkeypatch.setattr(os, "walk", walk)
    result = env.reload()

    assert result.state == "done"
    assert set(env.rows()) == {keep.name}


def test_unexpected_error_is_reported_as_failed(local_env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    env = local_env

    def broken_list(prefix: str = "") -> Iterator[StoredObject]:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(env.storage, "list", broken_list)
    with pytest.raises(Exception, match="Input/output error"):
        env.reload()

    running, progress = env.index.reload_state()
    assert running is False
    assert progress is not None
    assert progress["state"] == "failed", f"the last result must say the reload failed: {progress}"
    assert "Input/output error" in str(progress["error"])


# -- races -------------------------------------------------------------------------


@pytest.fixture(params=["local", "s3", "local+postgresql"])
def race_env(request: pytest.FixtureRequest, raw_settings: dict[str, Any], tmp_path: Path) -> Iterator[Env]:
    with open_env(request.param, raw_settings, request, tmp_path / "dists") as opened:
        yield opened


def assert_consistent(env: Env) -> dict[str, PackageFile]:
    """Every package object has a row with its sha256, and every row has its object."""
    objects = {key.split("/", 1)[1]: key for key in stored_keys(env.storage) if parse_key(key) is not None}
    rows = env.rows()
    assert sorted(set(rows) - set(objects)) == [], "rows whose object is gone"
    assert sorted(set(objects) - set(rows)) == [], "objects the index lost"
    for name, row in rows.items():
        assert row.sha256 == sha256(read(env.storage, objects[name])), name
    return rows


def test_reloads_racing_uploads_and_deletes_lose_nothing(race_env: Env) -> None:
    env = race_env
    paths = [(build_wheel if i % 2 else build_sdist)(env.dists / str(i), f"race{i % 4}", f"1.{i}") for i in range(48)]
    doomed = {p.name for i, p in enumerate(paths) if i % 3 == 0}
    writers_done = threading.Event()
    to_delete: list[Path] = []
    cond = threading.Condition()
    reloads: list[ReloadProgress] = []
    errors: list[BaseException] = []

    def guarded(target: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                target()
            except BaseException as exc:
                errors.append(exc)

        return run

    def uploader(mine: list[Path]) -> Callable[[], None]:
        def run() -> None:
            for path in mine:
                upload(env.index, path)
                if path.name in doomed:
                    with cond:
                        to_delete.append(path)
                        cond.notify()

        return run

    def deleter() -> None:
        deleted = 0
        while deleted < len(doomed):
            with cond:
                cond.wait_for(lambda: bool(to_delete), timeout=30)
                path = to_delete.pop(0)
            env.index.delete_file(parse_filename(path.name).project, path.name)
            deleted += 1

    def reloader() -> None:
        while not writers_done.is_set() or len(reloads) < 3:
            reloads.append(env.reload(workers=4))

    writers = [threading.Thread(target=guarded(uploader(paths[n::2]))) for n in range(2)]
    writers.append(threading.Thread(target=guarded(deleter)))
    reloading = threading.Thread(target=guarded(reloader))
    for thread in [*writers, reloading]:
        thread.start()
    for thread in writers:
        thread.join(60)
    writers_done.set()
    reloading.join(60)

    assert errors == [], "".join(traceback.format_exception(errors[0]))
    assert all(r.state == "done" for r in reloads)
    rows = assert_consistent(env)
    assert set(rows) == {p.name for p in paths} - doomed
    final = env.reload()
    assert (final.added, final.removed, final.changed) == (0, 0, 0), "the racing reloads left a difference behind"


def test_delete_racing_a_reload_leaves_no_row_without_its_object(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    """delete_file removes the row, then the sidecar, then the object; a reload lands in between."""
    wheel = build_wheel(env.dists, "Demo", "1.0")
    upload(env.index, wheel)
    real_delete = env.storage.delete
    reached, resume = threading.Event(), threading.Event()

    def slow_delete(key: str) -> None:
        if key == key_of(wheel):
            reached.set()
            resume.wait(30)
        real_delete(key)

    monkeypatch.setattr(env.storage, "delete", slow_delete)
    deleting = threading.Thread(target=env.index.delete_file, args=("demo", wheel.name))
    deleting.start()
    try:
        assert reached.wait(10)
        result = env.reload()  # the row is gone, the object not yet
    finally:
        resume.set()
        deleting.join(10)

    assert result.added == 1
    assert env.rows() == {}, "the index lists a file whose object is gone"
    # Only the deletion record (the filename stays used) and the project's state stay; no sidecar came back.
    assert stored_keys(env.storage) == {f"_ppc/deleted/demo/{wheel.name}", "_ppc/projects/demo.json"}, (
        "the reload wrote the sidecar back"
    )


def _block(
    target: Any, name: str, monkeypatch: pytest.MonkeyPatch, when: Callable[..., bool] = lambda *_: True
) -> tuple[threading.Event, threading.Event]:
    """Make `target.name(...)` wait at its start until released (calls `when` accepts); returns (reached, release)."""
    real = getattr(target, name)
    reached, release = threading.Event(), threading.Event()

    def blocked(*args: Any, **kwargs: Any) -> Any:
        if when(*args, **kwargs):
            reached.set()
            release.wait(30)
        return real(*args, **kwargs)

    monkeypatch.setattr(target, name, blocked)
    return reached, release


def test_upload_whose_row_lands_after_a_reload_keeps_the_file(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    wheel = build_wheel(env.dists, "Demo", "1.0", requires_python=">=3.8")
    reached, release = _block(env.cache, "apply", monkeypatch, when=lambda change: isinstance(change, AddFile))
    uploaded: list[UploadResult] = []
    thread = threading.Thread(target=lambda: uploaded.append(upload(env.index, wheel)))
    thread.start()
    try:
        assert reached.wait(10)  # object and sidecar written, row not yet
        result = env.reload()
    finally:
        release.set()
        thread.join(10)

    assert result.added == 1
    assert len(uploaded) == 1
    row = env.rows()[wheel.name]
    assert (row.sha256, row.requires_python) == (sha256(wheel.read_bytes()), ">=3.8")
    assert row.metadata_sha256 == sha256(wheel_metadata(wheel))
    assert_consistent(env)
    assert env.reload().unchanged == 1


def _upload_between_snapshot_and_listing(env: Env, monkeypatch: pytest.MonkeyPatch, wheel: Path) -> ReloadProgress:
    """A reload whose cache snapshot predates `wheel`'s row but whose listing sees its object."""
    reached, release = _block(env.storage, "list", monkeypatch)
    results: list[ReloadProgress] = []
    thread = threading.Thread(target=lambda: results.append(env.reload()))
    thread.start()
    try:
        assert reached.wait(10)  # the snapshot is taken, the listing not started
        assert upload(env.index, wheel).created
    finally:
        release.set()
        thread.join(20)
    return results[0]


def test_upload_racing_the_listing_keeps_the_uploaded_row(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    wheel = build_wheel(env.dists, "Demo", "1.0")
    result = _upload_between_snapshot_and_listing(env, monkeypatch, wheel)
    assert result.state == "done"
    row = env.rows()[wheel.name]
    assert (row.sha256, row.uploader) == (sha256(wheel.read_bytes()), "alice")
    assert row.md5 is not None
    assert_consistent(env)


def test_upload_racing_the_listing_is_not_reported_as_failed(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    wheel = build_wheel(env.dists, "Demo", "1.0")
    result = _upload_between_snapshot_and_listing(env, monkeypatch, wheel)
    assert result.failed == 0, f"a file the upload indexed is counted as a failure: {result.as_dict()}"


# -- readers during a reload ----------------------------------------------------------


BULK_PROJECTS = 250
BULK_FILES = 5000
NEW_FILES = 1000


def test_a_file_uploaded_again_after_the_snapshot_keeps_its_new_row(
    cache_env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Deleted and uploaded again (same bytes, a new ETag) between the snapshot and the listing: the reload
    must not put back the row it saw (yanked, from before), nor leave the new one without its hash."""
    env = cache_env
    wheel = build_wheel(env.dists, "Demo", "1.0")
    upload(env.index, wheel)
    env.index.yank("demo", "1.0", "old")
    real_list = env.storage.list

    def listing(*args: Any, **kwargs: Any) -> Any:
        env.index.delete_file("demo", wheel.name)
        upload(env.index, wheel)
        return real_list(*args, **kwargs)

    monkeypatch.setattr(env.storage, "list", listing)
    env.reload()
    row = env.rows()[wheel.name]
    assert not row.yanked and row.yanked_reason is None
    assert row.sha256 == hashlib.sha256(wheel.read_bytes()).hexdigest()


def test_a_file_uploaded_again_after_its_removal_was_confirmed_keeps_its_row(
    cache_env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reload saw the object gone; an identical upload lands before the reload applies: it stays indexed."""
    env = cache_env
    wheel = build_wheel(env.dists, "Demo", "1.0")
    upload(env.index, wheel)
    real_list, real_stat = env.storage.list, env.storage.stat
    raced: list[str] = []

    def listing(*args: Any, **kwargs: Any) -> Any:
        if not raced:
            env.index.delete_file("demo", wheel.name)  # after the snapshot: the listing lacks it
        return real_list(*args, **kwargs)

    def stat(key: str) -> Any:
        found = real_stat(key)
        if key == key_of(wheel) and found is None and not raced:
            raced.append(key)
            upload(env.index, wheel)  # confirmed gone; now uploaded again before the removals apply
        return found

    monkeypatch.setattr(env.storage, "list", listing)
    monkeypatch.setattr(env.storage, "stat", stat)
    env.reload()
    assert raced, "the race was not run"
    assert wheel.name in env.rows()
    assert env.json_page("demo").keys() == {wheel.name}


def test_a_yank_after_the_snapshot_survives_the_rewrite_of_its_object(
    cache_env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A yank between the snapshot and the apply of a changed object is not undone by the snapshot's state."""
    env = cache_env
    first, second = _other_size_wheels(env.dists)
    env.put(first)
    env.reload()
    real_list = env.storage.list

    def listing(*args: Any, **kwargs: Any) -> Any:
        env.put(second)  # the object is rewritten by another tool...
        env.index.yank("demo", "1.0", "late")  # ...and the release yanked after the reload's snapshot
        return real_list(*args, **kwargs)

    monkeypatch.setattr(env.storage, "list", listing)
    env.reload()
    assert env.rows()[first.name].yanked_reason == "late"
    env.reload()  # the next reload takes in the rewritten object, keeping the yank
    row = env.rows()[first.name]
    assert (row.yanked_reason, row.sha256) == ("late", hashlib.sha256(second.read_bytes()).hexdigest())


def test_a_reload_on_s3_and_dynamodb_never_runs_out_of_connections(
    raw_settings: dict[str, Any], request: pytest.FixtureRequest, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """16 workers fill files in together: every client's pool holds them, so urllib3 discards no connection."""
    with open_env("s3+dynamo", raw_settings, request, tmp_path / "dists") as env:
        wheel = build_wheel(env.dists, "Demo", "1.0").read_bytes()
        for n in range(64):
            put_raw(env.storage, f"demo/demo-1.{n}-py3-none-any.whl", wheel)
        with caplog.at_level(logging.WARNING):
            result = env.reload(workers=16)
        assert (result.added, result.hashed, result.failed) == (64, 64, 0)
        assert not [r.getMessage() for r in caplog.records if "pool is full" in r.getMessage()]


def _bulk_name(n: int) -> tuple[str, str]:
    project = f"bulk{n % BULK_PROJECTS:03d}"
    return project, f"{project}-1.{n}.tar.gz"


@pytest.mark.parametrize("kind", ["local", "local+postgresql"])
def test_readers_never_see_a_hole(
    kind: str, request: pytest.FixtureRequest, raw_settings: dict[str, Any], tmp_path: Path
) -> None:
    with open_env(kind, raw_settings, request, tmp_path / "dists") as env:
        storage = env.storage
        assert isinstance(storage, LocalStorage)
        for n in range(BULK_PROJECTS):
            (storage.root / _bulk_name(n)[0]).mkdir()
        for n in range(BULK_FILES):
            storage.root.joinpath(*_bulk_name(n)).write_bytes(b"bulk %d\n" % n)
        listed = {obj.key: obj for obj in storage.list()}
        originals = []
        for n in range(BULK_FILES):
            project, filename = _bulk_name(n)
            obj = listed[f"{project}/{filename}"]
            originals.append(
                PackageFile(
                    project=project,
                    filename=filename,
                    version=f"1.{n}",
                    packagetype="sdist",
                    python_version="source",
                    size=obj.size,
                    sha256=sha256(b"bulk %d\n" % n),
                    upload_time=obj.last_modified,
                    storage_etag=obj.etag,
                )
            )
        insert_rows(env.cache, originals)
        for n in range(BULK_FILES, BULK_FILES + NEW_FILES):
            storage.root.joinpath(*_bulk_name(n)).write_bytes(b"new %d\n" % n)

        original_projects = {f"bulk{i:03d}" for i in range(BULK_PROJECTS)}
        original_files = {f.filename for f in originals}
        watched = ["bulk000", "bulk001", "bulk137", "bulk249"]
        watched_files = {p: {f.filename for f in originals if f.project == p} for p in watched}
        cache = env.cache
        assert isinstance(cache, SQLCache)

        def filenames() -> set[str]:
            # Every filename in the cache, read the cheap way (5,000 ORM objects a poll would starve the reload).
            with cache.engine.connect() as conn:
                return set(conn.scalars(select(FileRow.filename)))

        holes: list[str] = []
        polls = {"total": 0, "during": 0}
        reloading, stop = threading.Event(), threading.Event()
        reader_error: list[BaseException] = []

        def reader() -> None:
            try:
                while not stop.is_set():
                    during = reloading.is_set()
                    index = env.testapp.get("/simple/", headers={"Accept": JSON_V1}).json
                    if missing := original_projects - {p["name"] for p in index["projects"]}:
                        holes.append(f"/simple/ lacks {len(missing)} projects")
                    for project in watched:
                        if missing := watched_files[project] - set(env.json_page(project)):
                            holes.append(f"/simple/{project}/ lacks {sorted(missing)[:3]}")
                    if missing := original_files - filenames():
                        holes.append(f"the cache lacks {len(missing)} files")
                    polls["total"] += 1
                    if during and reloading.is_set():
                        polls["during"] += 1
            except BaseException as exc:
                reader_error.append(exc)

        thread = threading.Thread(target=reader)
        thread.start()
        try:
            reloading.set()
            result = env.reload(workers=8)
            reloading.clear()
            time.sleep(0.2)
        finally:
            stop.set()
            thread.join(30)

        assert reader_error == []
        assert holes == []
        assert polls["during"] >= 3, polls
        assert counts(result) == {
            "added": NEW_FILES,
            "removed": 0,
            "changed": 0,
            "unchanged": BULK_FILES,
            "hashed": NEW_FILES,
            "failed": 0,
        }
        rows = env.rows()
        assert len(rows) == BULK_FILES + NEW_FILES
        assert all(row.sha256 for row in rows.values())
        assert len(env.json_page("bulk000")) == (BULK_FILES + NEW_FILES) // BULK_PROJECTS


# -- S3: request cost and faults -------------------------------------------------------


BUCKET_OBJECTS = 2500
# Each file, its record, and one state per project (files spread over BULK_PROJECTS projects).
BUCKET_KEYS = 2 * BUCKET_OBJECTS + BULK_PROJECTS
LISTINGS = -(-BUCKET_KEYS // 1000)


@dataclass(frozen=True)
class Bucket:
    """A bucket of BUCKET_OBJECTS sdists under `packages/` with their records and project states (BUCKET_KEYS
    keys), filled once per module and never changed."""

    moto: Moto
    name: str
    # An SQLite cache up to date with the bucket plus STALE rows; each test indexes a copy of it.
    template: Path

    def storage(self) -> S3Storage:
        """A storage with a client of its own: event handlers registered on it stay within one test."""
        settings = load_settings({**self.moto.s3_settings(self.name), "cache.url": "sqlite://"}, environ={})
        assert settings.storage.s3 is not None
        return S3Storage.from_settings(settings.storage.s3)


STALE = ["bulk000-0.1.tar.gz", "bulk001-0.1.tar.gz", "bulk002-0.1.tar.gz"]


def _bulk_body(n: int) -> bytes:
    return b"bucket object %d\n" % n


def _fill_bucket(moto: Moto, bucket: str, objects: dict[str, bytes]) -> None:
    try:
        # The moto server runs in this process: writing to its backend directly takes 0.1 s instead of 10 s.
        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.s3.models import s3_backends

        backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
        for key, data in objects.items():
            backend.put_object(bucket, key, data)
    except Exception:
        client = moto.client("s3")
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(lambda item: client.put_object(Bucket=bucket, Key=item[0], Body=item[1]), objects.items()))


def _sdist_row(filename: str, size: int, sha: str, obj: StoredObject) -> PackageFile:
    dist = parse_filename(filename)
    return PackageFile(
        project=dist.project,
        filename=filename,
        version=str(dist.version),
        packagetype="sdist",
        python_version="source",
        size=size,
        sha256=sha,
        upload_time=obj.last_modified,
        storage_etag=obj.etag,
    )


@pytest.fixture(scope="module")
def bucket(moto: Moto, tmp_path_factory: pytest.TempPathFactory) -> Bucket:
    name = moto.new_bucket()
    objects = {}
    for n in range(BUCKET_OBJECTS):
        project, filename = _bulk_name(n)
        objects[f"packages/{project}/{filename}"] = _bulk_body(n)
    _fill_bucket(moto, name, objects)
    bucket = Bucket(moto, name, tmp_path_factory.mktemp("bucket") / "template.sqlite")
    rows = []
    for obj in bucket.storage().list():
        filename = obj.key.split("/", 1)[1]
        n = int(str(parse_filename(filename).version).split(".")[1])
        rows.append(_sdist_row(filename, obj.size, sha256(_bulk_body(n)), obj))
    assert len(rows) == BUCKET_OBJECTS
    # As the index leaves a bucket: each file's record, each project's state (stored_state.py).
    records = {f"packages/{file_record_key(r.project, r.filename)}": file_record(r) for r in rows}
    states = {f"packages/{project_state_key(p)}": project_state(ProjectState(p, p)) for p in {r.project for r in rows}}
    _fill_bucket(moto, name, records | states)
    gone = replace(obj, etag="gone")
    rows += [_sdist_row(filename, 5, "0" * 64, gone) for filename in STALE]
    cache = SQLCache.from_settings(cache_settings(f"sqlite:///{bucket.template}"))
    try:
        insert_rows(cache, rows)
    finally:
        cache.close()
    return bucket


@dataclass
class BucketIndex:
    index: PackageIndex
    storage: S3Storage
    cache: SQLCache
    faults: S3Faults
    calls: S3Calls


@pytest.fixture
def bucket_index(bucket: Bucket, tmp_path: Path) -> Iterator[BucketIndex]:
    """The bucket, indexed already (every object unchanged), plus STALE rows whose objects are gone."""
    storage = bucket.storage()
    shutil.copyfile(bucket.template, tmp_path / "bucket.sqlite")
    cache = SQLCache.from_settings(cache_settings(f"sqlite:///{tmp_path / 'bucket.sqlite'}"))
    index = PackageIndex(storage, cache, UploadSettings(max_size=1_000_000, spool_dir=tmp_path / "spool"))
    try:
        yield BucketIndex(index, storage, cache, S3Faults(storage.client), S3Calls(storage.client, storage.prefix))
    finally:
        cache.close()


def test_reload_of_an_unchanged_bucket_costs_one_list_per_thousand_objects(bucket_index: BucketIndex) -> None:
    first = bucket_index.index.begin_reload().execute()
    assert first.removed == len(STALE)
    bucket_index.calls.reset()

    result = bucket_index.index.begin_reload().execute()

    assert result.objects == BUCKET_KEYS
    assert result.listed == BUCKET_OBJECTS
    assert counts(result) == {
        "added": 0,
        "removed": 0,
        "changed": 0,
        "unchanged": BUCKET_OBJECTS,
        "hashed": 0,
        "failed": 0,
    }
    # One GET per project state: a yank or status changed in storage (another region, a restore) is applied.
    assert bucket_index.calls.by_operation() == Counter({"ListObjectsV2": LISTINGS, "GetObject": BULK_PROJECTS})


def test_removal_costs_one_head_per_missing_object(bucket_index: BucketIndex) -> None:
    result = bucket_index.index.begin_reload().execute()
    assert (result.removed, result.unchanged) == (len(STALE), BUCKET_OBJECTS)
    assert bucket_index.calls.by_operation() == Counter(
        {"ListObjectsV2": LISTINGS, "HeadObject": len(STALE), "GetObject": BULK_PROJECTS}
    )
    assert bucket_index.calls.keys("HeadObject") == sorted(f"{parse_filename(f).project}/{f}" for f in STALE)


@pytest.mark.parametrize("fault", list(S3_FAULTS))
def test_listing_failure_fails_the_reload_and_removes_nothing(bucket_index: BucketIndex, fault: str) -> None:
    rows = rows_of(bucket_index.cache)
    bucket_index.faults.fail("ListObjectsV2", fault, on_call=2)  # the second page

    with pytest.raises(BackendUnavailable) as caught:
        bucket_index.index.begin_reload().execute()

    message = caught.value.message
    assert S3_FAULTS[fault][1] in message
    assert "list" in message
    assert bucket_index.calls.by_operation() == Counter({"ListObjectsV2": 2})
    assert rows_of(bucket_index.cache) == rows, "a failed listing must not remove (or add) anything"
    running, progress = bucket_index.index.reload_state()
    assert running is False, "the lease must be released"
    assert progress is not None
    assert (progress["state"], progress["error"]) == ("failed", message)

    bucket_index.faults.clear()
    result = bucket_index.index.begin_reload().execute()
    assert (result.state, result.removed, result.unchanged) == ("done", len(STALE), BUCKET_OBJECTS)


@pytest.mark.parametrize("fault", ["AccessDenied", "ReadTimeout"])
def test_head_failure_while_confirming_a_removal_removes_nothing(bucket_index: BucketIndex, fault: str) -> None:
    rows = rows_of(bucket_index.cache)
    bucket_index.faults.fail("HeadObject", fault, on_call=2)

    with pytest.raises(BackendUnavailable, match=S3_FAULTS[fault][1]):
        bucket_index.index.begin_reload().execute()

    assert rows_of(bucket_index.cache) == rows
    running, progress = bucket_index.index.reload_state()
    assert running is False
    assert progress is not None
    assert progress["state"] == "failed"


def test_new_objects_written_by_another_tool_cost_a_read(s3_env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    one_batch(monkeypatch)
    env = s3_env
    paths = [
        build_wheel(env.dists, "Demo", "1.0"),
        build_wheel(env.dists, "Demo", "2.0"),
        build_sdist(env.dists, "Demo", "1.0"),
        build_sdist(env.dists, "Other", "1.0"),
    ]
    keys = sorted(env.put(path) for path in paths)
    assert isinstance(env.storage, S3Storage)
    calls = S3Calls(env.storage.client, env.storage.prefix)

    result = env.reload()

    assert (result.added, result.hashed) == (4, 4)
    ops = calls.by_operation()
    assert ops["ListObjectsV2"] == 1
    assert calls.keys("HeadObject") == [], "no sidecar listed: the object is read anyway, the listing says the rest"
    states = ["_ppc/projects/demo.json", "_ppc/projects/other.json"]
    # Each object is read once; the new projects' states are created without a read (If-None-Match).
    assert calls.keys("GetObject") == keys, "no checksum and no sidecar: each object is read once"
    # Recorded back, once: one object of first sightings per project (a wheel's entry keeps its metadata: no
    # sidecar), each project's state.
    sightings = sightings_keys(env.storage, "demo") + sightings_keys(env.storage, "other")
    assert len(sightings) == 2
    assert calls.keys("PutObject") == sorted(sightings + states)
    assert set(ops) <= {"ListObjectsV2", "HeadObject", "GetObject", "PutObject"}


def _sidecar(path: Path) -> bytes:
    if path.name.endswith(".whl"):
        return wheel_metadata(path)
    dist = parse_filename(path.name)
    return metadata_text(dist.project, str(dist.version), summary="A tiny test package").encode()


def test_new_objects_with_checksum_and_sidecar_are_not_read(s3_env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    one_batch(monkeypatch)
    env = s3_env
    paths = [build_wheel(env.dists, "Demo", "1.0", requires_python=">=3.9"), build_wheel(env.dists, "Demo", "2.0")]
    keys = sorted(env.put(path, checksum=True) for path in paths)
    for path in paths:
        put_raw(env.storage, key_of(path) + ".metadata", _sidecar(path))
    assert isinstance(env.storage, S3Storage)
    calls = S3Calls(env.storage.client, env.storage.prefix)

    result = env.reload()

    assert (result.added, result.hashed, result.failed) == (2, 2, 0)
    assert calls.keys("HeadObject") == keys
    state = "_ppc/projects/demo.json"
    assert calls.keys("GetObject") == [key + ".metadata" for key in keys], "only small objects are read"
    # Their facts are recorded, once: one object of first sightings for both, the project's state.
    sightings = sightings_keys(env.storage, "demo")
    assert len(sightings) == 1 and set(sighted(env.storage, "demo")) == {p.name for p in paths}
    assert calls.keys("PutObject") == sorted([state, *sightings])
    rows = env.rows()
    for path in paths:
        assert rows[path.name].sha256 == sha256(path.read_bytes())
        assert rows[path.name].metadata_sha256 == sha256(wheel_metadata(path))
    assert rows[paths[0].name].requires_python == ">=3.9"


def test_uploads_are_reindexed_from_checksum_and_sidecar_without_reading_the_file(s3_env: Env, tmp_path: Path) -> None:
    """A fresh cache over a bucket that the service filled (a new region, or a lost database)."""
    env = s3_env
    paths = [build_wheel(env.dists, "Demo", "1.0"), build_sdist(env.dists, "Demo", "1.0")]
    for path in paths:
        upload(env.index, path)
    keys = sorted(key_of(p) for p in paths)
    storage = env.storage
    assert isinstance(storage, S3Storage)
    fresh = SQLCache.from_settings(cache_settings(f"sqlite:///{tmp_path / 'fresh.sqlite'}"))
    try:
        calls = S3Calls(storage.client, storage.prefix)
        result = begin_reload(storage, fresh, workers=4).execute()
        # Complete from the listing and the records: nothing left to fill in.
        assert (result.added, result.hashed, result.failed) == (2, 0, 0)
        rows = rows_of(fresh)
        for path in paths:
            assert rows[path.name] == replace(rows_of(env.cache)[path.name], storage_etag=rows[path.name].storage_etag)
        assert calls.keys("HeadObject") == []
        assert calls.keys("GetObject") == sorted(
            ["_ppc/projects/demo.json"] + [f"_ppc/files/{k}.json" for k in keys]
        ), "an object uploaded through the service has its record; reading the object is waste"
        assert calls.keys("PutObject") == []
    finally:
        fresh.close()


# -- the lease -----------------------------------------------------------------------


def test_only_one_reload_at_a_time(local_env: Env, tmp_path: Path) -> None:
    env = local_env
    env.put(build_sdist(env.dists, "Demo", "1.0"))
    run = env.index.begin_reload()
    with pytest.raises(Conflict, match="already running"):
        env.index.begin_reload()
    # Another process: its own engine on the same database.
    url = str(env.cache.engine.url) if isinstance(env.cache, SQLCache) else ""
    other = SQLCache.from_settings(cache_settings(url))
    try:
        with pytest.raises(Conflict):
            begin_reload(env.storage, other)
        assert other.lock_state(reload_module.LOCK_NAME)[0] is True
    finally:
        other.close()
    assert env.index.reload_state() == (True, None)

    assert run.execute().added == 1
    running, progress = env.index.reload_state()
    assert running is False
    assert progress is not None
    assert (progress["state"], progress["added"], progress["hashed"]) == ("done", 1, 1)
    assert "holder" not in progress
    assert env.index.begin_reload().execute().unchanged == 1


def test_reload_state_before_any_reload(local_env: Env) -> None:
    assert local_env.index.reload_state() == (False, None)


def test_expired_lease_can_be_taken_over(local_env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    env = local_env
    monkeypatch.setattr(reload_module, "LOCK_TTL", 0.2)
    env.index.begin_reload()  # a holder that died without releasing
    with pytest.raises(Conflict):
        env.index.begin_reload()
    time.sleep(0.3)
    assert env.index.reload_state()[0] is False
    monkeypatch.setattr(reload_module, "LOCK_TTL", 300.0)

    run = env.index.begin_reload()

    assert env.index.reload_state()[0] is True
    with pytest.raises(Conflict):
        env.index.begin_reload()
    assert run.execute().state == "done"


def test_run_whose_lease_was_taken_over_does_not_apply(local_env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    env = local_env
    monkeypatch.setattr(reload_module, "LOCK_TTL", 0.2)
    stalled = env.index.begin_reload()  # e.g. a process paused past its lease
    time.sleep(0.3)
    monkeypatch.setattr(reload_module, "LOCK_TTL", 300.0)
    current = env.index.begin_reload()
    env.put(build_sdist(env.dists, "Demo", "1.0"))

    with pytest.raises(Conflict):
        stalled.execute()  # two reloads at once is what the lease exists to prevent

    assert env.rows() == {}
    assert env.index.reload_state()[0] is True, "the current holder keeps its lease"
    assert current.execute().added == 1


def test_a_folder_spelled_by_another_tool_is_indexed_served_and_deleted(env: Env) -> None:
    # pypicloud and others write `My.Lib/` or `my_lib/`, not `my-lib/`: the row keeps the real key.
    wheel = build_wheel(env.dists, "My.Lib", "4.0")
    put_raw(env.storage, f"My.Lib/{wheel.name}", wheel.read_bytes())

    result = env.reload()

    assert counts(result)["added"] == 1 and counts(result)["hashed"] == 1
    row = env.rows()[wheel.name]
    assert (row.project, row.key, row.object_key) == ("my-lib", f"My.Lib/{wheel.name}", f"My.Lib/{wheel.name}")
    assert row.sha256 == sha256(wheel.read_bytes())
    with env.index.open_file(row) as fh:
        assert fh.read() == wheel.read_bytes()
    assert env.index.read_metadata(row).startswith(b"Metadata-Version")
    env.index.delete_file("my-lib", wheel.name)
    assert env.storage.stat(f"My.Lib/{wheel.name}") is None
    assert env.storage.stat(f"My.Lib/{wheel.name}.metadata") is None
    assert wheel.name not in env.rows()


# -- sidecar repair ------------------------------------------------------------------


def _advertised_hash(env: Env, wheel: Path) -> str:
    entry = env.json_page("demo")[wheel.name]
    return str(entry["core-metadata"]["sha256"])


def test_a_missing_sidecar_is_read_again_from_the_object_and_written_back(env: Env) -> None:
    wheel = build_wheel(env.dists, "Demo", "1.0", requires_python=">=3.9")
    upload(env.index, wheel)
    sidecar = key_of(wheel) + ".metadata"
    expected = wheel_metadata(wheel)
    assert _advertised_hash(env, wheel) == sha256(expected)
    delete_raw(env.storage, sidecar)

    served = env.testapp.get(f"/packages/demo/{wheel.name}.metadata")

    assert served.body == expected
    assert read(env.storage, sidecar) == expected
    assert env.reload().repaired == 0, "a plain reload reads no sidecar: nothing was missing"


def test_a_sidecar_with_other_bytes_is_never_served(env: Env) -> None:
    wheel = build_wheel(env.dists, "Demo", "1.0")
    upload(env.index, wheel)
    put_raw(env.storage, key_of(wheel) + ".metadata", b"Metadata-Version: 2.1\nName: other\n")

    served = env.testapp.get(f"/packages/demo/{wheel.name}.metadata")

    assert served.body == wheel_metadata(wheel), "the bytes its advertised hash names, read again from the wheel"
    assert read(env.storage, key_of(wheel) + ".metadata") == wheel_metadata(wheel)


def test_a_corrupt_sidecar_is_rewritten_by_a_verifying_reload(env: Env) -> None:
    wheel = build_wheel(env.dists, "Demo", "1.0")
    upload(env.index, wheel)
    sidecar = key_of(wheel) + ".metadata"
    expected = wheel_metadata(wheel)
    put_raw(env.storage, sidecar, b"garbage, not metadata")

    assert env.reload().repaired == 0, "a plain reload reads no sidecar"
    result = env.index.begin_reload(4, verify_sidecars=True).execute()

    assert (result.repaired, result.failed) == (1, 0)
    assert read(env.storage, sidecar) == expected
    assert _advertised_hash(env, wheel) == sha256(expected)
    assert env.index.begin_reload(4, verify_sidecars=True).execute().repaired == 0


def test_a_row_advertising_other_metadata_follows_the_object(env: Env) -> None:
    """The row's metadata hash is not the object's (a restored database, a bug): the repair corrects the row."""
    wheel = build_wheel(env.dists, "Demo", "1.0")
    key = env.put(wheel)
    obj = env.storage.stat(key)
    assert obj is not None
    row = replace(
        PackageFile.of(
            parse_filename(wheel.name), size=obj.size, sha256=sha256(wheel.read_bytes()), upload_time=obj.last_modified
        ),
        metadata_sha256="0" * 64,
        storage_etag=obj.etag,
    )
    insert_rows(env.cache, [row])

    result = env.index.begin_reload(4, verify_sidecars=True).execute()

    assert (result.unchanged, result.repaired, result.failed) == (1, 1, 0)
    expected = wheel_metadata(wheel)
    assert read(env.storage, key + ".metadata") == expected
    assert env.rows()[wheel.name].metadata_sha256 == sha256(expected)
    assert _advertised_hash(env, wheel) == sha256(expected)


def test_a_missing_sidecar_costs_the_reload_nothing_and_its_first_request_one_read(s3_env: Env) -> None:
    env = s3_env
    wheels = [build_wheel(env.dists, "Demo", "1.0"), build_wheel(env.dists, "Demo", "2.0")]
    for wheel in wheels:
        upload(env.index, wheel)
    key = key_of(wheels[0])
    delete_raw(env.storage, key + ".metadata")
    assert isinstance(env.storage, S3Storage)
    calls = S3Calls(env.storage.client, env.storage.prefix)

    result = env.reload()

    assert (result.unchanged, result.repaired) == (2, 0)
    assert set(calls.by_operation()) == {"ListObjectsV2", "GetObject"}
    assert calls.keys("GetObject") == ["_ppc/projects/demo.json"]
    calls.reset()
    served = env.testapp.get(f"/packages/demo/{wheels[0].name}.metadata")
    assert served.body == wheel_metadata(wheels[0])
    # The sidecar, then the record (an upload's keeps no metadata), then the wheel: read once, its sidecar put back.
    assert calls.keys("GetObject") == sorted([key + ".metadata", f"_ppc/files/{key}.json", key])
    assert calls.keys("PutObject") == [key + ".metadata"]
    calls.reset()
    assert env.testapp.get(f"/packages/demo/{wheels[0].name}.metadata").body == wheel_metadata(wheels[0])
    assert calls.keys("GetObject") == [key + ".metadata"]
