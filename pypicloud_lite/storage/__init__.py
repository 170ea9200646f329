"""Storage backends; build_storage picks one from the settings and imports it lazily."""

from __future__ import annotations

from pypicloud_lite.config import StorageSettings
from pypicloud_lite.storage.base import Storage, StoredObject

__all__ = ["Storage", "StoredObject", "build_storage"]


def build_storage(settings: StorageSettings) -> Storage:
    if settings.backend == "local":
        from pypicloud_lite.storage.local import LocalStorage

        assert settings.dir is not None
        return LocalStorage(settings.dir)
    if settings.backend == "s3":
        from pypicloud_lite.storage.s3 import S3Storage

        assert settings.s3 is not None
        return S3Storage.from_settings(settings.s3, settings.stream_files)
    raise ValueError(f"unknown storage backend {settings.backend!r}")
