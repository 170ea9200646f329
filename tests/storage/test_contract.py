"""The Storage contract: every storage backend must pass these (LocalStorage now; S3Storage is one more param)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from pypicloud_lite.config import load_settings
from pypicloud_lite.errors import BackendUnavailable, InvalidInput, NotFound, PypicloudLiteError
from pypicloud_lite.storage.base import Storage
from pypicloud_lite.storage.local import LocalStorage
from pypicloud_lite.storage.s3 import S3Storage
from tests.support.aws import Moto

# A new backend is one more entry here and one more branch in the `storage` fixture.
STORAGE_BACKENDS = ["local", "s3"]


@pytest.fixture(params=STORAGE_BACKENDS)
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Storage]:
    if request.param == "local":
        yield LocalStorage(tmp_path / "storage" / "root")
    elif request.param == "s3":
        moto: Moto = request.getfixturevalue("moto")
        settings = load_settings({**moto.s3_settings(moto.new_bucket()), "cache.url": "sqlite://"}, environ={})
        assert settings.storage.s3 is not None
        yield S3Storage.from_settings(settings.storage.s3)
    else:  # pragma: no cover - a param without a branch is a mistake in this file
        raise AssertionError(f"no fixture branch for storage backend {request.param!r}")


@pytest.fixture
def source(tmp_path: Path) -> Path:
    """A local file to upload, like the spooled upload the service passes to put_new."""
    path = tmp_path / "upload.part"
    path.write_bytes(b"first contents\n" * 100)
    return path


def _read(storage: Storage, key: str) -> bytes:
    with storage.open(key) as fh:
        return fh.read()


def _keys(storage: Storage, prefix: str = "") -> list[str]:
    return sorted(obj.key for obj in storage.list(prefix))


def test_put_new_stores_once_and_never_overwrites(storage: Storage, source: Path, tmp_path: Path) -> None:
    key = "demo/demo-1.0.tar.gz"
    assert storage.put_new(key, source) is True
    assert _read(storage, key) == source.read_bytes()

    other = tmp_path / "other.part"
    other.write_bytes(b"different contents")
    assert storage.put_new(key, other) is False
    assert _read(storage, key) == source.read_bytes()
    assert _keys(storage) == [key]


def test_put_new_leaves_the_source_in_place(storage: Storage, source: Path) -> None:
    data = source.read_bytes()
    storage.put_new("demo/demo-1.0.tar.gz", source)
    assert source.read_bytes() == data


def test_put_bytes_creates_and_replaces(storage: Storage) -> None:
    key = "demo/demo-1.0-py3-none-any.whl.metadata"
    storage.put_bytes(key, b"Metadata-Version: 2.1\n")
    assert _read(storage, key) == b"Metadata-Version: 2.1\n"
    storage.put_bytes(key, b"Metadata-Version: 2.4\nName: demo\n")
    assert _read(storage, key) == b"Metadata-Version: 2.4\nName: demo\n"
    assert _keys(storage) == [key]


def test_put_bytes_of_nothing(storage: Storage) -> None:
    storage.put_bytes("demo/empty.metadata", b"")
    assert _read(storage, "demo/empty.metadata") == b""
    stat = storage.stat("demo/empty.metadata")
    assert stat is not None
    assert stat.size == 0


def test_stat_reports_size_and_an_aware_time(storage: Storage, source: Path) -> None:
    before = datetime.now(UTC) - timedelta(minutes=5)
    storage.put_new("demo/demo-1.0.tar.gz", source)
    stat = storage.stat("demo/demo-1.0.tar.gz")
    assert stat is not None
    assert stat.key == "demo/demo-1.0.tar.gz"
    assert stat.size == source.stat().st_size
    assert stat.last_modified.tzinfo is not None
    assert before <= stat.last_modified <= datetime.now(UTC) + timedelta(minutes=5)


def test_missing_objects(storage: Storage) -> None:
    assert storage.stat("demo/absent-1.0.tar.gz") is None
    with pytest.raises(NotFound):
        storage.open("demo/absent-1.0.tar.gz")
    storage.delete("demo/absent-1.0.tar.gz")  # deleting an absent object is fine
    assert list(storage.list()) == []


def test_delete_is_idempotent(storage: Storage, source: Path) -> None:
    storage.put_new("demo/demo-1.0.tar.gz", source)
    storage.put_bytes("demo/demo-1.0.tar.gz.metadata", b"meta")
    storage.delete("demo/demo-1.0.tar.gz")
    assert storage.stat("demo/demo-1.0.tar.gz") is None
    with pytest.raises(NotFound):
        storage.open("demo/demo-1.0.tar.gz")
    storage.delete("demo/demo-1.0.tar.gz")
    assert _keys(storage) == ["demo/demo-1.0.tar.gz.metadata"]


def test_a_deleted_key_can_be_written_again(storage: Storage, source: Path, tmp_path: Path) -> None:
    storage.put_new("demo/demo-1.0.tar.gz", source)
    storage.delete("demo/demo-1.0.tar.gz")
    replacement = tmp_path / "replacement.part"
    replacement.write_bytes(b"second contents")
    assert storage.put_new("demo/demo-1.0.tar.gz", replacement) is True
    assert _read(storage, "demo/demo-1.0.tar.gz") == b"second contents"


def test_a_key_prefix_is_not_an_object(storage: Storage, source: Path) -> None:
    # "demo" only exists as the folder (or prefix) of "demo/...": it is no object of its own.
    storage.put_new("demo/demo-1.0.tar.gz", source)
    for prefix in ("demo", "demo/"):
        assert storage.stat(prefix) is None
        with pytest.raises(NotFound):
            storage.open(prefix)
        storage.delete(prefix)
    assert _keys(storage) == ["demo/demo-1.0.tar.gz"]


def test_list_with_prefix(storage: Storage, source: Path) -> None:
    keys = {
        "alpha/alpha-1.0.tar.gz": b"a" * 10,
        "alpha/alpha-1.0-py3-none-any.whl": b"w" * 20,
        "alpha/alpha-1.0-py3-none-any.whl.metadata": b"m" * 5,
        "alpha-beta/alpha_beta-1.0.tar.gz": b"b" * 30,
        "zeta/zeta-2.0.zip": b"z" * 40,
    }
    for key, data in keys.items():
        storage.put_bytes(key, data)
    assert _keys(storage) == sorted(keys)
    assert _keys(storage, "alpha/") == sorted(k for k in keys if k.startswith("alpha/"))
    assert _keys(storage, "alpha") == sorted(k for k in keys if k.startswith("alpha"))
    assert _keys(storage, "alpha/alpha-1.0-") == [
        "alpha/alpha-1.0-py3-none-any.whl",
        "alpha/alpha-1.0-py3-none-any.whl.metadata",
    ]
    assert _keys(storage, "nothing/") == []
    sizes = {obj.key: obj.size for obj in storage.list()}
    assert sizes == {key: len(data) for key, data in keys.items()}
    assert all(obj.last_modified.tzinfo is not None for obj in storage.list())


@pytest.mark.parametrize("key", ["../escaped", "demo/../../escaped", "demo/../../../tmp/escaped", "/escaped"])
def test_keys_that_escape_the_root_are_refused(storage: Storage, source: Path, tmp_path: Path, key: str) -> None:
    before = sorted(p for p in tmp_path.rglob("*"))
    with pytest.raises(PypicloudLiteError):
        storage.put_new(key, source)
    with pytest.raises(PypicloudLiteError):
        storage.put_bytes(key, b"escaped")
    with pytest.raises(PypicloudLiteError):
        storage.open(key)
    assert storage.stat(key) is None
    assert sorted(p for p in tmp_path.rglob("*")) == before
    assert not Path("/escaped").exists()


def test_an_escaping_key_cannot_read_outside_the_root(storage: Storage, tmp_path: Path) -> None:
    secret = tmp_path / "storage" / "secret.txt"
    secret.parent.mkdir(parents=True, exist_ok=True)
    secret.write_text("not a package")
    with pytest.raises(PypicloudLiteError):
        storage.open("../secret.txt")
    assert storage.stat("../secret.txt") is None
    with pytest.raises(PypicloudLiteError):
        storage.delete("../secret.txt")
    assert secret.read_text() == "not a package"


@pytest.mark.parametrize("movable", [False, True])
def test_concurrent_put_new_of_one_key_has_exactly_one_winner(storage: Storage, tmp_path: Path, movable: bool) -> None:
    count = 8
    sources = []
    for i in range(count):
        path = tmp_path / f"racer-{i}.part"
        path.write_bytes(f"racer {i}\n".encode() * 20_000)
        sources.append(path)
    barrier = threading.Barrier(count)

    def race(i: int) -> bool:
        barrier.wait()
        return storage.put_new("demo/demo-1.0.tar.gz", sources[i], movable=movable)

    with ThreadPoolExecutor(max_workers=count) as pool:
        results = list(pool.map(race, range(count)))
    assert results.count(True) == 1
    winner = sources[results.index(True)].read_bytes()
    for path in sources:
        path.unlink()  # the callers' spool files go; the object stays
    assert _read(storage, "demo/demo-1.0.tar.gz") == winner
    assert _keys(storage) == ["demo/demo-1.0.tar.gz"]  # no temporary leftovers are listed


def test_download_url_is_none_or_a_url(storage: Storage, source: Path) -> None:
    storage.put_new("demo/demo-1.0.tar.gz", source)
    url = storage.download_url("demo/demo-1.0.tar.gz", "demo-1.0.tar.gz")
    assert url is None or (url.url.startswith(("http://", "https://")) and url.max_age >= 0)


def test_check_health_passes_on_a_working_backend(storage: Storage) -> None:
    storage.check_health()


def test_check_health_fails_when_storage_cannot_be_listed(storage: Storage, monkeypatch: pytest.MonkeyPatch) -> None:
    # Health makes a real listing: reachable but unlistable storage is unavailable.
    def broken(*args: Any, **kwargs: Any) -> Any:
        if isinstance(storage, LocalStorage):
            raise OSError(5, "Input/output error")
        raise ClientError({"Error": {"Code": "AccessDenied", "Message": "denied"}}, "ListObjectsV2")

    if isinstance(storage, LocalStorage):
        monkeypatch.setattr("pypicloud_lite.storage.local.os.scandir", broken)
    else:
        monkeypatch.setattr(storage.client, "list_objects_v2", broken)  # type: ignore[attr-defined]
    with pytest.raises(BackendUnavailable):
        storage.check_health()


def test_local_storage_leaves_no_temporary_files(tmp_path: Path, source: Path) -> None:
    root = tmp_path / "root"
    local = LocalStorage(root)
    local.put_new("demo/demo-1.0.tar.gz", source)
    local.put_new("demo/demo-1.0.tar.gz", source)
    local.put_bytes("demo/demo-1.0.tar.gz.metadata", b"meta")
    assert sorted(p.name for p in (root / "demo").iterdir()) == ["demo-1.0.tar.gz", "demo-1.0.tar.gz.metadata"]


# -- conditional writes of small state objects (read_versioned / put_if) -------------------


def test_a_state_object_is_read_whole_up_to_the_limit_and_refused_beyond(storage: Storage) -> None:
    storage.put_bytes("_ppc/projects/at.json", b"x" * 100)
    storage.put_bytes("_ppc/projects/over.json", b"x" * 101)
    found = storage.read_versioned("_ppc/projects/at.json", limit=100)
    assert found is not None and found.data == b"x" * 100
    with pytest.raises(InvalidInput):
        storage.read_versioned("_ppc/projects/over.json", limit=100)


def test_put_if_creates_only_when_absent(storage: Storage) -> None:
    key = "_ppc/projects/demo.json"
    assert storage.read_versioned(key) is None
    assert storage.put_if(key, b'{"a": 1}', None) is True
    assert storage.put_if(key, b'{"a": 2}', None) is False  # someone created it first
    current = storage.read_versioned(key)
    assert current is not None and current.data == b'{"a": 1}'


def test_put_if_replaces_only_the_version_read(storage: Storage) -> None:
    key = "_ppc/projects/demo.json"
    storage.put_if(key, b"one", None)
    first = storage.read_versioned(key)
    assert first is not None
    assert storage.put_if(key, b"two", first.token) is True
    # A writer still holding the first version lost the race: its write must not land.
    assert storage.put_if(key, b"three", first.token) is False
    second = storage.read_versioned(key)
    assert second is not None and second.data == b"two" and second.token != first.token
    assert storage.put_if(key, b"three", second.token) is True
    assert _read(storage, key) == b"three"


def test_put_if_on_a_deleted_object_is_refused(storage: Storage) -> None:
    key = "_ppc/projects/demo.json"
    storage.put_if(key, b"one", None)
    read = storage.read_versioned(key)
    assert read is not None
    storage.delete(key)
    assert storage.put_if(key, b"two", read.token) is False
    assert storage.read_versioned(key) is None


def test_concurrent_read_modify_writes_lose_nothing(storage: Storage) -> None:
    """Eight writers each add their own line by read + put_if, retrying when they lose: every line lands."""
    key = "_ppc/projects/counted.json"
    count = 8
    barrier = threading.Barrier(count)

    def add_line(i: int) -> int:
        barrier.wait()
        attempts = 0
        while True:
            attempts += 1
            current = storage.read_versioned(key)
            data = (current.data if current else b"") + f"writer {i}\n".encode()
            if storage.put_if(key, data, current.token if current else None):
                return attempts

    with ThreadPoolExecutor(max_workers=count) as pool:
        list(pool.map(add_line, range(count)))
    lines = sorted(_read(storage, key).decode().splitlines())
    assert lines == sorted(f"writer {i}" for i in range(count))
    assert _keys(storage) == [key]  # no lock or temporary files are listed
