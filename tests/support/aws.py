"""Moto running as a real HTTP server on 127.0.0.1, reached by ordinary boto3 clients."""

from __future__ import annotations

import json
import os
import re
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import boto3

REGION = "us-east-1"
# Moto accepts any credentials; setting them keeps boto3 from looking for real ones.
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": REGION,
}


@dataclass(frozen=True)
class Moto:
    endpoint_url: str
    # (method, path, status) of every request moto answered, in order.
    requests: list[tuple[str, str, int]] = field(default_factory=list, compare=False)

    def object_downloads(self, bucket: str, key: str) -> int:
        """GetObject requests on this object (path-style URLs) that moto answered with its bytes (200 or 206)."""
        return sum(
            1
            for method, path, status in self.requests
            if (method, path) == ("GET", f"/{bucket}/{key}") and status in (200, 206)
        )

    def client(self, service: str, region: str = REGION) -> Any:
        return boto3.client(service, endpoint_url=self.endpoint_url, region_name=region)

    def new_bucket(self) -> str:
        name = f"ppc-{uuid.uuid4().hex[:12]}"
        self.client("s3").create_bucket(Bucket=name)
        return name

    def dynamo_settings(self, table_prefix: str | None = None) -> dict[str, str]:
        """A DynamoDB cache on this moto: tables of its own (a new prefix unless given), created on start."""
        return {
            "cache.backend": "dynamo",
            "cache.table_prefix": table_prefix or f"ppc-{uuid.uuid4().hex[:10]}-",
            "cache.region": REGION,
            "cache.endpoint_url": self.endpoint_url,
            "cache.create_tables": "true",
        }

    def s3_settings(self, bucket: str, prefix: str = "packages/") -> dict[str, str]:
        """Ini settings of an S3-backed server on this moto."""
        return {
            "storage.backend": "s3",
            "storage.bucket": bucket,
            "storage.prefix": prefix,
            "storage.region": REGION,
            "storage.endpoint_url": self.endpoint_url,
        }


WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def _atomic_requests(app: WSGIApp) -> WSGIApp:
    """Run moto's DynamoDB requests and S3 conditional writes one at a time, as AWS guarantees them atomic.

    S3 checks `If-Match`/`If-None-Match` and writes as one step; moto checks, then writes, so two
    racing conditional PUTs could both pass their check.

    Real DynamoDB makes every operation atomic and TransactWriteItems serializable against other
    writes and GetItem. Moto's backend is plain Python under a threaded server: a transaction
    snapshots the tables, applies its items one by one and, when a condition fails, puts the
    snapshot back, so concurrent requests see half of a transaction or have theirs undone.
    """
    lock = threading.Lock()

    def serialized(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        dynamodb = environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB_")
        conditional = environ.get("REQUEST_METHOD") == "PUT" and (
            "HTTP_IF_MATCH" in environ or "HTTP_IF_NONE_MATCH" in environ
        )
        if not (dynamodb or conditional):
            return app(environ, start_response)
        with lock:
            return list(app(environ, start_response))

    return serialized


# What real DynamoDB answers (JSON, with these types) where moto's IAM checks answer in IAM's XML.
_DYNAMO_AUTH_ERRORS = {
    "InvalidClientTokenId": "UnrecognizedClientException",
    "SignatureDoesNotMatch": "InvalidSignatureException",
    "AccessDenied": "AccessDeniedException",
}


def _dynamo_auth_errors_as_json(app: WSGIApp) -> WSGIApp:
    """Moto's IAM enforcement refuses DynamoDB requests in XML, which botocore cannot read from a JSON service
    (it reports code "403"): answer in DynamoDB's own form instead."""

    def translated(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if not environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB_"):
            return app(environ, start_response)
        captured: list[Any] = []
        body = b"".join(app(environ, lambda status, headers, *args: captured.append((status, headers))))
        status, headers = captured[0]
        found = re.search(rb"<Code>(\w+)</Code><Message>([^<]*)</Message>", body) if status.startswith("403") else None
        if found and found.group(1).decode() in _DYNAMO_AUTH_ERRORS:
            kind = _DYNAMO_AUTH_ERRORS[found.group(1).decode()]
            body = json.dumps(
                {"__type": f"com.amazon.coral.service#{kind}", "message": found.group(2).decode()}
            ).encode()
            headers = [(k, v) for k, v in headers if k.lower() not in ("content-type", "content-length", "x-amz-crc32")]
            headers += [("Content-Type", "application/x-amz-json-1.0"), ("Content-Length", str(len(body)))]
        start_response(status, headers)
        return [body]

    return translated


def _one_backup_per_transaction() -> None:
    """Make moto's TransactWriteItems copy each table once, not once per item.

    Before applying a transaction, moto deep-copies the table of every item as a backup to put back if a
    condition fails: a 100-item transaction on one table copies that whole table 100 times. DynamoDB's cost
    is per item, not per item times the table's size. The copies are all taken before the first write, so
    one copy per table is the same backup. Requests are serialized (_atomic_requests): one call at a time.
    """
    import copy

    from moto.dynamodb import models

    backend = models.DynamoDBBackend
    if getattr(backend.transact_write_items, "one_backup_per_table", False):
        return
    original = backend.transact_write_items

    class _CopyOnce:
        """`copy` for one call of moto's method: the same object deep-copied once."""

        def __init__(self) -> None:
            self.copies: dict[int, Any] = {}

        def deepcopy(self, obj: Any) -> Any:
            if id(obj) not in self.copies:
                self.copies[id(obj)] = copy.deepcopy(obj)
            return self.copies[id(obj)]

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        setattr(models, "copy", _CopyOnce())  # noqa: B010 - moto's module reads `copy.deepcopy` through it
        try:
            original(self, transact_items)
        finally:
            setattr(models, "copy", copy)  # noqa: B010

    transact_write_items.one_backup_per_table = True  # type: ignore[attr-defined]
    backend.transact_write_items = transact_write_items  # type: ignore[method-assign]


def _logged(app: WSGIApp, log: list[tuple[str, str, int]]) -> WSGIApp:
    def logging(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        def start(status: str, headers: Any, *args: Any) -> Any:
            log.append((environ["REQUEST_METHOD"], environ.get("PATH_INFO", ""), int(status[:3])))
            return start_response(status, headers, *args)

        return app(environ, start)

    return logging


@contextmanager
def moto_server() -> Iterator[Moto]:
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import make_server

    _one_backup_per_transaction()
    saved = {k: os.environ.get(k) for k in FAKE_CREDENTIALS}
    os.environ.update(FAKE_CREDENTIALS)
    log: list[tuple[str, str, int]] = []
    app = _logged(_dynamo_auth_errors_as_json(_atomic_requests(DomainDispatcherApplication(create_backend_app))), log)
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=MotoRequestHandler)
    thread = threading.Thread(target=server.serve_forever, name="moto", daemon=True)
    thread.start()
    host, port = server.server_address[:2]
    try:
        yield Moto(f"http://{host}:{port}", log)
    finally:
        server.shutdown()
        thread.join()
        server.server_close()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


# Where boto3 would look for credentials besides the environment: nowhere, in tests that choose them.
NO_OTHER_CREDENTIALS = {
    "AWS_CONFIG_FILE": "/nonexistent/aws-config",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
    "AWS_EC2_METADATA_DISABLED": "true",
}
CREDENTIAL_VARIABLES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE")


def use_credentials(monkeypatch: Any, credentials: dict[str, str]) -> None:
    """Exactly these credential variables for boto3 (a pytest MonkeyPatch undoes it); no files, no instance role."""
    for key, value in NO_OTHER_CREDENTIALS.items():
        monkeypatch.setenv(key, value)
    for key in CREDENTIAL_VARIABLES:
        monkeypatch.delenv(key, raising=False)
    for key, value in credentials.items():
        monkeypatch.setenv(key, value)


@contextmanager
def iam_enforced() -> Iterator[None]:
    """Moto checks each request's signature and the caller's IAM policies inside the block, as AWS does.

    The server runs in this process: the switch is moto's module-level setting, restored on exit. Moto
    authorizes S3 requests against the bucket's and the key's ARNs, and DynamoDB requests against "*".
    """
    from moto.core.authorization import enable_iam_authentication

    with enable_iam_authentication():
        yield


def iam_user(moto: Moto, policy: dict[str, Any] | None) -> dict[str, str]:
    """A new IAM user with `policy` as its only (inline) policy; its credentials as environment variables."""
    iam = moto.client("iam")
    name = f"ppc-{uuid.uuid4().hex[:10]}"
    iam.create_user(UserName=name)
    if policy is not None:
        iam.put_user_policy(UserName=name, PolicyName="ppc", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return {"AWS_ACCESS_KEY_ID": key["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"]}
