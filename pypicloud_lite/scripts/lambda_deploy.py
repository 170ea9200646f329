"""ppc-build-lambda-bundle, ppc-create-s3-sync, ppc-remove-s3-sync: bundle and deploy the S3 sync Lambda."""

from __future__ import annotations

import argparse
import base64
import csv
import functools
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pypicloud_lite
from pypicloud_lite.config import Settings, load_settings, read_ini
from pypicloud_lite.errors import PypicloudLiteError

HANDLER = "s3_sync.handler"
HANDLER_FILE = "s3_sync.py"
RUNTIME = "python3.12"
LAMBDA_PYTHON_VERSION = "3.12"
# python3.12 runs on Amazon Linux 2023 (glibc 2.34): manylinux2014 wheels, and the newer
# manylinux_2_28 ones that some projects publish instead, both load there.
PLATFORMS = ("manylinux2014_x86_64", "manylinux_2_28_x86_64")
ARCHITECTURE = "x86_64"
DEFAULT_LAMBDA_DIR = Path(__file__).resolve().parents[2] / "lambda"
DEFAULT_BUNDLE = "ppc-s3-sync.zip"
# The Lambda runtime ships these; bundling them only makes the zip bigger (and older or newer
# than the runtime's, for no benefit). Names as in `<name>-<version>.dist-info`, normalized.
RUNTIME_PROVIDED = frozenset({"boto3", "botocore", "s3transfer", "jmespath", "python_dateutil", "six", "urllib3"})
# Zip entries get a fixed timestamp, so the same inputs give the same bytes (and CodeSha256).
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
MAX_DIRECT_UPLOAD = 50 * 1000 * 1000
MAX_ENVIRONMENT = 4096

SQL_DRIVERS = {
    "psycopg": "psycopg[binary]>=3.1",
    "psycopg2": "psycopg2-binary>=2.9",
    "pg8000": "pg8000>=1.30",
    "pymysql": "PyMySQL>=1.1",
    "none": "",
}
# Settings the Lambda passes on to the handler; everything else in the ini is the web server's.
# With cdn.* the handler records its changes in the CDN outbox; it flushes only with --cdn (its queue).
LAMBDA_SETTING_PREFIXES = ("storage.", "cache.", "sync.", "cdn.")
# Schema management belongs to ppc-migrate / ppc-create-tables, never to a Lambda (its role
# has no rights for it, and hundreds of concurrent cold starts must not race on DDL).
LAMBDA_EXCLUDED_SETTINGS = frozenset({"cache.migrate_on_start", "cache.create_tables"})
SECRET_PREFIXES = ("ssm:", "secretsmanager:")
LITERAL_SETTINGS = ("storage.bucket", "storage.prefix", "storage.region", "cache.table_prefix", "cache.region")

TAG_KEY = "pypicloud_lite:s3-sync"
POLICY_NAME = "ppc-s3-sync"
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
CDN_QUEUE_RETENTION = 24 * 3600
VPC_ACTIONS = (
    "ec2:CreateNetworkInterface",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeSubnets",
    "ec2:DeleteNetworkInterface",
    "ec2:AssignPrivateIpAddresses",
    "ec2:UnassignPrivateIpAddresses",
)
DEFAULT_TIMEOUT = 60
DEFAULT_MEMORY = 512
BATCH_SIZE = 10
MAX_RECEIVE_COUNT = 5
DLQ_RETENTION = 14 * 24 * 3600
QUEUE_RETENTION = 4 * 24 * 3600
# IAM is eventually consistent: a role created a moment ago may not be assumable yet.
IAM_PROPAGATION_SECONDS = 90
_FUNCTION_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}\Z")


class DeployError(PypicloudLiteError):
    """The bundle cannot be built, or the account is not in a state this command may change."""


# --- the bundle ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Bundle:
    path: Path
    size: int
    cache_backend: str
    requirements: tuple[str, ...]  # what pip installed: -r <file> plus the driver, empty with --no-deps


def sql_driver_requirement(cache_url: str, driver: str | None = None) -> str:
    """The pip requirement of the database driver that `cache_url` names ("" for none)."""
    if driver is not None:
        if driver not in SQL_DRIVERS:
            raise DeployError(f"unknown --sql-driver {driver!r}; choose one of {', '.join(SQL_DRIVERS)}")
        return SQL_DRIVERS[driver]
    if cache_url.startswith(SECRET_PREFIXES):
        raise DeployError(
            "cache.url names a secret, so the database driver cannot be read from it: "
            f"pass --sql-driver ({', '.join(SQL_DRIVERS)})"
        )
    scheme = cache_url.split(":", 1)[0].lower()
    backend, _, name = scheme.partition("+")
    if backend == "sqlite":
        return ""
    if backend in ("postgresql", "postgres"):
        if name in ("", "psycopg"):
            return SQL_DRIVERS["psycopg"]
        if name in ("psycopg2", "pg8000"):
            return SQL_DRIVERS[name]
    if backend in ("mysql", "mariadb"):
        if name == "pymysql":
            return SQL_DRIVERS["pymysql"]
        if name in ("", "mysqldb"):
            raise DeployError(
                f"cache.url uses the mysqlclient driver ({scheme}://), which has no manylinux wheel: "
                "use mysql+pymysql:// (or pass --sql-driver pymysql)"
            )
    raise DeployError(f"cache.url: no Lambda driver known for {scheme!r}; pass --sql-driver")


def run_pip(args: Sequence[str]) -> None:
    """Run pip in this interpreter; its output only matters when it fails."""
    command = [sys.executable, "-m", "pip", *args]
    result = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603 - fixed argv
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-25:])
        raise DeployError(f"pip install for the Lambda platform failed:\n{tail}")


def pip_install_args(target: Path, requirements: Path, extra: Sequence[str]) -> list[str]:
    args = ["install", "--target", str(target), "--no-compile", "--disable-pip-version-check", "--quiet"]
    for platform in PLATFORMS:
        args += ["--platform", platform]
    args += ["--only-binary=:all:", "--python-version", LAMBDA_PYTHON_VERSION, "--implementation", "cp"]
    args += ["-r", str(requirements), *extra]
    return args


def _dist_name(dist_info: Path) -> str:
    return re.sub(r"[-_.]+", "_", dist_info.name[: -len(".dist-info")].split("-")[0]).lower()


def prune_runtime_packages(target: Path) -> list[str]:
    """Remove the distributions the Lambda runtime already provides; returns their names."""
    removed = []
    root = target.resolve()
    for dist_info in sorted(target.glob("*.dist-info")):
        name = _dist_name(dist_info)
        if name not in RUNTIME_PROVIDED:
            continue
        record = dist_info / "RECORD"
        if record.exists():
            with record.open(newline="", encoding="utf-8") as fh:
                for row in csv.reader(fh):
                    if not row:
                        continue
                    path = (target / row[0]).resolve()
                    # A RECORD may list files outside the target (scripts with ../): never touch those.
                    if root in path.parents and path.is_file():
                        path.unlink()
        shutil.rmtree(dist_info, ignore_errors=True)
        removed.append(name)
    for folder in sorted((p for p in target.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        if not any(folder.iterdir()):
            folder.rmdir()
    return removed


def package_files(cache_backend: str) -> Iterator[tuple[str, Path]]:
    """(zip name, file) of pypicloud_lite without the web layer, the scripts and the other cache."""
    root = Path(pypicloud_lite.__file__).resolve().parent
    skipped = ["web", "scripts"]
    # The other cache's code cannot run without its libraries, which the bundle does not carry.
    skipped.append("cache/dynamo" if cache_backend == "sql" else "cache/sql")
    for relative, path in _tree_files(root):
        if not any(relative == s or relative.startswith(s + "/") for s in skipped):
            yield f"pypicloud_lite/{relative}", path


def _tree_files(folder: Path) -> Iterator[tuple[str, Path]]:
    """Files under `folder`, following symlinked folders (cache/sql/migrations links to alembic/)."""
    found = []
    for current, dirs, files in os.walk(folder, followlinks=True):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in files:
            path = Path(current, name)
            if path.suffix not in (".pyc", ".pyo"):
                found.append((path.relative_to(folder).as_posix(), path))
    yield from sorted(found)


def write_zip(entries: Mapping[str, Path], output: Path) -> None:
    """A reproducible zip: sorted names, fixed timestamps, world-readable modes (Lambda needs those)."""
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(output.name + ".partial")
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for name in sorted(entries):
            source = entries[name]
            info = zipfile.ZipInfo(name, date_time=ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            mode = 0o755 if os.access(source, os.X_OK) else 0o644
            info.external_attr = (0o100000 | mode) << 16
            zf.writestr(info, source.read_bytes())
    partial.replace(output)


def build_bundle(
    settings: Settings,
    output: Path,
    *,
    lambda_dir: Path = DEFAULT_LAMBDA_DIR,
    deps: bool = True,
    sql_driver: str | None = None,
    pip: Callable[[Sequence[str]], None] = run_pip,
) -> Bundle:
    """Zip the handler, pypicloud_lite (no web layer) and the chosen cache's dependencies."""
    handler = lambda_dir / HANDLER_FILE
    if not handler.is_file():
        raise DeployError(f"the Lambda handler {handler} does not exist (run from a source checkout, or --lambda-dir)")
    backend = settings.cache.backend
    requirements: tuple[str, ...] = ()
    with tempfile.TemporaryDirectory(prefix="ppc-bundle-") as tmp:
        entries: dict[str, Path] = {}
        if deps:
            requirements_file = lambda_dir / f"requirements-{backend}.txt"
            if not requirements_file.is_file():
                raise DeployError(f"{requirements_file} does not exist")
            driver = sql_driver_requirement(settings.cache.url, sql_driver) if backend == "sql" else ""
            extra = [driver] if driver else []
            target = Path(tmp) / "deps"
            pip(pip_install_args(target, requirements_file, extra))
            prune_runtime_packages(target)
            # Console scripts carry the build machine's interpreter path: useless on Lambda.
            shutil.rmtree(target / "bin", ignore_errors=True)
            entries.update(_tree_files(target))
            requirements = (f"-r {requirements_file.name}", *extra)
        stray = sorted(n for n in entries if n.startswith("pypicloud_lite/") or n == HANDLER_FILE)
        if stray:
            raise DeployError(f"a dependency installed files that clash with the bundle's own: {stray[:3]}")
        entries.update(package_files(backend))
        entries[HANDLER_FILE] = handler
        write_zip(entries, output)
    return Bundle(output, output.stat().st_size, backend, requirements)


# --- settings and names ---------------------------------------------------------------------


def lambda_settings(raw: Mapping[str, str], overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """The ini's storage/cache/sync/cdn settings (plus --set overrides) that go into PYPICLOUD_SETTINGS."""
    chosen = {
        key: value
        for key, value in raw.items()
        if key.startswith(LAMBDA_SETTING_PREFIXES) and key not in LAMBDA_EXCLUDED_SETTINGS
    }
    for key, value in (overrides or {}).items():
        if value == "":
            chosen.pop(key, None)
        else:
            chosen[key] = value
    return dict(sorted(chosen.items()))


def validated_settings(chosen: Mapping[str, str]) -> Settings:
    for key in LITERAL_SETTINGS:
        if chosen.get(key, "").startswith(SECRET_PREFIXES):
            raise DeployError(f"setting {key!r} must be a literal value, not a secret reference")
    settings = load_settings(chosen, environ={})
    if settings.storage.backend != "s3" or settings.storage.s3 is None:
        raise DeployError("the S3 sync Lambda needs storage.backend = s3")
    return settings


def secret_references(chosen: Mapping[str, str]) -> dict[str, list[str]]:
    """{"ssm": [parameter names], "secretsmanager": [secret ids]} named by the settings."""
    found: dict[str, list[str]] = {"ssm": [], "secretsmanager": []}
    for value in chosen.values():
        for prefix in SECRET_PREFIXES:
            if value.startswith(prefix):
                found[prefix[:-1]].append(value[len(prefix) :])
    return {service: sorted(set(names)) for service, names in found.items()}


def _bounded(name: str, limit: int) -> str:
    if len(name) <= limit:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[: limit - 9]}-{digest}"


@dataclass(frozen=True)
class Names:
    """Everything the commands create is named from the function name (and tagged with the bucket)."""

    function: str
    role: str
    queue: str
    dlq: str
    cdn_queue: str
    notification_id: str
    statement_id: str

    @classmethod
    def of(cls, bucket: str, function: str | None) -> Names:
        if function is None:
            function = _bounded("ppc-s3-sync-" + re.sub(r"[^A-Za-z0-9_-]", "-", bucket), 64)
        if not _FUNCTION_NAME.match(function):
            raise DeployError(f"--function-name {function!r}: 1 to 64 letters, digits, '-' or '_'")
        return cls(
            function=function,
            role=_bounded(f"{function}-role", 64),
            queue=_bounded(f"{function}-events", 80),
            dlq=_bounded(f"{function}-dlq", 80),
            cdn_queue=_bounded(f"{function}-cdn", 80),
            notification_id=f"ppc-s3-sync:{function}",
            statement_id="ppc-s3-sync-bucket-events",  # unique within the function's own policy
        )


@dataclass(frozen=True)
class Target:
    """Where the function goes: account, partition, region, bucket and the derived ARNs."""

    account: str
    partition: str
    region: str
    bucket: str
    prefix: str
    names: Names

    def arn(self, service: str, resource: str, region: str | None = None, account: str | None = None) -> str:
        region = self.region if region is None else region
        account = self.account if account is None else account
        return f"arn:{self.partition}:{service}:{region}:{account}:{resource}"

    @property
    def bucket_arn(self) -> str:
        return f"arn:{self.partition}:s3:::{self.bucket}"

    @property
    def function_arn(self) -> str:
        return self.arn("lambda", f"function:{self.names.function}")

    @property
    def role_arn(self) -> str:
        return self.arn("iam", f"role/{self.names.role}", region="")

    @property
    def queue_arn(self) -> str:
        return self.arn("sqs", self.names.queue)

    @property
    def dlq_arn(self) -> str:
        return self.arn("sqs", self.names.dlq)

    @property
    def cdn_queue_arn(self) -> str:
        return self.arn("sqs", self.names.cdn_queue)

    def distribution_arn(self, distribution_id: str) -> str:
        return self.arn("cloudfront", f"distribution/{distribution_id}", region="")


# --- policies ---------------------------------------------------------------------------------


def trust_policy() -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }


def _kms_statement(target: Target, key_id: str) -> dict[str, Any]:
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
        statements.append(_kms_statement(target, s3.kms_key_id))
    dynamo = settings.cache.dynamo
    if settings.cache.backend == "dynamo" and dynamo is not None:
        region = dynamo.region or target.region
        # With cdn.backend set, every change the handler applies is recorded in the outbox table.
        outbox = settings.cdn.enabled
        tables = (*DYNAMO_TABLES, "cdn") if outbox else DYNAMO_TABLES
        statements.append(
            {
                "Sid": "CacheTables",
                "Effect": "Allow",
                "Action": list(DYNAMO_ACTIONS) + (list(DYNAMO_CDN_ACTIONS) if outbox else []),
                "Resource": [target.arn("dynamodb", f"table/{dynamo.table_prefix}{t}", region) for t in tables],
            }
        )
    secrets = secret_references(chosen)
    if secrets["ssm"]:
        statements.append(
            {
                "Sid": "ReadSettingParameters",
                "Effect": "Allow",
                "Action": "ssm:GetParameter",
                "Resource": [
                    name if name.startswith("arn:") else target.arn("ssm", f"parameter/{name.lstrip('/')}")
                    for name in secrets["ssm"]
                ],
            }
        )
    if secrets["secretsmanager"]:
        statements.append(
            {
                "Sid": "ReadSettingSecrets",
                "Effect": "Allow",
                "Action": "secretsmanager:GetSecretValue",
                # A secret's ARN ends with a dash and six random characters.
                "Resource": [
                    name if name.startswith("arn:") else target.arn("secretsmanager", f"secret:{name}-??????")
                    for name in secrets["secretsmanager"]
                ],
            }
        )
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


def _normalized_notifications(config: Mapping[str, Any]) -> dict[str, Any]:
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
    config = _normalized_notifications(current)
    for key in NOTIFICATION_LISTS:
        kept = [entry for entry in config.get(key, []) if entry.get("Id") != notification_id]
        if kept:
            config[key] = kept
        else:
            config.pop(key, None)
    if ours is not None:
        key, entry = ours
        config[key] = [*config.get(key, []), entry]
    return _normalized_notifications(config)


# --- AWS ----------------------------------------------------------------------------------------


def _code(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    return str(response.get("Error", {}).get("Code", "")) if isinstance(response, dict) else ""


def _is_client_error(exc: BaseException) -> bool:
    from botocore.exceptions import ClientError

    return isinstance(exc, ClientError)


def _tags_list(bucket: str) -> list[dict[str, str]]:
    return [{"Key": TAG_KEY, "Value": bucket}]


@dataclass
class Options:
    ini: str
    region: str | None
    function_name: str | None
    endpoint_url: str | None
    role_arn: str | None
    sqs: bool
    dry_run: bool
    cdn: bool
    zip: str | None
    no_deps: bool
    sql_driver: str | None
    lambda_dir: str
    settings: dict[str, str]
    timeout: int
    memory: int
    subnet_ids: tuple[str, ...]
    security_group_ids: tuple[str, ...]


class Deployer:
    """Creates or removes the S3 sync resources of one bucket; prints each action (or, dry, what it would do)."""

    def __init__(self, options: Options, out: Callable[[str], None] = print) -> None:
        import boto3

        self.options = options
        self.out = out
        raw = read_ini(options.ini)
        self.chosen = lambda_settings(raw, options.settings)
        self.settings = validated_settings(self.chosen)
        if options.cdn and not self.settings.cdn.enabled:
            raise DeployError("--cdn needs cdn.backend = cloudfront and cdn.distribution_id in the ini")
        s3 = self.settings.storage.s3
        assert s3 is not None
        session = boto3.session.Session()
        region = options.region or s3.region or session.region_name or "us-east-1"
        s3_endpoint = options.endpoint_url or s3.endpoint_url
        if s3.endpoint_url and not options.endpoint_url:
            out(f"note: S3 calls go to storage.endpoint_url {s3.endpoint_url}; IAM, Lambda and SQS calls go to AWS")
        self._clients: dict[str, Any] = {}
        self._session = session
        self._s3_endpoint = s3_endpoint
        self.region = region  # until the bucket says where it is
        bucket_region = self._bucket_region(s3.bucket)
        if options.region and bucket_region != options.region:
            raise DeployError(
                f"bucket {s3.bucket} is in {bucket_region}, not {options.region}: "
                "S3 only notifies functions and queues in the bucket's own region"
            )
        self.region = bucket_region
        identity = self.client("sts").get_caller_identity()
        self.target = Target(
            account=str(identity["Account"]),
            partition=str(identity["Arn"]).split(":")[1],
            region=self.region,
            bucket=s3.bucket,
            prefix=s3.prefix,
            names=Names.of(s3.bucket, options.function_name),
        )

    # clients

    def client(self, service: str, region: str | None = None) -> Any:
        region = region or self.region
        key = f"{service}@{region}"
        if key not in self._clients:
            endpoint = self._s3_endpoint if service == "s3" else self.options.endpoint_url
            self._clients[key] = self._session.client(service, region_name=region, endpoint_url=endpoint)
        return self._clients[key]

    def _bucket_region(self, bucket: str) -> str:
        try:
            location = self.client("s3").get_bucket_location(Bucket=bucket).get("LocationConstraint")
        except Exception as exc:
            if _is_client_error(exc):
                raise DeployError(f"cannot read bucket {bucket}: {_code(exc) or exc}") from exc
            raise
        # Buckets in us-east-1 answer None; very old EU buckets answer "EU".
        return str({None: "us-east-1", "": "us-east-1", "EU": "eu-west-1"}.get(location, location))

    # output

    def act(self, description: str, action: Callable[[], Any]) -> Any:
        if self.options.dry_run:
            self.out(f"[dry-run] would {description}")
            return None
        self.out(description)
        return action()

    def same(self, description: str) -> None:
        self.out(f"unchanged: {description}")

    # helpers

    @property
    def tags(self) -> dict[str, str]:
        return {TAG_KEY: self.target.bucket}

    def _ours(self, tags: Mapping[str, str]) -> bool:
        return tags.get(TAG_KEY) == self.target.bucket

    def get_role(self) -> dict[str, Any] | None:
        try:
            role: dict[str, Any] = self.client("iam").get_role(RoleName=self.target.names.role)["Role"]
        except Exception as exc:
            if _code(exc) == "NoSuchEntity":
                return None
            raise
        return role

    def role_tags(self) -> dict[str, str]:
        tags = self.client("iam").list_role_tags(RoleName=self.target.names.role)["Tags"]
        return {t["Key"]: t["Value"] for t in tags}

    def get_function(self) -> dict[str, Any] | None:
        try:
            found: dict[str, Any] = self.client("lambda").get_function(FunctionName=self.target.names.function)
        except Exception as exc:
            if _code(exc) == "ResourceNotFoundException":
                return None
            raise
        return found

    def function_policy(self) -> dict[str, Any]:
        try:
            policy = self.client("lambda").get_policy(FunctionName=self.target.names.function)["Policy"]
        except Exception as exc:
            if _code(exc) == "ResourceNotFoundException":
                return {"Statement": []}
            raise
        parsed: dict[str, Any] = json.loads(policy)
        return parsed

    def queue_url(self, name: str) -> str | None:
        try:
            return str(self.client("sqs").get_queue_url(QueueName=name)["QueueUrl"])
        except Exception as exc:
            if _code(exc) in ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"):
                return None
            raise

    def mappings(self, queue_arn: str | None = None) -> list[dict[str, Any]]:
        """Our queue's (the events queue, unless named) event source mappings to our function."""
        queue_arn = queue_arn or self.target.queue_arn
        if self.get_function() is None:
            return []
        found: list[dict[str, Any]] = self.client("lambda").list_event_source_mappings(
            EventSourceArn=queue_arn, FunctionName=self.target.names.function
        )["EventSourceMappings"]
        return [m for m in found if m.get("EventSourceArn") == queue_arn]

    def notifications(self) -> dict[str, Any]:
        config: dict[str, Any] = self.client("s3").get_bucket_notification_configuration(Bucket=self.target.bucket)
        return config

    def put_notifications(self, config: Mapping[str, Any]) -> None:
        self.client("s3").put_bucket_notification_configuration(
            Bucket=self.target.bucket, NotificationConfiguration=dict(config)
        )

    def wait_function(self) -> None:
        """Lambda refuses changes while a function is being created or updated."""
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            config = self.client("lambda").get_function_configuration(FunctionName=self.target.names.function)
            if config.get("State") != "Pending" and config.get("LastUpdateStatus") != "InProgress":
                if config.get("State") == "Failed":
                    raise DeployError(f"function {self.target.names.function} failed: {config.get('StateReason')}")
                return
            time.sleep(2)
        raise DeployError(f"function {self.target.names.function} did not become active in 5 minutes")

    def retry_iam(self, action: Callable[[], Any]) -> Any:
        """Retry while a freshly made role is not yet usable by Lambda (IAM propagates in seconds)."""
        deadline = time.monotonic() + IAM_PROPAGATION_SECONDS
        while True:
            try:
                return action()
            except Exception as exc:
                message = str(exc).lower()
                if (
                    _code(exc) != "InvalidParameterValueException"
                    or "role" not in message
                    or time.monotonic() > deadline
                ):
                    raise
                time.sleep(3)


class Creator(Deployer):
    def run(self) -> int:
        options, target = self.options, self.target
        self.out(
            f"S3 sync of s3://{target.bucket}/{target.prefix} into the {self.settings.cache.backend} cache: "
            f"function {target.names.function} in {target.account}/{target.region}"
            + (" (via SQS)" if options.sqs else "")
        )
        self._warn_plaintext_secrets()
        if options.sqs or options.cdn:
            # The dead-letter queue of both the event queue and the CDN flush queue.
            self._ensure_queue(target.names.dlq, {"MessageRetentionPeriod": str(DLQ_RETENTION)})
        if options.cdn:
            self.ensure_cdn_queue()
        environment = json.dumps(self.chosen, separators=(",", ":"), sort_keys=True)
        if len(environment) + len("PYPICLOUD_SETTINGS") > MAX_ENVIRONMENT:
            raise DeployError(f"PYPICLOUD_SETTINGS would be {len(environment)} bytes; Lambda allows 4 KB in all")
        vpc = bool(options.subnet_ids)
        if vpc != bool(options.security_group_ids):
            raise DeployError("--subnet-ids and --security-group-ids go together")
        policy = role_policy(target, self.settings, self.chosen, sqs=options.sqs, vpc=vpc, cdn=options.cdn)
        role_arn = options.role_arn or self.ensure_role(policy)
        if options.role_arn:
            self.out(f"using role {options.role_arn} as it is (it needs the permissions --dry-run prints without it)")
        if options.dry_run:
            self.out("[dry-run] role policy: " + json.dumps(policy, sort_keys=True))
        if options.sqs:
            self.ensure_queues()
        code = self.bundle_bytes()
        self.ensure_function(role_arn, code, environment)
        if options.cdn:
            self.ensure_mapping(target.names.cdn_queue, target.cdn_queue_arn)
        if options.sqs:
            self.ensure_mapping(target.names.queue, target.queue_arn)
            destination = target.queue_arn
        else:
            self.ensure_permission()
            destination = target.function_arn
        self.ensure_notification(notification_entry(target, destination, sqs=options.sqs))
        return 0

    def _warn_plaintext_secrets(self) -> None:
        url = self.chosen.get("cache.url", "")
        if self.settings.cache.backend == "sql" and url.startswith("sqlite"):
            self.out("warning: an SQLite cache in a Lambda is a file of its own per execution environment")
        if re.match(r"^[^:]+://[^/@:]*:[^/@]+@", url):
            self.out(
                "warning: cache.url holds a password, which will be readable in the function's configuration; "
                "store the URL as an SSM SecureString and pass --set cache.url=ssm:/<parameter name>"
            )

    def bundle_bytes(self) -> bytes | None:
        options = self.options
        if options.zip:
            return Path(options.zip).read_bytes()
        if options.dry_run:
            self.out(f"[dry-run] would build the bundle for the {self.settings.cache.backend} cache")
            return None
        with tempfile.TemporaryDirectory(prefix="ppc-s3-sync-") as tmp:
            bundle = build_bundle(
                self.settings,
                Path(tmp) / DEFAULT_BUNDLE,
                lambda_dir=Path(options.lambda_dir),
                deps=not options.no_deps,
                sql_driver=options.sql_driver,
            )
            self.out(f"built the bundle: {bundle.size} bytes")
            return bundle.path.read_bytes()

    def ensure_role(self, policy: dict[str, Any]) -> str:
        iam, name = self.client("iam"), self.target.names.role
        role = self.get_role()
        if role is None:

            def create() -> None:
                iam.create_role(
                    RoleName=name,
                    AssumeRolePolicyDocument=json.dumps(trust_policy()),
                    Description=f"pypicloud_lite S3 sync of {self.target.bucket}",
                    Tags=_tags_list(self.target.bucket),
                )
                iam.put_role_policy(RoleName=name, PolicyName=POLICY_NAME, PolicyDocument=json.dumps(policy))

            self.act(f"create IAM role {name} (trusts lambda.amazonaws.com) with inline policy {POLICY_NAME}", create)
            return self.target.role_arn
        if not self._ours(self.role_tags()):
            raise DeployError(
                f"IAM role {name} exists and was not made by ppc-create-s3-sync: pass --role-arn to use it"
            )
        if _policy_doc(role["AssumeRolePolicyDocument"]) != trust_policy():
            self.act(
                f"update the trust policy of IAM role {name}",
                lambda: iam.update_assume_role_policy(RoleName=name, PolicyDocument=json.dumps(trust_policy())),
            )
        try:
            current = _policy_doc(iam.get_role_policy(RoleName=name, PolicyName=POLICY_NAME)["PolicyDocument"])
        except Exception as exc:
            if _code(exc) != "NoSuchEntity":
                raise
            current = None
        if current != policy:
            self.act(
                f"{'update' if current else 'add'} inline policy {POLICY_NAME} of IAM role {name}",
                lambda: iam.put_role_policy(RoleName=name, PolicyName=POLICY_NAME, PolicyDocument=json.dumps(policy)),
            )
        else:
            self.same(f"IAM role {name}")
        return str(role["Arn"])

    def ensure_queues(self) -> None:
        self._ensure_queue(
            self.target.names.queue,
            {
                # Lambda's advice for event source mappings: six times the function's timeout.
                "VisibilityTimeout": str(6 * self.options.timeout),
                "MessageRetentionPeriod": str(QUEUE_RETENTION),
                "RedrivePolicy": self._redrive_policy(),
                "Policy": json.dumps(queue_policy(self.target)),
            },
        )

    def ensure_cdn_queue(self) -> None:
        """The queue of delayed flush messages; the handler learns its URL through cdn.queue_url.

        A flush that keeps failing (CloudFront refusing the role, say) ends in the dead-letter queue, where
        an operator sees it; its changes stay in the outbox, and the next window's flush sends them.
        """
        name = self.target.names.cdn_queue
        attributes = {
            "VisibilityTimeout": str(6 * self.options.timeout),
            "MessageRetentionPeriod": str(CDN_QUEUE_RETENTION),
            "RedrivePolicy": self._redrive_policy(),
        }
        self._ensure_queue(name, attributes)
        url = self.queue_url(name)
        if url is None:  # a dry run: the URL it would have
            url = f"https://sqs.{self.region}.amazonaws.com/{self.target.account}/{name}"
        self.chosen["cdn.queue_url"] = url

    def _redrive_policy(self) -> str:
        return json.dumps({"deadLetterTargetArn": self.target.dlq_arn, "maxReceiveCount": MAX_RECEIVE_COUNT})

    def _ensure_queue(self, name: str, attributes: dict[str, str]) -> None:
        sqs = self.client("sqs")
        url = self.queue_url(name)
        if url is None:
            self.act(
                f"create SQS queue {name}",
                lambda: sqs.create_queue(QueueName=name, Attributes=attributes, tags=self.tags),
            )
            return
        if not self._ours(sqs.list_queue_tags(QueueUrl=url).get("Tags", {})):
            raise DeployError(f"SQS queue {name} exists and was not made by ppc-create-s3-sync")
        current = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=list(attributes))["Attributes"]
        changed = {k: v for k, v in attributes.items() if _attribute(current.get(k)) != _attribute(v)}
        if changed:
            self.act(
                f"update SQS queue {name} ({', '.join(sorted(changed))})",
                lambda: sqs.set_queue_attributes(QueueUrl=url, Attributes=changed),
            )
        else:
            self.same(f"SQS queue {name}")

    def ensure_function(self, role_arn: str, code: bytes | None, environment: str) -> None:
        lam, name, options = self.client("lambda"), self.target.names.function, self.options
        desired: dict[str, Any] = {
            "Role": role_arn,
            "Runtime": RUNTIME,
            "Handler": HANDLER,
            "Timeout": options.timeout,
            "MemorySize": options.memory,
            "Environment": {"Variables": {"PYPICLOUD_SETTINGS": environment}},
        }
        vpc = {"SubnetIds": list(options.subnet_ids), "SecurityGroupIds": list(options.security_group_ids)}
        if code is not None and len(code) > MAX_DIRECT_UPLOAD:
            raise DeployError(f"the bundle is {len(code)} bytes; Lambda takes at most 50 MB uploaded directly")
        found = self.get_function()
        if found is None:

            def create() -> None:
                assert code is not None
                self.retry_iam(
                    lambda: lam.create_function(
                        FunctionName=name,
                        Description=f"pypicloud_lite: s3://{self.target.bucket}/{self.target.prefix} -> cache",
                        Code={"ZipFile": code},
                        Architectures=[ARCHITECTURE],
                        Tags=self.tags,
                        **desired,
                        **({"VpcConfig": vpc} if options.subnet_ids else {}),
                    )
                )
                self.wait_function()

            self.act(
                f"create Lambda function {name} ({RUNTIME}, {HANDLER}, {options.memory} MB, {options.timeout} s)",
                create,
            )
            return
        if not self._ours(found.get("Tags", {})):
            raise DeployError(f"Lambda function {name} exists and was not made by ppc-create-s3-sync")
        config = found["Configuration"]
        current = {key: config.get(key) for key in desired}
        # Empty lists take a function out of its VPC when the options no longer name one.
        current["VpcConfig"] = {k: (config.get("VpcConfig") or {}).get(k, []) for k in vpc}
        desired["VpcConfig"] = vpc
        changed = sorted(key for key in desired if current[key] != desired[key])
        if changed:

            def update() -> None:
                self.retry_iam(lambda: lam.update_function_configuration(FunctionName=name, **desired))
                self.wait_function()

            self.act(f"update Lambda function {name} configuration ({', '.join(changed)})", update)
        if code is None:
            self.out(f"[dry-run] would update the code of Lambda function {name} if the new bundle differs")
        elif base64.b64encode(hashlib.sha256(code).digest()).decode() != config.get("CodeSha256"):

            def update_code() -> None:
                lam.update_function_code(FunctionName=name, ZipFile=code, Architectures=[ARCHITECTURE])
                self.wait_function()

            self.act(f"update the code of Lambda function {name}", update_code)
        elif not changed:
            self.same(f"Lambda function {name}")

    def ensure_permission(self) -> None:
        target, lam = self.target, self.client("lambda")
        sid = target.names.statement_id
        statements = [s for s in self.function_policy()["Statement"] if s.get("Sid") == sid]
        expected_condition = {
            "ArnLike": {"AWS:SourceArn": target.bucket_arn},
            "StringEquals": {"AWS:SourceAccount": target.account},
        }
        if statements and _lower_keys(statements[0].get("Condition", {})) == _lower_keys(expected_condition):
            self.same(f"permission {sid} (s3.amazonaws.com may invoke {target.names.function})")
            return

        def add() -> None:
            if statements:
                lam.remove_permission(FunctionName=target.names.function, StatementId=sid)
            lam.add_permission(
                FunctionName=target.names.function,
                StatementId=sid,
                Action="lambda:InvokeFunction",
                Principal="s3.amazonaws.com",
                SourceArn=target.bucket_arn,
                SourceAccount=target.account,
            )

        self.act(
            f"allow s3.amazonaws.com to invoke {target.names.function} for {target.bucket_arn} (permission {sid})", add
        )

    def ensure_mapping(self, queue: str, queue_arn: str) -> None:
        lam, target = self.client("lambda"), self.target
        mappings = self.mappings(queue_arn)
        if not mappings:
            self.act(
                f"create the event source mapping {queue} -> {target.names.function} (ReportBatchItemFailures)",
                lambda: self.retry_iam(
                    lambda: lam.create_event_source_mapping(
                        EventSourceArn=queue_arn,
                        FunctionName=target.names.function,
                        BatchSize=BATCH_SIZE,
                        FunctionResponseTypes=["ReportBatchItemFailures"],
                        Enabled=True,
                    )
                ),
            )
            return
        mapping = mappings[0]
        if (
            mapping.get("FunctionResponseTypes") != ["ReportBatchItemFailures"]
            or mapping.get("BatchSize") != BATCH_SIZE
        ):
            self.act(
                f"update the event source mapping {mapping['UUID']}",
                lambda: lam.update_event_source_mapping(
                    UUID=mapping["UUID"], BatchSize=BATCH_SIZE, FunctionResponseTypes=["ReportBatchItemFailures"]
                ),
            )
        else:
            self.same(f"event source mapping {queue} -> {target.names.function}")

    def ensure_notification(self, ours: tuple[str, dict[str, Any]]) -> None:
        target = self.target
        current = self.notifications()
        merged = merged_notifications(current, target.names.notification_id, ours)
        if merged == _normalized_notifications(current):
            self.same(f"bucket notification {target.names.notification_id}")
            return
        kept = sum(
            1 for key in NOTIFICATION_LISTS for e in merged.get(key, []) if e.get("Id") != target.names.notification_id
        )
        self.act(
            f"put bucket notification {target.names.notification_id} on s3://{target.bucket} "
            f"({', '.join(NOTIFICATION_EVENTS)}, prefix {target.prefix!r}; {kept} other notification(s) kept)",
            lambda: self.put_notifications(merged),
        )


class Remover(Deployer):
    def run(self) -> int:
        target, lam = self.target, self.client("lambda")
        refused = 0
        self.out(f"removing the S3 sync of s3://{target.bucket}/{target.prefix}: function {target.names.function}")
        current = self.notifications()
        remaining = merged_notifications(current, target.names.notification_id, None)
        if remaining != _normalized_notifications(current):
            self.act(
                f"remove bucket notification {target.names.notification_id} from s3://{target.bucket} (others kept)",
                lambda: self.put_notifications(remaining),
            )
        function = self.get_function()
        for mapping in self.mappings() + self.mappings(target.cdn_queue_arn):
            self.act(
                f"delete the event source mapping {mapping['UUID']}",
                functools.partial(lam.delete_event_source_mapping, UUID=mapping["UUID"]),
            )
        if function is not None:
            sid = target.names.statement_id
            if any(s.get("Sid") == sid for s in self.function_policy()["Statement"]):
                self.act(
                    f"remove permission {sid} from {target.names.function}",
                    lambda: lam.remove_permission(FunctionName=target.names.function, StatementId=sid),
                )
            if self._ours(function.get("Tags", {})):
                self.act(
                    f"delete Lambda function {target.names.function}",
                    lambda: lam.delete_function(FunctionName=target.names.function),
                )
            else:
                self.out(f"left alone: Lambda function {target.names.function} was not made by ppc-create-s3-sync")
                refused += 1
        for name in (target.names.queue, target.names.dlq, target.names.cdn_queue):
            refused += self._remove_queue(name)
        if self.options.role_arn is None:
            refused += self._remove_role()
        else:
            self.out(f"left alone: role {self.options.role_arn} (given with --role-arn)")
        return 1 if refused else 0

    def _remove_queue(self, name: str) -> int:
        sqs = self.client("sqs")
        url = self.queue_url(name)
        if url is None:
            return 0
        if not self._ours(sqs.list_queue_tags(QueueUrl=url).get("Tags", {})):
            self.out(f"left alone: SQS queue {name} was not made by ppc-create-s3-sync")
            return 1
        self.act(f"delete SQS queue {name}", lambda: sqs.delete_queue(QueueUrl=url))
        return 0

    def _remove_role(self) -> int:
        iam, name = self.client("iam"), self.target.names.role
        if self.get_role() is None:
            return 0
        if not self._ours(self.role_tags()):
            self.out(f"left alone: IAM role {name} was not made by ppc-create-s3-sync")
            return 1
        inline = iam.list_role_policies(RoleName=name)["PolicyNames"]
        attached = iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]
        others = [p for p in inline if p != POLICY_NAME] + [p["PolicyArn"] for p in attached]
        if others:
            # Someone else gave the role more; deleting it would take that away too.
            self.out(f"left alone: IAM role {name} also has {', '.join(others)}")
            if POLICY_NAME in inline:
                self.act(
                    f"delete inline policy {POLICY_NAME} of IAM role {name}",
                    lambda: iam.delete_role_policy(RoleName=name, PolicyName=POLICY_NAME),
                )
            return 1

        def delete() -> None:
            if POLICY_NAME in inline:
                iam.delete_role_policy(RoleName=name, PolicyName=POLICY_NAME)
            iam.delete_role(RoleName=name)

        self.act(f"delete IAM role {name} and its inline policy {POLICY_NAME}", delete)
        return 0


def _policy_doc(document: Any) -> Any:
    """IAM answers policy documents as dicts (boto3 decodes them), or URL-encoded JSON elsewhere."""
    if isinstance(document, str):
        from urllib.parse import unquote

        return json.loads(unquote(document))
    return document


def _attribute(value: str | None) -> Any:
    """Queue attributes compare by meaning: JSON documents parsed, numbers as strings."""
    if value is None:
        return None
    try:
        parsed = json.loads(value)
    except ValueError:
        return value
    if isinstance(parsed, dict):
        return {k: str(v) if isinstance(v, int) else v for k, v in parsed.items()}
    return str(parsed)


def _lower_keys(condition: Mapping[str, Any]) -> dict[str, Any]:
    """Condition keys are case-insensitive (Lambda answers AWS:SourceArn for aws:SourceArn)."""
    return {op: {k.lower(): v for k, v in values.items()} for op, values in condition.items()}


# --- command lines ------------------------------------------------------------------------------


def _setting(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key.strip(), value.strip()


def _ids(text: str) -> tuple[str, ...]:
    return tuple(part for part in re.split(r"[\s,]+", text.strip()) if part)


def _deploy_parser(prog: str, description: str | None, create: bool) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("ini", help="the server's ini file (its [app:main] storage.* and cache.* settings)")
    parser.add_argument("--region", help="the bucket's region (default: the bucket's, as S3 reports it)")
    parser.add_argument("--function-name", help="default: ppc-s3-sync-<bucket>; names the role and queues too")
    parser.add_argument("--endpoint-url", help="send every AWS call here (a test server such as moto)")
    parser.add_argument("--role-arn", help="use this execution role instead of creating (or removing) one")
    parser.add_argument("--sqs", action="store_true", help="deliver events through an SQS queue with a DLQ")
    if create:
        parser.add_argument(
            "--cdn",
            action="store_true",
            help="purge the ini's CloudFront distribution (cdn.*): a delayed-flush queue and invalidation rights",
        )
    parser.add_argument("--dry-run", action="store_true", help="print every action and change nothing")
    if create:
        parser.add_argument("--zip", help="deploy this bundle instead of building one")
        parser.add_argument("--no-deps", action="store_true", help="build the bundle without pip (for tests)")
        parser.add_argument("--sql-driver", choices=sorted(SQL_DRIVERS), help="database driver to bundle")
        parser.add_argument("--lambda-dir", default=str(DEFAULT_LAMBDA_DIR), help=argparse.SUPPRESS)
        parser.add_argument(
            "--set",
            dest="settings",
            action="append",
            type=_setting,
            default=[],
            metavar="KEY=VALUE",
            help="a Lambda setting instead of the ini's, e.g. cache.url=ssm:/ppc/cache-url (empty value: drop it)",
        )
        parser.add_argument("--timeout", type=int, default=DEFAULT_TIMEOUT, help="seconds (default 60)")
        parser.add_argument("--memory", type=int, default=DEFAULT_MEMORY, help="MB (default 512)")
        parser.add_argument("--subnet-ids", type=_ids, default=(), help="run in these VPC subnets (SQL in a VPC)")
        parser.add_argument("--security-group-ids", type=_ids, default=(), help="with --subnet-ids")
    return parser


def _options(args: argparse.Namespace) -> Options:
    return Options(
        ini=args.ini,
        region=args.region,
        function_name=args.function_name,
        endpoint_url=args.endpoint_url,
        role_arn=args.role_arn,
        sqs=args.sqs,
        dry_run=args.dry_run,
        cdn=getattr(args, "cdn", False),
        zip=getattr(args, "zip", None),
        no_deps=getattr(args, "no_deps", False),
        sql_driver=getattr(args, "sql_driver", None),
        lambda_dir=getattr(args, "lambda_dir", str(DEFAULT_LAMBDA_DIR)),
        settings=dict(getattr(args, "settings", [])),
        timeout=getattr(args, "timeout", DEFAULT_TIMEOUT),
        memory=getattr(args, "memory", DEFAULT_MEMORY),
        subnet_ids=getattr(args, "subnet_ids", ()),
        security_group_ids=getattr(args, "security_group_ids", ()),
    )


def _run(prog: str, action: Callable[[], int]) -> int:
    try:
        return action()
    except PypicloudLiteError as exc:
        print(f"{prog}: {exc.message}", file=sys.stderr)
        return 1
    except Exception as exc:
        if not _is_client_error(exc):
            raise
        print(f"{prog}: AWS refused: {exc}", file=sys.stderr)
        return 1


def build_main(argv: list[str] | None = None) -> int:
    """ppc-build-lambda-bundle: zip the S3 sync handler with what the ini's cache needs."""
    parser = argparse.ArgumentParser(prog="ppc-build-lambda-bundle", description=build_main.__doc__)
    parser.add_argument("ini", help="the server's ini file (its cache.backend and cache.url choose the dependencies)")
    parser.add_argument("-o", "--output", default=DEFAULT_BUNDLE, help=f"the zip to write (default {DEFAULT_BUNDLE})")
    parser.add_argument("--no-deps", action="store_true", help="skip pip: only the handler and pypicloud_lite")
    parser.add_argument("--sql-driver", choices=sorted(SQL_DRIVERS), help="database driver (default: from cache.url)")
    parser.add_argument("--lambda-dir", default=str(DEFAULT_LAMBDA_DIR), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    def build() -> int:
        settings = load_settings(lambda_settings(read_ini(args.ini)), environ={})
        bundle = build_bundle(
            settings,
            Path(args.output),
            lambda_dir=Path(args.lambda_dir),
            deps=not args.no_deps,
            sql_driver=args.sql_driver,
        )
        print(f"{bundle.path}: {bundle.size} bytes ({bundle.size / 1e6:.1f} MB), cache {bundle.cache_backend}")
        if bundle.requirements:
            print(f"dependencies: {' '.join(bundle.requirements)} (boto3/botocore come with the runtime)")
        print(f"handler: {HANDLER} (runtime {RUNTIME}, {ARCHITECTURE})")
        return 0

    return _run("ppc-build-lambda-bundle", build)


def create_main(argv: list[str] | None = None) -> int:
    """ppc-create-s3-sync: deploy the Lambda that applies the bucket's S3 events to the cache."""
    args = _deploy_parser("ppc-create-s3-sync", create_main.__doc__, create=True).parse_args(argv)
    return _run("ppc-create-s3-sync", lambda: Creator(_options(args)).run())


def remove_main(argv: list[str] | None = None) -> int:
    """ppc-remove-s3-sync: remove what ppc-create-s3-sync made for the ini's bucket, and nothing else."""
    args = _deploy_parser("ppc-remove-s3-sync", remove_main.__doc__, create=False).parse_args(argv)
    return _run("ppc-remove-s3-sync", lambda: Remover(_options(args)).run())


if __name__ == "__main__":
    sys.exit(create_main())
