"""The Lambda's CDN path: a burst of S3 events, one delayed SQS message per window, one invalidation."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pypicloud_lite.cdn import CdnFlusher, writer_cache
from pypicloud_lite.config import load_settings
from tests.support.aws import Moto
from tests.support.cdn import cdn_settings, create_distribution, invalidations, purger
from tests.support.handler_env import (
    PREFIX,
    destroy_bucket,
    dynamo_settings,
    handler_env,
    put_object,
    s3_event,
    s3_record,
    sql_settings,
    sqs_event,
    wheel_bytes,
)

# Long enough for the whole burst to land in one window on a busy machine.
WINDOW = 10
TAGS = ("py3-none-any", "cp311-cp311-linux_x86_64", "cp312-cp312-linux_x86_64", "cp312-cp312-win_amd64")


@pytest.fixture
def bucket(moto: Moto) -> Iterator[str]:
    name = moto.new_bucket()
    yield name
    destroy_bucket(moto, name)


def queue_counts(moto: Moto, url: str) -> dict[str, int]:
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesDelayed"]
    attributes = moto.client("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
    return {name: int(attributes[name]) for name in names}


def receive_one(moto: Moto, url: str, limit: float = 90.0) -> dict[str, Any]:
    """The delayed message, once SQS lets it out (a wait for a state, not a timing assertion)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        answer = moto.client("sqs").receive_message(QueueUrl=url, WaitTimeSeconds=2, MaxNumberOfMessages=10)
        messages: list[dict[str, Any]] = answer.get("Messages", [])
        if messages:
            assert len(messages) == 1, messages
            return messages[0]
    raise AssertionError("the delayed flush message never arrived")


@pytest.mark.parametrize("backend", ["sqlite", "dynamo"])
def test_a_burst_of_s3_events_yields_one_delayed_message_and_one_invalidation(
    backend: str, monkeypatch: pytest.MonkeyPatch, moto: Moto, bucket: str, tmp_path: Path
) -> None:
    distribution = create_distribution(moto)
    queue_url = moto.client("sqs").create_queue(QueueName=f"ppc-cdn-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    base = (
        dynamo_settings(moto, bucket)
        if backend == "dynamo"
        else sql_settings(moto, bucket, f"sqlite:///{tmp_path / 'cache.sqlite'}")
    )
    settings = {
        **base,
        "cdn.backend": "cloudfront",
        "cdn.distribution_id": distribution,
        "cdn.endpoint_url": moto.endpoint_url,
        "cdn.queue_url": queue_url,
        "cdn.window": str(WINDOW),
    }
    keys = []
    for tag in TAGS:
        filename, data = wheel_bytes(tmp_path, "burst", "1.0", tag=tag)
        key = f"{PREFIX}burst/{filename}"
        put_object(moto, bucket, key, data, checksum=True)
        keys.append(key)
    with handler_env(monkeypatch, settings) as module:
        delays: list[int] = []
        scheduler = module.runtime().scheduler
        scheduler.client.meta.events.register(
            "before-parameter-build.sqs.SendMessage", lambda params, **_: delays.append(params["DelaySeconds"])
        )
        # The burst: one invocation per object, as S3 delivers them.
        for key in keys:
            summary = module.handler(s3_event(s3_record(bucket, key, "ObjectCreated:Put")))
            assert summary.get("applied") == 1, summary
        assert delays == [WINDOW + 2]
        assert queue_counts(moto, queue_url) == {
            "ApproximateNumberOfMessages": 0,
            "ApproximateNumberOfMessagesDelayed": 1,
        }
        assert invalidations(moto, distribution) == []

        message = receive_one(moto, queue_url)
        answer = module.handler(sqs_event(message["Body"]))
        assert answer == {"batchItemFailures": []}

    [sent] = invalidations(moto, distribution)
    assert sent["paths"] == ["/pypi/burst/1.0/json", "/pypi/burst/json", "/simple/", "/simple/burst/"]
    # Nothing left pending: no further message was scheduled.
    assert delays == [WINDOW + 2]
    assert queue_counts(moto, queue_url) == {"ApproximateNumberOfMessages": 0, "ApproximateNumberOfMessagesDelayed": 0}


def test_a_lambda_without_cdn_settings_records_its_changes_for_the_index_cdn(
    monkeypatch: pytest.MonkeyPatch, moto: Moto, bucket: str, tmp_path: Path
) -> None:
    distribution = create_distribution(moto)
    base = dynamo_settings(moto, bucket)
    # A server with cdn.* started once: the index has a CDN from then on.
    server = load_settings(
        {
            **base,
            "cdn.backend": "cloudfront",
            "cdn.distribution_id": distribution,
            "cdn.endpoint_url": moto.endpoint_url,
        },
        environ={},
    )
    cache = writer_cache(server, "server")
    try:
        filename, data = wheel_bytes(tmp_path, "quiet", "1.0")
        key = f"{PREFIX}quiet/{filename}"
        put_object(moto, bucket, key, data, checksum=True)
        with handler_env(monkeypatch, base) as module:  # deployed from an ini without cdn.*
            summary = module.handler(s3_event(s3_record(bucket, key, "ObjectCreated:Put")))
            assert summary.get("applied") == 1, summary
        assert [change.project for change in cache.outbox_pending(10)] == ["quiet"]
        flusher = CdnFlusher(cache, purger(moto, distribution), cdn_settings(moto, distribution))
        assert flusher.flush(force=True).state == "sent"
    finally:
        cache.close()
    [sent] = invalidations(moto, distribution)
    assert sent["paths"] == ["/pypi/quiet/1.0/json", "/pypi/quiet/json", "/simple/", "/simple/quiet/"]
