"""The one error hierarchy of pypicloud_lite; web/errors.py maps it to HTTP."""

from __future__ import annotations


class PypicloudLiteError(Exception):
    """Base class of every error the library raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigError(PypicloudLiteError):
    """A setting is missing or malformed; raised at start-up, naming the key."""


class InvalidUpload(PypicloudLiteError):
    """The upload is rejected as given (bad form, filename, digest or archive)."""


class FileExists(InvalidUpload):
    """A different file is already stored under this filename."""


class UploadTooLarge(InvalidUpload):
    """The upload exceeds the configured size limit."""


class NotFound(PypicloudLiteError):
    """The project, file or object does not exist."""


class BackendUnavailable(PypicloudLiteError):
    """Storage or cache cannot be reached right now; the caller may retry."""

    def __init__(self, message: str, retry_after: int = 5) -> None:
        super().__init__(message)
        self.retry_after = retry_after
