"""ppc-create-s3-sync --cdn and ppc-remove-s3-sync: the flush queue, its mapping, and rights on one distribution."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from pypicloud_lite.deploy.create import MAX_RECEIVE_COUNT
from pypicloud_lite.scripts.lambda_deploy import create_main, remove_main
from tests.support.aws import REGION, Moto
from tests.support.deploy import (
    ACCOUNT,
    as_list,
    deploy_ini,
    dynamo_settings,
    fake_bundle,
    run,
    snapshot,
    statements,
)


def test_create_with_cdn_then_remove(tmp_path: Path, moto: Moto, capsys: pytest.CaptureFixture[str]) -> None:
    bucket = moto.new_bucket()
    function_name = f"ppc-test-{uuid.uuid4().hex[:10]}"
    prefix = f"ppc-{uuid.uuid4().hex[:6]}-"
    cdn = {"cdn.backend": "cloudfront", "cdn.distribution_id": "E2EXAMPLE", "cdn.window": "30"}
    ini = deploy_ini(tmp_path / "server.ini", {**dynamo_settings(moto, bucket, prefix), **cdn})
    before = snapshot(moto, bucket)
    common = [str(ini), "--endpoint-url", moto.endpoint_url, "--function-name", function_name]
    argv = [*common, "--cdn", "--zip", str(fake_bundle(tmp_path / "bundle.zip"))]

    code, _out, err = run(create_main, argv, capsys)
    assert code == 0, err
    iam, lam, sqs = (moto.client(s) for s in ("iam", "lambda", "sqs"))
    queue_url = sqs.get_queue_url(QueueName=f"{function_name}-cdn")["QueueUrl"]
    queue_arn = f"arn:aws:sqs:{REGION}:{ACCOUNT}:{function_name}-cdn"

    policy = statements(
        iam.get_role_policy(RoleName=f"{function_name}-role", PolicyName="ppc-s3-sync")["PolicyDocument"]
    )
    purge = policy["PurgeDistribution"]
    # Rights on that one distribution only, and nothing account-wide.
    assert purge["Resource"] == f"arn:aws:cloudfront::{ACCOUNT}:distribution/E2EXAMPLE"
    assert "cloudfront:CreateInvalidation" in as_list(purge["Action"])
    assert all(action.startswith("cloudfront:") and "*" not in action for action in as_list(purge["Action"]))
    assert policy["CdnFlushQueue"]["Resource"] == queue_arn
    assert "sqs:SendMessage" in policy["CdnFlushQueue"]["Action"]
    assert f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{prefix}cdn" in policy["CacheTables"]["Resource"]

    config = lam.get_function(FunctionName=function_name)["Configuration"]
    env = json.loads(config["Environment"]["Variables"]["PYPICLOUD_SETTINGS"])
    assert env["cdn.queue_url"] == queue_url
    assert env["cdn.distribution_id"] == "E2EXAMPLE" and env["cdn.window"] == "30"
    (mapping,) = lam.list_event_source_mappings(FunctionName=function_name)["EventSourceMappings"]
    assert mapping["EventSourceArn"] == queue_arn
    # A flush that keeps failing ends where an operator sees it, not silently after the retention period.
    attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])["Attributes"]
    redrive = json.loads(attributes["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"] == f"arn:aws:sqs:{REGION}:{ACCOUNT}:{function_name}-dlq"
    assert int(redrive["maxReceiveCount"]) == MAX_RECEIVE_COUNT
    assert sqs.get_queue_url(QueueName=f"{function_name}-dlq")["QueueUrl"]

    after_create = snapshot(moto, bucket)
    assert run(create_main, argv, capsys)[0] == 0
    assert snapshot(moto, bucket) == after_create

    code, _out, err = run(remove_main, common, capsys)
    assert code == 0, err
    assert snapshot(moto, bucket) == before


def test_cdn_without_a_distribution_is_refused(tmp_path: Path, moto: Moto, capsys: pytest.CaptureFixture[str]) -> None:
    bucket = moto.new_bucket()
    ini = deploy_ini(tmp_path / "server.ini", dynamo_settings(moto, bucket, "ppc-x-"))
    code, _out, err = run(create_main, [str(ini), "--endpoint-url", moto.endpoint_url, "--cdn", "--dry-run"], capsys)
    assert code == 1
    assert "cdn.backend = cloudfront" in err


def test_without_cdn_the_lambda_records_but_gets_no_queue_nor_cloudfront_rights(
    tmp_path: Path, moto: Moto, capsys: pytest.CaptureFixture[str]
) -> None:
    bucket = moto.new_bucket()
    prefix = f"ppc-{uuid.uuid4().hex[:6]}-"
    cdn = {"cdn.backend": "cloudfront", "cdn.distribution_id": "E2EXAMPLE"}
    ini = deploy_ini(tmp_path / "server.ini", {**dynamo_settings(moto, bucket, prefix), **cdn})
    code, out, err = run(create_main, [str(ini), "--endpoint-url", moto.endpoint_url, "--dry-run"], capsys)
    assert code == 0, err
    [policy_line] = [line for line in out.splitlines() if line.startswith("[dry-run] role policy: ")]
    policy = statements(json.loads(policy_line.split(": ", 1)[1]))
    # The outbox table is written (the servers' timers flush it); no queue, no CloudFront.
    assert f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{prefix}cdn" in policy["CacheTables"]["Resource"]
    assert "PurgeDistribution" not in policy and "CdnFlushQueue" not in policy
    assert "SQS queue" not in out  # not even the flush queue
