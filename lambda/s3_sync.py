"""The S3 sync Lambda's entry module (handler `s3_sync.handler`); the handler is pypicloud_lite.s3_sync_handler.

The bundle puts this file at the zip's root, since Lambda imports its handler's module from there.
"""

from __future__ import annotations

from pypicloud_lite.s3_sync_handler import handler, runtime

__all__ = ["handler", "runtime"]
