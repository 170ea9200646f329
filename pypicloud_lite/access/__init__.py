"""Access backends: authentication and per-project permissions."""

from __future__ import annotations

from pypicloud_lite.access.base import AccessBackend, Identity

__all__ = ["AccessBackend", "Identity"]
