"""Who is calling (HTTP Basic credentials, or the web UI's session cookie); what they may do is in permissions.py."""

from __future__ import annotations

from typing import Any

from pyramid.authentication import extract_http_basic_credentials
from pyramid.request import Request
from pyramid.security import Allowed, Denied

from pypicloud_lite.access.base import AccessBackend, Identity
from pypicloud_lite.errors import AuthenticationRequired
from pypicloud_lite.web.session import (
    FINGERPRINT_KEY,
    SESSION_ID_KEY,
    STARTED_KEY,
    USER_KEY,
    SessionLedger,
    fingerprint,
    has_session_cookie,
    new_session_id,
)

_IDENTITY_KEY = "ppc.identity"
_SESSION_IDENTITY_KEY = "ppc.session_identity"


def identify(environ: dict[str, Any], access: AccessBackend) -> Identity | None:
    """The Identity the request's Basic credentials prove, checked at most once per request.

    Pyramid asks the policy again on every `request.identity`; the answer is kept in the
    environ (with the header it was for), so a request costs one credential check however
    often it is asked, including when the simple fast path asked first.
    """
    header = environ.get("HTTP_AUTHORIZATION")
    known = environ.get(_IDENTITY_KEY)
    if known is not None and known[0] == header:
        found: Identity | None = known[1]
        return found
    credentials = extract_http_basic_credentials(Request(environ)) if header else None
    identity = None
    if credentials is not None:
        # REMOTE_ADDR, not X-Forwarded-For: that header is the client's to forge.
        identity = access.authenticate(credentials.username, credentials.password, environ.get("REMOTE_ADDR"))
    environ[_IDENTITY_KEY] = (header, identity)
    return identity


class BasicAuthPolicy:
    """Pyramid security policy: `request.identity` is the Identity the Basic credentials prove,
    or else the one the signed session cookie names (web UI logins).

    Basic credentials win: a client that sends them means them, whatever cookie it holds.
    """

    def __init__(self, access: AccessBackend, ledger: SessionLedger) -> None:
        self.access = access
        self.ledger = ledger

    def identity(self, request: Request) -> Identity | None:
        identity = identify(request.environ, self.access)
        if identity is None and request.authorization is None and has_session_cookie(request):
            # Kept for the request, as Basic identities are: one user lookup per request.
            if _SESSION_IDENTITY_KEY not in request.environ:
                request.environ[_SESSION_IDENTITY_KEY] = self._session_identity(request)
            session_identity: Identity | None = request.environ[_SESSION_IDENTITY_KEY]
            return session_identity
        return identity

    def _session_identity(self, request: Request) -> Identity | None:
        session = request.session
        name = session.get(USER_KEY)
        if not isinstance(name, str):
            return None
        # Ended on the server: too old however used (absolute lifetime), or logged out (on any process).
        if self.ledger.expired(session.get(STARTED_KEY)) or self.ledger.is_ended(session.get(SESSION_ID_KEY)):
            session.invalidate()
            return None
        # Looked up on every request, so a deleted user, a lost admin role or a new password
        # takes effect at once on every server process.
        user = self.access.get_user(name)
        if user is None or request.session.get(FINGERPRINT_KEY) != fingerprint(user.password_hash):
            request.session.invalidate()
            return None
        return Identity(user.name, is_admin=user.is_admin, groups=user.groups)

    def authenticated_userid(self, request: Request) -> str | None:
        identity = request.identity
        return identity.username if identity else None

    def permits(self, request: Request, context: object, permission: str) -> Allowed | Denied:
        identity = request.identity
        if permission == "admin" and identity is not None and identity.is_admin:
            return Allowed("admin")
        return Denied(f"{permission!r} needs an admin")

    def remember(self, request: Request, userid: str, **kw: object) -> list[tuple[str, str]]:
        """Log `userid` in to this browser session (the cookie is set by the session itself)."""
        user = self.access.get_user(userid)
        if user is None:
            return []
        # A fresh session on login: a session fixed before login must not carry over.
        request.session.invalidate()
        request.session[USER_KEY] = user.name
        request.session[FINGERPRINT_KEY] = fingerprint(user.password_hash)
        request.session[SESSION_ID_KEY] = new_session_id()
        request.session[STARTED_KEY] = self.ledger.now()
        return []

    def forget(self, request: Request, **kw: object) -> list[tuple[str, str]]:
        # Recorded before the cookie is cleared: a copy of it must stop working too.
        if has_session_cookie(request) and request.session.get(USER_KEY) is not None:
            self.ledger.end(request.session.get(SESSION_ID_KEY))
        request.session.invalidate()
        return []


def authenticated(request: Request) -> Identity | None:
    """The caller's identity; None when anonymous; 401 when credentials were sent but are wrong."""
    identity: Identity | None = request.identity
    if identity is None and request.authorization is not None:
        raise AuthenticationRequired("Invalid username, password or token.")
    return identity


def require_identity(request: Request, action: str) -> Identity:
    identity = authenticated(request)
    if identity is None:
        raise AuthenticationRequired(f"{action} needs credentials: give a username and password (or a token).")
    return identity


def known_username(environ: dict[str, Any]) -> str | None:
    """Who the request was from, as far as it was asked (for the access log): no credential is checked here."""
    for key in (_IDENTITY_KEY, _SESSION_IDENTITY_KEY):
        known = environ.get(key)
        identity = known[1] if isinstance(known, tuple) else known
        if isinstance(identity, Identity):
            return identity.username
    return None
