"""Audit records from requests: the caller and its address, added to what a view changed."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pyramid.request import Request

from pypicloud_lite.access.base import Identity, Token
from pypicloud_lite.service import UploadResult
from pypicloud_lite.web.services import services


def client_address(environ: dict[str, Any]) -> str | None:
    """The client's address: REMOTE_ADDR, which a trusted proxy's forwarded address replaces before the app
    runs (waitress's `trusted_proxy`), never an X-Forwarded-For header the client could write itself."""
    address: str | None = environ.get("REMOTE_ADDR")
    return address


def audit(
    request: Request,
    action: str,
    project: str | None = None,
    target: str | None = None,
    detail: str | None = None,
    *,
    identity: Identity | None = None,
) -> None:
    """Record `action` by the request's caller (or `identity`, when the view already holds it)."""
    who = identity if identity is not None else request.identity
    if who is not None and who.token is not None:
        token = f"with token {who.token.token_id}"
        detail = f"{detail} ({token})" if detail else token
    app = services(request)
    app.access.audit.record(
        action,
        who.username if who else None,
        client_address(request.environ),
        project=project,
        target=target,
        detail=detail,
    )


def audit_upload(request: Request, identity: Identity, result: UploadResult) -> None:
    """A new file (an identical re-upload changes nothing and is not recorded), from twine or the UI."""
    if not result.created:
        return
    detail = f"{result.file.version}, {result.file.size} bytes, sha256 {result.file.sha256}"
    if identity.token is not None and identity.token.publisher is not None:
        token = services(request).access.get_token(identity.token.token_id)
        minted = token.description if token else "token since revoked"
        detail += f", by trusted publisher {identity.token.publisher} ({minted})"
    audit(request, "file.upload", result.file.project, result.file.filename, detail, identity=identity)


# What a record's detail says, the same from the JSON API and from the UI's forms.


def status_detail(status: str, reason: str | None) -> str:
    return f"{status}: {reason}" if reason else status


def token_detail(token: Token) -> str:
    scope = ", ".join(sorted(token.projects)) if token.projects is not None else "every project"
    expires = token.expires.isoformat() if token.expires else "never"
    access = "read-only" if token.read_only else "read-write"
    return f"for {token.username}, {access}, {scope}, expires {expires}"


def user_change_detail(password: str | None, admin: bool | None) -> str:
    changes = (["password"] if password is not None else []) + ([f"admin={admin}"] if admin is not None else [])
    return ", ".join(changes) or "nothing"


def members_detail(members: tuple[str, ...] | list[str]) -> str:
    return "members: " + (", ".join(members) or "none")


def exemption_detail(reason: str, until: datetime | None) -> str:
    return f"until {until.isoformat() if until else 'no expiry'}: {reason}"
