"""The web servers' least-privilege IAM policy for one ini: its bucket and prefix, tables, KMS key, secrets, CDN."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pypicloud_lite.config import Settings
from pypicloud_lite.deploy.names import Names, Target
from pypicloud_lite.deploy.policies import (
    CLOUDFRONT_ACTIONS,
    DYNAMO_ACTIONS,
    DYNAMO_CDN_ACTIONS,
    DYNAMO_TABLES,
    kms_statement,
    secret_statements,
)

# Every object the server writes, reads or removes lies under the prefix: files, sidecars, records, states.
S3_OBJECT_ACTIONS = ("s3:GetObject", "s3:PutObject", "s3:DeleteObject")
UPSTREAM_SECRET = re.compile(r"^upstream\.[^.]+\.(password|token)$")
# cache.create_tables = true: the server makes the tables that are missing when it starts.
DYNAMO_CREATE_ACTIONS = ("dynamodb:DescribeTable", "dynamodb:CreateTable")


def _target(settings: Settings, partition: str, account: str, region: str | None) -> Target:
    """ARNs as the Lambda's policy makes them; `region` "*" when neither the argument nor the ini names one."""
    s3, dynamo = settings.storage.s3, settings.cache.dynamo
    region = region or (s3.region if s3 else None) or (dynamo.region if dynamo else None) or "*"
    bucket = s3.bucket if s3 else ""
    return Target(account, partition, region, bucket, s3.prefix if s3 else "", Names.of(bucket or "none", None))


def server_policy(
    settings: Settings,
    raw: Mapping[str, str],
    *,
    account: str = "*",
    partition: str = "aws",
    region: str | None = None,
) -> dict[str, Any]:
    """The policy of the servers that run with `settings` (`raw`: the ini's [app:main], for the secret references
    of upstream credentials).

    S3 only on the bucket and prefix, DynamoDB only on the cache's tables, KMS only on the bucket's key, SSM
    parameters and Secrets Manager secrets only those the settings name, CloudFront only on the distribution.
    """
    target = _target(settings, partition, account, region)
    statements: list[dict[str, Any]] = []
    s3 = settings.storage.s3
    if settings.storage.backend == "s3" and s3 is not None:
        statements += [
            {
                "Sid": "PackageObjects",
                "Effect": "Allow",
                "Action": list(S3_OBJECT_ACTIONS),
                "Resource": f"{target.bucket_arn}/{target.prefix}*",
            },
            {
                # Reload and the health check list the prefix; without it a missing key is 403, not 404.
                "Sid": "ListPackageBucket",
                "Effect": "Allow",
                "Action": "s3:ListBucket",
                "Resource": target.bucket_arn,
            },
        ]
        if s3.sse == "aws:kms" and s3.kms_key_id:
            statements.append(kms_statement(target, s3.kms_key_id))
    dynamo = settings.cache.dynamo
    if settings.cache.backend == "dynamo" and dynamo is not None:
        region_of_tables = dynamo.region or target.region
        arns = [
            target.arn("dynamodb", f"table/{dynamo.table_prefix}{t}", region_of_tables) for t in (*DYNAMO_TABLES, "cdn")
        ]
        statements.append(
            {
                "Sid": "CacheTables",
                "Effect": "Allow",
                "Action": list(DYNAMO_ACTIONS) + list(DYNAMO_CDN_ACTIONS),
                "Resource": arns,
            }
        )
        if dynamo.create_tables:
            statements.append(
                {"Sid": "CreateCacheTables", "Effect": "Allow", "Action": list(DYNAMO_CREATE_ACTIONS), "Resource": arns}
            )
    # The server resolves secret references in upstream credentials only (the Lambda, in any of its settings).
    statements += secret_statements(target, {k: v for k, v in raw.items() if UPSTREAM_SECRET.match(k)})
    if settings.cdn.enabled and settings.cdn.distribution_id:
        statements.append(
            {
                "Sid": "PurgeDistribution",
                "Effect": "Allow",
                "Action": list(CLOUDFRONT_ACTIONS),
                "Resource": target.distribution_arn(settings.cdn.distribution_id),
            }
        )
    return {"Version": "2012-10-17", "Statement": statements}
