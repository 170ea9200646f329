"""The AccessBackend interface: who is calling, and what they may do.

Backends only store users, groups, grants and tokens; the decisions (and the
credential cache and failed-login limiter) are made here, the same for all.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from pypicloud_lite.access.audit import AuditRecorder, LogOnlyAudit
from pypicloud_lite.access.passwords import verify_password
from pypicloud_lite.access.publishers import Publisher
from pypicloud_lite.access.throttle import FailureLimiter, VerifiedCache
from pypicloud_lite.config import AuthSettings
from pypicloud_lite.errors import InvalidInput, NotFound
from pypicloud_lite.models import Grant, utcnow
from pypicloud_lite.namespaces import Namespace, matching
from pypicloud_lite.naming import normalize

# A token's last use is written when the one recorded is older than this: pip's requests cost no write each.
TOKEN_USE_RESOLUTION = timedelta(minutes=1)
TOKEN_USERNAME = "__token__"  # noqa: S105 - the username PyPI-style tokens are sent under
_TOKEN = re.compile(r"^ppc_([0-9a-f]{16})_([0-9a-f]{48})\Z")
USER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_@+-]{0,99}\Z")


class Permission(StrEnum):
    READ = "r"
    WRITE = "w"
    DELETE = "d"  # delete files and versions, yank and unyank
    OWN = "o"  # manage the project's grants (its owners and maintainers)


# The two roles of PyPI: an owner may do anything to the project, a maintainer uploads.
OWNER_PERMS = "rwdo"
MAINTAINER_PERMS = "rw"
# A grant with one of these letters makes its project "kept": `default_write` no longer opens it.
_KEEPER_LETTERS = frozenset({Permission.WRITE.value, Permission.OWN.value})


@dataclass(frozen=True)
class TokenScope:
    """What a token narrows its user's rights to."""

    token_id: str
    projects: frozenset[str] | None  # None: every project
    read_only: bool
    # The trusted publisher that minted it (uploads with it are audited), or None.
    publisher: str | None = None

    def allows(self, project: str | None, permission: Permission) -> bool:
        if self.read_only and permission is not Permission.READ:
            return False
        return self.projects is None or (project is not None and project in self.projects)


@dataclass(frozen=True)
class Identity:
    username: str
    is_admin: bool = False
    groups: frozenset[str] = frozenset()
    token: TokenScope | None = None

    @property
    def principals(self) -> frozenset[str]:
        return frozenset({"everyone", "authenticated", f"user:{self.username}"} | {f"group:{g}" for g in self.groups})


ANONYMOUS_PRINCIPALS = frozenset({"everyone"})


@dataclass(frozen=True)
class User:
    name: str
    password_hash: str | None = field(repr=False)
    is_admin: bool = False
    groups: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Group:
    name: str
    members: tuple[str, ...]


@dataclass(frozen=True)
class Token:
    id: str
    username: str
    description: str
    projects: frozenset[str] | None
    read_only: bool
    created: datetime
    expires: datetime | None
    secret_hash: str = field(repr=False, default="")
    publisher: str | None = None
    last_used: datetime | None = None  # to within TOKEN_USE_RESOLUTION

    def expired(self, now: datetime) -> bool:
        return self.expires is not None and self.expires <= now


@dataclass(frozen=True)
class NewToken:
    """A token as created: `secret` is the whole token string, shown this once and stored only hashed."""

    token: Token
    secret: str


def _sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def check_user_name(name: str) -> str:
    if not USER_NAME.match(name) or name == TOKEN_USERNAME:
        raise InvalidInput(f"Invalid user or group name {name!r}: use letters, digits and _ @ + - (100 at most).")
    return name


def check_perms(perms: str) -> str:
    letters = "".join(p.value for p in Permission)
    perms = "".join(sorted(set(perms.lower()), key=letters.index)) if set(perms.lower()) <= set(letters) else ""
    if not perms:
        raise InvalidInput(
            "Permissions are one or more letters from 'rwdo' (read, write, delete, own): "
            f"an owner has {OWNER_PERMS!r}, a maintainer {MAINTAINER_PERMS!r}."
        )
    return perms


def keeps_project(grant: Grant) -> bool:
    """Whether this grant makes its project kept (owned or maintained): closed to `default_write`."""
    return bool(_KEEPER_LETTERS & set(grant.perms))


def is_owner_grant(grant: Grant) -> bool:
    return Permission.OWN.value in grant.perms


class AccessBackend(ABC):
    def __init__(self, settings: AuthSettings) -> None:
        self.settings = settings
        self._verified = VerifiedCache(settings.credential_cache_seconds)
        self._limiter = FailureLimiter(
            settings.max_failed_logins,
            settings.failed_login_window,
            address_limit=settings.max_failed_logins_per_address,
            max_backoff=settings.failed_login_max_backoff,
        )
        self.audit = AuditRecorder(LogOnlyAudit())

    # -- what each backend stores ------------------------------------------------

    read_only: bool = False

    @abstractmethod
    def get_user(self, name: str) -> User | None: ...

    @abstractmethod
    def list_users(self) -> list[User]: ...

    @abstractmethod
    def list_groups(self) -> list[Group]: ...

    @abstractmethod
    def grants_for(self, project: str) -> list[Grant]:
        """The explicit grants on one (normalized) project."""

    @abstractmethod
    def list_grants(self) -> list[Grant]: ...

    @abstractmethod
    def get_token(self, token_id: str) -> Token | None: ...

    @abstractmethod
    def list_tokens(self, username: str | None = None) -> list[Token]: ...

    @abstractmethod
    def create_user(self, name: str, password: str, is_admin: bool = False) -> User: ...

    @abstractmethod
    def update_user(self, name: str, password: str | None = None, is_admin: bool | None = None) -> User: ...

    @abstractmethod
    def delete_user(self, name: str) -> None: ...

    @abstractmethod
    def set_group(self, name: str, members: list[str]) -> Group: ...

    @abstractmethod
    def delete_group(self, name: str) -> None: ...

    @abstractmethod
    def set_grant(self, project: str, kind: str, name: str, perms: str) -> Grant: ...

    @abstractmethod
    def delete_grant(self, project: str, kind: str, name: str) -> None: ...

    @abstractmethod
    def list_namespaces(self) -> list[Namespace]:
        """Every PEP 752 namespace, sorted by name."""

    @abstractmethod
    def add_namespace(self, name: str, kind: str, owner: str) -> Namespace:
        """Reserve `name` for a user or group: InvalidInput, NotFound (no such owner) or Conflict (overlap)."""

    @abstractmethod
    def delete_namespace(self, name: str) -> None: ...

    @abstractmethod
    def list_publishers(self, project: str | None = None) -> list[Publisher]:
        """Trusted publishers, of one (normalized) project or of all, oldest first."""

    @abstractmethod
    def add_publisher(self, publisher: Publisher) -> Publisher:
        """Store a new publisher: Conflict when the project already has one with the same identity."""

    @abstractmethod
    def delete_publisher(self, publisher_id: str) -> None: ...

    @abstractmethod
    def _save_token(self, token: Token) -> None: ...

    @abstractmethod
    def _delete_token(self, token_id: str) -> bool: ...

    @abstractmethod
    def _record_token_use(self, token_id: str, now: datetime, before: datetime) -> None:
        """Set the token's last use to `now` unless it is already `before` or later (one conditional write)."""

    # -- authentication ----------------------------------------------------------

    def authenticate(self, username: str, password: str, client: str | None = None) -> Identity | None:
        """The identity these credentials prove, or None; TooManyAttempts after repeated failures."""
        # Failures count per (user, client) and per client, never per user alone: a guesser
        # elsewhere cannot lock the owner out. Every token arrives as user __token__: tokens
        # count by their id, so guessing at tokens cannot lock out every token user.
        throttle_key = username
        if username == TOKEN_USERNAME:
            match = _TOKEN.match(password)
            throttle_key = f"{TOKEN_USERNAME}:{match.group(1) if match else 'malformed'}"
        self._limiter.check(throttle_key, client)
        if username == TOKEN_USERNAME:
            identity = self._authenticate_token(password)
        else:
            identity = self._authenticate_password(username, password)
        if identity is None:
            self._limiter.failed(throttle_key, client)
            self.audit.record("login.failure", None, client, target=throttle_key)
        else:
            self._limiter.succeeded(throttle_key, client)
        return identity

    def _authenticate_password(self, username: str, password: str) -> Identity | None:
        # A name no user can have is never looked up (a NUL byte upsets PostgreSQL), but it
        # still costs the argon2 check that a wrong password costs.
        user = self.get_user(username) if USER_NAME.match(username) else None
        stored = user.password_hash if user else None
        key = (username, stored, _sha256(password))
        if user is None or stored is None or not self._verified.hit(key):
            # Unknown users are verified against a dummy hash: both failures cost one argon2 check.
            if not verify_password(stored, password) or user is None:
                return None
            self._verified.add(key)
        return Identity(user.name, is_admin=user.is_admin, groups=user.groups)

    def token_with_user(self, token_id: str) -> tuple[Token, User | None] | None:
        """The token with this id and its user as they are now (None: no such token)."""
        token = self.get_token(token_id)
        return None if token is None else (token, self.get_user(token.username))

    def _authenticate_token(self, raw: str) -> Identity | None:
        # Tokens are looked up on every request (one indexed read), so a revocation
        # takes effect at once on every server process.
        match = _TOKEN.match(raw)
        if not match:
            return None
        found = self.token_with_user(match.group(1))
        if found is None or not hmac.compare_digest(found[0].secret_hash, _sha256(match.group(2))):
            return None
        token, user = found
        now = utcnow()
        if user is None or token.expired(now):
            return None
        if token.last_used is None or now - token.last_used >= TOKEN_USE_RESOLUTION:
            self._record_token_use(token.id, now, now - TOKEN_USE_RESOLUTION)
        scope = TokenScope(token.id, token.projects, token.read_only, token.publisher)
        return Identity(user.name, is_admin=user.is_admin, groups=user.groups, token=scope)

    # -- authorization -----------------------------------------------------------

    def allowed(self, identity: Identity | None, project: str, permission: Permission) -> bool:
        if identity is not None and identity.token is not None and not identity.token.allows(project, permission):
            return False
        if identity is not None and identity.is_admin:
            return True
        principals = identity.principals if identity else ANONYMOUS_PRINCIPALS
        # Reads: grants add to `default_read`, so when it allows, no grant lookup (a query on
        # SQLAccess) is needed, which is every read on an index readable by everyone.
        if permission is Permission.READ and self.settings.default_read & principals:
            return True
        grants = self.grants_for(project)
        if any(permission in grant.perms and self._grantee(grant) in principals for grant in grants):
            return True
        # Writes: `default_write` opens only a project nobody keeps (no grant with 'w' or 'o'); once
        # a project has owners or maintainers, only grants let anyone else upload to it.
        return (
            permission is Permission.WRITE
            and not any(keeps_project(grant) for grant in grants)
            and bool(self.settings.default_write & principals)
        )

    def owners(self, project: str) -> list[Grant]:
        """The grants that make someone an owner of this (normalized) project."""
        return [grant for grant in self.grants_for(project) if is_owner_grant(grant)]

    @abstractmethod
    def claim_first_owner(self, project: str, username: str) -> bool:
        """Make `username`, a user of this backend, the owner of a project nobody owns yet (no user or group has
        the own letter on it): False when someone does, when there is no such user, or when grants are static."""

    @staticmethod
    def _grantee(grant: Grant) -> str:
        if grant.kind == "group" and grant.name in ("everyone", "authenticated"):
            return grant.name
        return f"{grant.kind}:{grant.name}"

    def reads_everything(self, identity: Identity | None) -> bool:
        """True when this caller may read every project, so listings need no filtering."""
        if identity is not None and identity.token is not None and identity.token.projects is not None:
            return False
        if identity is not None and identity.is_admin:
            return True
        return bool(self.settings.default_read & (identity.principals if identity else ANONYMOUS_PRINCIPALS))

    def readable(self, identity: Identity | None, projects: list[str]) -> set[str]:
        """Which of these projects the caller may read, without a query per project."""
        scope = identity.token.projects if identity is not None and identity.token is not None else None
        if identity is not None and identity.is_admin:
            readable = set(projects)
        else:
            principals = identity.principals if identity else ANONYMOUS_PRINCIPALS
            if self.settings.default_read & principals:
                readable = set(projects)
            else:
                granted = {
                    g.project
                    for g in self.list_grants()
                    if Permission.READ in g.perms and self._grantee(g) in principals
                }
                readable = granted.intersection(projects)
        return readable if scope is None else readable & scope

    def can_read(self, identity: Identity | None, project: str) -> bool:
        return self.allowed(identity, project, Permission.READ)

    def can_write(self, identity: Identity | None, project: str) -> bool:
        return self.allowed(identity, project, Permission.WRITE)

    def can_delete(self, identity: Identity | None, project: str) -> bool:
        return self.allowed(identity, project, Permission.DELETE)

    def can_own(self, identity: Identity | None, project: str) -> bool:
        """May this caller manage the project's grants (an owner, or an admin)?"""
        return self.allowed(identity, project, Permission.OWN)

    def can_create(self, identity: Identity | None, project: str) -> bool:
        """May this caller upload the first file of a project that does not exist yet?"""
        if not self.can_write(identity, project):
            return False
        allowed = self.settings.create_projects
        if allowed is None or (identity is not None and identity.is_admin):
            return True
        return identity is not None and bool(allowed & identity.principals)

    # -- namespaces (PEP 752) ----------------------------------------------------

    def get_namespace(self, name: str) -> Namespace | None:
        wanted = normalize(name)
        return next((ns for ns in self.list_namespaces() if ns.name == wanted), None)

    def namespaces_for(self, project: str) -> list[Namespace]:
        """The namespaces covering this project name, broadest first."""
        return matching(self.list_namespaces(), project)

    def is_reserved(self, name: str) -> bool:
        """Whether a namespace covers this name: such a name is never resolved anywhere but here."""
        return bool(self.namespaces_for(name))

    # -- tokens ------------------------------------------------------------------

    def create_token(
        self,
        username: str,
        description: str = "",
        projects: list[str] | None = None,
        read_only: bool = False,
        expires: datetime | None = None,
        *,
        publisher: str | None = None,
    ) -> NewToken:
        if self.get_user(username) is None:
            raise NotFound(f"No user named {username!r}.")
        token_id, secret = secrets.token_hex(8), secrets.token_hex(24)
        token = Token(
            id=token_id,
            username=username,
            description=description[:255],
            projects=frozenset(normalize(p) for p in projects) if projects is not None else None,
            read_only=read_only,
            created=utcnow(),
            expires=expires,
            secret_hash=_sha256(secret),
            publisher=publisher,
        )
        self._save_token(token)
        return NewToken(token, f"ppc_{token_id}_{secret}")

    def get_publisher(self, publisher_id: str) -> Publisher | None:
        return next((p for p in self.list_publishers() if p.id == publisher_id), None)

    def revoke_token(self, token_id: str) -> None:
        if not self._delete_token(token_id):
            raise NotFound(f"No token {token_id!r}.")
