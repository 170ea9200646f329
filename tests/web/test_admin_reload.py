"""POST/GET /admin/reload: a background reload for admins, its progress and result, 409 while one runs."""

from __future__ import annotations

import errno
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import webtest

from pypicloud_lite.access.passwords import hash_password
from pypicloud_lite.cache.sql import SQLCache
from pypicloud_lite.config import load_settings
from pypicloud_lite.reload import begin_reload
from pypicloud_lite.service import PackageIndex
from pypicloud_lite.storage.local import LocalStorage
from pypicloud_lite.storage.s3 import S3Storage
from pypicloud_lite.web import make_app
from tests.support.aws import Moto
from tests.support.cache import cache_settings
from tests.support.common import basic_auth, services
from tests.support.distbuilder import build_sdist, build_wheel
from tests.support.legacy import JSON_V1, wheel_metadata
from tests.support.reload import S3Faults, key_of, put_raw, sha256, wait_until_idle

READER = "reader"
READER_PASSWORD = "not an admin"
_READER_HASH = hash_password(READER_PASSWORD)
STATUS_URL = "http://localhost/admin/reload"


@pytest.fixture
def raw_settings(raw_settings: dict[str, Any]) -> dict[str, Any]:
    return {**raw_settings, f"user.{READER}": _READER_HASH}


@pytest.fixture
def reader() -> dict[str, str]:
    return basic_auth(READER, READER_PASSWORD)


def put_dists(index: PackageIndex, dist_dir: Path) -> list[Path]:
    """A wheel and an sdist of Demo 1.0 put straight into storage, as another tool would."""
    paths = [build_wheel(dist_dir, "Demo", "1.0", requires_python=">=3.9"), build_sdist(dist_dir, "Demo", "1.0")]
    for path in paths:
        put_raw(index.storage, key_of(path), path.read_bytes())
    return paths


def status(testapp: webtest.TestApp, auth: dict[str, str]) -> dict[str, Any]:
    found: dict[str, Any] = testapp.get("/admin/reload", headers=auth).json
    return found


def files_of(testapp: webtest.TestApp, project: str) -> dict[str, dict[str, Any]]:
    resp = testapp.get(f"/simple/{project}/", headers={"Accept": JSON_V1}, expect_errors=True)
    return {f["filename"]: f for f in resp.json["files"]} if resp.status_int == 200 else {}


def test_post_starts_a_background_reload_that_get_follows(
    testapp: webtest.TestApp, index: PackageIndex, auth: dict[str, str], dist_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wheel, sdist = put_dists(index, dist_dir)
    real_open = index.storage.open
    gate = threading.Event()

    def gated_open(key: str, *args: Any) -> Any:
        gate.wait(30)
        return real_open(key, *args)

    monkeypatch.setattr(index.storage, "open", gated_open)
    try:
        resp = testapp.post("/admin/reload", headers=auth, status=202)
        assert resp.json == {"state": "started", "progress": STATUS_URL}
        assert resp.location == STATUS_URL

        deadline = time.monotonic() + 10
        while (current := status(testapp, auth))["progress"] is None or current["progress"]["state"] != "filling":
            assert time.monotonic() < deadline, current
            time.sleep(0.02)
        assert current["running"] is True
        # Every read is held at the gate: the fill's total is known, none is done yet.
        assert {k: current["estimate"][k] for k in ("phase", "done", "total", "percent")} == {
            "phase": "filling",
            "done": 0,
            "total": 2,
            "percent": 0.0,
        }
        progress = current["progress"]
        assert {k: progress[k] for k in ("listed", "added", "removed", "changed", "hashed", "failed")} == {
            "listed": 2,
            "added": 2,
            "removed": 0,
            "changed": 0,
            "hashed": 0,
            "failed": 0,
        }
        assert isinstance(progress["visible_seconds"], float)
        assert progress["complete_seconds"] is None
        assert "holder" not in progress
        # Listed at once, before any hash is known.
        listed = files_of(testapp, "demo")
        assert set(listed) == {wheel.name, sdist.name}
        assert all(f["hashes"] == {} for f in listed.values())

        conflict = testapp.post("/admin/reload", headers=auth, status=409)
        assert conflict.json["status"] == 409
        assert "already running" in conflict.json["message"]
        assert "already running" in conflict.status
        assert testapp.post("/admin/reload?wait=1", headers=auth, status=409).json["status"] == 409
    finally:
        gate.set()

    wait_until_idle(index)
    final = status(testapp, auth)
    assert final["running"] is False
    result = final["progress"]
    assert (result["state"], result["added"], result["hashed"], result["failed"], result["error"]) == (
        "done",
        2,
        2,
        0,
        None,
    )
    assert isinstance(result["complete_seconds"], float)
    assert result["visible_seconds"] <= result["complete_seconds"]
    filled = files_of(testapp, "demo")
    assert filled[wheel.name]["hashes"] == {"sha256": sha256(wheel.read_bytes())}
    assert filled[wheel.name]["requires-python"] == ">=3.9"
    assert filled[sdist.name]["hashes"] == {"sha256": sha256(sdist.read_bytes())}


def test_post_wait_answers_with_the_result(
    testapp: webtest.TestApp, index: PackageIndex, auth: dict[str, str], dist_dir: Path
) -> None:
    put_dists(index, dist_dir)

    first = testapp.post("/admin/reload?wait=1", headers=auth, status=200).json

    assert first["state"] == "done"
    assert (first["listed"], first["added"], first["hashed"], first["unchanged"]) == (2, 2, 2, 0)
    assert "holder" not in first
    second = testapp.post("/admin/reload?wait=true", headers=auth, status=200).json
    assert (second["added"], second["unchanged"], second["hashed"]) == (0, 2, 0)
    after = status(testapp, auth)
    assert (after["running"], after["progress"]) == (False, second)
    assert (after["estimate"]["phase"], after["estimate"]["total"], after["estimate"]["percent"]) == ("done", 2, 100.0)
    assert after["line"].startswith("done: 2 of 2 files (100%), ")


def test_post_verify_sidecars_repairs_a_corrupt_sidecar(
    testapp: webtest.TestApp, index: PackageIndex, auth: dict[str, str], dist_dir: Path
) -> None:
    wheel = build_wheel(dist_dir, "Demo", "1.0")
    put_raw(index.storage, key_of(wheel), wheel.read_bytes())
    testapp.post("/admin/reload?wait=1", headers=auth, status=200)
    sidecar = key_of(wheel) + ".metadata"
    good = wheel_metadata(wheel)
    put_raw(index.storage, sidecar, b"not the metadata")  # the reload wrote none: the record keeps it

    plain = testapp.post("/admin/reload?wait=1", headers=auth, status=200).json
    verified = testapp.post("/admin/reload?wait=1&verify_sidecars=1", headers=auth, status=200).json

    assert (plain["repaired"], verified["repaired"]) == (0, 1)
    assert status(testapp, auth)["progress"]["repaired"] == 1
    with index.storage.open(sidecar) as fh:
        assert fh.read() == good
    assert files_of(testapp, "demo")[wheel.name]["core-metadata"] == {"sha256": sha256(good)}


@pytest.mark.parametrize(
    ("method", "caller", "expected"),
    [
        ("POST", "anonymous", 401),
        ("POST", "wrong-password", 401),
        ("POST", "reader", 403),
        ("GET", "anonymous", 401),
        ("GET", "wrong-password", 401),
        ("GET", "reader", 403),
    ],
)
def test_reload_is_for_admins(
    testapp: webtest.TestApp,
    index: PackageIndex,
    dist_dir: Path,
    reader: dict[str, str],
    method: str,
    caller: str,
    expected: int,
) -> None:
    put_dists(index, dist_dir)
    headers = {"anonymous": {}, "wrong-password": basic_auth(READER, "guess"), "reader": reader}[caller]

    resp = testapp.request("/admin/reload?wait=1", method=method, headers=headers, expect_errors=True)

    assert resp.status_int == expected
    assert resp.json["status"] == expected
    if expected == 401:
        assert resp.headers["WWW-Authenticate"].startswith("Basic")
    assert index.reload_state() == (False, None), "no reload may start"
    assert index.cache.all_files() == []


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
def test_other_methods_are_not_allowed(testapp: webtest.TestApp, auth: dict[str, str], method: str) -> None:
    resp = testapp.request("/admin/reload", method=method, headers=auth, expect_errors=True)
    assert resp.status_int == 405
    assert resp.headers["Allow"] == "GET, HEAD, POST"


@pytest.fixture
def s3_app(raw_settings: dict[str, Any], moto: Moto) -> Iterator[webtest.TestApp]:
    settings = {k: v for k, v in raw_settings.items() if k != "storage.dir"}
    settings.update(moto.s3_settings(moto.new_bucket()))
    app = make_app(load_settings(settings, environ={}))
    try:
        yield webtest.TestApp(app)
    finally:
        services(app).index.cache.close()


def test_failed_reload_is_reported_and_removes_nothing(
    s3_app: webtest.TestApp, auth: dict[str, str], dist_dir: Path
) -> None:
    index = services(s3_app.app).index
    assert isinstance(index.storage, S3Storage)
    paths = put_dists(index, dist_dir)
    assert s3_app.post("/admin/reload?wait=1", headers=auth).json["added"] == 2
    rows = index.cache.all_files()
    faults = S3Faults(index.storage.client)

    faults.fail("ListObjectsV2", "SlowDown")
    resp = s3_app.post("/admin/reload?wait=1", headers=auth, status=503)
    assert "SlowDown" in resp.json["message"]
    assert resp.headers["Retry-After"]
    reported = status(s3_app, auth)
    assert reported["running"] is False
    assert reported["progress"]["state"] == "failed"
    assert "SlowDown" in reported["progress"]["error"]
    assert index.cache.all_files() == rows

    # In the background, the same failure is the recorded result.
    faults.fail("ListObjectsV2", "AccessDenied")
    s3_app.post("/admin/reload", headers=auth, status=202)
    result = wait_until_idle(index)
    assert result["state"] == "failed"
    assert "AccessDenied" in str(result["error"])
    assert status(s3_app, auth)["progress"] == result
    assert index.cache.all_files() == rows

    # The lease was released both times: the next reload runs.
    faults.clear()
    final = s3_app.post("/admin/reload?wait=1", headers=auth, status=200).json
    assert (final["state"], final["unchanged"], final["removed"]) == ("done", len(paths), 0)


def test_unexpected_failure_in_the_background_is_reported(
    testapp: webtest.TestApp, index: PackageIndex, auth: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_list(prefix: str = "") -> Iterator[Any]:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(index.storage, "list", broken_list)
    testapp.post("/admin/reload", headers=auth, status=202)

    result = wait_until_idle(index)
    assert result["state"] == "failed", f"GET /admin/reload must not show a dead reload as {result['state']!r}"
    assert "Input/output error" in str(result["error"])


def test_reload_on_start_indexes_what_storage_holds(raw_settings: dict[str, Any], dist_dir: Path) -> None:
    storage = LocalStorage(Path(raw_settings["storage.dir"]))
    paths = [build_wheel(dist_dir, "Demo", "1.0"), build_sdist(dist_dir, "Demo", "1.0")]
    for path in paths:
        put_raw(storage, key_of(path), path.read_bytes())

    app = make_app(load_settings({**raw_settings, "pypi.reload_on_start": "true"}, environ={}))
    index = services(app).index
    testapp = webtest.TestApp(app)
    try:
        deadline = time.monotonic() + 10
        while not (
            (files := files_of(testapp, "demo")).keys() == {p.name for p in paths}
            and all(f["hashes"] for f in files.values())
        ):
            assert time.monotonic() < deadline, files
            time.sleep(0.05)
        for path in paths:
            assert files[path.name]["hashes"] == {"sha256": sha256(path.read_bytes())}
        assert wait_until_idle(index)["state"] == "done"
    finally:
        wait_until_idle(index)
        index.cache.close()


def test_reload_on_start_is_skipped_while_another_reload_runs(raw_settings: dict[str, Any], dist_dir: Path) -> None:
    storage = LocalStorage(Path(raw_settings["storage.dir"]))
    path = build_sdist(dist_dir, "Demo", "1.0")
    put_raw(storage, key_of(path), path.read_bytes())
    other = SQLCache.from_settings(cache_settings(raw_settings["cache.url"]))
    try:
        held = begin_reload(storage, other)  # another process is reloading

        app = make_app(load_settings({**raw_settings, "pypi.reload_on_start": "true"}, environ={}))
        index = services(app).index
        try:
            time.sleep(0.3)
            assert index.cache.all_files() == []
            assert index.reload_state() == (True, None)
            assert held.execute().added == 1
            assert [f.filename for f in index.cache.all_files()] == [path.name]
        finally:
            index.cache.close()
    finally:
        other.close()
