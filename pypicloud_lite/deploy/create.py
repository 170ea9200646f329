"""ppc-create-s3-sync's work: make (or bring up to date) the role, queues, function, permission and notification."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pypicloud_lite.deploy import DeployError
from pypicloud_lite.deploy.aws import POLICY_NAME, TAG_KEY, Deployer, error_code
from pypicloud_lite.deploy.bundle import ARCHITECTURE, DEFAULT_BUNDLE, HANDLER, RUNTIME, build_bundle
from pypicloud_lite.deploy.policies import (
    NOTIFICATION_EVENTS,
    NOTIFICATION_LISTS,
    merged_notifications,
    normalized_notifications,
    notification_entry,
    queue_policy,
    role_policy,
    trust_policy,
)
from pypicloud_lite.deploy.settings import redacted_settings

# Lambda's limits: a zip uploaded directly, and all environment variables together.
MAX_DIRECT_UPLOAD = 50 * 1000 * 1000
MAX_ENVIRONMENT = 4096
CDN_QUEUE_RETENTION = 24 * 3600
BATCH_SIZE = 10
MAX_RECEIVE_COUNT = 5
DLQ_RETENTION = 14 * 24 * 3600
QUEUE_RETENTION = 4 * 24 * 3600


def _tags_list(bucket: str) -> list[dict[str, str]]:
    return [{"Key": TAG_KEY, "Value": bucket}]


class Creator(Deployer):
    """Creates what is missing, updates what differs, and says "unchanged" for the rest: safe to run again."""

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
        if options.dry_run:
            self._describe(policy)
        role_arn = options.role_arn or self.ensure_role(policy)
        if options.role_arn:
            self.out(f"using role {options.role_arn} as it is (it needs the permissions --dry-run prints without it)")
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
        notification = notification_entry(target, destination, sqs=options.sqs)
        if options.dry_run:
            self.out(
                f"[dry-run] bucket notification ({notification[0]}): " + json.dumps(notification[1], sort_keys=True)
            )
        self.ensure_notification(notification)
        return 0

    def _describe(self, policy: dict[str, Any]) -> None:
        """What the function would be: its settings (secrets redacted), configuration, queues and role policy."""
        options, names = self.options, self.target.names
        shown = json.dumps(redacted_settings(self.chosen), sort_keys=True)
        self.out(f"[dry-run] function settings (PYPICLOUD_SETTINGS, secrets redacted): {shown}")
        self.out(
            f"[dry-run] function: {names.function} ({RUNTIME}, {ARCHITECTURE}, {HANDLER}, {options.memory} MB, "
            f"{options.timeout} s), role {options.role_arn or names.role}"
            + (f", subnets {','.join(options.subnet_ids)}" if options.subnet_ids else "")
        )
        queues = [f"events {names.queue}"] if options.sqs else []
        queues += [f"CDN flush {names.cdn_queue}"] if options.cdn else []
        if queues:
            self.out(f"[dry-run] queues: {', '.join(queues)}; dead letters {names.dlq}")
        self.out("[dry-run] role policy: " + json.dumps(policy, sort_keys=True))

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
            if error_code(exc) != "NoSuchEntity":
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
        if merged == normalized_notifications(current):
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
