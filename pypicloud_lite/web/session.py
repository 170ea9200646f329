"""The web UI's signed session cookie: who logged in, the CSRF token and flash messages.

A signed cookie alone cannot be taken back: a copy would keep working after logout.
So each login gets a random session id and its start time in the cookie, and the
server refuses (see SessionLedger and web/security.py) a session that
- was logged out: logout writes the id under ENDED_PREFIX in storage, which every
  server process checks (storage, because it is the one thing all processes share
  whatever the access and cache backends are, as for the secret below);
- is older than `web.session_absolute_max_age`, however much it is used (besides
  the idle limit `web.session_max_age`, which the signed cookie itself carries);
- names a user whose password changed since (the cookie holds a fingerprint of the
  password hash: every session of that user ends, on every process).

The secret comes from `web.session_secret`. Without it, a secret is generated once
and kept in storage at SECRET_STORAGE_KEY, so every server process on the same storage
signs and checks cookies alike (a per-process secret would log users out whenever
a request reached another worker). Set the setting in production: whoever can read
the storage could otherwise forge a session.
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
import tempfile
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

from pyramid.interfaces import ISession
from pyramid.request import Request
from pyramid.session import SignedCookieSessionFactory

from pypicloud_lite.config import WebSettings
from pypicloud_lite.errors import PypicloudLiteError
from pypicloud_lite.storage.base import Storage

logger = logging.getLogger(__name__)

COOKIE_NAME = "ppc_session"
# Not a package key: reload and the simple API never see it (parse_key skips it).
SECRET_STORAGE_KEY = "_ppc/session-secret"  # noqa: S105 - a storage key, not a secret
USER_KEY = "user"
FINGERPRINT_KEY = "fp"
SESSION_ID_KEY = "sid"
STARTED_KEY = "started"
# One empty object per logged-out session, named by its id; swept once past the absolute lifetime.
ENDED_PREFIX = "_ppc/sessions/ended/"
_SESSION_ID = re.compile(r"^[A-Za-z0-9_-]{32}\Z")


def wall_clock() -> float:
    """Seconds since the epoch: session start times are compared across processes (and tests move it)."""
    return time.time()


def new_session_id() -> str:
    return secrets.token_urlsafe(24)


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
        # By whether the cookie is Secure: both sign alike, so either reads the other's cookies.
        self._factories: dict[bool, Any] | None = None
        self._lock = threading.Lock()

    def _make(self, secret: str, secure: bool) -> Any:
        return SignedCookieSessionFactory(
            secret,
            cookie_name=COOKIE_NAME,
            secure=secure,
            httponly=True,
            samesite="Lax",
            timeout=self.settings.session_max_age,
            # Idle sessions expire; active ones are re-signed at most every few minutes.
            reissue_time=min(300, self.settings.session_max_age // 2),
            salt="pypicloud_lite.session.",
        )

    def __call__(self, request: Request) -> ISession:
        if self._factories is None:
            with self._lock:
                if self._factories is None:
                    secret = self.settings.session_secret or stored_secret(self.storage)
                    self._factories = {secure: self._make(secret, secure) for secure in (False, True)}
        # Secure whenever the request came over HTTPS (waitress sets the scheme from a trusted
        # proxy's headers), so a login over HTTPS never leaks its cookie to plain HTTP.
        secure = self.settings.session_cookie_secure or request.scheme == "https"
        return self._factories[secure](request)


class SessionLedger:
    """Which sessions were logged out, as every server process sees it (see the module's docstring).

    A logged-out id is remembered in the process too: it never comes back, so only ids
    not yet known to be ended cost a storage lookup (one per UI request with a cookie).
    """

    def __init__(self, storage: Storage, absolute_max_age: int, max_remembered: int = 10_000) -> None:
        self.storage = storage
        self.absolute_max_age = absolute_max_age
        self.max_remembered = max_remembered
        self._ended: OrderedDict[str, None] = OrderedDict()
        self._next_sweep = 0.0
        self._lock = threading.Lock()

    @staticmethod
    def now() -> float:
        return wall_clock()

    def expired(self, started: object) -> bool:
        """True unless `started` is a start time within the absolute lifetime."""
        if not isinstance(started, int | float) or isinstance(started, bool):
            return True
        return not 0 <= wall_clock() - started <= self.absolute_max_age

    def is_ended(self, session_id: object) -> bool:
        if not isinstance(session_id, str) or not _SESSION_ID.match(session_id):
            return True
        with self._lock:
            if session_id in self._ended:
                return True
        if self.storage.stat(ENDED_PREFIX + session_id) is None:
            return False
        self._remember(session_id)
        return True

    def end(self, session_id: object) -> None:
        if not isinstance(session_id, str) or not _SESSION_ID.match(session_id):
            return
        self.storage.put_bytes(ENDED_PREFIX + session_id, b"")
        self._remember(session_id)
        self._sweep()

    def _remember(self, session_id: str) -> None:
        with self._lock:
            self._ended[session_id] = None
            while len(self._ended) > self.max_remembered:
                self._ended.popitem(last=False)

    def _sweep(self) -> None:
        # Past the absolute lifetime the cookie is refused anyway: its record can go. At most
        # hourly per process, on logout only, so the listing stays off every other path.
        now = wall_clock()
        with self._lock:
            if now < self._next_sweep:
                return
            self._next_sweep = now + 3600
        cutoff = now - self.absolute_max_age - 3600
        try:
            stale = [o.key for o in self.storage.list(ENDED_PREFIX) if o.last_modified.timestamp() < cutoff]
            for key in stale:
                self.storage.delete(key)
        except PypicloudLiteError:
            logger.warning("could not sweep ended sessions under %s", ENDED_PREFIX, exc_info=True)


def fingerprint(password_hash: str | None) -> str:
    """Changes with the password: a password change (or reset) ends the user's other sessions."""
    return hashlib.sha256((password_hash or "").encode()).hexdigest()[:16]


def has_session_cookie(request: Request) -> bool:
    return COOKIE_NAME in request.cookies
