"""What creating and removing have in common: options, clients, lookups, printing (or only printing) each action."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pypicloud_lite.config import read_ini
from pypicloud_lite.deploy import DeployError
from pypicloud_lite.deploy.names import Names, Target
from pypicloud_lite.deploy.settings import lambda_settings, validated_settings

# What marks a resource as made by ppc-create-s3-sync (for this bucket): only those are changed or removed.
TAG_KEY = "pypicloud_lite:s3-sync"
POLICY_NAME = "ppc-s3-sync"

# IAM is eventually consistent: a role created a moment ago may not be assumable yet.
IAM_PROPAGATION_SECONDS = 90


def error_code(exc: BaseException) -> str:
    """The AWS error code of a botocore ClientError ("" for anything else)."""
    response = getattr(exc, "response", None)
    return str(response.get("Error", {}).get("Code", "")) if isinstance(response, dict) else ""


# What AWS answers when asked about a function or a queue that does not exist.
_NO_FUNCTION = ("ResourceNotFoundException",)
_NO_QUEUE = ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist")


def unless_missing(codes: tuple[str, ...], call: Callable[[], Any]) -> Any:
    """`call()`, or None where AWS answers one of `codes` (the resource does not exist)."""
    try:
        return call()
    except Exception as exc:
        if error_code(exc) in codes:
            return None
        raise


def is_client_error(exc: BaseException) -> bool:
    from botocore.exceptions import ClientError

    return isinstance(exc, ClientError)


@dataclass(frozen=True)
class Options:
    """The command line of ppc-create-s3-sync or ppc-remove-s3-sync (remove leaves the create-only ones at defaults)."""

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
            if is_client_error(exc):
                raise DeployError(f"cannot read bucket {bucket}: {error_code(exc) or exc}") from exc
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
        iam = self.client("iam")
        role: dict[str, Any] | None = unless_missing(
            ("NoSuchEntity",), lambda: iam.get_role(RoleName=self.target.names.role)["Role"]
        )
        return role

    def role_tags(self) -> dict[str, str]:
        tags = self.client("iam").list_role_tags(RoleName=self.target.names.role)["Tags"]
        return {t["Key"]: t["Value"] for t in tags}

    def get_function(self) -> dict[str, Any] | None:
        lam = self.client("lambda")
        found: dict[str, Any] | None = unless_missing(
            _NO_FUNCTION, lambda: lam.get_function(FunctionName=self.target.names.function)
        )
        return found

    def function_policy(self) -> dict[str, Any]:
        lam = self.client("lambda")
        policy = unless_missing(_NO_FUNCTION, lambda: lam.get_policy(FunctionName=self.target.names.function)["Policy"])
        parsed: dict[str, Any] = json.loads(policy) if policy is not None else {"Statement": []}
        return parsed

    def queue_url(self, name: str) -> str | None:
        sqs = self.client("sqs")
        url = unless_missing(_NO_QUEUE, lambda: sqs.get_queue_url(QueueName=name)["QueueUrl"])
        return str(url) if url is not None else None

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
                    error_code(exc) != "InvalidParameterValueException"
                    or "role" not in message
                    or time.monotonic() > deadline
                ):
                    raise
                time.sleep(3)
