"""The harness's pserve with its storage in a moto bucket: the ini, the server's AWS environment, and bucket reads."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path
from typing import Any

from tests.support.aws import FAKE_CREDENTIALS, Moto
from tests.support.harness import Server, clean_env, free_port, launch, write_ini

PREFIX = "packages/"
# What harness.write_ini writes for local storage and the SQLite cache, replaced here.
_LOCAL_STORAGE = "storage.backend = local\nstorage.dir = %(here)s/packages\n"
_LOCAL_CACHE = "cache.url = sqlite:///%(here)s/cache.sqlite\n"


def write_s3_ini(
    folder: Path, port: int, moto: Moto, bucket: str, *, stream_files: bool = False, cache_url: str | None = None
) -> Path:
    """harness.write_ini with S3 storage on `bucket` (under PREFIX), and optionally another server's cache."""
    ini = write_ini(folder, port)
    text = ini.read_text(encoding="utf-8")
    assert _LOCAL_STORAGE in text, f"harness.write_ini no longer writes {_LOCAL_STORAGE!r}: update s3_harness"
    storage = {**moto.s3_settings(bucket, PREFIX), "storage.stream_files": "true" if stream_files else "false"}
    text = text.replace(_LOCAL_STORAGE, "".join(f"{key} = {value}\n" for key, value in storage.items()))
    if cache_url is not None:
        assert _LOCAL_CACHE in text, f"harness.write_ini no longer writes {_LOCAL_CACHE!r}: update s3_harness"
        text = text.replace(_LOCAL_CACHE, f"cache.url = {cache_url}\n")
    ini.write_text(text, encoding="utf-8")
    return ini


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
    folder: Path, moto: Moto, bucket: str, *, stream_files: bool = False, cache_url: str | None = None
) -> Server:
    """Like harness.start_server, on S3; waits until /health answers 200 (storage and cache both reachable)."""
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    ini = write_s3_ini(folder, port, moto, bucket, stream_files=stream_files, cache_url=cache_url)
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
