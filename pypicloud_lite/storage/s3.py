"""S3Storage: package files in an S3 bucket (or an S3-compatible server), through boto3."""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, cast

import boto3
from botocore.auth import AUTH_TYPE_MAPS, SIGV4_TIMESTAMP, S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from pypicloud_lite.aws_errors import credentials_error
from pypicloud_lite.config import S3Settings
from pypicloud_lite.errors import BackendUnavailable, InvalidInput, NotFound, PypicloudLiteError
from pypicloud_lite.storage.base import DownloadURL, Storage, StoredObject, Versioned, checked_key

logger = logging.getLogger(__name__)

_MISSING = frozenset({"NoSuchKey", "404", "NotFound", "NoSuchVersion"})
# Another writer holds the key: S3 answers 412 to If-None-Match, or 409 while a write is in flight.
_TAKEN = frozenset({"PreconditionFailed", "412", "ConditionalRequestConflict", "409"})
RETRY_AFTER = 5
# A presign request's parameter (taken out before botocore validates them) and its place in the request context.
_SIGNED_AT_PARAM = "PpcSignedAt"
_SIGNED_AT = "ppc_signed_at"
_PINNED_SIGNER = "ppc-s3v4-pinned"


class _PinnedTimeQueryAuth(S3SigV4QueryAuth):  # type: ignore[misc]
    """botocore's SigV4 presigner, signing at the time the storage chose instead of the clock's.

    add_auth stamps the clock's time into the context, then calls this before anything reads it.
    """

    def _modify_request_before_signing(self, request: AWSRequest) -> None:
        request.context["timestamp"] = request.context[_SIGNED_AT].strftime(SIGV4_TIMESTAMP)
        super()._modify_request_before_signing(request)


# botocore adds "-query" to the signer's name for presigned URLs.
AUTH_TYPE_MAPS.setdefault(_PINNED_SIGNER + "-query", _PinnedTimeQueryAuth)


def _take_signing_time(params: dict[str, Any], context: dict[str, Any], **kwargs: Any) -> None:
    if _SIGNED_AT_PARAM in params:
        context[_SIGNED_AT] = params.pop(_SIGNED_AT_PARAM)


def _choose_pinned_signer(context: dict[str, Any], **kwargs: Any) -> str | None:
    return _PINNED_SIGNER if _SIGNED_AT in context else None


def _hex_to_b64(digest: str) -> str:
    return base64.b64encode(bytes.fromhex(digest)).decode()


def _b64_to_hex(value: str) -> str:
    return base64.b64decode(value).hex()


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _error(exc: ClientError | BotoCoreError, action: str, key: str) -> PypicloudLiteError:
    """The project's error for an SDK error, naming what failed."""
    refused = credentials_error(exc, "S3", f"{action} {key}")
    if refused is not None:
        return refused
    if isinstance(exc, BotoCoreError):
        return BackendUnavailable(
            f"S3 is unreachable to {action} {key} ({exc.__class__.__name__}); try again shortly.",
            retry_after=RETRY_AFTER,
        )
    code = _code(exc)
    if code in _MISSING:
        return NotFound(f"No such object: {key}")
    return BackendUnavailable(f"S3 could not {action} {key} ({code or 'error'}); try again shortly.", RETRY_AFTER)


@contextmanager
def _translate(action: str, key: str) -> Iterator[None]:
    """SDK errors become the project's errors here, at the boundary."""
    try:
        yield
    except (ClientError, BotoCoreError) as exc:
        raise _error(exc, action, key) from exc


class S3Storage(Storage):
    def __init__(self, client: Any, settings: S3Settings, stream_files: bool = False) -> None:
        self.client = client
        self.settings = settings
        self.bucket = settings.bucket
        self.prefix = settings.prefix
        self.stream_files = stream_files
        self.clock: Callable[[], float] = time.time
        events = client.meta.events
        events.register("provide-client-params.s3.GetObject", _take_signing_time, unique_id=_SIGNED_AT)
        # First: botocore's own handler would answer with the plain SigV4 presigner.
        events.register_first("choose-signer.s3.GetObject", _choose_pinned_signer, unique_id=_PINNED_SIGNER)

    @property
    def identity(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    @classmethod
    def from_settings(cls, settings: S3Settings, stream_files: bool = False) -> S3Storage:
        config = Config(
            s3={"addressing_style": settings.addressing_style},
            retries={"mode": "standard", "max_attempts": 3},
            # SigV4 for presigned URLs too: SSE-KMS objects and newer buckets refuse SigV2.
            signature_version="s3v4",
            max_pool_connections=settings.max_pool_connections,
            # Checksums only where we ask for them: moto and S3-compatible servers differ on the defaults.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        # Credentials come from boto3's usual chain (environment, profile, instance role).
        with _translate("reach bucket", settings.bucket):
            client = boto3.session.Session().client(
                "s3", region_name=settings.region, endpoint_url=settings.endpoint_url, config=config
            )
        return cls(client, settings, stream_files)

    def _s3_key(self, key: str) -> str:
        return self.prefix + checked_key(key)

    def _write_args(self) -> dict[str, str]:
        args = {}
        if self.settings.sse:
            args["ServerSideEncryption"] = self.settings.sse
        if self.settings.kms_key_id:
            args["SSEKMSKeyId"] = self.settings.kms_key_id
        if self.settings.storage_class:
            args["StorageClass"] = self.settings.storage_class
        if self.settings.acl:
            args["ACL"] = self.settings.acl
        return args

    def put_new(
        self, key: str, source: Path, sha256: str | None = None, *, movable: bool = False, synced: bool = False
    ) -> bool:
        # Both: the algorithm makes S3 keep the checksum; the value makes it verify the bytes we hashed.
        checksum = {"ChecksumAlgorithm": "SHA256"}
        if sha256:
            checksum["ChecksumSHA256"] = _hex_to_b64(sha256)
        try:
            with source.open("rb") as body:
                # If-None-Match makes the write conditional: of two racing uploads one wins.
                self.client.put_object(
                    Bucket=self.bucket,
                    Key=self._s3_key(key),
                    Body=body,
                    IfNoneMatch="*",
                    **checksum,
                    **self._write_args(),
                )
        except ClientError as exc:
            if _code(exc) in _TAKEN:
                return False
            raise _error(exc, "write", key) from exc
        except BotoCoreError as exc:
            raise _error(exc, "write", key) from exc
        return True

    def put_bytes(self, key: str, data: bytes) -> None:
        with _translate("write", key):
            self.client.put_object(
                Bucket=self.bucket, Key=self._s3_key(key), Body=data, ChecksumAlgorithm="SHA256", **self._write_args()
            )

    def read_versioned(self, key: str, limit: int = 16 * 1024 * 1024) -> Versioned | None:
        try:
            with _translate("read", key):
                got = self.client.get_object(Bucket=self.bucket, Key=self._s3_key(key))
        except NotFound:
            return None
        with _translate("read", key), got["Body"] as body:
            if int(got["ContentLength"]) > limit:
                raise InvalidInput(f"{key} is larger than {limit} bytes: not a state object of this index")
            return Versioned(body.read(), str(got["ETag"]))

    def put_if(self, key: str, data: bytes, token: str | None) -> bool:
        condition = {"IfMatch": token} if token is not None else {"IfNoneMatch": "*"}
        try:
            self.client.put_object(
                Bucket=self.bucket,
                Key=self._s3_key(key),
                Body=data,
                ChecksumAlgorithm="SHA256",
                **condition,
                **self._write_args(),
            )
        except ClientError as exc:
            # If-Match on a deleted object: 404 NoSuchKey, a lost race like any other.
            if _code(exc) in _TAKEN or _code(exc) in _MISSING:
                return False
            raise _error(exc, "write", key) from exc
        except BotoCoreError as exc:
            raise _error(exc, "write", key) from exc
        return True

    def open(self, key: str, start: int = 0, end: int | None = None) -> BinaryIO:
        args: dict[str, Any] = {"Bucket": self.bucket, "Key": self._s3_key(key)}
        if start or end is not None:
            args["Range"] = f"bytes={start}-{'' if end is None else end}"
        with _translate("read", key):
            return cast(BinaryIO, self.client.get_object(**args)["Body"])

    def stat(self, key: str) -> StoredObject | None:
        try:
            with _translate("inspect", key):
                head = self.client.head_object(Bucket=self.bucket, Key=self._s3_key(key), ChecksumMode="ENABLED")
        except NotFound:
            return None
        checksum = head.get("ChecksumSHA256")
        # A multipart upload's checksum is a checksum of part checksums ("...-N"), not the file's.
        full_object = checksum and "-" not in checksum and head.get("ChecksumType", "FULL_OBJECT") == "FULL_OBJECT"
        return StoredObject(
            key=key,
            size=int(head["ContentLength"]),
            last_modified=head["LastModified"],
            etag=str(head.get("ETag", "")).strip('"'),
            sha256=_b64_to_hex(checksum) if full_object else None,
        )

    def delete(self, key: str) -> None:
        with _translate("delete", key):
            self.client.delete_object(Bucket=self.bucket, Key=self._s3_key(key))

    def list(self, prefix: str = "") -> Iterator[StoredObject]:
        paginator = self.client.get_paginator("list_objects_v2")
        with _translate("list", self.prefix + prefix or "the bucket"):
            # One request per 1,000 keys.
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix):
                for item in page.get("Contents", []):
                    yield StoredObject(
                        key=item["Key"][len(self.prefix) :],
                        size=int(item["Size"]),
                        last_modified=item["LastModified"],
                        etag=str(item.get("ETag", "")).strip('"'),
                    )

    def download_url(self, key: str, filename: str) -> DownloadURL | None:
        """A GET URL signed at the start of the current window: the same URL all window long, cacheable till its end.

        Valid for the window plus `expiry` seconds, so a URL handed out at the window's last second still works.
        """
        if self.stream_files:
            return None
        presign = self.settings.presign
        now = int(self.clock())
        # Without a window every request gets a URL signed at that second, not to be kept.
        start = now - now % presign.window if presign.window else now
        max_age = start + presign.window - now if presign.window else 0
        params = {"Bucket": self.bucket, "Key": self._s3_key(key), _SIGNED_AT_PARAM: datetime.fromtimestamp(start, UTC)}
        with _translate("sign a URL for", key):
            url: str = self.client.generate_presigned_url("get_object", Params=params, ExpiresIn=presign.validity)
        return DownloadURL(url, max_age)

    def check_health(self) -> None:
        try:
            with _translate("reach bucket", self.bucket):
                # A real (one-key) listing, as a reload makes: HeadBucket passes without s3:ListBucket.
                self.client.list_objects_v2(Bucket=self.bucket, Prefix=self.prefix, MaxKeys=1)
        except NotFound as exc:
            raise BackendUnavailable(
                f"S3 bucket {self.bucket} does not exist (or is not visible to these credentials)."
            ) from exc
