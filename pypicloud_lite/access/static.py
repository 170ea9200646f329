"""StaticAccess: users and admins from the ini, plus a generated first admin for `make run`."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from pypicloud_lite.access.base import AccessBackend, Identity
from pypicloud_lite.access.passwords import generate_password, hash_password, verify_password
from pypicloud_lite.config import AuthSettings
from pypicloud_lite.errors import ConfigError

logger = logging.getLogger(__name__)

BOOTSTRAP_ADMIN = "admin"


@dataclass(frozen=True)
class GeneratedAdmin:
    """A first admin created at this start; the password exists nowhere else and is shown once."""

    username: str
    password: str
    path: Path


def load_bootstrap_admin(path: Path) -> tuple[tuple[str, str], GeneratedAdmin | None]:
    """Read `user:hash` from the file, creating it with a random password on first start."""
    try:
        line = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        password = generate_password()
        hashed = hash_password(password)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            # Another worker created it first; use theirs.
            return load_bootstrap_admin(path)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(f"{BOOTSTRAP_ADMIN}:{hashed}\n")
        logger.info("created the first admin user %r, stored hashed in %s", BOOTSTRAP_ADMIN, path)
        return (BOOTSTRAP_ADMIN, hashed), GeneratedAdmin(BOOTSTRAP_ADMIN, password, path)
    username, sep, hashed = line.partition(":")
    if not sep or not hashed.startswith("$argon2"):
        raise ConfigError(f"setting 'auth.bootstrap_admin_file': {path} does not hold 'user:<argon2 hash>'")
    return (username, hashed), None


class StaticAccess(AccessBackend):
    def __init__(self, users: dict[str, str], admins: frozenset[str]) -> None:
        self._users = users
        self._admins = admins

    @classmethod
    def from_settings(cls, settings: AuthSettings) -> tuple[StaticAccess, GeneratedAdmin | None]:
        users = dict(settings.users)
        admins = set(settings.admins)
        generated = None
        if settings.bootstrap_admin_file is not None:
            (name, hashed), generated = load_bootstrap_admin(settings.bootstrap_admin_file)
            users.setdefault(name, hashed)
            admins.add(name)
        return cls(users, frozenset(admins)), generated

    def authenticate(self, username: str, password: str) -> Identity | None:
        if verify_password(self._users.get(username), password):
            return Identity(username, is_admin=username in self._admins)
        return None

    def can_read(self, identity: Identity | None, project: str) -> bool:
        return True

    def can_write(self, identity: Identity | None, project: str) -> bool:
        return identity is not None
