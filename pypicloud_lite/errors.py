"""The one error hierarchy of pypicloud_lite; web/errors.py maps it to HTTP."""

from __future__ import annotations


class PypicloudLiteError(Exception):
    """Base class of every error the library raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigError(PypicloudLiteError):
    """A setting is missing or malformed; raised at start-up, naming the key."""


class InvalidInput(PypicloudLiteError):
    """A request's input is malformed or not acceptable (400)."""


class InvalidUpload(InvalidInput):
    """The upload is rejected as given (bad form, filename, digest or archive)."""


class FileExists(InvalidUpload):
    """A different file is already stored under this filename."""


class FilenameReused(InvalidUpload):
    """A deleted file's name, with other bytes: a filename once used never comes back with other contents."""


class UploadTooLarge(InvalidUpload):
    """The upload exceeds the configured size limit."""


class NotFound(PypicloudLiteError):
    """The project, file or object does not exist."""


class AuthenticationRequired(PypicloudLiteError):
    """Credentials are needed and missing or wrong (401 with a Basic challenge)."""


class PermissionDenied(PypicloudLiteError):
    """The caller is known but may not do this (403)."""


class Conflict(PypicloudLiteError):
    """The change clashes with the current state (a user that exists, a project that is archived)."""


class ReadOnlyAccess(Conflict):
    """The access backend's data comes from the config file and cannot be changed at run time."""


class TooManyAttempts(PypicloudLiteError):
    """Too many failed logins for this user or client address; retry later."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class BackendUnavailable(PypicloudLiteError):
    """Storage or cache cannot be reached right now; the caller may retry."""

    def __init__(self, message: str, retry_after: int | None = 5) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class BackendCredentialsError(BackendUnavailable):
    """Storage or cache refuses the server's AWS credentials, or there are none: not an outage, and retrying
    will not help until someone fixes them (500, no Retry-After)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retry_after=None)


class UpstreamUnavailable(PypicloudLiteError):
    """No upstream index answered for a name this index does not hold (502: never 404, so clients do not move on)."""


class UpstreamBusy(UpstreamUnavailable):
    """Another request (in this or another server process) is still fetching it from upstream (503)."""
