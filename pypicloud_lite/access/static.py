"""StaticAccess: users, groups, admins and per-package grants from the ini, plus a generated first admin."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import NoReturn

from pypicloud_lite.access.base import USER_NAME, AccessBackend, Group, Token, User
from pypicloud_lite.access.passwords import generate_password, hash_password
from pypicloud_lite.access.publishers import Publisher
from pypicloud_lite.config import AuthSettings
from pypicloud_lite.errors import ConfigError, ReadOnlyAccess
from pypicloud_lite.models import Grant
from pypicloud_lite.namespaces import Namespace

logger = logging.getLogger(__name__)

BOOTSTRAP_ADMIN = "admin"


@dataclass(frozen=True)
class GeneratedAdmin:
    """A first admin created at this start; the password exists nowhere else and is shown once."""

    username: str
    password: str
    path: Path | None  # None: stored in the access database


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
    if not sep or not USER_NAME.match(username) or not hashed.startswith("$argon2"):
        raise ConfigError(f"setting 'auth.bootstrap_admin_file': {path} does not hold 'user:<argon2 hash>'")
    return (username, hashed), None


class StaticAccess(AccessBackend):
    """Users, groups and grants from the ini: read-only at run time (tokens need the SQL backend)."""

    read_only = True

    def __init__(self, settings: AuthSettings, extra_admin: tuple[str, str] | None = None) -> None:
        super().__init__(settings)
        hashes = dict(settings.users)
        admins = set(settings.admins)
        if extra_admin is not None:
            hashes.setdefault(*extra_admin)
            admins.add(extra_admin[0])
        self._groups = {name: tuple(members) for name, members in settings.groups}
        member_of: dict[str, set[str]] = {}
        for group, members in self._groups.items():
            for member in members:
                member_of.setdefault(member, set()).add(group)
        self._users = {
            name: User(name, hashed, is_admin=name in admins, groups=frozenset(member_of.get(name, ())))
            for name, hashed in hashes.items()
        }
        self._grants: dict[str, list[Grant]] = {}
        for grant in settings.grants:
            self._grants.setdefault(grant.project, []).append(grant)

    @classmethod
    def from_settings(cls, settings: AuthSettings) -> tuple[StaticAccess, GeneratedAdmin | None]:
        generated = None
        extra = None
        if settings.bootstrap_admin_file is not None:
            extra, generated = load_bootstrap_admin(settings.bootstrap_admin_file)
        return cls(settings, extra), generated

    def get_user(self, name: str) -> User | None:
        return self._users.get(name)

    def list_users(self) -> list[User]:
        return sorted(self._users.values(), key=lambda u: u.name)

    def list_groups(self) -> list[Group]:
        return [Group(name, members) for name, members in sorted(self._groups.items())]

    def grants_for(self, project: str) -> list[Grant]:
        return self._grants.get(project, [])

    def list_grants(self) -> list[Grant]:
        return [grant for project in sorted(self._grants) for grant in self._grants[project]]

    def list_namespaces(self) -> list[Namespace]:
        return list(self.settings.namespaces)

    def get_token(self, token_id: str) -> Token | None:
        return None

    def list_tokens(self, username: str | None = None) -> list[Token]:
        return []

    def _read_only(self) -> NoReturn:
        raise ReadOnlyAccess(
            "Users, groups and permissions come from the config file (auth.backend = static) "
            "and cannot be changed at run time; edit the ini, or use auth.backend = sql."
        )

    def create_user(self, name: str, password: str, is_admin: bool = False) -> User:
        self._read_only()

    def update_user(self, name: str, password: str | None = None, is_admin: bool | None = None) -> User:
        self._read_only()

    def delete_user(self, name: str) -> None:
        self._read_only()

    def set_group(self, name: str, members: list[str]) -> Group:
        self._read_only()

    def claim_first_owner(self, project: str, username: str) -> bool:
        return False  # the ini cannot record owners: an upload is not refused for that

    def delete_group(self, name: str) -> None:
        self._read_only()

    def set_grant(self, project: str, kind: str, name: str, perms: str) -> Grant:
        self._read_only()

    def delete_grant(self, project: str, kind: str, name: str) -> None:
        self._read_only()

    def add_namespace(self, name: str, kind: str, owner: str) -> Namespace:
        self._read_only()

    def delete_namespace(self, name: str) -> None:
        self._read_only()

    def list_publishers(self, project: str | None = None) -> list[Publisher]:
        return []

    def add_publisher(self, publisher: Publisher) -> Publisher:
        self._read_only()

    def delete_publisher(self, publisher_id: str) -> None:
        self._read_only()

    def _save_token(self, token: Token) -> None:
        self._read_only()

    def _delete_token(self, token_id: str) -> bool:
        self._read_only()

    def _record_token_use(self, token_id: str, now: datetime, before: datetime) -> None:
        self._read_only()  # never reached: this backend has no tokens
