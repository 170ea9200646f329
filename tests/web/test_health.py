"""GET /health: 200 while storage and cache answer, 503 with the failing part named when one does not."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import webtest

from pypicloud_lite.config import Settings
from pypicloud_lite.errors import BackendUnavailable
from pypicloud_lite.service import PackageIndex
from tests.support.apiutil import assert_error, call
from tests.support.webapp import Uploaded


@pytest.fixture
def raw_settings(raw_settings: dict[str, Any]) -> dict[str, Any]:
    # A private index throughout: health is still for anyone (load balancers send no credentials).
    return {**raw_settings, "pypi.default_read": ""}


def fail(message: str) -> Any:
    def check_health() -> None:
        raise BackendUnavailable(message)

    return check_health


def test_healthy(testapp: webtest.TestApp) -> None:
    resp = testapp.get("/health")
    assert resp.status_int == 200
    assert resp.content_type == "application/json"
    assert resp.json == {"status": "ok", "storage": "ok", "cache": "ok"}
    assert "no-store" in resp.headers["Cache-Control"]


def test_head(testapp: webtest.TestApp) -> None:
    resp = testapp.head("/health")
    assert resp.status_int == 200
    assert resp.body == b""


@pytest.mark.parametrize(
    ("storage", "cache"),
    [
        ("Storage folder /srv/packages is not writable", None),
        (None, "The package cache database is unavailable."),
        ("storage down", "cache down"),
    ],
    ids=["storage", "cache", "both"],
)
def test_unavailable(
    testapp: webtest.TestApp,
    index: PackageIndex,
    monkeypatch: pytest.MonkeyPatch,
    storage: str | None,
    cache: str | None,
) -> None:
    if storage is not None:
        monkeypatch.setattr(index.storage, "check_health", fail(storage))
    if cache is not None:
        monkeypatch.setattr(index.cache, "check_health", fail(cache))
    resp = testapp.get("/health", expect_errors=True)
    assert resp.status_int == 503
    assert resp.json == {"status": "unavailable", "storage": storage or "ok", "cache": cache or "ok"}
    assert "no-store" in resp.headers["Cache-Control"]


def test_recovers(testapp: webtest.TestApp, index: PackageIndex, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(index.storage, "check_health", fail("storage down"))
    assert testapp.get("/health", expect_errors=True).status_int == 503
    monkeypatch.undo()
    assert testapp.get("/health").json["status"] == "ok"


def test_storage_folder_gone(testapp: webtest.TestApp, settings: Settings) -> None:
    # A real failure, no monkeypatching: the folder was removed (an unmounted volume) after start-up.
    # (chmod would not do: the tests may run as root, who can write anywhere.)
    assert settings.storage.dir is not None
    shutil.rmtree(settings.storage.dir)
    resp = testapp.get("/health", expect_errors=True)
    assert resp.status_int == 503
    assert resp.json["status"] == "unavailable"
    assert "not writable" in resp.json["storage"]
    assert resp.json["cache"] == "ok"


def test_needs_no_credentials_in_a_private_index(testapp: webtest.TestApp) -> None:
    assert testapp.get("/simple/", expect_errors=True).status_int == 401
    assert testapp.get("/health").json["status"] == "ok"


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
def test_wrong_method(testapp: webtest.TestApp, method: str) -> None:
    resp = call(testapp, method, "/health")
    assert_error(resp, 405)
    assert resp.headers["Allow"] == "GET, HEAD"


def _corrupt(database: Path, offset: int, data: bytes) -> None:
    with open(database, "r+b") as fh:
        fh.seek(offset)
        fh.write(data)


def test_a_corrupt_cache_database(testapp: webtest.TestApp, uploaded: Uploaded, settings: Settings) -> None:
    assert testapp.get("/health").json["status"] == "ok"
    database = Path(settings.cache.url.removeprefix("sqlite:///"))
    _corrupt(database, 0, b"this is not sqlite" * 6)  # the header
    resp = testapp.get("/health", expect_errors=True)
    assert resp.status_int == 503, resp.text
    assert resp.json["cache"] != "ok"


def test_a_corrupt_table_page(
    testapp: webtest.TestApp, uploaded: Uploaded, settings: Settings, index: PackageIndex
) -> None:
    # The header intact, every page after the first overwritten: a read of real rows fails. Everything
    # checkpointed into the file and no page cached first, as in a worker started after the damage.
    engine = index.cache.engine
    with engine.connect() as connection:
        connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    database = Path(settings.cache.url.removeprefix("sqlite:///"))
    page_size = int.from_bytes(database.read_bytes()[16:18], "big")
    size = database.stat().st_size
    _corrupt(database, page_size, b"\xff" * (size - page_size))
    resp = testapp.get("/health", expect_errors=True)
    assert resp.status_int == 503, resp.text
    assert resp.json["cache"] != "ok"


def test_storage_that_cannot_be_listed(
    testapp: webtest.TestApp, index: PackageIndex, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(path: Any) -> Any:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr("pypicloud_lite.storage.local.os.scandir", broken)
    resp = testapp.get("/health", expect_errors=True)
    assert resp.status_int == 503
    assert resp.json["storage"].endswith("cannot be listed: Input/output error")
