"""Moto running as a real HTTP server on 127.0.0.1, reached by ordinary boto3 clients."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
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

    def client(self, service: str) -> Any:
        return boto3.client(service, endpoint_url=self.endpoint_url, region_name=REGION)

    def new_bucket(self) -> str:
        name = f"ppc-{uuid.uuid4().hex[:12]}"
        self.client("s3").create_bucket(Bucket=name)
        return name

    def s3_settings(self, bucket: str, prefix: str = "packages/") -> dict[str, str]:
        """Ini settings of an S3-backed server on this moto."""
        return {
            "storage.backend": "s3",
            "storage.bucket": bucket,
            "storage.prefix": prefix,
            "storage.region": REGION,
            "storage.endpoint_url": self.endpoint_url,
        }


@contextmanager
def moto_server() -> Iterator[Moto]:
    from moto.server import ThreadedMotoServer

    saved = {k: os.environ.get(k) for k in FAKE_CREDENTIALS}
    os.environ.update(FAKE_CREDENTIALS)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield Moto(f"http://{host}:{port}")
    finally:
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
