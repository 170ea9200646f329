"""Moto running as a real HTTP server on 127.0.0.1, reached by ordinary boto3 clients."""

from __future__ import annotations

import os
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

    saved = {k: os.environ.get(k) for k in FAKE_CREDENTIALS}
    os.environ.update(FAKE_CREDENTIALS)
    log: list[tuple[str, str, int]] = []
    app = _logged(_atomic_requests(DomainDispatcherApplication(create_backend_app)), log)
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
