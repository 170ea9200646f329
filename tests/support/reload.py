"""Helpers of the reload tests (tests/test_reload.py, tests/web/test_admin_reload.py, tests/scripts/test_reload_cli.py):
objects written behind the index's back, uploads through the service, injected S3 faults."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import webtest
from botocore.exceptions import ClientError, ReadTimeoutError

from pypicloud_lite.cache.base import Cache
from pypicloud_lite.config import load_settings
from pypicloud_lite.models import PackageFile, ReloadChanges
from pypicloud_lite.naming import parse_filename, sightings_prefix
from pypicloud_lite.reload import ReloadProgress
from pypicloud_lite.service import PackageIndex, UploadForm, UploadResult
from pypicloud_lite.storage.base import Storage
from pypicloud_lite.storage.local import LocalStorage
from pypicloud_lite.storage.s3 import S3Storage
from pypicloud_lite.web import make_app
from tests.support.aws import Moto
from tests.support.cache import fresh_database
from tests.support.common import services
from tests.support.distbuilder import digests
from tests.support.legacy import JSON_V1


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def key_of(path: Path) -> str:
    """The storage key of a built distribution: `<normalized project>/<filename>`."""
    return f"{parse_filename(path.name).project}/{path.name}"


def put_raw(storage: Storage, key: str, data: bytes, *, checksum: bool = False) -> None:
    """Write an object as another tool (or S3 replication) would: no sidecar, and no checksum unless asked."""
    if isinstance(storage, S3Storage):
        extra = {"ChecksumAlgorithm": "SHA256"} if checksum else {}
        storage.client.put_object(Bucket=storage.bucket, Key=storage.prefix + key, Body=data, **extra)
        return
    assert isinstance(storage, LocalStorage)
    path = storage.root / key
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def delete_raw(storage: Storage, key: str) -> None:
    if isinstance(storage, S3Storage):
        storage.client.delete_object(Bucket=storage.bucket, Key=storage.prefix + key)
        return
    assert isinstance(storage, LocalStorage)
    (storage.root / key).unlink()


def read(storage: Storage, key: str) -> bytes:
    with storage.open(key) as fh:
        return fh.read()


def stored_keys(storage: Storage) -> set[str]:
    return {obj.key for obj in storage.list()}


def sighted(storage: Storage, project: str) -> dict[str, dict[str, Any]]:
    """The entries of the project's first-sightings objects in storage, by filename (as stored: JSON)."""
    entries: dict[str, dict[str, Any]] = {}
    for obj in storage.list(sightings_prefix(project)):
        entries.update((entry["filename"], entry) for entry in json.loads(read(storage, obj.key))["files"])
    return entries


def sightings_keys(storage: Storage, project: str) -> list[str]:
    return sorted(obj.key for obj in storage.list(sightings_prefix(project)))


def rows_of(cache: Cache) -> dict[str, PackageFile]:
    return {f.filename: f for f in cache.all_files()}


def upload(index: PackageIndex, path: Path, uploader: str = "alice", name: str | None = None) -> UploadResult:
    """Upload a built distribution through the service, as the legacy upload view does."""
    dist = parse_filename(path.name)
    form = UploadForm(name=name or dist.project, version=str(dist.version), **digests(path))
    with path.open("rb") as fh:
        return index.upload(form, path.name, fh, uploader)


def counts(result: ReloadProgress) -> dict[str, int]:
    return {
        "added": result.added,
        "removed": result.removed,
        "changed": result.changed,
        "unchanged": result.unchanged,
        "hashed": result.hashed,
        "failed": result.failed,
    }


def insert_rows(cache: Cache, rows: list[PackageFile]) -> None:
    """Index many files at once, in two transactions.

    apply_reload creates the project of every *added* row with one statement each;
    passing one row per project as added and the rest as "changed" (a replace of
    rows that are not there yet) inserts 5,000 rows in a fraction of a second.
    """
    firsts: dict[str, PackageFile] = {}
    for row in rows:
        firsts.setdefault(row.project, row)
    cache.apply_reload(ReloadChanges(added=list(firsts.values())))
    cache.apply_reload(ReloadChanges(changed=[r for r in rows if firsts[r.project] is not r]))


def wait_until_idle(index: PackageIndex, timeout: float = 15.0) -> dict[str, object]:
    """The last reload result, once no reload runs (a background reload must end before its cache closes)."""
    deadline = time.monotonic() + timeout
    while True:
        running, progress = index.reload_state()
        if not running and progress is not None:
            return progress
        if time.monotonic() > deadline:
            pytest.fail(f"reload still running after {timeout}s: {progress}")
        time.sleep(0.05)


def s3_error(code: str, operation: str, status: int) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": f"injected {code}"}, "ResponseMetadata": {"HTTPStatusCode": status}},
        operation,
    )


# name -> (exception to raise, text the reload's error must contain)
S3_FAULTS: dict[str, tuple[Callable[[str], Exception], str]] = {
    "SlowDown": (lambda op: s3_error("SlowDown", op, 503), "SlowDown"),
    "AccessDenied": (lambda op: s3_error("AccessDenied", op, 403), "AccessDenied"),
    "ReadTimeout": (lambda op: ReadTimeoutError(endpoint_url="http://s3.invalid/"), "ReadTimeoutError"),
}


class S3Faults:
    """Raises an injected error from chosen S3 calls, as botocore would deliver it (no retry reaches S3)."""

    def __init__(self, client: Any) -> None:
        self.calls: Counter[str] = Counter()
        self.rules: dict[str, tuple[int, Callable[[str], Exception]]] = {}
        self._lock = threading.Lock()
        client.meta.events.register("before-call.s3.*", self._before_call)

    def fail(self, operation: str, fault: str, on_call: int = 1) -> None:
        """Fail the `on_call`-th `operation` from now on (counting from this moment)."""
        with self._lock:
            self.rules[operation] = (self.calls[operation] + on_call, S3_FAULTS[fault][0])

    def clear(self) -> None:
        with self._lock:
            self.rules.clear()

    def _before_call(self, event_name: str, **kwargs: Any) -> None:
        operation = event_name.rsplit(".", 1)[-1]
        with self._lock:
            self.calls[operation] += 1
            rule = self.rules.get(operation)
        if rule is not None and self.calls[operation] == rule[0]:
            raise rule[1](operation)


class S3Calls:
    """Every S3 request a client makes, as (operation, key) pairs."""

    def __init__(self, client: Any, prefix: str) -> None:
        self.prefix = prefix
        self.calls: list[tuple[str, str]] = []
        client.meta.events.register("before-parameter-build.s3.*", self._record)

    def _record(self, params: dict[str, Any], model: Any, **kwargs: Any) -> None:
        self.calls.append((model.name, str(params.get("Key", "")).removeprefix(self.prefix)))

    def reset(self) -> None:
        self.calls.clear()

    def by_operation(self) -> Counter[str]:
        return Counter(op for op, _key in self.calls)

    def keys(self, operation: str) -> list[str]:
        return sorted(key for op, key in self.calls if op == operation)


@dataclass
class Env:
    """An app (for the pages) and its PackageIndex (for everything else) over one storage and cache."""

    testapp: webtest.TestApp
    index: PackageIndex
    dists: Path
    settings: dict[str, Any]

    @property
    def storage(self) -> Storage:
        return self.index.storage

    @property
    def cache(self) -> Cache:
        return self.index.cache

    def put(self, path: Path, *, checksum: bool = False) -> str:
        key = key_of(path)
        put_raw(self.storage, key, path.read_bytes(), checksum=checksum)
        return key

    def reload(self, workers: int = 4) -> ReloadProgress:
        return self.index.begin_reload(workers).execute()

    def rows(self) -> dict[str, PackageFile]:
        return rows_of(self.cache)

    def json_page(self, project: str) -> dict[str, dict[str, Any]]:
        page = self.testapp.get(f"/simple/{project}/", headers={"Accept": JSON_V1}).json
        return {f["filename"]: f for f in page["files"]}


def env_settings(kind: str, raw: dict[str, Any], request: pytest.FixtureRequest, stack: ExitStack) -> dict[str, Any]:
    """Settings for `kind`: `local` or `s3` storage, `+postgresql` or `+dynamo` for that cache instead of SQLite."""
    storage_kind, _, cache_kind = kind.partition("+")
    settings = dict(raw)
    if storage_kind == "s3":
        moto: Moto = request.getfixturevalue("moto")
        del settings["storage.dir"]
        settings.update(moto.s3_settings(moto.new_bucket()))
    if cache_kind == "dynamo":
        settings.update(request.getfixturevalue("moto").dynamo_settings())
    elif cache_kind:
        tmp_path: Path = request.getfixturevalue("tmp_path")
        settings["cache.url"] = stack.enter_context(fresh_database(cache_kind, tmp_path))
    return settings


@contextmanager
def open_env(kind: str, raw: dict[str, Any], request: pytest.FixtureRequest, dists: Path) -> Iterator[Env]:
    with ExitStack() as stack:
        settings = env_settings(kind, raw, request, stack)
        with _env_of(settings, dists) as env:
            yield env


@contextmanager
def _env_of(settings: dict[str, Any], dists: Path) -> Iterator[Env]:
    app = make_app(load_settings(settings, environ={}))
    index = services(app).index
    try:
        yield Env(webtest.TestApp(app), index, dists, settings)
    finally:
        index.cache.close()


@contextmanager
def open_rebuilt(env: Env, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Env]:
    """Another server over the same storage with an empty cache of the same kind (not reloaded yet)."""
    settings = dict(env.settings)
    with ExitStack() as stack:
        if settings.get("cache.backend") == "dynamo":
            moto: Moto = request.getfixturevalue("moto")
            settings.update(moto.dynamo_settings())
        elif str(settings.get("cache.url", "")).startswith("postgresql"):
            settings["cache.url"] = stack.enter_context(fresh_database("postgresql", tmp_path / "rebuilt"))
        elif str(settings.get("cache.url", "")).startswith("mysql"):
            settings["cache.url"] = stack.enter_context(fresh_database("mariadb", tmp_path / "rebuilt"))
        else:
            (tmp_path / "rebuilt").mkdir(exist_ok=True)
            settings["cache.url"] = f"sqlite:///{tmp_path / 'rebuilt' / 'cache.sqlite'}"
        with _env_of(settings, env.dists) as rebuilt:
            yield rebuilt
