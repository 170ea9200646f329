"""The documents the deployment writes: the role's trust and inline policies, the queue policy, the notification."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pypicloud_lite.config import Settings
from pypicloud_lite.deploy.names import Target
from pypicloud_lite.deploy.settings import secret_references

NOTIFICATION_EVENTS = ("s3:ObjectCreated:*", "s3:ObjectRemoved:*")
DYNAMO_TABLES = ("projects", "files", "meta")
DYNAMO_ACTIONS = (
    # TransactWriteItems has no IAM action of its own: each item in a transaction is authorized
    # by the action it performs (PutItem, UpdateItem, DeleteItem, ConditionCheckItem).
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:Query",
    "dynamodb:Scan",
    "dynamodb:ConditionCheckItem",
)
# The CDN outbox reads and removes its items in batches.
DYNAMO_CDN_ACTIONS = ("dynamodb:BatchGetItem", "dynamodb:BatchWriteItem")
# The flush checks CloudFront's in-progress limits and finds what an earlier attempt sent.
CLOUDFRONT_ACTIONS = ("cloudfront:CreateInvalidation", "cloudfront:GetInvalidation", "cloudfront:ListInvalidations")
VPC_ACTIONS = (
    "ec2:CreateNetworkInterface",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeSubnets",
    "ec2:DeleteNetworkInterface",
    "ec2:AssignPrivateIpAddresses",
    "ec2:UnassignPrivateIpAddresses",
)


def trust_policy() -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }


def kms_statement(target: Target, key_id: str) -> dict[str, Any]:
    actions = ["kms:Decrypt", "kms:GenerateDataKey"]
    if key_id.startswith("arn:"):
        return {"Sid": "BucketKmsKey", "Effect": "Allow", "Action": actions, "Resource": key_id}
    if key_id.startswith("alias/"):
        # An alias is not a resource of a key policy grant: match the key by its alias instead.
        return {
            "Sid": "BucketKmsKey",
            "Effect": "Allow",
            "Action": actions,
            "Resource": target.arn("kms", "key/*"),
            "Condition": {"ForAnyValue:StringEquals": {"kms:ResourceAliases": key_id}},
        }
    return {"Sid": "BucketKmsKey", "Effect": "Allow", "Action": actions, "Resource": target.arn("kms", f"key/{key_id}")}


def secret_statements(target: Target, settings: Mapping[str, str]) -> list[dict[str, Any]]:
    """Reading exactly the SSM parameters and Secrets Manager secrets the settings name (ssm:, secretsmanager:)."""
    statements: list[dict[str, Any]] = []
    secrets = secret_references(settings)
    # (service, statement, action, the resource of a name that is not an ARN)
    kinds: tuple[tuple[str, str, str, Callable[[str], str]], ...] = (
        ("ssm", "ReadSettingParameters", "ssm:GetParameter", lambda n: f"parameter/{n.lstrip('/')}"),
        # A secret's ARN ends with a dash and six random characters.
        ("secretsmanager", "ReadSettingSecrets", "secretsmanager:GetSecretValue", lambda n: f"secret:{n}-??????"),
    )
    for service, sid, action, resource in kinds:
        if secrets[service]:
            arns = [n if n.startswith("arn:") else target.arn(service, resource(n)) for n in secrets[service]]
            statements.append({"Sid": sid, "Effect": "Allow", "Action": action, "Resource": arns})
    return statements


def role_policy(
    target: Target, settings: Settings, chosen: Mapping[str, str], *, sqs: bool, vpc: bool, cdn: bool = False
) -> dict[str, Any]:
    """The function's inline policy: only what the handler touches, scoped to this bucket, prefix and cache."""
    log_group = target.arn("logs", f"log-group:/aws/lambda/{target.names.function}")
    statements: list[dict[str, Any]] = [
        {
            "Sid": "WriteOwnLogs",
            "Effect": "Allow",
            "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": [log_group, f"{log_group}:*"],
        },
        {
            # PutObject: the handler writes a missing PEP 658 metadata sidecar beside its file.
            "Sid": "PackageObjects",
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:PutObject"],
            "Resource": f"{target.bucket_arn}/{target.prefix}*",
        },
        {
            # Without ListBucket, HeadObject of a deleted key answers 403 instead of 404.
            "Sid": "ListPackageBucket",
            "Effect": "Allow",
            "Action": "s3:ListBucket",
            "Resource": target.bucket_arn,
        },
    ]
    s3 = settings.storage.s3
    if s3 is not None and s3.sse == "aws:kms" and s3.kms_key_id:
        statements.append(kms_statement(target, s3.kms_key_id))
    dynamo = settings.cache.dynamo
    if settings.cache.backend == "dynamo" and dynamo is not None:
        region = dynamo.region or target.region
        # The outbox table too, whatever the ini's cdn.*: once the index has a CDN (recorded in the
        # cache by any process with cdn.*), every change the handler applies is recorded there.
        tables = (*DYNAMO_TABLES, "cdn")
        statements.append(
            {
                "Sid": "CacheTables",
                "Effect": "Allow",
                "Action": list(DYNAMO_ACTIONS) + list(DYNAMO_CDN_ACTIONS),
                "Resource": [target.arn("dynamodb", f"table/{dynamo.table_prefix}{t}", region) for t in tables],
            }
        )
    statements += secret_statements(target, chosen)
    if sqs:
        statements.append(
            {
                "Sid": "ConsumeEventQueue",
                "Effect": "Allow",
                "Action": ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"],
                "Resource": target.queue_arn,
            }
        )
    if cdn and settings.cdn.distribution_id:
        statements += [
            {
                # The handler sends its own delayed flush message and consumes it.
                "Sid": "CdnFlushQueue",
                "Effect": "Allow",
                "Action": ["sqs:SendMessage", "sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"],
                "Resource": target.cdn_queue_arn,
            },
            {
                "Sid": "PurgeDistribution",
                "Effect": "Allow",
                "Action": list(CLOUDFRONT_ACTIONS),
                "Resource": target.distribution_arn(settings.cdn.distribution_id),
            },
        ]
    if vpc:
        # These EC2 actions support no resource-level scoping (as in AWSLambdaVPCAccessExecutionRole).
        statements.append(
            {"Sid": "VpcNetworkInterfaces", "Effect": "Allow", "Action": list(VPC_ACTIONS), "Resource": "*"}
        )
    return {"Version": "2012-10-17", "Statement": statements}


def queue_policy(target: Target) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "S3BucketNotifications",
                "Effect": "Allow",
                "Principal": {"Service": "s3.amazonaws.com"},
                "Action": "sqs:SendMessage",
                "Resource": target.queue_arn,
                "Condition": {
                    "ArnLike": {"aws:SourceArn": target.bucket_arn},
                    "StringEquals": {"aws:SourceAccount": target.account},
                },
            }
        ],
    }


def notification_entry(target: Target, destination_arn: str, *, sqs: bool) -> tuple[str, dict[str, Any]]:
    """(configuration list, entry) of our bucket notification."""
    entry: dict[str, Any] = {"Id": target.names.notification_id, "Events": list(NOTIFICATION_EVENTS)}
    entry["QueueArn" if sqs else "LambdaFunctionArn"] = destination_arn
    if target.prefix:
        entry["Filter"] = {"Key": {"FilterRules": [{"Name": "prefix", "Value": target.prefix}]}}
    return ("QueueConfigurations" if sqs else "LambdaFunctionConfigurations"), entry


NOTIFICATION_LISTS = ("TopicConfigurations", "QueueConfigurations", "LambdaFunctionConfigurations")


def normalized_notifications(config: Mapping[str, Any]) -> dict[str, Any]:
    """A notification configuration without response metadata, comparable regardless of S3's casing."""
    result: dict[str, Any] = {}
    for key, value in config.items():
        if key == "ResponseMetadata":
            continue
        if key in NOTIFICATION_LISTS:
            if not value:
                continue
            entries = []
            for original in value:
                entry = dict(original)
                entry["Events"] = sorted(entry.get("Events", []))
                rules = entry.get("Filter", {}).get("Key", {}).get("FilterRules")
                if rules is not None:
                    normalized = [{"Name": r["Name"].lower(), "Value": r["Value"]} for r in rules]
                    entry["Filter"] = {"Key": {"FilterRules": sorted(normalized, key=lambda r: r["Name"])}}
                entries.append(entry)
            result[key] = sorted(entries, key=lambda e: str(e.get("Id", "")))
        else:
            result[key] = value
    return result


def merged_notifications(
    current: Mapping[str, Any], notification_id: str, ours: tuple[str, dict[str, Any]] | None
) -> dict[str, Any]:
    """`current` with our entry (by Id) replaced by `ours`, or removed when `ours` is None."""
    config = normalized_notifications(current)
    for key in NOTIFICATION_LISTS:
        kept = [entry for entry in config.get(key, []) if entry.get("Id") != notification_id]
        if kept:
            config[key] = kept
        else:
            config.pop(key, None)
    if ours is not None:
        key, entry = ours
        config[key] = [*config.get(key, []), entry]
    return normalized_notifications(config)
