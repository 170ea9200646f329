"""The harness's pserve with its storage in a moto bucket: the ini, the server's AWS environment, and bucket reads."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tests.support.aws import FAKE_CREDENTIALS, Moto
from tests.support.harness import Server, clean_env, free_port, launch, pserve_settings
from tests.support.settings import HERE, write_ini

PREFIX = "packages/"


def s3_settings(
    moto: Moto,
    bucket: str,
    *,
    stream_files: bool = False,
    cache_url: str | None = None,
    extra: Mapping[str, str | None] | None = None,
) -> dict[str, str]:
    """The harness's settings with S3 storage on `bucket` (under PREFIX), and optionally another server's cache;
    `extra` replaces, adds (or, None, removes) settings."""
    storage = {**moto.s3_settings(bucket, PREFIX), "storage.stream_files": "true" if stream_files else "false"}
    cache = {"cache.url": cache_url} if cache_url is not None else {}
    return pserve_settings(HERE, {"storage.dir": None, **storage, **cache, **(extra or {})})


def server_env(folder: Path) -> dict[str, str]:
    """The harness's clean environment with moto's fake credentials as the only AWS configuration.

    The ini names the endpoint but holds no credentials: boto3 in pserve finds them in its environment.
    """
    env = {key: value for key, value in clean_env().items() if not key.upper().startswith("AWS_")}
    env.update(FAKE_CREDENTIALS)
    env.update(
        AWS_CONFIG_FILE=str(folder / "no-aws-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(folder / "no-aws-credentials"),
        AWS_EC2_METADATA_DISABLED="true",
    )
    return env


def start_s3_server(
    folder: Path,
    moto: Moto,
    bucket: str,
    *,
    stream_files: bool = False,
    cache_url: str | None = None,
    extra: Mapping[str, str | None] | None = None,
) -> Server:
    """Like harness.start_server, on S3; waits until /health answers 200 (storage and cache both reachable).

    Settings are written as they are: a `%` in `cache_url` or `extra` must be doubled.
    """
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    settings = s3_settings(moto, bucket, stream_files=stream_files, cache_url=cache_url, extra=extra)
    ini = write_ini(folder / "server.ini", settings, port)
    return launch(folder, ini, port, ready="/health", env=server_env(folder))


def object_keys(moto: Moto, bucket: str, prefix: str = PREFIX) -> set[str]:
    pages = moto.client("s3").get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return {item["Key"] for page in pages for item in page.get("Contents", [])}


def head_object(moto: Moto, bucket: str, key: str) -> dict[str, Any]:
    """HeadObject with the checksum asked for (S3 returns it only then)."""
    found: dict[str, Any] = moto.client("s3").head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    return found


def read_object(moto: Moto, bucket: str, key: str) -> bytes:
    body: bytes = moto.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    return body


def s3_checksum(data: bytes) -> str:
    """A SHA-256 as S3's ChecksumSHA256 carries it: base64 of the digest."""
    return base64.b64encode(hashlib.sha256(data).digest()).decode()
