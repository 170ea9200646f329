"""The S3 sync handler: every sample envelope, generated events on SQLite, PostgreSQL and DynamoDB, warm reuse."""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import logging
import os
import random
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from botocore.exceptions import ReadTimeoutError

from pypicloud_lite.cache.sql import SQLCache
from pypicloud_lite.errors import BackendUnavailable
from pypicloud_lite.models import PackageFile, ProjectState, SetYanked
from pypicloud_lite.reload import begin_reload
from pypicloud_lite.stored_state import project_state, sightings
from tests.support.aws import Moto
from tests.support.cache import cache_settings, fresh_database
from tests.support.data import aws_event
from tests.support.handler_env import (
    ENVELOPES,
    LAMBDA_DIR,
    PREFIX,
    SAMPLE_BUCKET,
    Change,
    Sequencer,
    bucket_truth,
    cache_truth,
    count_head_objects,
    count_s3_calls,
    create_bucket,
    deliver,
    destroy_bucket,
    dynamo_settings,
    handler_env,
    put_object,
    read_object,
    s3_event,
    s3_record,
    sdist_bytes,
    sha256,
    sightings_in,
    sql_settings,
    sqs_event,
    wheel_bytes,
)

TORCH_KEY = "packages/torch_extras/torch_extras-2.1.0+cu118-py3-none-any.whl"
MY_LIB_2_KEY = "packages/my_lib/my_lib-2.0.0-py3-none-any.whl"
BIG_TAG = "cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64"
BIG_KEY = f"packages/big_model/big_model-3.0.0-{BIG_TAG}.whl"
NOTES_KEY = "packages/notes/release notes 2026.txt"
POISON_ID = "d1b1d1f5-3a0e-4f0e-9c55-1a7a2b3c4d5e"
TEST_EVENT_ID = "2e1424d4-f796-459a-8184-9c92662be6da"
BACKENDS = ("sqlite", "postgresql", "dynamo")


# -- fixtures and helpers ----------------------------------------------------------------


def fresh_sample_bucket(moto: Moto, *, versioned: bool) -> None:
    """The samples' bucket, empty: its name is global on the session's moto, so another test may have left it."""
    if SAMPLE_BUCKET in {b["Name"] for b in moto.client("s3").list_buckets()["Buckets"]}:
        destroy_bucket(moto, SAMPLE_BUCKET)
    create_bucket(moto, SAMPLE_BUCKET, versioned=versioned)


@pytest.fixture
def sample_bucket(moto: Moto) -> Iterator[str]:
    fresh_sample_bucket(moto, versioned=False)
    yield SAMPLE_BUCKET
    destroy_bucket(moto, SAMPLE_BUCKET)


@pytest.fixture
def versioned_sample_bucket(moto: Moto) -> Iterator[str]:
    fresh_sample_bucket(moto, versioned=True)
    yield SAMPLE_BUCKET
    destroy_bucket(moto, SAMPLE_BUCKET)


@pytest.fixture
def bucket(moto: Moto) -> Iterator[str]:
    name = moto.new_bucket()
    yield name
    destroy_bucket(moto, name)


@contextmanager
def sqlite_handler(
    monkeypatch: pytest.MonkeyPatch, moto: Moto, bucket: str, tmp_path: Path, **extra: Any
) -> Iterator[ModuleType]:
    settings = {**sql_settings(moto, bucket, f"sqlite:///{tmp_path / 'cache.sqlite'}"), **extra}
    with handler_env(monkeypatch, settings) as module:
        yield module


@contextmanager
def backend_handler(
    backend: str, monkeypatch: pytest.MonkeyPatch, moto: Moto, bucket: str, tmp_path: Path
) -> Iterator[ModuleType]:
    """The handler over a fresh cache of the given backend."""
    if backend == "dynamo":
        with handler_env(monkeypatch, dynamo_settings(moto, bucket)) as module:
            yield module
        return
    with fresh_database(backend, tmp_path) as url, handler_env(monkeypatch, sql_settings(moto, bucket, url)) as module:
        yield module


def put_multipart(moto: Moto, bucket: str, key: str, data: bytes) -> None:
    """A CompleteMultipartUpload without checksums, as `aws s3 cp` of a large file would do it.

    (Moto answers a composite SHA-256 of a multipart upload without its `-N` suffix, so
    checksummed multipart uploads cannot be told apart from whole-object checksums on it.)
    """
    client = moto.client("s3")
    upload = client.create_multipart_upload(Bucket=bucket, Key=key)
    part = client.upload_part(Bucket=bucket, Key=key, UploadId=upload["UploadId"], PartNumber=1, Body=data)
    client.complete_multipart_upload(
        Bucket=bucket,
        Key=key,
        UploadId=upload["UploadId"],
        MultipartUpload={"Parts": [{"ETag": part["ETag"], "PartNumber": 1}]},
    )


def put_sample_objects(moto: Moto, tmp_path: Path) -> dict[str, bytes]:
    """The objects the created samples name, written the three ways objects arrive in a bucket."""
    torch_name, torch = wheel_bytes(tmp_path, "torch_extras", "2.1.0+cu118")
    lib_name, lib = wheel_bytes(tmp_path, "my_lib", "2.0.0")
    big_name, big = wheel_bytes(tmp_path, "big_model", "3.0.0", tag=BIG_TAG)
    assert [torch_name, lib_name, big_name] == [k.rsplit("/", 1)[1] for k in (TORCH_KEY, MY_LIB_2_KEY, BIG_KEY)]
    put_object(moto, SAMPLE_BUCKET, TORCH_KEY, torch)  # another tool: no checksum, no sidecar
    put_object(moto, SAMPLE_BUCKET, MY_LIB_2_KEY, lib, checksum=True)  # the server's way
    put_multipart(moto, SAMPLE_BUCKET, BIG_KEY, big)
    put_object(moto, SAMPLE_BUCKET, NOTES_KEY, b"release notes\n")
    return {TORCH_KEY: torch, MY_LIB_2_KEY: lib, BIG_KEY: big}


def assert_indexed(moto: Moto, module: ModuleType, key: str, data: bytes, bucket: str = SAMPLE_BUCKET) -> PackageFile:
    """The row of `key` holds the bytes' hash, the real key, and its PEP 658 sidecar exists and is hashed."""
    filename = key.rsplit("/", 1)[1]
    row: PackageFile | None = module.runtime().cache.get_file(filename)
    assert row is not None, f"{filename} not indexed"
    assert row.sha256 == sha256(data)
    assert row.size == len(data)
    assert row.object_key == key[len(PREFIX) :]
    sidecar = read_object(moto, bucket, key + ".metadata")
    assert sidecar is not None, "no PEP 658 sidecar written"
    assert row.metadata_sha256 == hashlib.sha256(sidecar).hexdigest()
    assert row.summary == "A tiny test package"
    return row


# -- the bundle's imports ----------------------------------------------------------------

_IMPORT_PROBE = """
import json, os, sys
sys.path.insert(0, {lambda_dir!r})
import s3_sync
found = {{"import": [m for m in {watched!r} if m in sys.modules]}}
if os.environ.get("PYPICLOUD_SETTINGS"):
    s3_sync.handler({{"Service": "Amazon S3", "Event": "s3:TestEvent"}})
    s3_sync.runtime()
    found["run"] = [m for m in {watched!r} if m in sys.modules]
print(json.dumps(found))
"""
WATCHED = ("pyramid", "webob", "pypicloud_lite.web", "jinja2", "waitress", "sqlalchemy", "pynamodb")


def probe_imports(settings: dict[str, Any] | None) -> dict[str, list[str]]:
    env = {k: v for k, v in os.environ.items() if k != "PYPICLOUD_SETTINGS"}
    if settings is not None:
        env["PYPICLOUD_SETTINGS"] = json.dumps(settings)
    code = _IMPORT_PROBE.format(lambda_dir=str(LAMBDA_DIR), watched=WATCHED)
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    found: dict[str, list[str]] = json.loads(done.stdout.strip().splitlines()[-1])
    return found


def test_importing_the_handler_loads_no_web_layer() -> None:
    found = probe_imports(None)
    assert not {"pyramid", "webob", "pypicloud_lite.web"} & set(found["import"])
    # No cache backend is imported before the settings choose one.
    assert not {"sqlalchemy", "pynamodb"} & set(found["import"])


def test_a_running_handler_loads_only_its_cache(moto: Moto, bucket: str, tmp_path: Path) -> None:
    sql = probe_imports(sql_settings(moto, bucket, f"sqlite:///{tmp_path / 'probe.sqlite'}"))
    assert not {"pyramid", "webob", "pypicloud_lite.web", "jinja2", "waitress", "pynamodb"} & set(sql["run"])
    assert "sqlalchemy" in sql["run"]
    dynamo = probe_imports(dynamo_settings(moto, bucket))
    assert not {"pyramid", "webob", "pypicloud_lite.web", "jinja2", "waitress", "sqlalchemy"} & set(dynamo["run"])
    assert "pynamodb" in dynamo["run"]


# -- every sample envelope ---------------------------------------------------------------

CREATED_SAMPLES: dict[str, tuple[str, dict[str, Any]]] = {
    "s3-put.json": (TORCH_KEY, {"messages": 1, "applied": 1}),
    "sns-direct.json": (TORCH_KEY, {"messages": 1, "applied": 1}),
    "sns-in-sqs.json": (TORCH_KEY, {"batchItemFailures": []}),
    "sqs-batch.json": (TORCH_KEY, {"batchItemFailures": [{"itemIdentifier": POISON_ID}]}),
    "eventbridge-created.json": (MY_LIB_2_KEY, {"messages": 1, "applied": 1}),
    "s3-multi.json": (BIG_KEY, {"messages": 1, "applied": 1, "ignored": 1}),
}


@pytest.mark.parametrize("sample", sorted(CREATED_SAMPLES))
def test_created_sample_indexes_its_object(
    sample: str, sample_bucket: str, moto: Moto, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    objects = put_sample_objects(moto, tmp_path)
    key, expected = CREATED_SAMPLES[sample]
    with sqlite_handler(monkeypatch, moto, sample_bucket, tmp_path) as module:
        assert module.handler(aws_event(sample), None) == expected
        assert_indexed(moto, module, key, objects[key])
        # Only what the sample names: the notes file and the other objects are not indexed.
        assert set(cache_truth(module.runtime().cache)) == {key.rsplit("/", 1)[1]}
        # The new project is named as a twine upload would have named it: `my-lib` for Name `my_lib`.
        [project] = module.runtime().cache.list_projects()
        assert project.name == project.display_name == key.split("/")[1].replace("_", "-")

        # At least once: the same delivery again changes nothing and costs no read of the object.
        before = module.runtime().cache.get_file(key.rsplit("/", 1)[1])
        gets = count_s3_calls(module, "GetObject")
        again = module.handler(aws_event(sample), None)
        # Only the file's record (none: another tool placed it), its first sighting and its project's state
        # (none here) are read, never the object.
        filename = key.rsplit("/", 1)[1]
        assert gets == [
            f"{PREFIX}_ppc/projects/{project.name}.json",
            f"{PREFIX}_ppc/files/{project.name}/{filename}.json",
            *sightings_in(moto, sample_bucket, project.name),
        ]
        assert len(gets) == 3
        if "batchItemFailures" in expected:
            assert again == expected
        else:
            assert again.get("applied", 0) == 0
        assert module.runtime().cache.get_file(key.rsplit("/", 1)[1]) == before


def test_sqs_batch_reports_only_the_poison_message(
    sample_bucket: str, moto: Moto, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    put_sample_objects(moto, tmp_path)
    batch = aws_event("sqs-batch.json")
    # More real events and more kinds of poison, mixed with the sample's put, test event and non-JSON body.
    extra_real = json.dumps(s3_event(s3_record(SAMPLE_BUCKET, MY_LIB_2_KEY, "ObjectCreated:Put", "0A")))
    poisons = {
        "poison-list": "[1, 2]",
        "poison-null": "null",
        "poison-no-records": json.dumps({"hello": "world"}),
        "poison-not-s3": json.dumps({"Records": [{"eventSource": "aws:dynamodb"}]}),
        "poison-no-key": json.dumps({"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put"}]}),
    }
    records = batch["Records"] + [{"messageId": "real-2", "body": extra_real, "eventSource": "aws:sqs"}]
    records += [{"messageId": mid, "body": body, "eventSource": "aws:sqs"} for mid, body in poisons.items()]
    random.Random(7).shuffle(records)
    with sqlite_handler(monkeypatch, moto, sample_bucket, tmp_path) as module:
        result = module.handler({"Records": records}, None)
        failed = sorted(item["itemIdentifier"] for item in result["batchItemFailures"])
        assert failed == sorted([POISON_ID, *poisons])
        assert TEST_EVENT_ID not in failed
        assert set(cache_truth(module.runtime().cache)) == {
            TORCH_KEY.rsplit("/", 1)[1],
            MY_LIB_2_KEY.rsplit("/", 1)[1],
        }


def test_a_failing_message_fails_alone_in_sqs_and_the_invocation_elsewhere(
    bucket: str, moto: Moto, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    good_name, good = wheel_bytes(tmp_path, "good", "1.0")
    bad_name, bad = wheel_bytes(tmp_path, "bad", "1.0")
    good_key, bad_key = f"{PREFIX}good/{good_name}", f"{PREFIX}bad/{bad_name}"
    put_object(moto, bucket, good_key, good)
    put_object(moto, bucket, bad_key, bad)
    with sqlite_handler(monkeypatch, moto, bucket, tmp_path) as module:
        storage = module.runtime().sync.storage
        real_stat = storage.stat

        def flaky_stat(key: str) -> Any:
            if key.startswith("bad/"):
                raise BackendUnavailable("S3 could not inspect bad (SlowDown); try again shortly.")
            return real_stat(key)

        monkeypatch.setattr(storage, "stat", flaky_stat)
        bodies = [json.dumps(s3_event(s3_record(bucket, k, "ObjectCreated:Put"))) for k in (bad_key, good_key)]
        event = sqs_event(*bodies)
        result = module.handler(event, None)
        assert result == {"batchItemFailures": [{"itemIdentifier": event["Records"][0]["messageId"]}]}
        assert set(cache_truth(module.runtime().cache)) == {good_name}
        # S3 -> Lambda and SNS -> Lambda retry whole invocations: the error must reach Lambda.
        with pytest.raises(BackendUnavailable):
            module.handler(s3_event(s3_record(bucket, bad_key, "ObjectCreated:Put")), None)


def test_test_event_is_acknowledged(
    sample_bucket: str, moto: Moto, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    put_sample_objects(moto, tmp_path)
    with sqlite_handler(monkeypatch, moto, sample_bucket, tmp_path) as module:
        heads = count_head_objects(module)
        assert module.handler(aws_event("s3-test-event.json"), None) == {"messages": 1}
        queued = sqs_event(json.dumps(aws_event("s3-test-event.json")))
        assert module.handler(queued, None) == {"batchItemFailures": []}
        assert heads == []
        assert cache_truth(module.runtime().cache) == {}


def index_now(module: ModuleType, key: str, bucket: str = SAMPLE_BUCKET) -> None:
    result = module.handler(s3_event(s3_record(bucket, key, "ObjectCreated:Put")), None)
    assert result.get("applied") == 1, result


def test_delete_sample_removes_the_row_once_the_object_is_gone(
    sample_bucket: str, moto: Moto, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    filename, data = sdist_bytes(tmp_path, "my_lib", "1.0.0")
    key = f"{PREFIX}my_lib/{filename}"
    assert key == aws_event("s3-delete.json")["Records"][0]["s3"]["object"]["key"]
    put_object(moto, sample_bucket, key, data)
    with sqlite_handler(monkeypatch, moto, sample_bucket, tmp_path) as module:
        index_now(module, key)
        row = module.runtime().cache.get_file(filename)
        assert row is not None
        assert row.sha256 == sha256(data)
        assert row.packagetype == "sdist"
        # A delete delivered while the object is (again) there removes nothing: the bucket is the truth.
        assert module.handler(aws_event("s3-delete.json"), None) == {"messages": 1, "unchanged": 1}
        assert module.runtime().cache.get_file(filename) is not None
        moto.client("s3").delete_object(Bucket=sample_bucket, Key=key)
        # The same record again (S3 delivers at least once): not older than itself, so it reads the truth.
        assert module.handler(aws_event("s3-delete.json"), None) == {"messages": 1, "applied": 1}
        assert module.runtime().cache.get_file(filename) is None
        assert module.handler(aws_event("s3-delete.json"), None) == {"messages": 1, "unchanged": 1}


@pytest.mark.parametrize(
    ("sample", "version"), [("s3-delete-marker.json", "1.0.0"), ("eventbridge-deleted.json", "2.0.0")]
)
def test_delete_marker_removes_the_package(
    sample: str, version: str, versioned_sample_bucket: str, moto: Moto, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    filename, data = wheel_bytes(tmp_path, "my_lib", version)
    key = f"{PREFIX}my_lib/{filename}"
    put_object(moto, versioned_sample_bucket, key, data, checksum=True)
    with sqlite_handler(monkeypatch, moto, versioned_sample_bucket, tmp_path) as module:
        index_now(module, key)
        assert_indexed(moto, module, key, data)
        marker = moto.client("s3").delete_object(Bucket=versioned_sample_bucket, Key=key)
        assert marker["DeleteMarker"] is True
        result = module.handler(aws_event(sample), None)
        assert result == {"messages": 1, "applied": 1}
        assert module.runtime().cache.get_file(filename) is None


def test_deleting_an_old_version_keeps_the_live_package(
    versioned_sample_bucket: str, moto: Moto, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    filename, old = wheel_bytes(tmp_path, "my_lib", "1.1.0", summary="the first build")
    _same, new = wheel_bytes(tmp_path, "my_lib", "1.1.0")
    assert old != new
    key = f"{PREFIX}my_lib/{filename}"
    assert key == aws_event("s3-delete-old-version.json")["Records"][0]["s3"]["object"]["key"]
    old_version = put_object(moto, versioned_sample_bucket, key, old)
    put_object(moto, versioned_sample_bucket, key, new)
    assert old_version is not None
    with sqlite_handler(monkeypatch, moto, versioned_sample_bucket, tmp_path) as module:
        index_now(module, key)
        moto.client("s3").delete_object(Bucket=versioned_sample_bucket, Key=key, VersionId=old_version)
        assert module.handler(aws_event("s3-delete-old-version.json"), None) == {"messages": 1, "unchanged": 1}
        assert_indexed(moto, module, key, new)


def test_a_copy_under_another_folder_spelling_does_not_decide_for_the_indexed_object(
    bucket: str, moto: Moto, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`My_Lib/` and `my-lib/` both hold the file (another tool's copy); removing the copy keeps the package.

    The row names the object it describes (`object_key`): a key that is not that object says nothing about it.
    """
    filename, data = wheel_bytes(tmp_path, "my_lib", "1.0")
    indexed, copy = f"{PREFIX}my-lib/{filename}", f"{PREFIX}My_Lib/{filename}"
    put_object(moto, bucket, indexed, data, checksum=True)
    with sqlite_handler(monkeypatch, moto, bucket, tmp_path) as module:
        index_now(module, indexed, bucket)
        put_object(moto, bucket, copy, data)
        module.handler(s3_event(s3_record(bucket, copy, "ObjectCreated:Put")), None)
        moto.client("s3").delete_object(Bucket=bucket, Key=copy)
        module.handler(s3_event(s3_record(bucket, copy, "ObjectRemoved:Delete")), None)
        row = module.runtime().cache.get_file(filename)
        assert row is not None, "the package was removed although the object it was indexed from is still there"
        assert row.object_key == indexed[len(PREFIX) :]
        assert cache_truth(module.runtime().cache) == bucket_truth(moto, bucket)


def test_an_sdk_error_while_reading_one_object_fails_only_its_message(
    bucket: str, moto: Moto, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read of the object that breaks off (botocore's ReadTimeoutError while streaming) is that message's failure."""
    good_name, good = wheel_bytes(tmp_path, "good", "1.0")
    bad_name, bad = wheel_bytes(tmp_path, "bad", "1.0")
    good_key, bad_key = f"{PREFIX}good/{good_name}", f"{PREFIX}bad/{bad_name}"
    put_object(moto, bucket, good_key, good)
    put_object(moto, bucket, bad_key, bad)
    with sqlite_handler(monkeypatch, moto, bucket, tmp_path) as module:
        storage = module.runtime().sync.storage
        real_open = storage.open

        class BrokenStream(io.RawIOBase):
            def read(self, size: int = -1) -> bytes:
                raise ReadTimeoutError(endpoint_url=moto.endpoint_url)

        def open_object(key: str, start: int = 0, end: int | None = None) -> Any:
            if key.startswith("bad/") and not key.endswith(".metadata"):
                return BrokenStream()
            return real_open(key, start, end)

        monkeypatch.setattr(storage, "open", open_object)
        event = sqs_event(
            *(json.dumps(s3_event(s3_record(bucket, k, "ObjectCreated:Put"))) for k in (bad_key, good_key))
        )
        try:
            result = module.handler(event, None)
        except Exception as exc:
            pytest.fail(f"one unreadable object failed the whole SQS batch: {exc!r}")
        assert result == {"batchItemFailures": [{"itemIdentifier": event["Records"][0]["messageId"]}]}
        assert set(cache_truth(module.runtime().cache)) == {good_name}


def test_keys_outside_the_prefix_and_non_packages_are_ignored(
    bucket: str, moto: Moto, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    filename, data = wheel_bytes(tmp_path, "my_lib", "1.0")
    ignored = [
        f"elsewhere/my_lib/{filename}",  # outside the prefix
        f"packagesX/my_lib/{filename}",  # shares the prefix's spelling, not its folder
        f"{PREFIX}{filename}",  # no project folder
        f"{PREFIX}other/{filename}",  # a folder that is not the file's project
        f"{PREFIX}my_lib/nested/{filename}",
        f"{PREFIX}my_lib/{filename}.metadata",  # a sidecar
        f"{PREFIX}notes/release notes 2026.txt",
        f"{PREFIX}my_lib/README.md",
    ]
    for key in ignored:
        put_object(moto, bucket, key, data)
    with sqlite_handler(monkeypatch, moto, bucket, tmp_path) as module:
        heads = count_head_objects(module)
        records = [s3_record(bucket, key, "ObjectCreated:Put") for key in ignored]
        records.append(s3_record("some-other-bucket", f"{PREFIX}my_lib/{filename}", "ObjectCreated:Put"))
        assert module.handler(s3_event(*records), None) == {"messages": 1, "ignored": len(records)}
        assert heads == []
        assert cache_truth(module.runtime().cache) == {}


def test_one_structured_log_line_per_record_and_a_summary(
    sample_bucket: str, moto: Moto, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    put_sample_objects(moto, tmp_path)
    with sqlite_handler(monkeypatch, moto, sample_bucket, tmp_path) as module:
        module.runtime()
        with caplog.at_level(logging.INFO, logger="s3_sync"):
            module.handler(aws_event("s3-multi.json"), None)
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "s3_sync"]
    per_record = [line for line in lines if "outcome" in line]
    assert [(line["event"], line["key"], line["outcome"]) for line in per_record] == [
        ("ObjectCreated:CompleteMultipartUpload", BIG_KEY, "applied"),
        ("ObjectCreated:Copy", NOTES_KEY, "ignored"),
    ]
    assert lines[-1] == {"summary": {"messages": 1, "applied": 1, "ignored": 1}}


# -- generated events: convergence ---------------------------------------------------------


class Workload:
    """Changes a bucket the way uploads, other tools and deletions do; remembers what S3 would report."""

    def __init__(self, moto: Moto, bucket: str, tmp_path: Path) -> None:
        self.moto, self.bucket, self.tmp_path = moto, bucket, tmp_path
        self.changes: list[Change] = []
        self.sequencer = Sequencer()
        self.rng = random.Random(1234)

    def put(self, key: str, data: bytes, *, event: str = "ObjectCreated:Put") -> None:
        put_object(self.moto, self.bucket, key, data, checksum=self.rng.random() < 0.5)
        self.changes.append(Change(self.bucket, key, event, self.sequencer()))

    def delete(self, key: str) -> None:
        self.moto.client("s3").delete_object(Bucket=self.bucket, Key=key)
        self.changes.append(Change(self.bucket, key, "ObjectRemoved:Delete", self.sequencer()))

    def wheel(self, folder: str, name: str, version: str, summary: str = "A tiny test package") -> tuple[str, bytes]:
        filename, data = wheel_bytes(self.tmp_path, name, version, summary=summary)
        return f"{PREFIX}{folder}/{filename}", data


def feed(module: ModuleType, changes: list[Change], rng: random.Random, *, duplicate: bool = True) -> None:
    """Every change (twice, if asked) in a random order, in random batches through random delivery paths."""
    pending = changes + (changes if duplicate else [])
    pending = rng.sample(pending, len(pending))
    while pending:
        size = rng.randint(1, 4)
        batch, pending = pending[:size], pending[size:]
        if rng.random() < 0.3:
            batch = [Change(c.bucket, c.key, c.event_name, None) for c in batch]  # as moto sends them
        for event in deliver(batch, rng.choice(ENVELOPES), style=rng.choice(("s3", "moto"))):
            result = module.handler(event, None)
            assert result.get("failed", 0) == 0
            assert result.get("batchItemFailures", []) == []


def assert_converged(moto: Moto, module: ModuleType, bucket: str) -> None:
    truth = bucket_truth(moto, bucket)
    cache = module.runtime().cache
    assert cache_truth(cache) == truth
    for filename in truth:
        row = cache.get_file(filename)
        assert row is not None
        assert row.storage_etag
        if filename.endswith(".whl"):
            sidecar = read_object(moto, bucket, f"{PREFIX}{row.object_key}.metadata")
            assert sidecar is not None
            assert row.metadata_sha256 == hashlib.sha256(sidecar).hexdigest()


@pytest.mark.parametrize("backend", BACKENDS)
def test_duplicated_and_shuffled_events_converge_to_the_bucket(
    backend: str, bucket: str, moto: Moto, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = Workload(moto, bucket, tmp_path)
    keys: dict[str, bytes] = {}
    for folder, name, version in [
        ("alpha", "alpha", "1.0"),
        ("alpha", "alpha", "1.1"),
        ("Beta.Pkg", "beta-pkg", "0.1"),  # a folder spelled another way, as other tools do
        ("torch-extras", "torch_extras", "2.1.0+cu118"),
        ("torch-extras", "torch_extras", "2.1.0+cpu"),
        ("gamma", "gamma", "3.0"),
    ]:
        key, data = work.wheel(folder, name, version)
        keys[key] = data
        work.put(key, data)
    sdist_name, sdist = sdist_bytes(tmp_path, "gamma", "3.0")
    work.put(f"{PREFIX}gamma/{sdist_name}", sdist, event="ObjectCreated:CompleteMultipartUpload")
    doomed = list(keys)[:2]
    for key in doomed:
        work.delete(key)
    # create / delete / create, the second time with other bytes under the same name
    recreated, other_bytes = work.wheel("alpha", "alpha", "1.0", summary="rebuilt")
    work.put(recreated, other_bytes)
    # rewritten in place by another tool
    rewritten, _ = work.wheel("gamma", "gamma", "3.0")
    _, gamma_bytes = work.wheel("gamma", "gamma", "3.0", summary="gamma again")
    work.put(rewritten, gamma_bytes)

    with backend_handler(backend, monkeypatch, moto, bucket, tmp_path) as module:
        feed(module, work.changes, random.Random(f"{backend}-1"))
        assert_converged(moto, module, bucket)
        assert len(bucket_truth(moto, bucket)) == 6

        # A second round on a populated cache: more deletes and uploads, late and duplicated deliveries.
        first_round = list(work.changes)
        work.changes.clear()
        work.delete(rewritten)
        work.delete(f"{PREFIX}gamma/{sdist_name}")
        key, data = work.wheel("delta", "delta", "0.0.1")
        work.put(key, data)
        feed(module, work.changes + first_round[:5], random.Random(f"{backend}-2"))
        assert_converged(moto, module, bucket)
        assert len(bucket_truth(moto, bucket)) == 5


def scenario_keys() -> list[tuple[int, tuple[int, ...]]]:
    return list(enumerate(itertools.permutations(range(3))))


@pytest.mark.parametrize("backend", BACKENDS)
def test_create_delete_create_in_any_order_ends_in_the_truth(
    backend: str, bucket: str, moto: Moto, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One key per order of the three records (and one ending deleted): each ends as the bucket says."""
    work = Workload(moto, bucket, tmp_path)
    expected: dict[str, bytes | None] = {}
    orders: list[tuple[str, tuple[int, ...]]] = []
    for i, order in scenario_keys():
        key, first = work.wheel("cdc", "cdc", f"1.0.{i}", summary="first build")
        _, second = work.wheel("cdc", "cdc", f"1.0.{i}", summary="second build")
        start = len(work.changes)
        work.put(key, first)
        work.delete(key)
        if i % 3 == 2:
            expected[key] = None  # create / delete / delete: gone
            work.delete(key)
        else:
            expected[key] = second
            work.put(key, second)
        orders.append((key, tuple(start + j for j in order)))

    with backend_handler(backend, monkeypatch, moto, bucket, tmp_path) as module:
        for _key, order in orders:
            for index in order:
                result = module.handler(deliver([work.changes[index]], "s3")[0], None)
                assert result.get("failed", 0) == 0
        cache = module.runtime().cache
        for key, data in expected.items():
            row = cache.get_file(key.rsplit("/", 1)[1])
            if data is None:
                assert row is None
            else:
                assert row is not None
                assert row.sha256 == sha256(data)
                assert row.summary == "second build"
        assert_converged(moto, module, bucket)


def test_recreated_object_is_described_by_its_new_bytes(
    bucket: str, moto: Moto, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Create, delete, create again with other bytes, each event handled as it happens (another tool's uploads).

    The sync wrote a sidecar for the first bytes; the delete leaves it behind (the tool knows nothing of
    sidecars), so the second object must not be described by the first one's metadata.
    """
    filename, first = wheel_bytes(tmp_path, "phoenix", "1.0", summary="first build")
    _same, second = wheel_bytes(tmp_path, "phoenix", "1.0", summary="second build")
    key = f"{PREFIX}phoenix/{filename}"
    seq = Sequencer()
    with sqlite_handler(monkeypatch, moto, bucket, tmp_path) as module:
        put_object(moto, bucket, key, first)
        module.handler(deliver([Change(bucket, key, "ObjectCreated:Put", seq())], "s3")[0], None)
        assert module.runtime().cache.get_file(filename).summary == "first build"
        moto.client("s3").delete_object(Bucket=bucket, Key=key)
        module.handler(deliver([Change(bucket, key, "ObjectRemoved:Delete", seq())], "s3")[0], None)
        assert module.runtime().cache.get_file(filename) is None
        put_object(moto, bucket, key, second)
        module.handler(deliver([Change(bucket, key, "ObjectCreated:Put", seq())], "s3")[0], None)
        row = module.runtime().cache.get_file(filename)
        assert row is not None
        assert row.sha256 == sha256(second)
        sidecar = read_object(moto, bucket, key + ".metadata")
        assert sidecar is not None
        assert b"Summary: second build" in sidecar, "the sidecar still describes the deleted object's bytes"
        assert row.summary == "second build"
        assert row.metadata_sha256 == hashlib.sha256(sidecar).hexdigest()


def test_object_rewritten_in_place_is_described_by_its_new_bytes(
    bucket: str, moto: Moto, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Overwritten while its row exists: new hash, new sidecar, new metadata; a yank survives."""
    filename, first = wheel_bytes(tmp_path, "phoenix", "2.0", summary="first build")
    _same, second = wheel_bytes(tmp_path, "phoenix", "2.0", summary="second build")
    key = f"{PREFIX}phoenix/{filename}"
    with sqlite_handler(monkeypatch, moto, bucket, tmp_path) as module:
        put_object(moto, bucket, key, first, checksum=True)
        index_now(module, key, bucket)
        cache = module.runtime().cache
        assert cache.apply(SetYanked("phoenix", "2.0", True, "broken")).count == 1
        put_object(moto, bucket, key, second)
        index_now(module, key, bucket)
        row = cache.get_file(filename)
        assert row is not None
        assert (row.sha256, row.summary, row.yanked, row.yanked_reason) == (
            sha256(second),
            "second build",
            True,
            "broken",
        )
        sidecar = read_object(moto, bucket, key + ".metadata")
        assert sidecar is not None
        assert b"Summary: second build" in sidecar
        assert row.metadata_sha256 == hashlib.sha256(sidecar).hexdigest()


# -- keys that need decoding ---------------------------------------------------------------

ODD_PREFIX = "dépôt 100%+pkgs/"


@pytest.mark.parametrize("style", ["s3", "moto", "eventbridge"])
def test_keys_with_spaces_plus_percent_and_unicode_round_trip(
    style: str, bucket: str, moto: Moto, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = [
        wheel_bytes(tmp_path, "torch_extras", "2.1.0+cu118"),
        wheel_bytes(tmp_path, "my_lib", "1.0+ubuntu.1"),
        sdist_bytes(tmp_path, "my_lib", "1.0+ubuntu.1"),
        wheel_bytes(tmp_path, "plain", "1.0"),
    ]
    keys = {f"{ODD_PREFIX}{fn.split('-', 1)[0]}/{fn}": data for fn, data in files}
    strays = [f"{ODD_PREFIX}notes/ünïcode 100% + notes.txt", f"{ODD_PREFIX}my_lib/a+b c%2B.whl"]
    for key, data in keys.items():
        put_object(moto, bucket, key, data)
    for key in strays:
        put_object(moto, bucket, key, b"not a package")
    seq = Sequencer()
    settings = {**sql_settings(moto, bucket, f"sqlite:///{tmp_path / 'c.sqlite'}"), "storage.prefix": ODD_PREFIX}

    def send(changes: list[Change]) -> dict[str, Any]:
        if style == "eventbridge":
            events = deliver(changes, "eventbridge", style="s3") + deliver(changes, "eventbridge", style="moto")
        else:
            events = deliver(changes, "sqs", style=style)
        results: list[dict[str, Any]] = [module.handler(event, None) for event in events]
        for result in results:
            assert result.get("batchItemFailures", []) == []
        return results[-1]

    with handler_env(monkeypatch, settings) as module:
        send([Change(bucket, key, "ObjectCreated:Put", seq()) for key in [*keys, *strays]])
        cache = module.runtime().cache
        assert cache_truth(cache) == {k.rsplit("/", 1)[1]: sha256(d) for k, d in keys.items()}
        for key in keys:
            row = cache.get_file(key.rsplit("/", 1)[1])
            assert row is not None
            assert row.object_key == key[len(ODD_PREFIX) :]
            assert row.version in ("2.1.0+cu118", "1.0+ubuntu.1", "1.0")

        for key in keys:
            moto.client("s3").delete_object(Bucket=bucket, Key=key)
        send([Change(bucket, key, "ObjectRemoved:Delete", seq()) for key in keys])
        assert cache_truth(cache) == {}


def test_moto_s3_to_sqs_notifications_end_to_end(
    bucket: str, moto: Moto, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Real notifications from moto (`/` as %2F, no sequencer, a test event first) through SQS into the handler."""
    sqs = moto.client("sqs")
    queue = sqs.create_queue(QueueName=f"q-{bucket}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    moto.client("s3").put_bucket_notification_configuration(
        Bucket=bucket,
        NotificationConfiguration={
            "QueueConfigurations": [{"QueueArn": arn, "Events": ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"]}]
        },
    )
    kept_name, kept = wheel_bytes(tmp_path, "torch_extras", "2.1.0+cu118")
    gone_name, gone = wheel_bytes(tmp_path, "my_lib", "2.0")
    put_object(moto, bucket, f"{PREFIX}torch_extras/{kept_name}", kept)
    put_object(moto, bucket, f"{PREFIX}my_lib/{gone_name}", gone)
    put_object(moto, bucket, f"{PREFIX}notes/release notes 2026.txt", b"notes")
    moto.client("s3").delete_object(Bucket=bucket, Key=f"{PREFIX}my_lib/{gone_name}")

    with sqlite_handler(monkeypatch, moto, bucket, tmp_path) as module:
        while messages := sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", []):
            event = sqs_event(*(m["Body"] for m in messages))
            assert module.handler(event, None) == {"batchItemFailures": []}
            for m in messages:
                sqs.delete_message(QueueUrl=queue, ReceiptHandle=m["ReceiptHandle"])
        assert cache_truth(module.runtime().cache) == {kept_name: sha256(kept)}
    sqs.delete_queue(QueueUrl=queue)


# -- sequencers ------------------------------------------------------------------------------


def test_a_record_older_than_one_applied_is_stale_and_costs_no_head(
    bucket: str, moto: Moto, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    filename, data = wheel_bytes(tmp_path, "my_lib", "1.0")
    key = f"{PREFIX}my_lib/{filename}"
    other_name, other = wheel_bytes(tmp_path, "my_lib", "1.1")
    other_key = f"{PREFIX}my_lib/{other_name}"
    put_object(moto, bucket, key, data)
    put_object(moto, bucket, other_key, other)
    with sqlite_handler(monkeypatch, moto, bucket, tmp_path) as module:
        heads = count_head_objects(module)

        def send(key: str, name: str, sequencer: str | None) -> dict[str, Any]:
            result: dict[str, Any] = module.handler(s3_event(s3_record(bucket, key, name, sequencer)), None)
            return result

        assert send(key, "ObjectCreated:Put", "0055AED6DCD9028300") == {"messages": 1, "applied": 1}
        assert len(heads) == 1
        # An older delete, arriving late: skipped without asking S3 (and the package stays).
        assert send(key, "ObjectRemoved:Delete", "0055AED6DCD90282FF") == {"messages": 1, "stale": 1}
        assert send(key, "ObjectRemoved:Delete", "0055aed6dcd90282ff") == {"messages": 1, "stale": 1}
        assert len(heads) == 1
        assert module.runtime().cache.get_file(filename) is not None
        # The same record again is not older: re-applied (unchanged), like one without a sequencer.
        assert send(key, "ObjectCreated:Put", "0055AED6DCD9028300") == {"messages": 1, "unchanged": 1}
        assert send(key, "ObjectCreated:Put", None) == {"messages": 1, "unchanged": 1}
        assert len(heads) == 3
        # Sequencers order one key only: an older one on another key is applied.
        assert send(other_key, "ObjectCreated:Put", "0055AED6DCD9028100") == {"messages": 1, "applied": 1}
        assert len(heads) == 4
        # A newer record is applied and reads the truth.
        moto.client("s3").delete_object(Bucket=bucket, Key=key)
        assert send(key, "ObjectRemoved:Delete", "0055AED6DCD9028400") == {"messages": 1, "applied": 1}
        assert module.runtime().cache.get_file(filename) is None


# -- warm invocations --------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["sqlite", "dynamo"])
def test_warm_invocations_reuse_the_cache_clients_and_engine(
    backend: str, bucket: str, moto: Moto, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pypicloud_lite.db.engine as engine_module

    engines: list[Any] = []
    real_create_engine = engine_module.create_engine

    def counting_create_engine(*args: Any, **kwargs: Any) -> Any:
        engine = real_create_engine(*args, **kwargs)
        engines.append(engine)
        return engine

    monkeypatch.setattr(engine_module, "create_engine", counting_create_engine)
    files = [wheel_bytes(tmp_path, "warm", f"1.{i}") for i in range(3)]
    with backend_handler(backend, monkeypatch, moto, bucket, tmp_path) as module:
        seen = []
        for filename, data in files:
            key = f"{PREFIX}warm/{filename}"
            put_object(moto, bucket, key, data)
            assert module.handler(s3_event(s3_record(bucket, key, "ObjectCreated:Put")), None)["applied"] == 1
            rt = module.runtime()
            seen.append((rt, rt.cache, rt.sync, rt.sync.storage.client, getattr(rt.cache, "engine", None)))
        first = seen[0]
        for later in seen[1:]:
            assert all(a is b for a, b in zip(first, later, strict=True))
        assert len(engines) == (1 if backend == "sqlite" else 0)
        assert len(cache_truth(module.runtime().cache)) == 3


# -- stored state: file records and project states ----------------------------------------------


def test_a_project_state_event_applies_its_yanks_status_and_name(
    bucket: str, moto: Moto, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    filename, data = wheel_bytes(tmp_path, "stateful", "1.0")
    key, state_key = f"{PREFIX}stateful/{filename}", f"{PREFIX}_ppc/projects/stateful.json"
    with sqlite_handler(monkeypatch, moto, bucket, tmp_path) as module:
        put_object(moto, bucket, key, data, checksum=True)
        index_now(module, key, bucket)
        [record_key] = sightings_in(moto, bucket, "stateful")  # a placed file is recorded at first sight
        cache = module.runtime().cache
        put_object(
            moto,
            bucket,
            state_key,
            project_state(ProjectState("stateful", "StateFul", "archived", "done", {filename: "bad"})),
        )
        index_now(module, state_key, bucket)
        project, row = cache.get_project("stateful"), cache.get_file(filename)
        assert project is not None and row is not None
        assert (project.display_name, project.status, project.status_reason) == ("StateFul", "archived", "done")
        assert (row.yanked, row.yanked_reason) == (True, "bad")

        # Unyanked and reactivated in another region: the replicated state says so.
        put_object(moto, bucket, state_key, project_state(ProjectState("stateful", "StateFul")))
        index_now(module, state_key, bucket)
        row = cache.get_file(filename)
        assert row is not None and (row.yanked, row.yanked_reason) == (False, None)
        assert cache.get_project("stateful") == replace(
            project, status="active", status_reason=None, serial=cache.serial()
        )

        # The first sighting's delete (its file still there) changes nothing and writes nothing back.
        moto.client("s3").delete_object(Bucket=bucket, Key=record_key)
        result = module.handler(s3_event(s3_record(bucket, record_key, "ObjectRemoved:Delete")), None)
        assert result.get("applied", 0) == 0, result
        assert cache.get_file(filename) == row
        assert read_object(moto, bucket, record_key) is None


def test_a_replicas_own_first_sighting_yields_to_the_origins(
    bucket: str, moto: Moto, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file another tool placed in the origin reaches the replica before the origin's first sighting of it.

    The replica's sync sees it first and records its own sighting; the origin's, replicated later, wins
    (whatever its time): the replica, and a cache rebuilt from its bucket, show what the origin shows.
    """
    filename, data = wheel_bytes(tmp_path, "placed", "1.0")
    key = f"{PREFIX}placed/{filename}"
    with sqlite_handler(monkeypatch, moto, bucket, tmp_path) as module:
        put_object(moto, bucket, key, data)
        index_now(module, key, bucket)
        cache = module.runtime().cache
        own = cache.get_file(filename)
        assert own is not None
        [own_key] = sightings_in(moto, bucket, "placed")

        origin_time = own.upload_time + timedelta(hours=5)  # later than the replica's own: it wins anyway
        origin_key = f"{PREFIX}_ppc/seen/placed.00000000000000000001-origin.json"
        seen = sightings("placed", "s3://origin-bucket/packages/", [(replace(own, upload_time=origin_time), None)])
        put_object(moto, bucket, origin_key, seen)
        index_now(module, origin_key, bucket)
        row = cache.get_file(filename)
        assert row is not None and row.upload_time == origin_time
        assert sightings_in(moto, bucket, "placed") == sorted([own_key, origin_key]), "nothing written back"

        storage = module.runtime().sync.storage
        rebuilt = SQLCache.from_settings(cache_settings(f"sqlite:///{tmp_path / 'rebuilt.sqlite'}"))
        try:
            begin_reload(storage, rebuilt).execute()
            again = rebuilt.get_file(filename)
            assert again is not None and again.upload_time == origin_time
        finally:
            rebuilt.close()
