"""deploy/aws/pypicloud-lite.yaml deployed twice to moto's CloudFormation (region A replicating to region B): a wheel
uploaded and yanked through region A's server, configured as the stack's task definition configures the container,
reaches region B's cache through the bucket events the stack wires to its queue and the sync Lambda's settings."""

from __future__ import annotations

import ast
import json
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

import pytest
import webtest

from pypicloud_lite.cache.dynamo.tables import build_tables
from pypicloud_lite.cdn import FLUSH_MESSAGE
from pypicloud_lite.config import Settings, load_settings, read_ini
from pypicloud_lite.db import migrate
from pypicloud_lite.db.engine import create_db_engine
from pypicloud_lite.deploy.aws import POLICY_NAME
from pypicloud_lite.deploy.bundle import HANDLER, RUNTIME, build_bundle
from pypicloud_lite.deploy.names import Names, Target
from pypicloud_lite.deploy.policies import role_policy
from pypicloud_lite.web import CDN_TIMER_KEY, make_app
from tests.support.apiutil import BOB, close_app, creds, static_users
from tests.support.aws import Moto
from tests.support.aws_calls import recorded_calls, refused
from tests.support.cache import fresh_database
from tests.support.cfn_stack import (
    Variant,
    apply_skipped_bucket_properties,
    deploy,
    load_template,
    moto_variant,
    resolved_properties,
)
from tests.support.data import REPO_ROOT
from tests.support.deploy import ACCOUNT, as_list
from tests.support.handler_env import handler_env
from tests.support.index_driver import IndexDriver
from tests.support.replication import Replication

REGION_A, REGION_B = "us-east-1", "us-west-2"
CONTAINER_INI = REPO_ROOT / "deploy" / "docker" / "container.ini"
SIMPLE_JSON = "application/vnd.pypi.simple.v1+json"
# Region B's CDN window: its flush message is due a window and FLUSH_GRACE seconds after the first change.
CDN_WINDOW = "1"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/pypicloud-lite:test"


def network(moto: Moto, region: str) -> dict[str, str]:
    ec2 = moto.client("ec2", region)
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{n}.0/24", AvailabilityZone=f"{region}{zone}")["Subnet"][
            "SubnetId"
        ]
        for n, zone in enumerate("ab")
    ]
    return {"VpcId": vpc, "LoadBalancerSubnetIds": ",".join(subnets), "ServiceSubnetIds": ",".join(subnets)}


def uploaded_bundle(moto: Moto, region: str, tmp_path: Path) -> dict[str, str]:
    """The sync Lambda's bundle as ppc-build-lambda-bundle builds it (without pip's dependencies), in S3."""
    settings = load_settings({"storage.backend": "s3", "storage.bucket": "x", "cache.backend": "dynamo"}, environ={})
    bundle = build_bundle(settings, tmp_path / f"bundle-{region}.zip", deps=False)
    bucket, key = f"ppc-bundles-{uuid.uuid4().hex[:10]}", "ppc-s3-sync/test.zip"
    s3 = moto.client("s3", region)
    location = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
    s3.create_bucket(Bucket=bucket, **location)
    s3.put_object(Bucket=bucket, Key=key, Body=bundle.path.read_bytes())
    return {"BundleBucket": bucket, "BundleKey": key}


def access_secret(moto: Moto, region: str) -> str:
    """The servers' access settings, a JSON object in Secrets Manager: bob, an admin."""
    value = json.dumps({"auth.backend": "static", "auth.admins": BOB, **static_users(BOB)})
    arn: str = moto.client("secretsmanager", region).create_secret(
        Name=f"ppc-access-{uuid.uuid4().hex[:8]}", SecretString=value
    )["ARN"]
    return arn


def standin_distribution(moto: Moto) -> dict[str, str]:
    """A CloudFront distribution made through the API (moto's CloudFormation cannot), so that purges succeed."""
    config = {
        "CallerReference": uuid.uuid4().hex,
        "Comment": "stand-in for the stack's Distribution",
        "Enabled": True,
        "Origins": {
            "Quantity": 1,
            "Items": [
                {
                    "Id": "servers",
                    "DomainName": "servers.example.com",
                    "CustomOriginConfig": {"HTTPPort": 80, "HTTPSPort": 443, "OriginProtocolPolicy": "http-only"},
                }
            ],
        },
        "DefaultCacheBehavior": {"TargetOriginId": "servers", "ViewerProtocolPolicy": "redirect-to-https"},
    }
    distribution = moto.client("cloudfront").create_distribution(DistributionConfig=config)["Distribution"]
    return {"Ref": distribution["Id"], "DomainName": distribution["DomainName"]}


@dataclass(frozen=True)
class Stack:
    name: str
    region: str
    parameters: dict[str, str]
    outputs: dict[str, str]
    variant: Variant
    bucket: dict[str, Any]  # the package bucket's properties, resolved


def stack(moto: Moto, region: str, tmp_path: Path, replica_arn: str = "", **cache: str) -> Stack:
    """One region's stack (DynamoDB unless `cache` says otherwise), with the bucket properties moto's
    CloudFormation skips put through the S3 API."""
    name = f"ppc-{uuid.uuid4().hex[:8]}"
    distribution = standin_distribution(moto)
    variant = moto_variant(load_template(), {"Distribution": distribution, "CachePolicy": {"Ref": "standin"}})
    parameters = {
        "BucketName": f"{name}-packages",
        "ReplicaBucketArn": replica_arn,
        "CacheBackend": "dynamo",
        "TablePrefix": f"{name}-",
        "Image": IMAGE,
        "AccessSettingsSecretArn": access_secret(moto, region),
        "DesiredCount": "1",
        **uploaded_bundle(moto, region, tmp_path),
        **network(moto, region),
        **cache,
    }
    outputs = deploy(moto, region, name, variant, parameters)
    bucket = resolved_properties(region, name, "PackageBucket")
    applied = apply_skipped_bucket_properties(moto, region, bucket)
    expected = {"VersioningConfiguration", "PublicAccessBlockConfiguration", "OwnershipControls"}
    expected |= {"NotificationConfiguration"} | ({"ReplicationConfiguration"} if replica_arn else set())
    assert set(applied) == expected
    return Stack(name, region, parameters, outputs, variant, bucket)


def container_environment(moto: Moto, region: str, task_definition: str) -> dict[str, str]:
    """The server container's environment as ECS gives it: the task definition's variables and its secrets."""
    found = moto.client("ecs", region).describe_task_definition(taskDefinition=task_definition)["taskDefinition"]
    (container,) = found["containerDefinitions"]
    assert container["image"] == IMAGE
    assert container["portMappings"][0]["containerPort"] == 6543
    # Moto leaves an `!If [..., ..., !Ref AWS::NoValue]` list item as null where CloudFormation drops it.
    environ = {v["name"]: v["value"] for v in container["environment"] if v is not None}
    secrets = moto.client("secretsmanager", region)
    for secret in filter(None, container.get("secrets", [])):
        environ[secret["name"]] = secrets.get_secret_value(SecretId=secret["valueFrom"])["SecretString"]
    return environ


def container_settings(moto: Moto, region: str, outputs: dict[str, str], root: Path) -> Settings:
    """The image's built-in ini with the container's environment; only the image's /data paths moved to `root`."""
    environ = container_environment(moto, region, outputs["TaskDefinitionArn"])
    environ |= {"PPC_STORAGE_DIR": str(root / "packages"), "PPC_UPLOAD_SPOOL_DIR": str(root / "spool")}
    return load_settings(read_ini(CONTAINER_INI), environ)


@contextmanager
def server(moto: Moto, made: Stack, root: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[webtest.TestApp]:
    """A server as the stack's task runs it; every AWS call it makes must be one its task role allows."""
    settings = container_settings(moto, made.region, made.outputs, root)
    with recorded_calls(monkeypatch) as calls:
        app = webtest.TestApp(make_app(settings))
        try:
            yield app
        finally:
            # The stack gives the servers cdn.*: their flush timer must not outlive them (nor call AWS for them).
            app.app.registry[CDN_TIMER_KEY].stop()
            close_app(app)
    # Moto's ECS keeps only the family, containers and memory of a task definition made by CloudFormation.
    task = resolved_properties(made.region, made.name, "TaskDefinition")
    assert (task["NetworkMode"], task["RequiresCompatibilities"]) == ("awsvpc", ["FARGATE"])
    assert refused(calls, role_document(moto, made.region, task["TaskRoleArn"]), ACCOUNT) == []


@contextmanager
def sync_function(
    moto: Moto, made: Stack, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[dict[str, Any]], dict[str, Any]]]:
    """The sync handler, cold, with the function's settings; every AWS call it makes must be one its role allows."""
    region = made.region
    function = moto.client("lambda", region).get_function_configuration(FunctionName=made.outputs["SyncFunctionName"])
    settings = json.loads(function["Environment"]["Variables"]["PYPICLOUD_SETTINGS"])
    with handler_env(monkeypatch, settings) as module, recorded_calls(monkeypatch) as calls:
        yield lambda event: module.handler(event, None)
    assert refused(calls, role_document(moto, region, function["Role"]), ACCOUNT) == []


def role_document(moto: Moto, region: str, role_arn: str) -> dict[str, Any]:
    """The one inline policy of a role the stack made."""
    iam = moto.client("iam", region)
    role = role_arn.rsplit("/", 1)[1]
    (name,) = iam.list_role_policies(RoleName=role)["PolicyNames"]
    document = iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]
    if isinstance(document, str):  # moto answers with the dict its CloudFormation resolved, as Python writes it
        document = ast.literal_eval(document)
    assert isinstance(document, dict)
    return document


def check_wiring(moto: Moto, region: str, outputs: dict[str, str]) -> dict[str, Any]:
    """What the stack made, as the handler and the servers need it; the sync function's settings."""
    lam, sqs = moto.client("lambda", region), moto.client("sqs", region)
    function = lam.get_function_configuration(FunctionName=outputs["SyncFunctionName"])
    assert (function["Handler"], function["Runtime"]) == (HANDLER, RUNTIME)

    def arn(url: str) -> str:
        found: str = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        return found

    dlq = arn(outputs["DeadLetterQueueUrl"])
    for url in (outputs["EventQueueUrl"], outputs["CdnFlushQueueUrl"]):
        redrive = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["RedrivePolicy"])["Attributes"]
        assert json.loads(redrive["RedrivePolicy"]) == {"deadLetterTargetArn": dlq, "maxReceiveCount": 5}
    mappings = lam.list_event_source_mappings(FunctionName=outputs["SyncFunctionName"])["EventSourceMappings"]
    assert sorted(m["EventSourceArn"] for m in mappings) == sorted(
        arn(outputs[k]) for k in ("EventQueueUrl", "CdnFlushQueueUrl")
    )
    assert all(m["BatchSize"] == 10 for m in mappings)
    assert all(m["FunctionResponseTypes"] == ["ReportBatchItemFailures"] for m in mappings)
    assert all(m["ScalingConfig"] == {"MaximumConcurrency": 10} for m in mappings)
    # Moto would call the function itself (in Docker) for each message: the test plays Lambda's poller instead.
    for mapping in mappings:
        lam.update_event_source_mapping(UUID=mapping["UUID"], Enabled=False)

    settings: dict[str, Any] = json.loads(function["Environment"]["Variables"]["PYPICLOUD_SETTINGS"])
    if settings["cache.backend"] == "dynamo":
        check_tables(moto, region, outputs, settings)
    check_sync_policy(moto, region, function, settings)

    elb = moto.client("elbv2", region)
    (group,) = elb.describe_target_groups(LoadBalancerArn=_load_balancer(elb, outputs))["TargetGroups"]
    assert (group["HealthCheckPath"], group["Port"], group["TargetType"]) == ("/health", 6543, "ip")
    return settings


def check_tables(moto: Moto, region: str, outputs: dict[str, str], settings: dict[str, Any]) -> None:
    """The tables' keys are the pynamodb models' keys (the servers run with cache.create_tables = false)."""
    dynamo = load_settings(settings, environ={}).cache.dynamo
    assert dynamo is not None
    client = moto.client("dynamodb", region)
    for model in build_tables(dynamo).all():
        table = client.describe_table(TableName=model.Meta.table_name)["Table"]
        keys = {k["KeyType"]: k["AttributeName"] for k in table["KeySchema"]}
        expected = {"HASH": model._hash_keyname}
        if model._range_keyname:
            expected["RANGE"] = model._range_keyname
        assert keys == expected, model.Meta.table_name
    assert sorted(outputs[k] for k in ("ProjectsTableName", "FilesTableName", "MetaTableName", "CdnTableName")) == (
        sorted(model.Meta.table_name for model in build_tables(dynamo).all())
    )


def check_sync_policy(moto: Moto, region: str, function: dict[str, Any], settings: dict[str, str]) -> None:
    """The function's role allows what ppc-create-s3-sync's role allows (policies.py) for the same settings."""
    iam = moto.client("iam", region)
    (name,) = iam.list_role_policies(RoleName=function["Role"].rsplit("/", 1)[1])["PolicyNames"]
    document = role_document(moto, region, function["Role"])
    granted = {s["Sid"]: s for s in document["Statement"] if s is not None}  # moto keeps AWS::NoValue as null
    loaded = load_settings(settings, environ={})
    s3 = loaded.storage.s3
    assert s3 is not None
    target = Target(ACCOUNT, "aws", region, s3.bucket, s3.prefix, Names.of(s3.bucket, function["FunctionName"]))
    vpc = "VpcConfig" in function and bool(function["VpcConfig"].get("SubnetIds"))
    expected = {s["Sid"]: s for s in role_policy(target, loaded, settings, sqs=True, vpc=vpc, cdn=True)["Statement"]}
    assert name == POLICY_NAME and granted.keys() == expected.keys()
    for sid, statement in expected.items():
        if sid == "WriteOwnLogs":
            # The stack makes the log group, so the function needs no logs:CreateLogGroup.
            assert set(granted[sid]["Action"]) == set(statement["Action"]) - {"logs:CreateLogGroup"}
            assert granted[sid]["Resource"] == statement["Resource"]
            continue
        assert (as_list(granted[sid]["Action"]), as_list(granted[sid]["Resource"])) == (
            as_list(statement["Action"]),
            as_list(statement["Resource"]),
        ), sid


def _load_balancer(elb: Any, outputs: dict[str, str]) -> str:
    balancers = elb.describe_load_balancers()["LoadBalancers"]
    found: str = next(b["LoadBalancerArn"] for b in balancers if b["DNSName"] == outputs["LoadBalancerDnsName"])
    return found


def queued_events(moto: Moto, region: str, queue_url: str, wait: int = 0) -> dict[str, Any]:
    """Every message of the queue (waiting up to `wait` seconds for the first), as the event source mapping hands
    them to the function (an SQS event)."""
    sqs = moto.client("sqs", region)
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    records: list[dict[str, Any]] = []

    def receive() -> list[dict[str, Any]]:
        first = {"WaitTimeSeconds": wait} if not records else {}
        found: list[dict[str, Any]] = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, **first).get(
            "Messages", []
        )
        return found

    while messages := receive():
        records += [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": region,
            }
            for m in messages
        ]
    return {"Records": records}


def test_stack_on_moto_upload_and_yank_in_one_region_reach_the_other(
    moto: Moto, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every AWS call of the servers and the handler goes to moto, as the settings the stack gives them stand.
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto.endpoint_url)
    stack_b = stack(moto, REGION_B, tmp_path, CdnWindow=CDN_WINDOW)
    outputs_b = stack_b.outputs
    stack_a = stack(moto, REGION_A, tmp_path, replica_arn=outputs_b["BucketArn"])
    outputs_a = stack_a.outputs

    s3 = moto.client("s3", REGION_A)
    assert s3.get_bucket_versioning(Bucket=outputs_a["BucketName"])["Status"] == "Enabled"
    assert s3.get_public_access_block(Bucket=outputs_a["BucketName"])["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "IgnorePublicAcls": True,
        "BlockPublicPolicy": True,
        "RestrictPublicBuckets": True,
    }
    encryption = s3.get_bucket_encryption(Bucket=outputs_a["BucketName"])["ServerSideEncryptionConfiguration"]
    assert encryption["Rules"][0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    # Moto's S3 answers every rule with delete markers disabled and no filter: the rule as the stack sends it.
    (rule,) = stack_a.bucket["ReplicationConfiguration"]["Rules"]
    assert rule["Destination"]["Bucket"] == outputs_b["BucketArn"]
    assert rule["DeleteMarkerReplication"] == {"Status": "Enabled"}
    assert rule["Filter"] == {"Prefix": outputs_a["StoragePrefix"]}
    assert "ReplicationConfiguration" not in stack_b.bucket
    (stored,) = s3.get_bucket_replication(Bucket=outputs_a["BucketName"])["ReplicationConfiguration"]["Rules"]
    assert stored["Destination"]["Bucket"] == outputs_b["BucketArn"]
    check_wiring(moto, REGION_A, outputs_a)
    check_wiring(moto, REGION_B, outputs_b)

    # Region A's server takes an upload and a yank.
    with server(moto, stack_a, tmp_path / "a", monkeypatch) as app_a:
        assert app_a.get("/health").status_int == 200
        driver = IndexDriver(app_a, creds(BOB), tmp_path / "dists")
        wheel = driver.build("cfn-demo", "1.0")
        assert driver.upload(wheel, "cfn-demo", "1.0") == 200
        assert driver.yank("cfn-demo", "1.0", reason="broken build") == 200

    # S3 replicates bucket A into bucket B; B's notifications (as the stack configures them) fill B's event queue.
    Replication(moto, outputs_a["BucketName"], outputs_b["BucketName"]).run()
    event = queued_events(moto, REGION_B, outputs_b["EventQueueUrl"])
    # Besides the s3:TestEvent S3 sends when the notification is put, one message per object replicated.
    bodies = [json.loads(r["body"]) for r in event["Records"]]
    keys = {unquote_plus(b["Records"][0]["s3"]["object"]["key"]) for b in bodies if "Records" in b}
    assert any(b.get("Event") == "s3:TestEvent" for b in bodies)
    assert f"{outputs_b['StoragePrefix']}cfn-demo/{wheel.name}" in keys, keys

    files_b = moto.client("dynamodb", REGION_B).scan(TableName=outputs_b["FilesTableName"])
    assert files_b["Count"] == 0, "region B's cache has files before its sync function ran"

    # Region B's sync function, with the settings the stack gave it, applies them to region B's cache.
    with sync_function(moto, stack_b, monkeypatch) as handle:
        result = handle(event)
    assert result.get("batchItemFailures") == [], result

    # The first change of the CDN window sent a delayed flush message to the function's CDN queue (cdn.queue_url);
    # handed to the function, as the queue's event source mapping does, it purges region B's distribution.
    flush = queued_events(moto, REGION_B, outputs_b["CdnFlushQueueUrl"], wait=int(CDN_WINDOW) + 5)
    assert [json.loads(r["body"]) for r in flush["Records"]] == [FLUSH_MESSAGE]
    with sync_function(moto, stack_b, monkeypatch) as handle:
        assert handle(flush).get("batchItemFailures") == []
    cloudfront = moto.client("cloudfront")
    (sent,) = cloudfront.list_invalidations(DistributionId=outputs_b["DistributionId"])["InvalidationList"]["Items"]
    invalidation = cloudfront.get_invalidation(DistributionId=outputs_b["DistributionId"], Id=sent["Id"])
    assert "/simple/cfn-demo/" in invalidation["Invalidation"]["InvalidationBatch"]["Paths"]["Items"]

    with server(moto, stack_b, tmp_path / "b", monkeypatch) as app_b:
        page = app_b.get("/simple/cfn-demo/", headers={"Accept": SIMPLE_JSON}).json
    assert [(f["filename"], f["yanked"]) for f in page["files"]] == [(wheel.name, "broken build")]

    # Moto's CloudFormation cannot create these: the README's section on the template names each one.
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    assert set(stack_a.variant.removed.values()) == {
        "AWS::SQS::QueuePolicy",
        "AWS::CloudFront::CachePolicy",
        "AWS::CloudFront::Distribution",
    }
    for resource_type in stack_a.variant.removed.values():
        assert f"`{resource_type}`" in readme, f"README does not say that moto skips {resource_type}"


def test_stack_with_postgresql_the_sync_lambda_and_the_servers_share_the_database(
    moto: Moto, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto.endpoint_url)
    with fresh_database("postgresql", tmp_path) as url:
        secret = moto.client("secretsmanager", REGION_A).create_secret(
            Name=f"ppc-db-{uuid.uuid4().hex[:8]}", SecretString=url
        )["ARN"]
        made = stack(moto, REGION_A, tmp_path, CacheBackend="postgresql", DatabaseUrlSecretArn=secret)
        outputs = made.outputs
        assert not {"TablePrefix", "ProjectsTableName"} & outputs.keys()
        sync = check_wiring(moto, REGION_A, outputs)
        assert (sync["cache.backend"], sync["cache.url"]) == ("sql", f"secretsmanager:{secret}")
        function = moto.client("lambda", REGION_A).get_function_configuration(FunctionName=outputs["SyncFunctionName"])
        assert sorted(function["VpcConfig"]["SubnetIds"]) == sorted(made.parameters["ServiceSubnetIds"].split(","))
        assert function["VpcConfig"]["SecurityGroupIds"] == [outputs["SyncSecurityGroupId"]]

        # The servers read the database's URL from the secret (PPC_CACHE_URL); the image's `migrate` command,
        # run once per release, makes the schema.
        settings = container_settings(moto, REGION_A, outputs, tmp_path / "migrate")
        assert settings.cache.url == url and not settings.cache.migrate_on_start
        engine = create_db_engine(settings.cache)
        migrate.upgrade(engine)
        engine.dispose()

        with server(moto, made, tmp_path / "a", monkeypatch) as app:
            driver = IndexDriver(app, creds(BOB), tmp_path / "dists")
            wheel = driver.build("cfn-demo", "1.0")
            assert driver.upload(wheel, "cfn-demo", "1.0") == 200
            assert driver.yank("cfn-demo", "1.0", reason="broken build") == 200
        # Another tool puts a wheel straight into the bucket: only the sync Lambda can index it.
        other = driver.build("other-tool", "2.0")
        key = f"{outputs['StoragePrefix']}other-tool/{other.name}"
        moto.client("s3", REGION_A).put_object(Bucket=outputs["BucketName"], Key=key, Body=other.read_bytes())

        # The function resolves cache.url from Secrets Manager and writes to the database the servers read.
        event = queued_events(moto, REGION_A, outputs["EventQueueUrl"])
        with sync_function(moto, made, monkeypatch) as handle:
            result = handle(event)
        assert result.get("batchItemFailures") == [], result
        with server(moto, made, tmp_path / "a2", monkeypatch) as app:
            listed = app.get("/simple/other-tool/", headers={"Accept": SIMPLE_JSON}).json
            yanked = app.get("/simple/cfn-demo/", headers={"Accept": SIMPLE_JSON}).json
        assert [f["filename"] for f in listed["files"]] == [other.name]
        assert [(f["filename"], f["yanked"]) for f in yanked["files"]] == [(wheel.name, "broken build")]
