"""The uploader every app and server of the tests knows, Basic credentials, the app's services, missing services."""

from __future__ import annotations

import base64
import os
from typing import Any

import pytest

from pypicloud_lite.access.passwords import hash_password
from pypicloud_lite.web.services import REGISTRY_KEY, AppServices

UPLOADER = "uploader"
UPLOADER_PASSWORD = "correct horse battery staple"
# Hashing once per session keeps the suite fast; argon2 is deliberately slow.
UPLOADER_HASH = hash_password(UPLOADER_PASSWORD)


def require_or_skip(reason: str) -> None:
    """Skip for a missing service, or fail when CI demands every service (PPC_REQUIRE_SERVICES=1)."""
    if os.environ.get("PPC_REQUIRE_SERVICES") == "1":
        pytest.fail(f"required service missing: {reason}")
    pytest.skip(reason)


def basic_auth(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def services(app: Any) -> AppServices:
    found: AppServices = app.registry[REGISTRY_KEY]
    return found
