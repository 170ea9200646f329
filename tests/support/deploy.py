"""Helpers of the Lambda deploy tests (tests/lambda_bundle/test_deploy.py, tests/cdn/test_deploy.py): inis, bundles,
and the account state the deploy commands may touch on moto."""

from __future__ import annotations

import io
import json
import uuid
import zipfile
from pathlib import Path
from typing import Any

import pytest

from tests.support.aws import Moto
from tests.support.settings import write_ini

ACCOUNT = "123456789012"  # moto's


def deploy_ini(path: Path, settings: dict[str, str]) -> Path:
    """The server ini the deploy commands read: `settings` and no admins."""
    return write_ini(path, {**settings, "auth.admins": ""})


def dynamo_settings(moto: Moto, bucket: str, table_prefix: str) -> dict[str, str]:
    return {
        **moto.s3_settings(bucket),
        **moto.dynamo_settings(table_prefix),
    }


def fake_bundle(path: Path) -> Path:
    """Any zip will do for moto, which never runs the function."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("s3_sync.py", "def handler(event, context):\n    return {}\n")
    path.write_bytes(buffer.getvalue())
    return path


def run(main: Any, argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def snapshot(moto: Moto, bucket: str) -> dict[str, Any]:
    """The account state these commands may touch, comparable before and after."""
    iam, lam, s3, sqs = (moto.client(s) for s in ("iam", "lambda", "s3", "sqs"))
    roles = {}
    for role in iam.list_roles()["Roles"]:
        name = role["RoleName"]
        policies = {
            p: iam.get_role_policy(RoleName=name, PolicyName=p)["PolicyDocument"]
            for p in iam.list_role_policies(RoleName=name)["PolicyNames"]
        }
        roles[name] = (role["Arn"], role["AssumeRolePolicyDocument"], policies)
    functions = {}
    for function in lam.list_functions()["Functions"]:
        name = function["FunctionName"]
        try:
            policy = json.loads(lam.get_policy(FunctionName=name)["Policy"])
        except lam.exceptions.ResourceNotFoundException:
            policy = None
        functions[name] = {
            key: function.get(key)
            for key in ("Role", "Runtime", "Handler", "Environment", "CodeSha256", "LastModified", "MemorySize")
        } | {"policy": policy}
    queues = {}
    for url in sqs.list_queues().get("QueueUrls", []):
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        queues[url] = {
            k: attributes.get(k) for k in ("Policy", "RedrivePolicy", "VisibilityTimeout", "LastModifiedTimestamp")
        }
    mappings = sorted(
        (m["UUID"], m["EventSourceArn"], m["FunctionArn"], tuple(m.get("FunctionResponseTypes", [])))
        for m in lam.list_event_source_mappings()["EventSourceMappings"]
    )
    notifications = s3.get_bucket_notification_configuration(Bucket=bucket)
    notifications.pop("ResponseMetadata", None)
    return {"roles": roles, "functions": functions, "queues": queues, "mappings": mappings, "notify": notifications}


def unrelated_notification(moto: Moto, bucket: str) -> dict[str, Any]:
    """Someone else's notification, put before ours: it must survive create and remove."""
    sqs = moto.client("sqs")
    url = sqs.create_queue(QueueName=f"unrelated-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    entry = {
        "Id": "someone-elses",
        "QueueArn": arn,
        "Events": ["s3:ObjectCreated:*"],
        "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "other/"}]}},
    }
    moto.client("s3").put_bucket_notification_configuration(
        Bucket=bucket, NotificationConfiguration={"QueueConfigurations": [entry]}
    )
    return entry


def statements(policy: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["Sid"]: s for s in policy["Statement"]}


def as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else value
