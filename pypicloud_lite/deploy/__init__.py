"""Build the S3 sync Lambda's bundle and deploy (or remove) it with its role, queues and bucket notification.

One module per job: `bundle` (the zip), `settings` (what the Lambda gets), `names` (what is created),
`policies` (IAM, SQS and notification documents), `aws` / `create` / `remove` (the AWS calls).
The command lines are pypicloud_lite/scripts/lambda_deploy.py.
"""

from __future__ import annotations

from pypicloud_lite.errors import PypicloudLiteError


class DeployError(PypicloudLiteError):
    """The bundle cannot be built, or the account is not in a state this command may change."""
