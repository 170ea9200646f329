"""Helpers for the S3 sync handler tests: the handler module, its settings, generated events, bucket truth."""

from __future__ import annotations

import hashlib
import json
import random
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import quote, quote_plus

import pytest
from botocore.exceptions import ClientError

from pypicloud_lite.cache.base import Cache
from pypicloud_lite.naming import METADATA_SUFFIX, parse_key
from pypicloud_lite.sync import Hint
from tests.support.aws import Moto
from tests.support.data import REPO_ROOT
from tests.support.distbuilder import build_sdist, build_wheel

LAMBDA_DIR = REPO_ROOT / "lambda"


SAMPLE_BUCKET = "ppc-test-bucket"  # the bucket of the samples in tests/data/aws-events
PREFIX = "packages/"


def handler_module() -> ModuleType:
    """The handler's module, reached through `s3_sync` imported the way Lambda does (its folder on sys.path).

    Tests reset and patch the module that holds the runtime's state, not the entry that re-exports it.
    """
    if str(LAMBDA_DIR) not in sys.path:
        sys.path.insert(0, str(LAMBDA_DIR))
    import s3_sync

    from pypicloud_lite import s3_sync_handler

    assert s3_sync.handler is s3_sync_handler.handler
    return s3_sync_handler


def reset_handler(module: ModuleType) -> None:
    """A cold start: no runtime, no resolver, no sequencer memory (the last runtime's cache closed)."""
    if module._runtime is not None:
        module._runtime.cache.close()
    module._runtime = None
    module._resolver = None
    module._memory = module.SequencerMemory()


@contextmanager
def handler_env(monkeypatch: pytest.MonkeyPatch, settings: dict[str, Any]) -> Iterator[ModuleType]:
    """The handler module, cold, with PYPICLOUD_SETTINGS = `settings`; reset again afterwards."""
    module = handler_module()
    reset_handler(module)
    monkeypatch.setenv("PYPICLOUD_SETTINGS", json.dumps(settings))
    try:
        yield module
    finally:
        reset_handler(module)


def sql_settings(moto: Moto, bucket: str, url: str) -> dict[str, Any]:
    return {**moto.s3_settings(bucket, PREFIX), "cache.url": url, "cache.migrate_on_start": "true"}


def dynamo_settings(moto: Moto, bucket: str) -> dict[str, Any]:
    return {
        **moto.s3_settings(bucket, PREFIX),
        **moto.dynamo_settings(),
    }


# -- events ------------------------------------------------------------------------------


def encode_key(key: str, style: str = "s3") -> str:
    """A key as a notification carries it: S3 form-encodes it, moto also encodes `/` as %2F."""
    if style == "s3":
        return quote_plus(key, safe="/")
    if style == "moto":
        return quote_plus(key, safe="")
    raise ValueError(style)


def s3_record(
    bucket: str, key: str, event_name: str, sequencer: str | None = None, *, style: str = "s3"
) -> dict[str, Any]:
    obj: dict[str, Any] = {"key": encode_key(key, style)}
    if sequencer is not None:
        obj["sequencer"] = sequencer
    return {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": "us-east-1",
        "eventName": event_name,
        "s3": {"s3SchemaVersion": "1.0", "bucket": {"name": bucket}, "object": obj},
    }


def s3_event(*records: dict[str, Any]) -> dict[str, Any]:
    return {"Records": list(records)}


def sqs_event(*bodies: str) -> dict[str, Any]:
    """S3 -> SQS -> Lambda: one message per body (a JSON string or anything unreadable)."""
    return {
        "Records": [
            {"messageId": f"msg-{i}-{uuid.uuid4().hex[:8]}", "body": body, "eventSource": "aws:sqs"}
            for i, body in enumerate(bodies)
        ]
    }


def eventbridge_event(
    bucket: str, key: str, detail_type: str, sequencer: str | None = None, *, encoded: bool = True
) -> dict[str, Any]:
    """EventBridge `Object Created`/`Object Deleted`; whether it encodes keys is unclear, so both are fed."""
    obj: dict[str, Any] = {"key": quote(key, safe="/") if encoded else key}
    if sequencer is not None:
        obj["sequencer"] = sequencer
    return {"source": "aws.s3", "detail-type": detail_type, "detail": {"bucket": {"name": bucket}, "object": obj}}


# -- objects and truth -------------------------------------------------------------------


def wheel_bytes(
    tmp_path: Path, name: str, version: str, tag: str = "py3-none-any", summary: str = "A tiny test package"
) -> tuple[str, bytes]:
    """(filename, bytes) of a tiny real wheel; another summary gives other bytes under the same filename."""
    path = build_wheel(tmp_path / uuid.uuid4().hex[:8], name, version, tag=tag, summary=summary)
    return path.name, path.read_bytes()


def sdist_bytes(tmp_path: Path, name: str, version: str, summary: str = "A tiny test package") -> tuple[str, bytes]:
    path = build_sdist(tmp_path / uuid.uuid4().hex[:8], name, version, summary=summary)
    return path.name, path.read_bytes()


def put_object(moto: Moto, bucket: str, key: str, data: bytes, *, checksum: bool = False) -> str | None:
    """Write an object as the server (checksum) or another tool (none) would; its version id if versioned."""
    extra = {"ChecksumAlgorithm": "SHA256"} if checksum else {}
    response = moto.client("s3").put_object(Bucket=bucket, Key=key, Body=data, **extra)
    version: str | None = response.get("VersionId")
    return version


def read_object(moto: Moto, bucket: str, key: str) -> bytes | None:
    try:
        body: bytes = moto.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as exc:
        if exc.response["Error"]["Code"] in ("NoSuchKey", "404"):
            return None
        raise
    return body


def sightings_in(moto: Moto, bucket: str, project: str) -> list[str]:
    """The keys of the project's first-sightings objects in the bucket."""
    listed = moto.client("s3").list_objects_v2(Bucket=bucket, Prefix=f"{PREFIX}_ppc/seen/{project}.")
    return sorted(obj["Key"] for obj in listed.get("Contents", []))


def count_s3_calls(module: ModuleType, operation: str = "HeadObject") -> list[str]:
    """The keys of every `operation` the sync's storage client sends from now on (builds the runtime)."""
    calls: list[str] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        calls.append(params["Key"])

    module.runtime().sync.storage.client.meta.events.register(f"before-parameter-build.s3.{operation}", record)
    return calls


def count_head_objects(module: ModuleType) -> list[str]:
    return count_s3_calls(module, "HeadObject")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def create_bucket(moto: Moto, name: str, *, versioned: bool = False) -> None:
    client = moto.client("s3")
    client.create_bucket(Bucket=name)
    if versioned:
        client.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})


def destroy_bucket(moto: Moto, name: str) -> None:
    """Every version and delete marker, then the bucket (the sample bucket's name is reused by tests)."""
    client = moto.client("s3")
    for page in client.get_paginator("list_object_versions").paginate(Bucket=name):
        for entry in page.get("Versions", []) + page.get("DeleteMarkers", []):
            client.delete_object(Bucket=name, Key=entry["Key"], VersionId=entry["VersionId"])
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=name):
        for entry in page.get("Contents", []):
            client.delete_object(Bucket=name, Key=entry["Key"])
    client.delete_bucket(Bucket=name)


def bucket_truth(moto: Moto, bucket: str, prefix: str = PREFIX) -> dict[str, str]:
    """filename -> sha256 of every package object under the prefix, read from the bytes."""
    client = moto.client("s3")
    found: dict[str, str] = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for entry in page.get("Contents", []):
            key = entry["Key"][len(prefix) :]
            dist = parse_key(key)
            if dist is None or key.endswith(METADATA_SUFFIX):
                continue
            body = client.get_object(Bucket=bucket, Key=entry["Key"])["Body"].read()
            found[dist.filename] = sha256(body)
    return found


def bucket_listing(moto: Moto, bucket: str, prefix: str = PREFIX) -> dict[str, str]:
    """key -> ETag of every object under the prefix (sidecars and the index's own `_ppc/` objects too)."""
    found: dict[str, str] = {}
    for page in moto.client("s3").get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for entry in page.get("Contents", []):
            found[entry["Key"]] = entry["ETag"]
    return found


def cache_truth(cache: Cache) -> dict[str, str | None]:
    """filename -> sha256 of every row of the cache."""
    return {f.filename: f.sha256 for f in cache.all_files()}


# -- generated changes, delivered through any path ---------------------------------------

ENVELOPES = ("s3", "sqs", "sns", "sns-in-sqs", "eventbridge")


# Something that happened to a key, as S3 would report it: the fields the sync decodes from a record.
Change = Hint


class Sequencer:
    """Increasing S3-style sequencers (18 hex digits)."""

    def __init__(self, start: int = 0x0055AED6DCD9028000) -> None:
        self._next = start

    def __call__(self) -> str:
        self._next += 1
        return f"{self._next:018X}"


def deliver(changes: list[Change], envelope: str, style: str = "s3") -> list[dict[str, Any]]:
    """The invocation events that carry `changes` through one delivery path."""
    records = [s3_record(c.bucket, c.key, c.event_name, c.sequencer, style=style) for c in changes]
    if envelope == "s3":
        return [s3_event(*records)]
    if envelope == "sqs":
        return [sqs_event(*(json.dumps(s3_event(r)) for r in records))]
    if envelope == "sns":
        return [{"Records": [{"EventSource": "aws:sns", "Sns": {"Message": json.dumps(s3_event(*records))}}]}]
    if envelope == "sns-in-sqs":
        bodies = [json.dumps({"Type": "Notification", "Message": json.dumps(s3_event(r))}) for r in records]
        return [sqs_event(*bodies)]
    if envelope == "eventbridge":
        return [
            eventbridge_event(
                c.bucket,
                c.key,
                "Object Created" if c.event_name.startswith("ObjectCreated") else "Object Deleted",
                c.sequencer,
                encoded=style != "s3",
            )
            for c in changes
        ]
    raise ValueError(envelope)


def deliver_shuffled(module: ModuleType, changes: list[Change], rng: random.Random, duplicates: float = 0.5) -> None:
    """S3 delivers `changes` to the handler: at least once (a share of them twice), in any order, in batches of
    1 to 3 through any delivery path; every invocation must succeed."""
    events = changes + rng.sample(changes, int(len(changes) * duplicates))
    rng.shuffle(events)
    while events:
        size = rng.randint(1, 3)
        batch, events = events[:size], events[size:]
        for event in deliver(batch, rng.choice(ENVELOPES), style=rng.choice(("s3", "moto"))):
            result = module.handler(event, None)
            assert result.get("batchItemFailures", []) == [], result
            assert result.get("failed", 0) == 0, result
