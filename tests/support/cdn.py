"""Helpers for the CDN tests: a CloudFront distribution on moto, outbox caches on every backend, files."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pypicloud_lite.cache.base import Cache
from pypicloud_lite.cdn import CdnFlusher, CloudFrontPurger
from pypicloud_lite.config import CdnSettings, load_settings
from pypicloud_lite.models import PackageFile
from tests.support.aws import Moto
from tests.support.cache import cache_settings, fresh_database

OUTBOX_BACKENDS = ("sqlite", "postgresql", "mariadb", "dynamo")
UPLOADED = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)


def create_distribution(moto: Moto) -> str:
    """A CloudFront distribution of its own on moto (its invalidations are this test's only)."""
    origin = {
        "Id": "index",
        "DomainName": "index.example.invalid",
        "CustomOriginConfig": {
            "HTTPPort": 80,
            "HTTPSPort": 443,
            "OriginProtocolPolicy": "https-only",
        },
    }
    config = {
        "CallerReference": uuid.uuid4().hex,
        "Comment": "ppc test",
        "Enabled": True,
        "Origins": {"Quantity": 1, "Items": [origin]},
        "DefaultCacheBehavior": {
            "TargetOriginId": "index",
            "ViewerProtocolPolicy": "redirect-to-https",
            "CachePolicyId": "658327ea-f89d-4fab-a63d-7e88639e58f6",
        },
    }
    answer = moto.client("cloudfront").create_distribution(DistributionConfig=config)
    return str(answer["Distribution"]["Id"])


def invalidations(moto: Moto, distribution_id: str) -> list[dict[str, Any]]:
    """Every invalidation of the distribution: {"id", "reference", "paths"}."""
    client = moto.client("cloudfront")
    listing = client.list_invalidations(DistributionId=distribution_id)["InvalidationList"]
    found = []
    for summary in listing.get("Items", []):
        batch = client.get_invalidation(DistributionId=distribution_id, Id=summary["Id"])["Invalidation"]
        found.append(
            {
                "id": summary["Id"],
                "reference": batch["InvalidationBatch"]["CallerReference"],
                "paths": sorted(batch["InvalidationBatch"]["Paths"].get("Items", [])),
            }
        )
    return found


def cdn_settings(moto: Moto, distribution_id: str, **changes: Any) -> CdnSettings:
    settings = CdnSettings(
        backend="cloudfront",
        distribution_id=distribution_id,
        window=1,
        wildcard_threshold=300,
        endpoint_url=moto.endpoint_url,
    )
    return replace(settings, **changes)


def purger(moto: Moto, distribution_id: str) -> CloudFrontPurger:
    return CloudFrontPurger(distribution_id, moto.client("cloudfront"))


@contextmanager
def outbox_database(backend: str, moto: Moto, tmp_path: Path) -> Iterator[dict[str, str]]:
    """The cache settings (ini keys) of an empty cache with the outbox on."""
    if backend == "dynamo":
        yield moto.dynamo_settings()
        return
    with fresh_database(backend, tmp_path) as url:
        yield {"cache.url": url, "cache.migrate_on_start": "true"}


def open_cache(raw: dict[str, str], distribution_id: str = "E000") -> Cache:
    """A new cache instance (a process of its own, as far as the outbox knows)."""
    from pypicloud_lite.cache import build_cache

    settings = load_settings(
        {"storage.dir": "/nonexistent", "cdn.backend": "cloudfront", "cdn.distribution_id": distribution_id, **raw},
        environ={},
    )
    assert settings.cache.cdn_outbox
    return build_cache(settings.cache)


def sql_cache_without_outbox(url: str) -> Cache:
    from pypicloud_lite.cache.sql import SQLCache

    return SQLCache.from_settings(cache_settings(url))


def wheel(project: str, version: str, tag: str = "py3-none-any") -> PackageFile:
    name = project.replace("-", "_")
    return PackageFile(
        project=project,
        filename=f"{name}-{version}-{tag}.whl",
        version=version,
        packagetype="bdist_wheel",
        python_version="py3",
        size=1000,
        sha256="a" * 64,
        upload_time=UPLOADED,
    )


def wait_window_closed(flusher: CdnFlusher, limit: float = 30.0) -> None:
    """Wait for the (1 s) window to close: a wait for a state, never an assertion about time."""
    deadline = time.monotonic() + limit
    while flusher.window_open():
        assert time.monotonic() < deadline, "the CDN window never closed"
        time.sleep(0.2)
