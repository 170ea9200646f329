"""The AWS calls a piece of code makes, as the IAM actions and resources they need, checked against a role's policy
(moto enforces no IAM, so this is how a test learns that a role allows what the code does)."""

from __future__ import annotations

import fnmatch
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import pytest
from botocore.client import BaseClient


@dataclass(frozen=True)
class Call:
    service: str
    operation: str
    region: str
    params: dict[str, Any]


@contextmanager
def recorded_calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Call]]:
    """Every call any botocore client of this process makes meanwhile (boto3's and pynamodb's alike), from this
    thread or a thread started meanwhile: one an earlier test left running is not this test's."""
    calls: list[Call] = []
    original = BaseClient._make_api_call
    earlier = set(threading.enumerate()) - {threading.current_thread()}

    def recording(client: BaseClient, operation: str, params: dict[str, Any]) -> Any:
        if threading.current_thread() not in earlier:
            meta = client.meta
            calls.append(Call(meta.service_model.service_name, operation, meta.region_name, dict(params)))
        return original(client, operation, params)

    with monkeypatch.context() as patch:
        patch.setattr(BaseClient, "_make_api_call", recording)
        yield calls


S3_OBJECT_ACTIONS = {
    "GetObject": "s3:GetObject",
    "HeadObject": "s3:GetObject",
    "PutObject": "s3:PutObject",
    "CreateMultipartUpload": "s3:PutObject",
    "UploadPart": "s3:PutObject",
    "CompleteMultipartUpload": "s3:PutObject",
    "AbortMultipartUpload": "s3:AbortMultipartUpload",
    "DeleteObject": "s3:DeleteObject",
}
S3_BUCKET_ACTIONS = {"ListObjectsV2": "s3:ListBucket", "ListObjects": "s3:ListBucket", "HeadBucket": "s3:ListBucket"}
TRANSACT_ACTIONS = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
}
# Asked of STS or answered by the metadata endpoint: no permission of the role's.
NO_PERMISSION = {("sts", "GetCallerIdentity")}


def needed(call: Call, account: str) -> list[tuple[str, str]]:
    """(IAM action, resource ARN) pairs `call` needs; a call this does not know fails the test."""
    service, op, p = call.service, call.operation, call.params
    if (service, op) in NO_PERMISSION:
        return []
    if service == "s3":
        bucket = f"arn:aws:s3:::{p['Bucket']}"
        if op in S3_BUCKET_ACTIONS:
            return [(S3_BUCKET_ACTIONS[op], bucket)]
        if op in S3_OBJECT_ACTIONS:
            suffix = "Version" if p.get("VersionId") and op in ("GetObject", "HeadObject", "DeleteObject") else ""
            return [(S3_OBJECT_ACTIONS[op] + suffix, f"{bucket}/{p['Key']}")]
        if op == "CopyObject":
            source = p["CopySource"]
            source = source if isinstance(source, str) else f"{source['Bucket']}/{source['Key']}"
            return [("s3:PutObject", f"{bucket}/{p['Key']}"), ("s3:GetObject", f"arn:aws:s3:::{source}")]
    if service == "dynamodb":

        def table(name: str) -> str:
            return f"arn:aws:dynamodb:{call.region}:{account}:table/{name}"

        if op == "TransactWriteItems":
            return [
                (f"dynamodb:{TRANSACT_ACTIONS[kind]}", table(body["TableName"]))
                for item in p["TransactItems"]
                for kind, body in item.items()
            ]
        if op == "TransactGetItems":
            return [("dynamodb:GetItem", table(item["Get"]["TableName"])) for item in p["TransactItems"]]
        if op in ("BatchGetItem", "BatchWriteItem"):
            return [(f"dynamodb:{op}", table(name)) for name in p["RequestItems"]]
        return [(f"dynamodb:{op}", table(p["TableName"]))]
    if service == "cloudfront":
        return [(f"cloudfront:{op}", f"arn:aws:cloudfront::{account}:distribution/{p['DistributionId']}")]
    if service == "sqs":
        _, owner, name = urlparse(p["QueueUrl"]).path.split("/")
        return [(f"sqs:{op}", f"arn:aws:sqs:{call.region}:{owner}:{name}")]
    if service == "secretsmanager" and op == "GetSecretValue":
        return [("secretsmanager:GetSecretValue", p["SecretId"])]
    raise AssertionError(f"the test does not know which IAM action {service}:{op} needs: add it to needed()")


def _matches(patterns: str | list[str], value: str) -> bool:
    return any(
        fnmatch.fnmatchcase(value, pattern) for pattern in ([patterns] if isinstance(patterns, str) else patterns)
    )


def refused(calls: list[Call], policy: dict[str, Any], account: str) -> list[str]:
    """What of `calls` the policy (Allow statements only) does not allow, as "action on resource (operation)"."""
    allows = [s for s in policy["Statement"] if s is not None and s["Effect"] == "Allow"]
    missing = []
    for call in calls:
        for action, resource in needed(call, account):
            if not any(_matches(s["Action"], action) and _matches(s["Resource"], resource) for s in allows):
                missing.append(f"{action} on {resource} ({call.service}:{call.operation})")
    return sorted(set(missing))
