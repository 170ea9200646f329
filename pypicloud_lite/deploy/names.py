"""The names of what ppc-create-s3-sync creates, and the account, region and bucket they are created in."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from pypicloud_lite.deploy import DeployError

_FUNCTION_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}\Z")


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
