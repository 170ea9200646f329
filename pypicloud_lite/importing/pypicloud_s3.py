"""pypicloud's S3 storage: keys `<prefix>[<md5(filename)[:4]>/]<normalized name>/<filename>` with user metadata."""

from __future__ import annotations

import posixpath
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, BinaryIO, cast
from urllib.parse import urlsplit

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from pypicloud_lite.errors import BackendUnavailable, InvalidInput
from pypicloud_lite.importing.peer import (
    MAX_SUMMARY,
    MAX_UPLOADER,
    Found,
    PeerFile,
    Skipped,
    clean_text,
    explain_filename,
)
from pypicloud_lite.naming import normalize


def parse_s3_url(url: str) -> tuple[str, str]:
    """(bucket, prefix) of `s3://bucket/prefix`; the prefix is kept as given (pypicloud adds no "/")."""
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc or parts.query or parts.fragment:
        raise InvalidInput(f"{url!r}: give the source as s3://<bucket>/<prefix>")
    return parts.netloc, parts.path.removeprefix("/")


def s3_client(endpoint_url: str | None, region: str | None) -> Any:
    """A boto3 S3 client (credentials from boto3's usual chain) for AWS or an S3-compatible server."""
    return boto3.session.Session().client("s3", region_name=region, endpoint_url=endpoint_url)


def read_pypicloud_s3(client: Any, bucket: str, prefix: str) -> Iterator[Found]:
    """Every object under `prefix`, with pypicloud's user metadata (one HEAD each, as pypicloud's reload).

    Upload time: the object's LastModified, which is what pypicloud itself shows. Name and version
    come from the filename; metadata that names another project is a skip, not a guess.
    """
    try:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for listed in page.get("Contents", []):
                yield _entry(client, bucket, listed["Key"])
    except (ClientError, BotoCoreError) as exc:
        raise BackendUnavailable(f"cannot list s3://{bucket}/{prefix}: {exc}") from exc


def _metadata(metadata: Mapping[str, str], field: str) -> str | None:
    # pypicloud 1.1.3 and later write `hash-sha256`; 1.0.14 to 1.1.2 wrote `hash_sha256`.
    return metadata.get(field) or metadata.get(field.replace("-", "_"))


def _entry(client: Any, bucket: str, key: str) -> Found:
    filename = posixpath.basename(key)
    dist = explain_filename(filename)
    if isinstance(dist, str):
        return Skipped(key, dist)
    try:
        head = client.head_object(Bucket=bucket, Key=key)
    except (ClientError, BotoCoreError) as exc:
        return Skipped(key, f"cannot be read: {exc}")
    metadata = head.get("Metadata") or {}
    name = _metadata(metadata, "name")
    if name is not None and normalize(name) != dist.project:
        return Skipped(key, f"its metadata names project {name!r}, its filename {dist.project!r}")
    last_modified: datetime = head["LastModified"]

    def open_object() -> BinaryIO:
        try:
            body = client.get_object(Bucket=bucket, Key=key)["Body"]
        except (ClientError, BotoCoreError) as exc:
            raise OSError(f"cannot read s3://{bucket}/{key}: {exc}") from exc
        return cast(BinaryIO, _ObjectBody(body))

    return PeerFile(
        filename=filename,
        source=key,
        # pypicloud keeps only the normalized name: the file's metadata names a new project.
        display_name=None,
        upload_time=last_modified.astimezone(UTC),
        uploader=clean_text(_metadata(metadata, "uploader"), MAX_UPLOADER),
        summary=clean_text(_metadata(metadata, "summary"), MAX_SUMMARY),
        open=open_object,
    )


class _ObjectBody:
    """An object's streamed body whose SDK errors are OSErrors, as a local file's are (the import goes on)."""

    def __init__(self, body: Any) -> None:
        self.body = body

    def read(self, size: int = -1) -> bytes:
        try:
            data: bytes = self.body.read(size if size >= 0 else None)
        except (ClientError, BotoCoreError) as exc:
            raise OSError(f"reading the object failed: {exc}") from exc
        return data

    def close(self) -> None:
        self.body.close()
