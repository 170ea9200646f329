"""Helpers of the reload tests (tests/test_reload.py, tests/web/test_admin_reload.py, tests/scripts/test_reload_cli.py):
objects written behind the index's back, uploads through the service, injected S3 faults."""

from __future__ import annotations

import hashlib
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError, ReadTimeoutError

from pypicloud_lite.cache.base import Cache
from pypicloud_lite.models import PackageFile, ReloadChanges
from pypicloud_lite.naming import parse_filename
from pypicloud_lite.reload import ReloadProgress
from pypicloud_lite.service import PackageIndex, UploadForm, UploadResult
from pypicloud_lite.storage.base import Storage
from pypicloud_lite.storage.local import LocalStorage
from pypicloud_lite.storage.s3 import S3Storage
from tests.support.distbuilder import digests


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
