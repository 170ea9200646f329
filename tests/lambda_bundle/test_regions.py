"""Two regions kept equal by the S3 sync: replication simulated by copies, each region's events to its own handler."""

from __future__ import annotations

import json
import random
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from pypicloud_lite.cache.base import Cache
from pypicloud_lite.metadata import read_metadata_file
from pypicloud_lite.naming import METADATA_SUFFIX, parse_filename
from tests.support.aws import Moto
from tests.support.cache import fresh_database
from tests.support.handler_env import (
    PREFIX,
    Change,
    Sequencer,
    bucket_listing,
    bucket_truth,
    cache_truth,
    create_bucket,
    deliver_shuffled,
    destroy_bucket,
    dynamo_settings,
    handler_module,
    put_object,
    reset_handler,
    sdist_bytes,
    sql_settings,
    wheel_bytes,
)


@dataclass
class Region:
    """One region: its bucket, its handler's settings, and its execution environment's state while switched out."""

    name: str
    bucket: str
    settings: dict[str, Any]
    sequencer: Sequencer
    pending: list[Change] = field(default_factory=list)  # events S3 has yet to deliver
    deleted: set[str] = field(default_factory=set)  # keys deleted here, for replication
    state: tuple[Any, Any, Any] | None = None  # (_runtime, _resolver, _memory) of its warm environment


class TwoRegions:
    """Runs the one handler module as two warm Lambda environments, switching module state between them."""

    def __init__(self, moto: Moto, module: ModuleType, monkeypatch: pytest.MonkeyPatch, a: Region, b: Region) -> None:
        self.moto, self.module, self.monkeypatch = moto, module, monkeypatch
        self.regions = {a.name: a, b.name: b}
        self.active: Region | None = None
        self.rng = random.Random(2026)

    def _switch(self, region: Region) -> None:
        if self.active is region:
            return
        m = self.module
        if self.active is not None:
            self.active.state = (m._runtime, m._resolver, m._memory)
        m._runtime, m._resolver, m._memory = region.state or (None, None, m.SequencerMemory())
        self.monkeypatch.setenv("PYPICLOUD_SETTINGS", json.dumps(region.settings))
        self.active = region

    def cache(self, region: Region) -> Cache:
        self._switch(region)
        cache: Cache = self.module.runtime().cache
        return cache

    def upload(self, region: Region, key: str, data: bytes, *, checksum: bool = True, sidecar: bool = False) -> None:
        """An upload to the region's bucket: by another tool, or (`sidecar`) by the server, object then sidecar."""
        put_object(self.moto, region.bucket, key, data, checksum=checksum)
        region.deleted.discard(key)
        region.pending.append(Change(region.bucket, key, "ObjectCreated:Put", region.sequencer()))
        if sidecar:
            put_object(self.moto, region.bucket, key + METADATA_SUFFIX, core_metadata(key, data), checksum=True)
            region.pending.append(Change(region.bucket, key + METADATA_SUFFIX, "ObjectCreated:Put", region.sequencer()))

    def delete(self, region: Region, key: str) -> None:
        self.moto.client("s3").delete_object(Bucket=region.bucket, Key=key)
        region.deleted.add(key)
        region.pending.append(Change(region.bucket, key, "ObjectRemoved:DeleteMarkerCreated", region.sequencer()))

    def replicate(self, src: Region, dst: Region) -> None:
        """What S3 replication does from src to dst: new and changed objects (sidecars too), and delete markers."""
        s3 = self.moto.client("s3")
        here = bucket_listing(self.moto, src.bucket)
        there = bucket_listing(self.moto, dst.bucket)
        for key, etag in here.items():
            # A key deleted in dst since (its delete marker not yet replicated back) is newer there.
            if there.get(key) != etag and key not in dst.deleted:
                s3.copy_object(Bucket=dst.bucket, Key=key, CopySource={"Bucket": src.bucket, "Key": key})
                dst.deleted.discard(key)
                dst.pending.append(Change(dst.bucket, key, "ObjectCreated:Copy", dst.sequencer()))
        for key in src.deleted & there.keys():
            s3.delete_object(Bucket=dst.bucket, Key=key)
            dst.pending.append(Change(dst.bucket, key, "ObjectRemoved:DeleteMarkerCreated", dst.sequencer()))
        src.deleted.clear()

    def deliver_pending(self, region: Region, *, keep: float = 0.0) -> None:
        """S3 delivers the region's events: at least once, in any order, some later (`keep` of them held back)."""
        events = list(region.pending)
        self.rng.shuffle(events)
        held = int(len(events) * keep)
        region.pending, events = events[:held], events[held:]
        self._switch(region)
        deliver_shuffled(self.module, events, self.rng)


def core_metadata(key: str, data: bytes) -> bytes:
    """The PEP 658 sidecar the server writes beside an upload: the distribution's own METADATA bytes."""
    filename = key.rsplit("/", 1)[1]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / filename
        path.write_bytes(data)
        return read_metadata_file(path, parse_filename(filename))


def served(cache: Cache) -> dict[str, list[tuple[Any, ...]]]:
    """What an index serves, per project: each file's name, hash, size, version, tags and metadata."""
    return {
        project.name: [
            (
                f.filename,
                f.sha256,
                f.size,
                f.version,
                f.packagetype,
                f.python_version,
                f.requires_python,
                f.summary,
                f.metadata_sha256,
                f.yanked,
            )
            for f in cache.project_files(project.name)
        ]
        for project in cache.list_projects()
        if cache.project_files(project.name)
    }


@pytest.fixture
def regions(
    request: pytest.FixtureRequest, moto: Moto, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[TwoRegions]:
    backend_b = request.param
    module = handler_module()
    reset_handler(module)
    buckets = [f"ppc-{uuid.uuid4().hex[:12]}" for _ in range(2)]
    for name in buckets:
        create_bucket(moto, name, versioned=True)  # cross-region replication needs versioning on both sides
    with ExitStack() as stack:
        settings_a = sql_settings(moto, buckets[0], f"sqlite:///{tmp_path / 'region-a.sqlite'}")
        if backend_b == "dynamo":
            settings_b = dynamo_settings(moto, buckets[1])
        else:
            url = stack.enter_context(fresh_database(backend_b, tmp_path))
            settings_b = sql_settings(moto, buckets[1], url)
        a = Region("eu-west-1", buckets[0], settings_a, Sequencer(0x0055AED6DCD9020000))
        b = Region("us-east-1", buckets[1], settings_b, Sequencer(0x0061AED6DCD9020000))
        two = TwoRegions(moto, module, monkeypatch, a, b)
        try:
            yield two
        finally:
            for region in (a, b):
                two._switch(region)
                reset_handler(module)
                region.state = None
            for name in buckets:
                destroy_bucket(moto, name)


@pytest.mark.parametrize("regions", ["postgresql", "dynamo"], indirect=True)
def test_two_regions_converge_to_their_buckets_and_serve_the_same_files(regions: TwoRegions, tmp_path: Path) -> None:
    two = regions
    a, b = two.regions["eu-west-1"], two.regions["us-east-1"]

    def wheel(name: str, version: str, summary: str = "A tiny test package") -> tuple[str, bytes]:
        filename, data = wheel_bytes(tmp_path, name, version, summary=summary)
        return f"{PREFIX}{name}/{filename}", data

    # Round 1: uploads in both regions (one by another tool, without checksum); some replicate
    # before the source region's sync has run, some after (its sidecars then replicate too).
    a_files = [wheel("shared_lib", "1.0"), wheel("shared_lib", "1.1"), wheel("torch_extras", "2.1.0+cu118")]
    sdist_name, sdist = sdist_bytes(tmp_path, "shared_lib", "1.1")
    a_files.append((f"{PREFIX}shared_lib/{sdist_name}", sdist))
    b_files = [wheel("west_tool", "0.1"), wheel("west_tool", "0.2"), wheel("shared_lib", "2.0")]
    for key, data in a_files:
        two.upload(a, key, data)
    for i, (key, data) in enumerate(b_files):
        two.upload(b, key, data, checksum=i % 2 == 0)
    two.replicate(a, b)  # before region A's sync ran: no sidecars yet
    two.deliver_pending(a, keep=0.3)
    two.deliver_pending(b, keep=0.3)
    two.replicate(b, a)
    two.replicate(a, b)  # region A's sidecars follow
    two.deliver_pending(a)
    two.deliver_pending(b)

    # Round 2: deletes in both regions (each of a file first uploaded in the other), a re-upload, new files.
    two.delete(b, a_files[0][0])  # shared_lib 1.0, deleted in region B
    two.delete(a, b_files[1][0])  # west_tool 0.2, deleted in region A
    two.delete(a, a_files[2][0])
    rebuilt_key, rebuilt = wheel("torch_extras", "2.1.0+cu118", summary="rebuilt")
    two.upload(a, rebuilt_key, rebuilt, sidecar=True)  # deleted and uploaded again (other bytes) by the server
    new_key, new = wheel("east_only", "1.0")
    two.upload(b, new_key, new)
    two.deliver_pending(a, keep=0.5)
    two.replicate(a, b)
    two.replicate(b, a)
    two.deliver_pending(b, keep=0.5)
    two.replicate(b, a)
    two.replicate(a, b)
    two.deliver_pending(a)
    two.deliver_pending(b)
    two.replicate(a, b)
    two.replicate(b, a)
    two.deliver_pending(a)
    two.deliver_pending(b)

    truth_a, truth_b = bucket_truth(two.moto, a.bucket), bucket_truth(two.moto, b.bucket)
    assert truth_a == truth_b, "the simulated replication left the buckets different"
    expected = {
        "shared_lib-1.1-py3-none-any.whl",
        "shared_lib-1.1.tar.gz",
        "shared_lib-2.0-py3-none-any.whl",
        "torch_extras-2.1.0+cu118-py3-none-any.whl",
        "west_tool-0.1-py3-none-any.whl",
        "east_only-1.0-py3-none-any.whl",
    }
    assert set(truth_a) == expected
    cache_a, cache_b = two.cache(a), two.cache(b)
    assert cache_truth(cache_a) == truth_a
    assert cache_truth(cache_b) == truth_b
    assert served(cache_a) == served(cache_b)
    assert {p for p, files in served(cache_a).items() if files} == {
        "shared-lib",
        "torch-extras",
        "west-tool",
        "east-only",
    }
    for cache in (cache_a, cache_b):
        torch = cache.get_file("torch_extras-2.1.0+cu118-py3-none-any.whl")
        assert torch is not None
        assert torch.summary == "rebuilt"
