"""What AWS errors say about the server's credentials: missing, incomplete, unknown, wrong, expired or refused."""

from __future__ import annotations

from botocore.exceptions import ClientError, CredentialRetrievalError, NoCredentialsError, PartialCredentialsError

from pypicloud_lite.errors import BackendCredentialsError

# Where boto3 looks, for the message of credentials it did not find.
_CHAIN = "the environment, the shared credentials and config files, the container or instance role"
# `ppc-make-config --iam-policy` prints the policy the servers need.
_POLICY_HINT = (
    "check the IAM policy (ppc-make-config --iam-policy prints what the server needs), bucket and KMS key policy"
)
# AWS's error codes (S3's, DynamoDB's, and STS-style services') by what they say about the credentials.
_REFUSALS: tuple[tuple[frozenset[str], str], ...] = (
    (
        frozenset({"InvalidAccessKeyId", "UnrecognizedClientException", "InvalidClientTokenId"}),
        "the access key ID is not known to AWS (deleted, deactivated, or of another partition)",
    ),
    (
        frozenset({"SignatureDoesNotMatch", "InvalidSignatureException"}),
        "the secret access key does not match the access key ID",
    ),
    (
        frozenset({"ExpiredToken", "ExpiredTokenException", "TokenRefreshRequired", "InvalidToken"}),
        "the session credentials have expired or their token is invalid",
    ),
    (
        frozenset({"RequestTimeTooSkewed", "RequestExpired"}),
        "the server's clock is too far from AWS's: the request's signing time is refused",
    ),
    (
        frozenset({"AccessDenied", "AccessDeniedException", "AllAccessDisabled", "KMS.AccessDeniedException"}),
        f"the credentials are not allowed to do this; {_POLICY_HINT}",
    ),
    # S3's answer to a HEAD, which has no body to carry a code.
    (frozenset({"403"}), f"AWS refused them (403): unknown, wrong, expired, or not allowed to do this; {_POLICY_HINT}"),
)


def error_code(exc: BaseException) -> str:
    """The AWS error code of botocore's ClientError, or the class name of botocore's other errors."""
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", "")) or "ClientError"
    return exc.__class__.__name__


def _cause(exc: BaseException) -> BaseException:
    """pynamodb wraps botocore's error (its `cause`); botocore's own errors are their own cause."""
    cause = getattr(exc, "cause", None)
    return cause if isinstance(cause, BaseException) else exc


def credentials_problem(exc: BaseException) -> str | None:
    """What is wrong with the credentials according to `exc` (botocore's or pynamodb's error), or None when
    the error is not about them."""
    exc = _cause(exc)
    if isinstance(exc, NoCredentialsError):
        return f"no AWS credentials were found (boto3 looks in {_CHAIN})"
    if isinstance(exc, PartialCredentialsError | CredentialRetrievalError):
        return f"the AWS credentials are incomplete or could not be fetched ({exc})"
    if not isinstance(exc, ClientError):
        return None
    code = error_code(exc)
    return next((problem for codes, problem in _REFUSALS if code in codes), None)


def credentials_error(exc: BaseException, service: str, what: str) -> BackendCredentialsError | None:
    """The error to raise for `exc` when it is about the credentials (None otherwise); `what` names the attempt."""
    problem = credentials_problem(exc)
    if problem is None:
        return None
    return BackendCredentialsError(
        f"AWS credentials problem with {service} ({error_code(_cause(exc))}) on {what}: {problem}."
    )
