"""HTTP Basic authentication against the access backend; authorization stays in the views."""

from __future__ import annotations

from pyramid.authentication import extract_http_basic_credentials
from pyramid.request import Request
from pyramid.security import Allowed, Denied

from pypicloud_lite.access.base import AccessBackend, Identity


class BasicAuthPolicy:
    """Pyramid security policy: `request.identity` is the Identity the Basic credentials prove."""

    def __init__(self, access: AccessBackend) -> None:
        self.access = access

    def identity(self, request: Request) -> Identity | None:
        credentials = extract_http_basic_credentials(request)
        if credentials is None:
            return None
        return self.access.authenticate(credentials.username, credentials.password)

    def authenticated_userid(self, request: Request) -> str | None:
        identity = request.identity
        return identity.username if identity else None

    def permits(self, request: Request, context: object, permission: str) -> Allowed | Denied:
        identity = request.identity
        if permission == "admin" and identity is not None and identity.is_admin:
            return Allowed("admin")
        return Denied(f"{permission!r} needs an admin")

    def remember(self, request: Request, userid: str, **kw: object) -> list[tuple[str, str]]:
        return []

    def forget(self, request: Request, **kw: object) -> list[tuple[str, str]]:
        return []
