"""Storage holds the whole truth: a cache rebuilt from storage alone shows every fact the index showed.

Upload times and uploaders, yanks and their reasons, project statuses and their reasons, display
names; recorded once for files another tool placed; kept by concurrent writers; hostile records ignored.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pypicloud_lite.errors import InvalidInput, InvalidUpload
from pypicloud_lite.models import PackageFile, Project, ProjectState
from pypicloud_lite.naming import file_record_key, parse_filename, project_state_key
from pypicloud_lite.reload_state import StoredFacts
from pypicloud_lite.service import PackageIndex
from pypicloud_lite.storage.local import LocalStorage
from pypicloud_lite.storage.s3 import S3Storage
from pypicloud_lite.stored_state import StateStore, parse_project_state, project_state, sightings
from tests.support.distbuilder import build_sdist, build_wheel
from tests.support.legacy import JSON_V1
from tests.support.reload import Env, open_env, open_rebuilt, put_raw, sighted, upload


@pytest.fixture(params=["local", "s3", "local+postgresql", "local+dynamo"])
def env(request: pytest.FixtureRequest, raw_settings: dict[str, Any], tmp_path: Path) -> Iterator[Env]:
    with open_env(request.param, raw_settings, request, tmp_path / "dists") as opened:
        yield opened


def facts(index: PackageIndex) -> tuple[list[Project], list[PackageFile]]:
    """What the index shows, without the serials and storage ETags a rebuild may number otherwise."""
    projects = [replace(p, serial=0) for p in index.list_projects()]
    files = sorted(
        (replace(f, storage_etag=None) for p in index.list_projects() for f in index.project_files(p)),
        key=lambda f: f.filename,
    )
    return projects, files


def pages(env: Env) -> dict[str, Any]:
    """The simple pages (JSON) and the JSON API of every project, without serials."""
    shown: dict[str, Any] = {}
    for project in env.index.list_projects():
        page = env.testapp.get(f"/simple/{project.name}/", headers={"Accept": JSON_V1}).json
        page["meta"].pop("_last-serial", None)
        shown[f"/simple/{project.name}/"] = page
        info = env.testapp.get(f"/pypi/{project.name}/json").json
        info.pop("last_serial", None)
        shown[f"/pypi/{project.name}/json"] = info
    return shown


def test_a_cache_rebuilt_from_storage_shows_every_fact(
    env: Env, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    upload(env.index, build_wheel(env.dists, "Demo", "1.0", summary="first"), uploader="alice", name="Demo")
    upload(env.index, build_sdist(env.dists, "Demo", "1.0"), uploader="bob", name="Demo")
    upload(env.index, build_wheel(env.dists, "Demo", "2.0", requires_python=">=3.10"), uploader="carol")
    upload(env.index, build_sdist(env.dists, "Other.Lib", "0.1"), uploader="dave", name="Other.Lib")
    upload(env.index, build_sdist(env.dists, "Quiet", "3.0"), uploader="erin", name="Quiet")
    env.index.yank("demo", "1.0.0", "broken build")  # any spelling names the release
    env.index.set_status("Demo", "deprecated", "use other-lib")
    env.index.set_status("other-lib", "archived", "finished")
    env.index.delete_file("quiet", "quiet-3.0.tar.gz")  # a project left without files leaves the index
    # A new file joining the yanked release is yanked too, and so it is recorded.
    upload(env.index, build_wheel(env.dists / "late", "Demo", "1.0", tag="py2-none-any"), uploader="alice")
    before, before_pages = facts(env.index), pages(env)
    assert {(p.name, p.display_name, p.status) for p in before[0]} == {
        ("demo", "Demo", "deprecated"),
        ("other-lib", "Other.Lib", "archived"),
    }

    with open_rebuilt(env, request, tmp_path) as rebuilt:
        assert rebuilt.index.list_projects() == []
        result = rebuilt.reload()
        assert (result.added, result.hashed, result.failed) == (5, 0, 0), "every file is indexed from its record"
        assert facts(rebuilt.index) == before
        assert pages(rebuilt) == before_pages
        with pytest.raises(InvalidUpload, match="archived"):
            upload(rebuilt.index, build_sdist(env.dists, "Other.Lib", "0.2"), name="Other.Lib")


def test_a_reload_applies_states_changed_in_storage(env: Env, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """Another server (or region) over the same storage changes a yank and a status: a reload here applies them."""
    upload(env.index, build_wheel(env.dists, "Demo", "1.0"))
    upload(env.index, build_wheel(env.dists, "Demo", "2.0"))
    env.reload()
    with open_rebuilt(env, request, tmp_path) as other:
        other.reload()
        other.index.yank("demo", "2.0", "regression")
        other.index.set_status("demo", "quarantined", "under review")
    assert env.index.get_project("demo").status == "active"

    result = env.reload()

    assert (result.added, result.changed, result.removed) == (0, 0, 0)
    project = env.index.get_project("demo")
    assert (project.status, project.status_reason) == ("quarantined", "under review")
    yanks = {f.filename: (f.yanked, f.yanked_reason) for f in env.index.project_files(project)}
    assert yanks == {"demo-1.0-py3-none-any.whl": (False, None), "demo-2.0-py3-none-any.whl": (True, "regression")}


def _set_mtime(env: Env, key: str, when: float) -> None:
    if isinstance(env.storage, LocalStorage):
        os.utime(env.storage.root / key, (when, when))
    else:
        assert isinstance(env.storage, S3Storage)
        # A copy onto itself (as a restore or `aws s3 cp` does): a new LastModified, the same bytes.
        time.sleep(1.1)  # S3 times have whole seconds
        source = {"Bucket": env.storage.bucket, "Key": env.storage.prefix + key}
        env.storage.client.copy_object(
            Bucket=env.storage.bucket, Key=env.storage.prefix + key, CopySource=source, MetadataDirective="REPLACE"
        )


@pytest.mark.parametrize("kind", ["local", "s3"])
def test_a_file_another_tool_placed_keeps_the_time_first_seen(
    kind: str, raw_settings: dict[str, Any], request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    with open_env(kind, raw_settings, request, tmp_path / "dists") as env:
        wheel = build_wheel(env.dists, "Placed", "1.0")
        key = env.put(wheel)
        env.reload()
        first_seen = env.index.get_file("placed", wheel.name).upload_time
        assert env.storage.read_versioned(file_record_key("placed", wheel.name)) is None, "no record of its own"
        assert sighted(env.storage, "placed")[wheel.name]["upload_time"] == first_seen.isoformat(), "recorded back"

        _set_mtime(env, key, time.time() + 3600)
        with open_rebuilt(env, request, tmp_path) as rebuilt:
            rebuilt.reload()
            assert rebuilt.index.get_file("placed", wheel.name).upload_time == first_seen
        env.reload()
        assert env.index.get_file("placed", wheel.name).upload_time == first_seen


def test_an_index_from_before_records_gets_them_from_its_cache(
    env: Env, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Upgrading: rows that only the cache held (no record, no state) are recorded by the first reload."""
    upload(env.index, build_wheel(env.dists, "Demo", "1.0"), uploader="alice")
    env.index.yank("demo", "1.0", "old reason")
    env.index.set_status("demo", "deprecated", "old status")
    for key in (file_record_key("demo", "demo-1.0-py3-none-any.whl"), project_state_key("demo")):
        env.storage.delete(key)  # as an index from before stored state left its storage
    before = facts(env.index)

    env.reload()

    assert env.storage.read_versioned(project_state_key("demo")) is not None
    with open_rebuilt(env, request, tmp_path) as rebuilt:
        rebuilt.reload()
        assert facts(rebuilt.index) == before


def test_concurrent_yanks_and_status_changes_lose_nothing(env: Env) -> None:
    """Two servers (each its own PackageIndex over the same storage and cache) change one project at once."""
    for version in ("1.0", "2.0", "3.0"):
        upload(env.index, build_sdist(env.dists, "Busy", version))
    other = PackageIndex(env.storage, env.cache, env.index.upload_settings)
    barrier = threading.Barrier(2)

    def yank_all() -> None:
        barrier.wait()
        for version in ("1.0", "2.0", "3.0"):
            env.index.yank("busy", version, f"bad {version}")

    def change_status() -> None:
        barrier.wait()
        for status in ("deprecated", "archived"):
            other.set_status("busy", status, f"now {status}")

    with ThreadPoolExecutor(2) as pool:
        for future in [pool.submit(yank_all), pool.submit(change_status)]:
            future.result()

    state = StateStore(env.storage).read_project("busy")
    assert state is not None
    assert (state.status, state.status_reason) == ("archived", "now archived")
    assert dict(state.yanked) == {f"busy-{v}.tar.gz": f"bad {v}" for v in ("1.0", "2.0", "3.0")}


def test_hostile_records_are_ignored_and_logged(
    env: Env, request: pytest.FixtureRequest, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    wheel = build_wheel(env.dists, "Demo", "1.0")
    sdist = build_sdist(env.dists, "Demo", "1.0")
    upload(env.index, wheel)
    upload(env.index, sdist)
    # Another file's record under this one's key, and a state that is no JSON.
    sdist_record = env.storage.read_versioned(file_record_key("demo", sdist.name))
    assert sdist_record is not None
    env.storage.put_bytes(file_record_key("demo", wheel.name), sdist_record.data)
    env.storage.put_bytes(project_state_key("demo"), b"\x00not json" * 10)
    put_raw(env.storage, file_record_key("demo", "demo-9.0.tar.gz"), json.dumps({"format": 1}).encode())

    with open_rebuilt(env, request, tmp_path) as rebuilt, caplog.at_level(logging.WARNING):
        result = rebuilt.reload()
        # The wheel is read from its bytes instead; the record of a file that is not there changes nothing.
        assert (result.added, result.hashed, result.failed) == (2, 1, 0)
        row = rebuilt.index.get_file("demo", wheel.name)
        assert row.filename == wheel.name and row.packagetype == "bdist_wheel"
        assert "describes another file" in caplog.text
        assert "is not JSON" in caplog.text


def test_only_wheels_get_a_core_metadata_object(env: Env) -> None:
    upload(env.index, build_wheel(env.dists, "Demo", "1.0"))
    upload(env.index, build_sdist(env.dists, "Demo", "1.0"))
    keys = {obj.key for obj in env.storage.list()}
    wheel, sdist = "demo/demo-1.0-py3-none-any.whl", "demo/demo-1.0.tar.gz"
    assert wheel + ".metadata" in keys
    assert sdist + ".metadata" not in keys
    # The sdist's metadata lives in its record: the JSON API shows it after a rebuild too.
    record = StateStore(env.storage).read_file("demo", "demo-1.0.tar.gz")
    assert record is not None and record.core_metadata is not None


def test_update_project_retries_a_lost_race(env: Env) -> None:
    store = StateStore(env.storage)
    store.update_project("race", lambda current: current or ProjectState("race", "Race"))
    calls = 0

    def edit(current: ProjectState | None) -> ProjectState:
        nonlocal calls
        calls += 1
        assert current is not None
        if calls == 1:
            # Another writer lands between this read and its conditional write.
            store.update_project("race", lambda c: replace(c, status="archived") if c else None)
        return replace(current, yanked={**current.yanked, "race-1.0.tar.gz": "why"})

    result = store.update_project("race", edit)

    assert calls == 2, "the first conditional write must lose, and the edit run again on the new state"
    assert result == ProjectState("race", "Race", "archived", None, {"race-1.0.tar.gz": "why"})
    assert store.read_project("race") == result


def test_a_yank_made_while_a_reload_runs_is_not_undone(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    """The reload read the project's state; a yank lands before it applies what it read: the yank stays."""
    upload(env.index, build_wheel(env.dists, "Demo", "1.0"))
    upload(env.index, build_wheel(env.dists, "Demo", "2.0"))
    # Another server over this storage deprecated the project: this cache does not show it yet.
    StateStore(env.storage).update_project("demo", lambda s: replace(s, status="deprecated") if s else None)
    read_states = StoredFacts.read_states

    def then_a_yank(facts: StoredFacts) -> dict[str, ProjectState]:
        states = read_states(facts)
        env.index.yank("demo", "2.0", "late")
        return states

    monkeypatch.setattr(StoredFacts, "read_states", then_a_yank)
    env.reload()
    monkeypatch.undo()

    row = env.index.get_file("demo", "demo-2.0-py3-none-any.whl")
    assert (row.yanked, row.yanked_reason) == (True, "late"), "the reload applied the state it read before the yank"
    env.reload()  # the next reload applies what storage says now: both
    assert env.index.get_project("demo").status == "deprecated"
    row = env.index.get_file("demo", "demo-2.0-py3-none-any.whl")
    assert (row.yanked, row.yanked_reason) == (True, "late")


def test_a_project_state_keeps_its_origin() -> None:
    cached = ProjectState("upkg", "upkg", origin="upstream")
    assert parse_project_state(project_state(cached), "upkg") == cached
    # States written before upstreams existed, and local ones, carry no origin and read as local.
    local = ProjectState("mine", "Mine")
    assert b"origin" not in project_state(local)
    assert parse_project_state(project_state(local), "mine").origin == "local"
    hostile = project_state(cached).replace(b'"upstream"', b'"elsewhere"')
    with pytest.raises(InvalidInput, match="origin"):
        parse_project_state(hostile, "upkg")


@pytest.mark.parametrize(
    "raw", [b"Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n", b"Metadata-Version: 2.1\nSummary: caf\xe9\n"]
)
def test_a_record_keeps_the_exact_metadata_bytes_its_hash_names(tmp_path: Path, raw: bytes) -> None:
    store = StateStore(LocalStorage(tmp_path))
    file = replace(_recorded_wheel(), metadata_sha256=hashlib.sha256(raw).hexdigest())
    store.write_file(file, raw)
    doc = json.loads((tmp_path / file_record_key(file.project, file.filename)).read_bytes())
    assert ("metadata" in doc) == (raw.isascii()), "text when it is UTF-8, base64 when not"

    assert store.read_metadata(file) == raw
    assert store.read_metadata(replace(file, metadata_sha256="0" * 64)) is None, "other bytes than advertised"


def test_a_record_without_metadata_or_with_forged_metadata_gives_none(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    store = StateStore(storage)
    file = replace(_recorded_wheel(), metadata_sha256=hashlib.sha256(b"real").hexdigest())
    store.write_file(file)
    assert store.read_metadata(file) is None
    key = file_record_key(file.project, file.filename)
    doc = json.loads(storage.read_versioned(key).data)  # type: ignore[union-attr]
    put_raw(storage, key, json.dumps({**doc, "metadata_base64": "not base64!"}).encode())
    assert store.read_metadata(file) is None
    put_raw(storage, key, json.dumps({**doc, "metadata": "forged"}).encode())
    assert store.read_metadata(file) is None


def _recorded_wheel() -> PackageFile:
    return PackageFile.of(
        parse_filename("demo-1.0-py3-none-any.whl"), size=10, sha256="a" * 64, upload_time=datetime.now(UTC)
    )


def test_first_sightings_of_one_storage_keep_the_earliest_and_ignore_a_hostile_batch(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    store = StateStore(storage)
    early = _recorded_wheel()
    late = replace(early, upload_time=early.upload_time + timedelta(hours=1))
    store.record_sightings("demo", [(late, None)])
    store.record_sightings("demo", [(early, None)])
    assert store.read_sightings("demo") == {early.filename: early}

    # Another project's file in demo's folder, and a batch that is not JSON: each ignored whole, never fatal.
    other = replace(early, project="other", upload_time=early.upload_time - timedelta(days=1))
    put_raw(storage, "_ppc/seen/demo.1-forged.json", sightings("demo", storage.identity, [(other, None)]))
    put_raw(storage, "_ppc/seen/demo.2-garbage.json", b"{not json")
    assert store.read_sightings("demo") == {early.filename: early}
