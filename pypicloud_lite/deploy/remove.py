"""ppc-remove-s3-sync's work: remove what ppc-create-s3-sync made for a bucket (its tag says so), and nothing else."""

from __future__ import annotations

import functools

from pypicloud_lite.deploy.aws import POLICY_NAME, Deployer
from pypicloud_lite.deploy.policies import merged_notifications, normalized_notifications


class Remover(Deployer):
    """Removes only what carries our tag for this bucket; exits 1 when something was left alone."""

    def run(self) -> int:
        target, lam = self.target, self.client("lambda")
        refused = 0
        self.out(f"removing the S3 sync of s3://{target.bucket}/{target.prefix}: function {target.names.function}")
        current = self.notifications()
        remaining = merged_notifications(current, target.names.notification_id, None)
        if remaining != normalized_notifications(current):
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
