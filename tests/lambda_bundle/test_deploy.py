"""ppc-build-lambda-bundle, ppc-create-s3-sync and ppc-remove-s3-sync against moto over HTTP."""

from __future__ import annotations

import contextlib
import io
import json
import re
import subprocess
import sys
import sysconfig
import uuid
import zipfile
from pathlib import Path
from typing import Any

import pytest

from pypicloud_lite.config import load_settings
from pypicloud_lite.deploy import DeployError
from pypicloud_lite.deploy.bundle import DEFAULT_LAMBDA_DIR, build_bundle, sql_driver_requirement
from pypicloud_lite.deploy.names import Names, Target
from pypicloud_lite.deploy.policies import role_policy
from pypicloud_lite.scripts.lambda_deploy import build_main, create_main, remove_main
from tests.support.aws import REGION, Moto, use_credentials
from tests.support.common import require_or_skip
from tests.support.deploy import (
    ACCOUNT,
    as_list,
    deploy_ini,
    dynamo_settings,
    fake_bundle,
    run,
    snapshot,
    statements,
    unrelated_notification,
)

TRUST = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}],
}
# What pip prints when it cannot reach an index: the full build then skips instead of failing.
OFFLINE_MARKERS = (
    "NewConnectionError",
    "Max retries exceeded",
    "Name or service not known",
    "Temporary failure in name resolution",
    "Network is unreachable",
    "Connection refused",
    "timed out",
    "from versions: none",
)


@pytest.fixture
def bucket(moto: Moto) -> str:
    return moto.new_bucket()


@pytest.fixture
def function_name() -> str:
    return f"ppc-test-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def bundle_zip(tmp_path: Path) -> Path:
    return fake_bundle(tmp_path / "bundle.zip")


# --- ppc-create-s3-sync / ppc-remove-s3-sync -------------------------------------------------------


def test_create_direct_then_rerun_then_remove(
    tmp_path: Path, moto: Moto, bucket: str, function_name: str, bundle_zip: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prefix = f"ppc-{uuid.uuid4().hex[:6]}-"
    ini = deploy_ini(tmp_path / "server.ini", dynamo_settings(moto, bucket, prefix))
    theirs = unrelated_notification(moto, bucket)
    before = snapshot(moto, bucket)
    argv = [str(ini), "--endpoint-url", moto.endpoint_url, "--function-name", function_name, "--zip", str(bundle_zip)]

    code, out, err = run(create_main, argv, capsys)
    assert code == 0, err
    iam, lam, s3 = moto.client("iam"), moto.client("lambda"), moto.client("s3")
    role_name = f"{function_name}-role"

    role = iam.get_role(RoleName=role_name)["Role"]
    assert role["AssumeRolePolicyDocument"] == TRUST
    assert iam.list_role_policies(RoleName=role_name)["PolicyNames"] == ["ppc-s3-sync"]
    policy = statements(iam.get_role_policy(RoleName=role_name, PolicyName="ppc-s3-sync")["PolicyDocument"])
    log_group = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/{function_name}"
    assert sorted(as_list(policy["WriteOwnLogs"]["Resource"])) == [log_group, f"{log_group}:*"]
    assert sorted(policy["PackageObjects"]["Action"]) == ["s3:GetObject", "s3:PutObject"]
    assert policy["PackageObjects"]["Resource"] == f"arn:aws:s3:::{bucket}/packages/*"
    assert policy["ListPackageBucket"] == {
        "Sid": "ListPackageBucket",
        "Effect": "Allow",
        "Action": "s3:ListBucket",
        "Resource": f"arn:aws:s3:::{bucket}",
    }
    assert sorted(policy["CacheTables"]["Resource"]) == sorted(
        f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{prefix}{t}" for t in ("projects", "files", "meta", "cdn")
    )
    assert set(policy["CacheTables"]["Action"]) >= {"dynamodb:GetItem", "dynamodb:Query", "dynamodb:ConditionCheckItem"}
    assert "ReadSettingParameters" not in policy and "ConsumeEventQueue" not in policy
    for statement in policy.values():  # nothing account-wide
        assert all("*" not in r or r.endswith(("/packages/*", ":*")) for r in as_list(statement["Resource"]))

    config = lam.get_function(FunctionName=function_name)["Configuration"]
    assert (config["Runtime"], config["Handler"], config["Role"]) == ("python3.12", "s3_sync.handler", role["Arn"])
    assert config["Timeout"] == 60 and config["MemorySize"] == 512
    env = json.loads(config["Environment"]["Variables"]["PYPICLOUD_SETTINGS"])
    expected = dynamo_settings(moto, bucket, prefix)
    del expected["cache.create_tables"]  # schema management is not the Lambda's
    assert env == expected
    assert load_settings(env, environ={}).cache.dynamo is not None

    permission = json.loads(lam.get_policy(FunctionName=function_name)["Policy"])["Statement"]
    assert len(permission) == 1
    assert permission[0]["Principal"] == {"Service": "s3.amazonaws.com"}
    assert permission[0]["Action"] == "lambda:InvokeFunction"
    assert permission[0]["Condition"]["ArnLike"]["AWS:SourceArn"] == f"arn:aws:s3:::{bucket}"
    assert permission[0]["Condition"]["StringEquals"]["AWS:SourceAccount"] == ACCOUNT

    notifications = s3.get_bucket_notification_configuration(Bucket=bucket)
    assert notifications["QueueConfigurations"] == [theirs]
    (ours,) = notifications["LambdaFunctionConfigurations"]
    assert ours["LambdaFunctionArn"] == config["FunctionArn"]
    assert sorted(ours["Events"]) == ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"]
    assert ours["Filter"]["Key"]["FilterRules"] == [{"Name": "prefix", "Value": "packages/"}]
    assert "create IAM role" in out and "put bucket notification" in out

    after_create = snapshot(moto, bucket)
    code, out, err = run(create_main, argv, capsys)
    assert code == 0, err
    assert snapshot(moto, bucket) == after_create
    assert [line for line in out.splitlines()[1:] if not line.startswith("unchanged:")] == []

    code, out, err = run(remove_main, argv[:5], capsys)
    assert code == 0, err
    assert snapshot(moto, bucket) == before
    assert "delete Lambda function" in out and "delete IAM role" in out
    code, out, err = run(remove_main, argv[:5], capsys)  # nothing left to remove
    assert code == 0, err
    assert snapshot(moto, bucket) == before


def test_create_with_sqs_and_a_secret_reference_then_remove(
    tmp_path: Path, moto: Moto, bucket: str, function_name: str, bundle_zip: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ini = deploy_ini(
        tmp_path / "server.ini",
        {
            **moto.s3_settings(bucket, prefix="pkgs/"),
            "cache.backend": "sql",
            "cache.url": "postgresql+psycopg://ppc:secret@db.internal/ppc",
            "cache.migrate_on_start": "true",
            "sync.secret_max_age": "120",
        },
    )
    theirs = unrelated_notification(moto, bucket)
    before = snapshot(moto, bucket)
    parameter = f"/ppc/{uuid.uuid4().hex[:6]}/cache-url"
    common = [str(ini), "--endpoint-url", moto.endpoint_url, "--function-name", function_name]
    argv = [*common, "--sqs", "--zip", str(bundle_zip), "--set", f"cache.url=ssm:{parameter}"]

    code, out, err = run(create_main, argv, capsys)
    assert code == 0, err
    iam, lam, s3, sqs = (moto.client(s) for s in ("iam", "lambda", "s3", "sqs"))
    queue_arn = f"arn:aws:sqs:{REGION}:{ACCOUNT}:{function_name}-events"
    dlq_arn = f"arn:aws:sqs:{REGION}:{ACCOUNT}:{function_name}-dlq"

    policy = statements(
        iam.get_role_policy(RoleName=f"{function_name}-role", PolicyName="ppc-s3-sync")["PolicyDocument"]
    )
    assert policy["PackageObjects"]["Resource"] == f"arn:aws:s3:::{bucket}/pkgs/*"
    assert as_list(policy["ReadSettingParameters"]["Resource"]) == [
        f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter{parameter}"
    ]
    assert policy["ReadSettingParameters"]["Action"] == "ssm:GetParameter"
    assert sorted(policy["ConsumeEventQueue"]["Action"]) == [
        "sqs:DeleteMessage",
        "sqs:GetQueueAttributes",
        "sqs:ReceiveMessage",
    ]
    assert policy["ConsumeEventQueue"]["Resource"] == queue_arn
    assert "CacheTables" not in policy

    config = lam.get_function(FunctionName=function_name)["Configuration"]
    env = json.loads(config["Environment"]["Variables"]["PYPICLOUD_SETTINGS"])
    assert env["cache.url"] == f"ssm:{parameter}"  # the password never reaches the function's configuration
    assert env["sync.secret_max_age"] == "120"
    assert "cache.migrate_on_start" not in env
    assert "holds a password" not in out  # the ini's URL with its password was replaced by --set
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.get_policy(FunctionName=function_name)  # S3 sends to the queue, never to the function

    queue_url = sqs.get_queue_url(QueueName=f"{function_name}-events")["QueueUrl"]
    attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])["Attributes"]
    redrive = json.loads(attributes["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"] == dlq_arn and int(redrive["maxReceiveCount"]) == 5
    assert int(attributes["VisibilityTimeout"]) >= 6 * config["Timeout"]
    (allow,) = json.loads(attributes["Policy"])["Statement"]
    assert allow["Principal"] == {"Service": "s3.amazonaws.com"} and allow["Action"] == "sqs:SendMessage"
    assert allow["Condition"]["ArnLike"]["aws:SourceArn"] == f"arn:aws:s3:::{bucket}"
    assert sqs.get_queue_url(QueueName=f"{function_name}-dlq")["QueueUrl"]

    (mapping,) = lam.list_event_source_mappings(FunctionName=function_name)["EventSourceMappings"]
    assert mapping["EventSourceArn"] == queue_arn
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]

    notifications = s3.get_bucket_notification_configuration(Bucket=bucket)
    assert "LambdaFunctionConfigurations" not in notifications
    ours = [n for n in notifications["QueueConfigurations"] if n["Id"] != theirs["Id"]]
    assert [n for n in notifications["QueueConfigurations"] if n["Id"] == theirs["Id"]] == [theirs]
    assert len(ours) == 1 and ours[0]["QueueArn"] == queue_arn
    assert ours[0]["Filter"]["Key"]["FilterRules"] == [{"Name": "prefix", "Value": "pkgs/"}]

    after_create = snapshot(moto, bucket)
    assert run(create_main, argv, capsys)[0] == 0
    assert snapshot(moto, bucket) == after_create

    code, out, err = run(remove_main, common, capsys)  # finds the queues without --sqs
    assert code == 0, err
    assert snapshot(moto, bucket) == before


def test_dry_run_changes_nothing(
    tmp_path: Path, moto: Moto, bucket: str, function_name: str, bundle_zip: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ini = deploy_ini(tmp_path / "server.ini", dynamo_settings(moto, bucket, "ppc-dry-"))
    unrelated_notification(moto, bucket)
    before = snapshot(moto, bucket)
    argv = [str(ini), "--endpoint-url", moto.endpoint_url, "--function-name", function_name, "--dry-run"]

    for extra in ([], ["--sqs"]):
        code, out, err = run(create_main, [*argv, *extra], capsys)
        assert code == 0, err
        assert snapshot(moto, bucket) == before
        for action in ("create IAM role", "create Lambda function", "put bucket notification", "build the bundle"):
            assert f"[dry-run] would {action}" in out
        assert ("create SQS queue" in out) == bool(extra)
        assert ("create the event source mapping" in out) == bool(extra)
        assert ("allow s3.amazonaws.com to invoke" in out) != bool(extra)

    assert run(create_main, [*argv[:-1], "--zip", str(bundle_zip)], capsys)[0] == 0
    created = snapshot(moto, bucket)
    code, out, err = run(remove_main, argv, capsys)
    assert code == 0, err
    assert snapshot(moto, bucket) == created
    for action in ("delete Lambda function", "delete IAM role", "remove bucket notification"):
        assert f"[dry-run] would {action}" in out
    assert run(remove_main, argv[:-1], capsys)[0] == 0
    assert snapshot(moto, bucket) == before


def test_a_given_role_is_used_and_never_removed(
    tmp_path: Path, moto: Moto, bucket: str, function_name: str, bundle_zip: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    iam = moto.client("iam")
    role_arn = iam.create_role(RoleName=f"given-{uuid.uuid4().hex[:8]}", AssumeRolePolicyDocument=json.dumps(TRUST))[
        "Role"
    ]["Arn"]
    ini = deploy_ini(tmp_path / "server.ini", dynamo_settings(moto, bucket, "ppc-given-"))
    before = snapshot(moto, bucket)
    argv = [str(ini), "--endpoint-url", moto.endpoint_url, "--function-name", function_name, "--role-arn", role_arn]

    code, _, err = run(create_main, [*argv, "--zip", str(bundle_zip)], capsys)
    assert code == 0, err
    assert moto.client("lambda").get_function(FunctionName=function_name)["Configuration"]["Role"] == role_arn
    assert set(snapshot(moto, bucket)["roles"]) == set(before["roles"])

    code, out, err = run(remove_main, argv, capsys)
    assert code == 0, err
    assert snapshot(moto, bucket) == before
    assert "left alone: role" in out


def test_changed_options_update_the_function(
    tmp_path: Path, moto: Moto, bucket: str, function_name: str, bundle_zip: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ini = deploy_ini(tmp_path / "server.ini", dynamo_settings(moto, bucket, "ppc-upd-"))
    argv = [str(ini), "--endpoint-url", moto.endpoint_url, "--function-name", function_name, "--zip", str(bundle_zip)]
    assert run(create_main, argv, capsys)[0] == 0
    code, out, err = run(create_main, [*argv, "--memory", "1024"], capsys)
    assert code == 0, err
    assert f"update Lambda function {function_name} configuration (MemorySize)" in out
    assert moto.client("lambda").get_function(FunctionName=function_name)["Configuration"]["MemorySize"] == 1024
    assert run(remove_main, argv[:5], capsys)[0] == 0


def test_a_function_in_a_vpc(
    tmp_path: Path, moto: Moto, bucket: str, function_name: str, bundle_zip: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ec2 = moto.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName=function_name, Description="cache access", VpcId=vpc)["GroupId"]
    ini = deploy_ini(tmp_path / "server.ini", {**moto.s3_settings(bucket), "cache.url": "postgresql://u@db/ppc"})
    argv = [str(ini), "--endpoint-url", moto.endpoint_url, "--function-name", function_name, "--zip", str(bundle_zip)]
    vpc_args = ["--subnet-ids", subnet, "--security-group-ids", group]
    before = snapshot(moto, bucket)

    code, _, err = run(create_main, [*argv, *vpc_args], capsys)
    assert code == 0, err
    config = moto.client("lambda").get_function(FunctionName=function_name)["Configuration"]
    assert config["VpcConfig"]["SubnetIds"] == [subnet] and config["VpcConfig"]["SecurityGroupIds"] == [group]
    document = moto.client("iam").get_role_policy(RoleName=f"{function_name}-role", PolicyName="ppc-s3-sync")
    assert "ec2:CreateNetworkInterface" in statements(document["PolicyDocument"])["VpcNetworkInterfaces"]["Action"]
    after = snapshot(moto, bucket)
    assert run(create_main, [*argv, *vpc_args], capsys)[0] == 0
    assert snapshot(moto, bucket) == after
    code, _, err = run(create_main, [*argv, "--subnet-ids", subnet], capsys)
    assert code == 1 and "go together" in err
    code, out, err = run(create_main, argv, capsys)  # out of the VPC again
    assert code == 0, err
    assert "configuration (VpcConfig)" in out
    config = moto.client("lambda").get_function(FunctionName=function_name)["Configuration"]
    assert not (config.get("VpcConfig") or {}).get("SubnetIds")
    assert run(remove_main, argv[:5], capsys)[0] == 0
    assert snapshot(moto, bucket) == before


def test_resources_it_did_not_make_are_refused_and_left_alone(
    tmp_path: Path, moto: Moto, bucket: str, function_name: str, bundle_zip: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    iam, lam = moto.client("iam"), moto.client("lambda")
    role = iam.create_role(RoleName=f"{function_name}-role", AssumeRolePolicyDocument=json.dumps(TRUST))["Role"]
    lam.create_function(
        FunctionName=function_name,
        Runtime="python3.12",
        Role=role["Arn"],
        Handler="other.handler",
        Code={"ZipFile": bundle_zip.read_bytes()},
    )
    ini = deploy_ini(tmp_path / "server.ini", dynamo_settings(moto, bucket, "ppc-theirs-"))
    argv = [str(ini), "--endpoint-url", moto.endpoint_url, "--function-name", function_name]

    code, _, err = run(create_main, [*argv, "--zip", str(bundle_zip)], capsys)
    assert code == 1
    assert "was not made by ppc-create-s3-sync" in err
    code, out, _ = run(remove_main, argv, capsys)
    assert code == 1
    assert "left alone: Lambda function" in out and "left alone: IAM role" in out
    assert lam.get_function(FunctionName=function_name)["Configuration"]["Handler"] == "other.handler"
    assert iam.get_role(RoleName=f"{function_name}-role")
    lam.delete_function(FunctionName=function_name)
    iam.delete_role(RoleName=f"{function_name}-role")


def test_bad_inputs_fail_with_a_message(
    tmp_path: Path, moto: Moto, bucket: str, bundle_zip: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ini = deploy_ini(tmp_path / "server.ini", dynamo_settings(moto, bucket, "ppc-bad-"))
    base = [str(ini), "--endpoint-url", moto.endpoint_url, "--zip", str(bundle_zip), "--dry-run"]
    code, _, err = run(create_main, [*base, "--region", "eu-west-1"], capsys)
    assert code == 1 and "bucket's own region" in err
    code, _, err = run(create_main, [*base, "--function-name", "no spaces"], capsys)
    assert code == 1 and "--function-name" in err
    sql = deploy_ini(tmp_path / "sql.ini", {**moto.s3_settings(bucket), "cache.url": "postgresql://ppc:hunter2@db/ppc"})
    code, out, err = run(create_main, [str(sql), *base[1:]], capsys)
    assert code == 0, err
    assert "cache.url holds a password" in out and "hunter2" not in out
    local = deploy_ini(tmp_path / "local.ini", {"storage.dir": str(tmp_path), "cache.url": "sqlite://"})
    code, _, err = run(create_main, [str(local), "--endpoint-url", moto.endpoint_url], capsys)
    assert code == 1 and "storage.backend = s3" in err


def test_policy_scopes_secrets_and_kms_keys(moto: Moto) -> None:
    chosen = {
        **moto.s3_settings("b-kms", prefix=""),
        "storage.sse": "aws:kms",
        "storage.kms_key_id": "1234abcd-12ab-34cd-56ef-1234567890ab",
        "cache.url": "secretsmanager:prod/ppc/cache-url",
    }
    settings = load_settings(chosen, environ={})
    chosen["cache.pool_size"] = "ssm:pool-size"  # any value may name a secret
    names = Names.of("b-kms", None)
    target = Target(ACCOUNT, "aws", "eu-west-1", "b-kms", "", names)
    policy = statements(role_policy(target, settings, chosen, sqs=False, vpc=False))
    assert names.function == "ppc-s3-sync-b-kms"
    assert policy["PackageObjects"]["Resource"] == "arn:aws:s3:::b-kms/*"
    assert policy["ReadSettingSecrets"]["Resource"] == [
        f"arn:aws:secretsmanager:eu-west-1:{ACCOUNT}:secret:prod/ppc/cache-url-??????"
    ]
    assert policy["ReadSettingParameters"]["Resource"] == [f"arn:aws:ssm:eu-west-1:{ACCOUNT}:parameter/pool-size"]
    assert (
        policy["BucketKmsKey"]["Resource"]
        == f"arn:aws:kms:eu-west-1:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    )
    with_vpc = statements(role_policy(target, settings, chosen, sqs=False, vpc=True))
    assert with_vpc["VpcNetworkInterfaces"]["Resource"] == "*"
    long_names = Names.of("a" * 63, None)
    assert len(long_names.function) == 64 and len(long_names.role) == 64


# --- ppc-build-lambda-bundle ------------------------------------------------------------------------


@pytest.fixture
def stub_lambda_dir(tmp_path: Path) -> Path:
    """A lambda/ folder with a stub handler, so bundle tests do not depend on the real one."""
    folder = tmp_path / "lambda"
    folder.mkdir()
    (folder / "s3_sync.py").write_text("def handler(event, context):\n    return {}\n", encoding="utf-8")
    for name in ("requirements-sql.txt", "requirements-dynamo.txt"):
        (folder / name).write_text((DEFAULT_LAMBDA_DIR / name).read_text(encoding="utf-8"), encoding="utf-8")
    return folder


def zip_names(path: Path) -> list[str]:
    with zipfile.ZipFile(path) as zf:
        return zf.namelist()


@pytest.mark.parametrize("cache", ["dynamo", "sql"])
def test_no_deps_bundle_holds_the_handler_and_the_package_without_its_web_layer(
    tmp_path: Path, stub_lambda_dir: Path, cache: str, capsys: pytest.CaptureFixture[str]
) -> None:
    cache_settings = {"cache.backend": "dynamo"} if cache == "dynamo" else {"cache.url": "postgresql://u@h/db"}
    ini = deploy_ini(tmp_path / "server.ini", {"storage.dir": str(tmp_path / "files"), **cache_settings})
    output = tmp_path / "out" / "bundle.zip"
    argv = [str(ini), "-o", str(output), "--no-deps", "--lambda-dir", str(stub_lambda_dir)]
    code, out, err = run(build_main, argv, capsys)
    assert code == 0, err
    assert f"{output}: {output.stat().st_size} bytes" in out
    assert "handler: s3_sync.handler" in out

    names = zip_names(output)
    assert "s3_sync.py" in names
    assert {"pypicloud_lite/__init__.py", "pypicloud_lite/config.py", "pypicloud_lite/cache/base.py"} <= set(names)
    assert not [n for n in names if n.startswith(("pypicloud_lite/web/", "pypicloud_lite/scripts/"))]
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    migrations = {
        "pypicloud_lite/db/migrations/env.py",
        "pypicloud_lite/db/migrations/versions/0001_initial.py",
        "pypicloud_lite/db/migrations/script.py.mako",
    }
    if cache == "sql":
        assert migrations <= set(names)
        assert "pypicloud_lite/db/engine.py" in names
        assert not [n for n in names if n.startswith("pypicloud_lite/cache/dynamo/")]
    else:
        assert "pypicloud_lite/cache/dynamo/cache.py" in names
        assert not [n for n in names if n.startswith(("pypicloud_lite/cache/sql/", "pypicloud_lite/db/"))]

    again = tmp_path / "again.zip"
    assert run(build_main, [*argv[:1], "-o", str(again), *argv[3:]], capsys)[0] == 0
    assert again.read_bytes() == output.read_bytes()  # reproducible: redeploying it changes nothing


def test_a_missing_handler_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ini = deploy_ini(tmp_path / "server.ini", {"storage.dir": str(tmp_path), "cache.backend": "dynamo"})
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = run(build_main, [str(ini), "--no-deps", "--lambda-dir", str(empty)], capsys)
    assert code == 1
    assert "s3_sync.py does not exist" in err


def test_pip_installs_for_the_lambda_platform_and_runtime_packages_are_dropped(
    tmp_path: Path, stub_lambda_dir: Path
) -> None:
    calls: list[list[str]] = []

    def fake_pip(args: Any) -> None:
        calls.append(list(args))
        target = Path(args[args.index("--target") + 1])
        for name, version in (("botocore", "1.35.0"), ("pg8000", "1.31.0")):
            (target / name).mkdir(parents=True)
            (target / name / "__init__.py").write_text("", encoding="utf-8")
            info = target / f"{name}-{version}.dist-info"
            info.mkdir()
            (info / "RECORD").write_text(f"{name}/__init__.py,,\n{info.name}/RECORD,,\n", encoding="utf-8")
        (target / "bin").mkdir()
        (target / "bin" / "tool").write_text("#!/usr/bin/python\n", encoding="utf-8")

    settings = load_settings({"storage.dir": str(tmp_path), "cache.url": "postgresql+pg8000://u@h/db"}, environ={})
    bundle = build_bundle(settings, tmp_path / "b.zip", lambda_dir=stub_lambda_dir, pip=fake_pip)
    (args,) = calls
    for flag, value in (
        ("--platform", "manylinux2014_x86_64"),
        ("--python-version", "3.12"),
        ("--implementation", "cp"),
        ("-r", str(stub_lambda_dir / "requirements-sql.txt")),
    ):
        assert args[args.index(flag) + 1] == value
    assert "--only-binary=:all:" in args and args[-1] == "pg8000>=1.30"
    names = zip_names(bundle.path)
    assert "pg8000/__init__.py" in names and "pg8000-1.31.0.dist-info/RECORD" in names
    assert not [n for n in names if n.startswith(("botocore", "bin/"))]


@pytest.mark.parametrize(
    ("url", "driver", "expected"),
    [
        ("postgresql://u@h/db", None, "psycopg[binary]>=3.1"),
        ("postgresql+psycopg://u@h/db", None, "psycopg[binary]>=3.1"),
        ("postgresql+psycopg2://u@h/db", None, "psycopg2-binary>=2.9"),
        ("mysql+pymysql://u@h/db", None, "PyMySQL>=1.1"),
        ("sqlite:////tmp/cache.sqlite", None, ""),
        ("ssm:/ppc/cache-url", "pymysql", "PyMySQL>=1.1"),
    ],
)
def test_the_driver_follows_the_cache_url(url: str, driver: str | None, expected: str) -> None:
    assert sql_driver_requirement(url, driver) == expected


@pytest.mark.parametrize(("url", "message"), [("mysql://u@h/db", "mysql+pymysql"), ("ssm:/x", "--sql-driver")])
def test_a_driver_it_cannot_bundle_is_refused(url: str, message: str) -> None:
    with pytest.raises(DeployError, match=re.escape(message)):
        sql_driver_requirement(url)


def _unpack(bundle: Path, folder: Path) -> Path:
    with zipfile.ZipFile(bundle) as zf:
        zf.extractall(folder)
    return folder


def test_the_real_handler_imports_from_the_bundle_without_pyramid(tmp_path: Path, moto: Moto) -> None:
    """Only the unpacked zip (plus site-packages for the libraries) on sys.path, no .pth files."""
    assert (DEFAULT_LAMBDA_DIR / "s3_sync.py").is_file(), "the packaged lambda_files/s3_sync.py is missing"
    bucket = moto.new_bucket()
    prefix = f"ppc-{uuid.uuid4().hex[:6]}-"
    raw = dynamo_settings(moto, bucket, prefix)
    settings = load_settings(raw, environ={})
    from pypicloud_lite.cache.dynamo.tables import build_tables, create_tables

    assert settings.cache.dynamo is not None
    create_tables(build_tables(settings.cache.dynamo))
    bundle = build_bundle(settings, tmp_path / "bundle.zip", deps=False)
    root = _unpack(bundle.path, tmp_path / "unpacked")
    del raw["cache.create_tables"]
    event = {"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": bucket, "RequestId": "1", "HostId": "2"}
    script = f"""
import json, sys
sys.path[:0] = [{str(root)!r}, {sysconfig.get_paths()["purelib"]!r}]
import s3_sync
import pypicloud_lite
assert pypicloud_lite.__file__.startswith({str(root)!r}), pypicloud_lite.__file__
s3_sync.handler(json.loads({json.dumps(event)!r}), None)
print(json.dumps({{m: m in sys.modules for m in ("pyramid", "webob", "sqlalchemy", "pypicloud_lite.web")}}))
"""
    env = {
        "PYPICLOUD_SETTINGS": json.dumps(raw),
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "PATH": "/usr/bin:/bin",
    }
    result = subprocess.run(
        [sys.executable, "-S", "-c", script], capture_output=True, text=True, env=env, cwd=tmp_path, check=False
    )
    assert result.returncode == 0, result.stderr
    imported = json.loads(result.stdout.strip().splitlines()[-1])
    assert imported == {"pyramid": False, "webob": False, "sqlalchemy": False, "pypicloud_lite.web": False}


# --- the full build, with pip, once per session -------------------------------------------------------


@pytest.fixture(scope="session")
def full_sql_bundle(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int, str, str]:
    """ppc-build-lambda-bundle for a PostgreSQL cache, pip included: (zip, exit code, stdout, stderr)."""
    folder = tmp_path_factory.mktemp("full-bundle")
    ini = deploy_ini(
        folder / "server.ini", {"storage.dir": str(folder / "files"), "cache.url": "postgresql+psycopg://u@h/db"}
    )
    output = folder / "bundle.zip"
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = build_main([str(ini), "-o", str(output)])
    return output, code, out.getvalue(), err.getvalue()


def test_full_build_installs_the_sql_dependencies_for_the_lambda_platform(
    full_sql_bundle: tuple[Path, int, str, str],
) -> None:
    path, code, out, err = full_sql_bundle
    if code != 0 and any(marker in err for marker in OFFLINE_MARKERS):
        require_or_skip(f"pip cannot reach the package index: {err.strip().splitlines()[-1]}")
    assert code == 0, err
    assert f"{path}: {path.stat().st_size} bytes" in out
    assert "handler: s3_sync.handler" in out
    assert "psycopg[binary]" in out
    names = zip_names(path)
    tops = {n.split("/", 1)[0] for n in names}
    assert {"s3_sync.py", "pypicloud_lite", "sqlalchemy", "alembic", "psycopg", "psycopg_binary", "packaging"} <= tops
    assert not tops & {"boto3", "botocore", "bin", "pyramid", "webob"}
    assert not [n for n in names if n.startswith("pypicloud_lite/web/")]
    extensions = [n for n in names if n.endswith(".so")]
    assert extensions, "no compiled extension: the Lambda platform wheels were not used"
    assert not [n for n in extensions if "cpython-3" in n and "cpython-312" not in n]
    assert [n for n in extensions if "cpython-312-x86_64-linux-gnu" in n]
    assert not [n for n in names if n.endswith(".pyc")]


def test_dry_run_prints_the_function_settings_queues_and_notification_with_secrets_redacted(
    tmp_path: Path, moto: Moto, bucket: str, function_name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = {
        **moto.s3_settings(bucket, "pkgs/"),
        "cache.url": "postgresql+psycopg://ppc:hunter2@db.internal/ppc",
        "sync.secret_max_age": "60",
    }
    ini = deploy_ini(tmp_path / "server.ini", settings)
    before = snapshot(moto, bucket)
    argv = [str(ini), "--endpoint-url", moto.endpoint_url, "--function-name", function_name, "--sqs", "--dry-run"]
    code, out, err = run(create_main, argv, capsys)
    assert code == 0, err
    assert snapshot(moto, bucket) == before
    assert "hunter2" not in out + err

    lines = {line.split(": ", 1)[0]: line.split(": ", 1)[1] for line in out.splitlines() if ": " in line}
    environment = json.loads(lines["[dry-run] function settings (PYPICLOUD_SETTINGS, secrets redacted)"])
    assert environment["storage.bucket"] == bucket and environment["storage.prefix"] == "pkgs/"
    assert environment["cache.url"] == "postgresql+psycopg://ppc:[redacted]@db.internal/ppc"
    assert environment["sync.secret_max_age"] == "60"
    assert function_name in lines["[dry-run] function"] and "python3" in lines["[dry-run] function"]
    queues = lines["[dry-run] queues"]
    assert f"{function_name}-events" in queues and f"{function_name}-dlq" in queues
    notification = json.loads(lines["[dry-run] bucket notification (QueueConfigurations)"])
    assert notification["QueueArn"].endswith(f":{function_name}-events")
    assert notification["Filter"]["Key"]["FilterRules"] == [{"Name": "prefix", "Value": "pkgs/"}]
    assert json.loads(lines["[dry-run] role policy"])["Statement"]

    # A secret's reference is its name, not its value: shown as it is.
    code, out, err = run(create_main, [*argv, "--set", "cache.url=ssm:/ppc/cache-url"], capsys)
    assert code == 0, err
    assert '"cache.url": "ssm:/ppc/cache-url"' in out
    assert snapshot(moto, bucket) == before


def test_missing_credentials_are_one_line_naming_them(
    tmp_path: Path, moto: Moto, bucket: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    ini = deploy_ini(tmp_path / "server.ini", dynamo_settings(moto, bucket, "ppc-nocreds-"))
    use_credentials(monkeypatch, {})
    code, _, err = run(create_main, [str(ini), "--endpoint-url", moto.endpoint_url, "--dry-run"], capsys)
    assert code == 1
    assert err.startswith("ppc-create-s3-sync: AWS credentials problem (NoCredentialsError): no AWS credentials")
    assert "Traceback" not in err
