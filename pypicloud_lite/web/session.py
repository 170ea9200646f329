"""The web UI's signed session cookie: who logged in, the CSRF token and flash messages.

The secret comes from `web.session_secret`. Without it, a secret is generated once
and kept in storage at SECRET_STORAGE_KEY, so every server process on the same storage
signs and checks cookies alike (a per-process secret would log users out whenever
a request reached another worker). Set the setting in production: whoever can read
the storage could otherwise forge a session.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import tempfile
import threading
from pathlib import Path
from typing import Any

from pyramid.interfaces import ISession
from pyramid.request import Request
from pyramid.session import SignedCookieSessionFactory

from pypicloud_lite.config import WebSettings
from pypicloud_lite.storage.base import Storage

logger = logging.getLogger(__name__)

COOKIE_NAME = "ppc_session"
# Not a package key: reload and the simple API never see it (parse_key skips it).
SECRET_STORAGE_KEY = "_ppc/session-secret"  # noqa: S105 - a storage key, not a secret
USER_KEY = "user"
FINGERPRINT_KEY = "fp"


def stored_secret(storage: Storage) -> str:
    """The secret kept in storage, created by whichever process asks first."""
    existing = _read(storage)
    if existing:
        return existing
    with tempfile.TemporaryDirectory(prefix="ppc-secret-") as folder:
        path = Path(folder) / "secret"
        path.write_text(secrets.token_urlsafe(48), encoding="ascii")
        # put_new is a conditional create: of two racing processes, both end up with the winner's.
        if storage.put_new(SECRET_STORAGE_KEY, path):
            logger.warning(
                "web.session_secret is unset: generated one and stored it in storage at %s", SECRET_STORAGE_KEY
            )
    found = _read(storage)
    if not found:
        raise RuntimeError(f"could not read back the session secret from storage key {SECRET_STORAGE_KEY!r}")
    return found


def _read(storage: Storage) -> str | None:
    if storage.stat(SECRET_STORAGE_KEY) is None:
        return None
    with storage.open(SECRET_STORAGE_KEY) as fh:
        return fh.read().decode("ascii").strip() or None


class LazySessionFactory:
    """A Pyramid session factory that resolves its secret on first use, not at start-up.

    Start-up then never depends on storage being reachable; only a request that
    uses the session does.
    """

    def __init__(self, settings: WebSettings, storage: Storage) -> None:
        self.settings = settings
        self.storage = storage
        self._factory: Any = None
        self._lock = threading.Lock()

    def __call__(self, request: Request) -> ISession:
        if self._factory is None:
            with self._lock:
                if self._factory is None:
                    secret = self.settings.session_secret or stored_secret(self.storage)
                    self._factory = SignedCookieSessionFactory(
                        secret,
                        cookie_name=COOKIE_NAME,
                        secure=self.settings.session_cookie_secure,
                        httponly=True,
                        samesite="Lax",
                        timeout=self.settings.session_max_age,
                        # Idle sessions expire; active ones are re-signed at most every few minutes.
                        reissue_time=min(300, self.settings.session_max_age // 2),
                        salt="pypicloud_lite.session.",
                    )
        return self._factory(request)


def fingerprint(password_hash: str | None) -> str:
    """Changes with the password: a password change (or reset) ends the user's other sessions."""
    return hashlib.sha256((password_hash or "").encode()).hexdigest()[:16]


def has_session_cookie(request: Request) -> bool:
    return COOKIE_NAME in request.cookies
