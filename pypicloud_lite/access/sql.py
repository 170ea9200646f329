"""SQLAccess: users, groups, per-package grants and API tokens in SQL tables, managed at run time."""

from __future__ import annotations

import logging
from contextlib import AbstractContextManager
from dataclasses import asdict, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, delete, exists, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from pypicloud_lite.access.audit import AuditRecorder
from pypicloud_lite.access.base import (
    OWNER_PERMS,
    AccessBackend,
    Group,
    Permission,
    Token,
    User,
    check_perms,
    check_user_name,
)
from pypicloud_lite.access.passwords import generate_password, hash_password
from pypicloud_lite.access.publishers import Publisher
from pypicloud_lite.access.sql_audit import SQLAuditStore
from pypicloud_lite.access.static import BOOTSTRAP_ADMIN, GeneratedAdmin
from pypicloud_lite.config import AuthSettings, CacheSettings
from pypicloud_lite.db import migrate
from pypicloud_lite.db.engine import connection, create_db_engine, transaction, write_engine
from pypicloud_lite.db.tables import (
    GrantRow,
    GroupMemberRow,
    GroupRow,
    NamespaceRow,
    PublisherRow,
    TokenRow,
    UserRow,
    table_of,
)
from pypicloud_lite.errors import Conflict, InvalidInput, NotFound
from pypicloud_lite.models import Grant, utcnow
from pypicloud_lite.namespaces import Namespace, check_namespace_name, check_new_namespace, parse_owner
from pypicloud_lite.naming import normalize

logger = logging.getLogger(__name__)


# What every authenticated request reads, as Core statements built once and run on a plain connection: through an
# ORM session each cost about twice as much (about 0.2 ms a read on SQLite), and a token upload made five of them.
_USERS, _GROUPS, _MEMBERS = table_of(UserRow), table_of(GroupRow), table_of(GroupMemberRow)
_TOKENS, _GRANTS = table_of(TokenRow), table_of(GrantRow)
# The user and their groups in one read: one row per group (a row of NULL group for a user of none).
_USER_WITH_GROUPS = (
    select(_USERS.c.name, _USERS.c.password_hash, _USERS.c.is_admin, _MEMBERS.c.group_name)
    .outerjoin(_MEMBERS, _MEMBERS.c.username == _USERS.c.name)
    .where(_USERS.c.name == bindparam("b_name"))
)
_USER_NAMED = select(_USERS.c.name).where(_USERS.c.name == bindparam("b_name"))
_GROUP_NAMED = select(_GROUPS.c.name).where(_GROUPS.c.name == bindparam("b_name"))
_GRANT_KEY = (
    (_GRANTS.c.project == bindparam("b_project"))
    & (_GRANTS.c.kind == bindparam("b_kind"))
    & (_GRANTS.c.name == bindparam("b_name"))
)
_GRANT_BY_KEY = select(_GRANTS.c.perms).where(_GRANT_KEY)
_SET_GRANT_PERMS = update(_GRANTS).where(_GRANT_KEY).values(perms=bindparam("b_perms"))
# Whether a user exists, whether a project has no owner yet (no user or group with the own letter), and the user's
# grant on it (a maintainer's, given before the project existed): one plain read.
_CLAIMABLE = select(
    exists().where(_USERS.c.name == bindparam("b_name")),
    ~exists().where(_GRANTS.c.project == bindparam("b_project"), _GRANTS.c.perms.contains(Permission.OWN.value)),
    _GRANT_BY_KEY.scalar_subquery(),
)
_NAMESPACES = select(table_of(NamespaceRow)).order_by(table_of(NamespaceRow).c.name)
_TOKEN_BY_ID = select(_TOKENS).where(_TOKENS.c.id == bindparam("b_id"))
# A token, its user and the user's groups in one read, as every request with a token needs them (one row a group).
_TOKEN_WITH_USER = (
    select(_TOKENS, _USERS.c.password_hash, _USERS.c.is_admin, _MEMBERS.c.group_name)
    .join(_USERS, _USERS.c.name == _TOKENS.c.username)
    .outerjoin(_MEMBERS, _MEMBERS.c.username == _USERS.c.name)
    .where(_TOKENS.c.id == bindparam("b_id"))
)
_GRANTS_OF = select(_GRANTS.c.project, _GRANTS.c.kind, _GRANTS.c.name, _GRANTS.c.perms).where(
    _GRANTS.c.project == bindparam("b_project")
)


def _naive(value: datetime | None) -> datetime | None:
    return value.astimezone(UTC).replace(tzinfo=None) if value and value.tzinfo else value


def _aware(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=UTC) if value else None


def _to_token(row: Any) -> Token:
    """A token of its row: a TokenRow, or a Core row of its table's columns."""
    return Token(
        id=row.id,
        username=row.username,
        description=row.description,
        projects=frozenset(row.projects) if row.projects is not None else None,
        read_only=row.read_only,
        created=row.created.replace(tzinfo=UTC),
        expires=_aware(row.expires),
        secret_hash=row.secret_hash,
        publisher=row.publisher,
        last_used=_aware(row.last_used),
    )


def _to_publisher(row: PublisherRow) -> Publisher:
    publisher = Publisher(row.id, row.project, row.kind, row.added_by, row.created.replace(tzinfo=UTC))
    return publisher.with_config(row.config)


def _to_namespace(row: Any) -> Namespace:
    """A namespace of its row: a NamespaceRow, or a Core row of its table's columns."""
    return Namespace(row.name, row.display_name, row.kind, row.owner, row.created.replace(tzinfo=UTC))


def _check_owns_no_namespace(session: Session, kind: str, name: str) -> None:
    # Deleting an owner must not silently open its namespaces to anyone: they go first, on purpose.
    owned = sorted(
        session.scalars(select(NamespaceRow.name).where(NamespaceRow.kind == kind, NamespaceRow.owner == name))
    )
    if owned:
        raise Conflict(f"{kind} {name!r} owns namespace(s) {', '.join(owned)}: remove them first.")


class SQLAccess(AccessBackend):
    def __init__(self, settings: AuthSettings, engine: Engine) -> None:
        super().__init__(settings)
        self.engine = engine
        self._read = sessionmaker(engine, expire_on_commit=False)
        self._write_engine = write_engine(engine)
        self._write = sessionmaker(self._write_engine, expire_on_commit=False)
        self.audit = AuditRecorder(SQLAuditStore(engine))

    @classmethod
    def from_settings(cls, settings: AuthSettings, cache: CacheSettings) -> tuple[SQLAccess, GeneratedAdmin | None]:
        access = cls.connect(settings, cache)
        return access, access.bootstrap_admin() if settings.bootstrap_admin else None

    @classmethod
    def connect(cls, settings: AuthSettings, cache: CacheSettings) -> SQLAccess:
        """The access database (`auth.url`, else the cache's), at the schema's head; no first admin is made."""
        url = settings.url or cache.url
        engine = create_db_engine(replace(cache, url=url), "cache.url" if url == cache.url else "auth.url")
        migrate.prepare(engine, cache.migrate_on_start, "access database")
        return cls(settings, engine)

    def bootstrap_admin(self) -> GeneratedAdmin | None:
        """Create user `admin` with a random password when the database has no admin yet."""
        with self._session() as session:
            if session.scalar(select(UserRow.name).where(UserRow.is_admin.is_(True)).limit(1)):
                return None
        password = generate_password()
        try:
            self.create_user(BOOTSTRAP_ADMIN, password, is_admin=True)
        except Conflict:
            return None  # another worker created it first
        logger.info("created the first admin user %r in the access database", BOOTSTRAP_ADMIN)
        return GeneratedAdmin(BOOTSTRAP_ADMIN, password, None)

    def _session(self, write: bool = False) -> AbstractContextManager[Session]:
        return transaction(self._write if write else self._read, "access database")

    def _connection(self) -> AbstractContextManager[Connection]:
        """A read on a plain connection: for the statements every authenticated request runs."""
        return connection(self.engine, "access database")

    def close(self) -> None:
        self.engine.dispose()

    # -- reads -------------------------------------------------------------------

    def _groups_of(self, session: Session, name: str) -> frozenset[str]:
        return frozenset(session.scalars(select(GroupMemberRow.group_name).where(GroupMemberRow.username == name)))

    def get_user(self, name: str) -> User | None:
        with self._connection() as conn:
            rows = conn.execute(_USER_WITH_GROUPS, {"b_name": name}).all()
        # MariaDB's binary collation still ignores trailing spaces: "alice " finds alice.
        if not rows or rows[0].name != name:
            return None
        groups = frozenset(row.group_name for row in rows if row.group_name is not None)
        return User(rows[0].name, rows[0].password_hash, rows[0].is_admin, groups)

    def list_users(self) -> list[User]:
        with self._session() as session:
            members: dict[str, set[str]] = {}
            for member in session.scalars(select(GroupMemberRow)):
                members.setdefault(member.username, set()).add(member.group_name)
            rows = session.scalars(select(UserRow).order_by(UserRow.name))
            return [User(r.name, r.password_hash, r.is_admin, frozenset(members.get(r.name, ()))) for r in rows]

    def list_groups(self) -> list[Group]:
        with self._session() as session:
            members: dict[str, list[str]] = {}
            for member in session.scalars(select(GroupMemberRow).order_by(GroupMemberRow.username)):
                members.setdefault(member.group_name, []).append(member.username)
            names = session.scalars(select(GroupRow.name).order_by(GroupRow.name))
            return [Group(name, tuple(members.get(name, ()))) for name in names]

    def grants_for(self, project: str) -> list[Grant]:
        with self._connection() as conn:
            return [Grant(*row) for row in conn.execute(_GRANTS_OF, {"b_project": project})]

    def list_grants(self) -> list[Grant]:
        with self._session() as session:
            rows = session.scalars(select(GrantRow).order_by(GrantRow.project, GrantRow.kind, GrantRow.name))
            return [Grant(r.project, r.kind, r.name, r.perms) for r in rows]

    def list_namespaces(self) -> list[Namespace]:
        # Every new project's first upload reads them (its namespace's check).
        with self._connection() as conn:
            return [_to_namespace(row) for row in conn.execute(_NAMESPACES)]

    def get_token(self, token_id: str) -> Token | None:
        with self._connection() as conn:
            row = conn.execute(_TOKEN_BY_ID, {"b_id": token_id}).first()
        return _to_token(row) if row else None

    def token_with_user(self, token_id: str) -> tuple[Token, User | None] | None:
        with self._connection() as conn:
            rows = conn.execute(_TOKEN_WITH_USER, {"b_id": token_id}).all()
        if not rows:
            return None  # no such token (a token's user goes with it: the foreign key cascades)
        groups = frozenset(row.group_name for row in rows if row.group_name is not None)
        first = rows[0]
        return _to_token(first), User(first.username, first.password_hash, first.is_admin, groups)

    def list_tokens(self, username: str | None = None) -> list[Token]:
        with self._session() as session:
            query = select(TokenRow).order_by(TokenRow.created, TokenRow.id)
            if username is not None:
                query = query.where(TokenRow.username == username)
            return [_to_token(row) for row in session.scalars(query)]

    # -- changes -----------------------------------------------------------------

    def create_user(self, name: str, password: str, is_admin: bool = False) -> User:
        check_user_name(name)
        if not password:
            raise InvalidInput("A password is required.")
        hashed = hash_password(password)
        try:
            with self._session(write=True) as session:
                if session.get(UserRow, name) is not None:
                    raise Conflict(f"User {name!r} already exists.")
                session.add(UserRow(name=name, password_hash=hashed, is_admin=is_admin, created=_naive(utcnow())))
        except IntegrityError as exc:
            raise Conflict(f"User {name!r} already exists.") from exc
        return User(name, hashed, is_admin)

    def update_user(self, name: str, password: str | None = None, is_admin: bool | None = None) -> User:
        hashed = hash_password(password) if password else None
        with self._session(write=True) as session:
            row = session.get(UserRow, name)
            if row is None:
                raise NotFound(f"No user named {name!r}.")
            if hashed is not None:
                row.password_hash = hashed
            if is_admin is not None:
                row.is_admin = is_admin
            return User(row.name, row.password_hash, row.is_admin, self._groups_of(session, name))

    def delete_user(self, name: str) -> None:
        with self._session(write=True) as session:
            if session.get(UserRow, name) is None:
                raise NotFound(f"No user named {name!r}.")
            _check_owns_no_namespace(session, "user", name)
            # Explicit deletes: SQLite enforces ON DELETE CASCADE only with foreign_keys on.
            session.execute(delete(TokenRow).where(TokenRow.username == name))
            session.execute(delete(PublisherRow).where(PublisherRow.added_by == name))
            session.execute(delete(GroupMemberRow).where(GroupMemberRow.username == name))
            session.execute(delete(GrantRow).where(GrantRow.kind == "user", GrantRow.name == name))
            session.execute(delete(UserRow).where(UserRow.name == name))

    def set_group(self, name: str, members: list[str]) -> Group:
        check_user_name(name)
        if name in ("everyone", "authenticated"):
            raise InvalidInput(f"{name!r} is a built-in group and cannot be defined.")
        wanted = sorted(set(members))
        with self._session(write=True) as session:
            known = set(session.scalars(select(UserRow.name).where(UserRow.name.in_(wanted))))
            unknown = [m for m in wanted if m not in known]
            if unknown:
                raise InvalidInput(f"Unknown users: {', '.join(unknown)}.")
            if session.get(GroupRow, name) is None:
                session.add(GroupRow(name=name))
                session.flush()
            session.execute(delete(GroupMemberRow).where(GroupMemberRow.group_name == name))
            session.add_all(GroupMemberRow(group_name=name, username=m) for m in wanted)
        return Group(name, tuple(wanted))

    def delete_group(self, name: str) -> None:
        with self._session(write=True) as session:
            if session.get(GroupRow, name) is None:
                raise NotFound(f"No group named {name!r}.")
            _check_owns_no_namespace(session, "group", name)
            session.execute(delete(GroupMemberRow).where(GroupMemberRow.group_name == name))
            session.execute(delete(GrantRow).where(GrantRow.kind == "group", GrantRow.name == name))
            session.execute(delete(GroupRow).where(GroupRow.name == name))

    def set_grant(self, project: str, kind: str, name: str, perms: str) -> Grant:
        if kind not in ("user", "group"):
            raise InvalidInput("A grant is for a 'user' or a 'group'.")
        grant = Grant(normalize(project), kind, name, check_perms(perms))
        # Core statements: every new project's first upload sets its owner's grant.
        key = {"b_project": grant.project, "b_kind": kind, "b_name": name}
        with connection(self._write_engine, "access database") as conn:
            builtin = kind == "group" and name in ("everyone", "authenticated")
            if not builtin and conn.execute(_USER_NAMED if kind == "user" else _GROUP_NAMED, key).first() is None:
                raise NotFound(f"No {kind} named {name!r}.")
            if conn.execute(_GRANT_BY_KEY, key).first() is None:
                conn.execute(insert(_GRANTS), {**asdict(grant)})
            else:
                conn.execute(_SET_GRANT_PERMS, {**key, "b_perms": grant.perms})
        return grant

    def claim_first_owner(self, project: str, username: str) -> bool:
        # A read and a write, in one transaction (a new project's first upload once ran a read of its owners, then
        # set_grant's three statements). Not one INSERT ... SELECT: on MariaDB its read takes shared gap locks, and two
        # claims at once deadlock. The same user's other first upload inserting first is a duplicate key.
        key = {"b_project": normalize(project), "b_kind": "user", "b_name": username}
        try:
            with connection(self._write_engine, "access database") as conn:
                user_exists, unowned, perms = conn.execute(_CLAIMABLE, key).one()
                if not (user_exists and unowned):
                    return False
                if perms is None:
                    conn.execute(insert(_GRANTS), asdict(Grant(key["b_project"], "user", username, OWNER_PERMS)))
                else:
                    conn.execute(_SET_GRANT_PERMS, {**key, "b_perms": OWNER_PERMS})
        except IntegrityError:
            return False
        return True

    def delete_grant(self, project: str, kind: str, name: str) -> None:
        with self._session(write=True) as session:
            result: Any = session.execute(
                delete(GrantRow).where(
                    GrantRow.project == normalize(project), GrantRow.kind == kind, GrantRow.name == name
                )
            )
            if not result.rowcount:
                raise NotFound(f"No grant for {kind} {name!r} on {project!r}.")

    def add_namespace(self, name: str, kind: str, owner: str) -> Namespace:
        kind, owner = parse_owner(f"{kind}:{owner}")
        namespace = Namespace(check_namespace_name(name), name, kind, owner, utcnow())
        try:
            with self._session(write=True) as session:
                if session.get(UserRow if kind == "user" else GroupRow, owner) is None:
                    raise NotFound(f"No {kind} named {owner!r}.")
                existing = [_to_namespace(row) for row in session.scalars(select(NamespaceRow))]
                check_new_namespace(existing, namespace)
                session.add(
                    NamespaceRow(
                        name=namespace.name,
                        display_name=namespace.display_name,
                        kind=kind,
                        owner=owner,
                        created=_naive(namespace.created),
                    )
                )
        except IntegrityError as exc:
            raise Conflict(f"Namespace {namespace.name!r} is already reserved.") from exc
        return namespace

    def delete_namespace(self, name: str) -> None:
        with self._session(write=True) as session:
            result: Any = session.execute(delete(NamespaceRow).where(NamespaceRow.name == normalize(name)))
            if not result.rowcount:
                raise NotFound(f"No namespace {name!r}.")

    def _save_token(self, token: Token) -> None:
        with self._session(write=True) as session:
            session.add(
                TokenRow(
                    id=token.id,
                    username=token.username,
                    secret_hash=token.secret_hash,
                    description=token.description,
                    projects=sorted(token.projects) if token.projects is not None else None,
                    read_only=token.read_only,
                    created=_naive(token.created),
                    expires=_naive(token.expires),
                    publisher=token.publisher,
                )
            )

    def _record_token_use(self, token_id: str, now: datetime, before: datetime) -> None:
        recent = TokenRow.last_used >= _naive(before)
        with self._session(write=True) as session:
            session.execute(
                update(TokenRow)
                .where(TokenRow.id == token_id, or_(TokenRow.last_used.is_(None), ~recent))
                .values(last_used=_naive(now))
            )

    def _delete_token(self, token_id: str) -> bool:
        with self._session(write=True) as session:
            result: Any = session.execute(delete(TokenRow).where(TokenRow.id == token_id))
            return bool(result.rowcount)

    # -- trusted publishers --------------------------------------------------------

    def list_publishers(self, project: str | None = None) -> list[Publisher]:
        with self._session() as session:
            query = select(PublisherRow).order_by(PublisherRow.created, PublisherRow.id)
            if project is not None:
                query = query.where(PublisherRow.project == project)
            return [_to_publisher(row) for row in session.scalars(query)]

    def add_publisher(self, publisher: Publisher) -> Publisher:
        config = publisher.to_config()
        with self._session(write=True) as session:
            if session.get(UserRow, publisher.added_by) is None:
                raise NotFound(f"No user named {publisher.added_by!r}.")
            rows = session.scalars(select(PublisherRow).where(PublisherRow.project == publisher.project))
            if any(row.kind == publisher.kind and row.config == config for row in rows):
                raise Conflict(f"Project {publisher.project!r} already has the publisher {publisher.label()}.")
            session.add(
                PublisherRow(
                    id=publisher.id,
                    project=publisher.project,
                    kind=publisher.kind,
                    config=config,
                    added_by=publisher.added_by,
                    created=_naive(publisher.created),
                )
            )
        return publisher

    def delete_publisher(self, publisher_id: str) -> None:
        with self._session(write=True) as session:
            result: Any = session.execute(delete(PublisherRow).where(PublisherRow.id == publisher_id))
            if not result.rowcount:
                raise NotFound(f"No publisher {publisher_id!r}.")
