"""The servers' IAM policy (ppc-make-config --iam-policy): README's is the generated one, and it is enough
for upload, download, yank and listing on moto with IAM enforced (and one statement less is not)."""

from __future__ import annotations

import copy
import json
import re
import shlex
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import boto3
import pytest
import webtest

from pypicloud_lite.cache.dynamo.cache import DynamoCache
from pypicloud_lite.config import load_settings
from pypicloud_lite.deploy.server_policy import server_policy
from pypicloud_lite.scripts import make_config
from pypicloud_lite.web import make_app
from tests.support.aws import REGION, Moto, iam_enforced, iam_user, use_credentials
from tests.support.common import UPLOADER, UPLOADER_PASSWORD, basic_auth, services
from tests.support.data import REPO_ROOT
from tests.support.deploy import ACCOUNT
from tests.support.distbuilder import build_wheel
from tests.support.legacy import upload_dist
from tests.support.settings import server_settings

SECTION = "### The servers' IAM policy"


def _readme_blocks(language: str) -> list[str]:
    text = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
    return re.findall(rf"```{language}\n(.*?)```", section, re.S)


def test_readme_policy_is_the_generated_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ini_text, command = _readme_blocks("ini")[0], _readme_blocks("sh")[0].strip()
    ini = tmp_path / "server.ini"
    ini.write_text(ini_text, encoding="utf-8")
    argv = command.split()[1:]  # ppc-make-config server.ini --iam-policy --account ...
    assert argv[0] == "server.ini"
    capsys.readouterr()
    assert make_config.main([str(ini), *argv[1:]]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads(_readme_blocks("json")[0])
    # The example covers each kind of statement: objects, listing, KMS, tables, a secret.
    assert {s["Sid"] for s in printed["Statement"]} >= {
        "PackageObjects",
        "ListPackageBucket",
        "BucketKmsKey",
        "CacheTables",
        "ReadSettingParameters",
    }


def test_iam_policy_of_a_local_ini_is_empty_and_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ini = tmp_path / "server.ini"
    ini.write_text("[app:main]\nstorage.dir = %(here)s/p\ncache.url = sqlite:///%(here)s/c.sqlite\n", encoding="utf-8")
    assert make_config.main([str(ini), "--iam-policy"]) == 1
    assert "needs no AWS permissions" in capsys.readouterr().err


# -- the policy is enough, on moto with IAM enforced -----------------------------------------------


@pytest.fixture
def aws_setup(moto: Moto, tmp_path: Path) -> Iterator[dict[str, str]]:
    """S3 storage and a DynamoDB cache (its tables made beforehand) on moto: the server's settings."""
    settings = {
        "storage.dir": None,
        **moto.s3_settings(moto.new_bucket(), "packages/"),
        "storage.stream_files": "true",
        "cache.url": None,
        "cache.migrate_on_start": None,
        **moto.dynamo_settings(),
    }
    raw = server_settings(tmp_path, settings)
    DynamoCache.from_settings(load_settings(raw, environ={}).cache).close()
    yield {**raw, "cache.create_tables": "false"}


# Moto checks some requests under the operation's name instead of the IAM action AWS checks: each alias is
# granted where (and only where) the policy grants the real action.
MOTO_ACTION_NAMES = {
    "s3:GetObject": ("s3:HeadObject",),
    "s3:ListBucket": ("s3:ListObjectsV2",),
    # AWS has no action of its own for a transaction: each item needs its action (PutItem, UpdateItem, ...).
    "dynamodb:UpdateItem": ("dynamodb:TransactWriteItems",),
}


def _for_moto(policy: dict[str, Any]) -> dict[str, Any]:
    """The policy as moto must see it to grant what AWS grants: its action names added, and DynamoDB's
    resources "*" (moto authorizes DynamoDB requests against "*", never a table's ARN)."""
    adapted = copy.deepcopy(policy)
    for statement in adapted["Statement"]:
        actions = [statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"]
        statement["Action"] = [*actions, *(alias for a in actions for alias in MOTO_ACTION_NAMES.get(a, ()))]
        if statement["Sid"] == "CacheTables":
            statement["Resource"] = "*"
    return adapted


def _serve(raw: dict[str, str], credentials: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> webtest.TestApp:
    use_credentials(monkeypatch, credentials)
    return webtest.TestApp(make_app(load_settings(raw, environ={})))


def _exercise(testapp: webtest.TestApp, wheel: Path) -> list[str]:
    """Upload, list, download, yank, list again, delete; the status of each step."""
    auth = basic_auth(UPLOADER, UPLOADER_PASSWORD)
    steps = [upload_dist(testapp, auth, wheel, "Foo.Bar", "1.0", status="*")]
    steps.append(testapp.get("/simple/", status="*"))
    steps.append(testapp.get("/simple/foo-bar/", status="*"))
    found = re.search(r'href="([^"#]+)', steps[-1].text)
    file_url = urljoin("/simple/foo-bar/", found.group(1)) if found else "/x"
    steps.append(testapp.head(file_url, status="*"))
    download = testapp.get(file_url, status="*")  # streamed by the server: GetObject
    assert download.status_int != 200 or download.body == wheel.read_bytes()
    steps.append(download)
    yank = "/api/projects/foo-bar/versions/1.0/yank"
    steps.append(testapp.post_json(yank, {"reason": "broken"}, headers=auth, status="*"))
    steps.append(testapp.get("/pypi/foo-bar/json", status="*"))
    assert steps[-1].status_int != 200 or steps[-1].json["urls"][0]["yanked"]
    steps.append(testapp.delete(f"/api/projects/foo-bar/files/{wheel.name}", headers=auth, status="*"))
    return [f"{s.request.method} {s.request.path} {s.status}" for s in steps]


def test_the_generated_policy_is_enough_and_each_statement_is_needed(
    moto: Moto, aws_setup: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    policy = server_policy(load_settings(aws_setup, environ={}), aws_setup, account=ACCOUNT, region=REGION)
    wheel = build_wheel(tmp_path / "dist", "Foo.Bar", "1.0")
    testapp = _serve(aws_setup, iam_user(moto, _for_moto(policy)), monkeypatch)
    with iam_enforced():
        results = _exercise(testapp, wheel)
        # The download's count, which a timer would send later.
        assert services(testapp.app).downloads.flush() == 1
    assert all(r.split()[-2].startswith(("200", "201")) for r in results), results
    # The delete removed the object (s3:DeleteObject).
    bucket, key = aws_setup["storage.bucket"], f"packages/foo-bar/{wheel.name}"
    assert "Contents" not in moto.client("s3").list_objects_v2(Bucket=bucket, Prefix=key)
    services(testapp.app).index.cache.close()

    for sid in ("PackageObjects", "CacheTables"):
        less = _for_moto({**policy, "Statement": [s for s in policy["Statement"] if s["Sid"] != sid]})
        testapp = _serve({**aws_setup, "storage.bucket": moto.new_bucket()}, iam_user(moto, less), monkeypatch)
        with iam_enforced():
            refused = testapp.get("/simple/", status="*") if sid == "CacheTables" else None
            if refused is None:
                auth = basic_auth(UPLOADER, UPLOADER_PASSWORD)
                refused = upload_dist(testapp, auth, wheel, "Foo.Bar", "1.0", status="*")
        assert refused.status_int == 500 and "not allowed" in refused.json["message"], (sid, refused.status)
        services(testapp.app).index.cache.close()


# -- the bucket's commands ---------------------------------------------------------------------------


def _s3api_calls(block: str) -> list[tuple[str, str | None, dict[str, Any]]]:
    """(operation, region, parameters) of each `aws s3api` line, as boto3 takes them (the values are JSON)."""
    calls = []
    for line in block.strip().splitlines():
        words = shlex.split(line)
        assert words[:2] == ["aws", "s3api"], line
        operation, options = words[2].replace("-", "_"), words[3:]
        params: dict[str, Any] = {}
        region = None
        for flag, value in zip(options[::2], options[1::2], strict=True):
            if flag == "--region":
                region = value
                continue
            name = "".join(part.title() for part in flag.removeprefix("--").split("-"))
            params[name] = json.loads(value) if value[:1] in "{[" else value
        calls.append((operation, region, params))
    return calls


def test_the_readme_bucket_commands_make_the_bucket_they_describe(moto: Moto) -> None:
    text = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    block = re.findall(r"```sh\n(.*?)```", text.split("### The bucket", 1)[1], re.S)[0]
    bucket = f"ppc-readme-{uuid.uuid4().hex[:8]}"
    calls = _s3api_calls(block.replace("example-pypi", bucket))
    assert calls[0][0] == "create_bucket"
    for operation, region, params in calls:
        client = boto3.client("s3", endpoint_url=moto.endpoint_url, region_name=region or "eu-west-1")
        getattr(client, operation)(**params)
    s3 = boto3.client("s3", endpoint_url=moto.endpoint_url, region_name="eu-west-1")
    assert s3.get_bucket_location(Bucket=bucket)["LocationConstraint"] == "eu-west-1"
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    block_config = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    assert all(block_config.values()) and len(block_config) == 4
    rule = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
    lifecycle = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"][0]
    assert lifecycle["NoncurrentVersionExpiration"]["NoncurrentDays"] == 90
    ownership = s3.get_bucket_ownership_controls(Bucket=bucket)["OwnershipControls"]["Rules"][0]
    assert ownership["ObjectOwnership"] == "BucketOwnerEnforced"
