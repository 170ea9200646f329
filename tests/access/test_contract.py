"""The AccessBackend contract: StaticAccess and SQLAccess (SQLite, PostgreSQL, MariaDB) give the same answers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from sqlalchemy import create_engine, delete

from pypicloud_lite.access import passwords
from pypicloud_lite.access.audit import AuditQuery
from pypicloud_lite.access.base import (
    MAINTAINER_PERMS,
    OWNER_PERMS,
    AccessBackend,
    Identity,
    Permission,
    check_perms,
)
from pypicloud_lite.access.sql import SQLAccess
from pypicloud_lite.access.static import StaticAccess
from pypicloud_lite.config import load_settings
from pypicloud_lite.db.tables import AuditRow, GrantRow, GroupMemberRow, GroupRow, NamespaceRow, TokenRow, UserRow
from pypicloud_lite.errors import Conflict, InvalidInput, NotFound, ReadOnlyAccess
from pypicloud_lite.models import Grant
from pypicloud_lite.namespaces import Namespace
from tests.support.cache import SQL_BACKENDS, fresh_database

# A new backend is one more entry here and one more branch in `make_access`.
ACCESS_BACKENDS = ["static", *(f"sql-{name}" for name in SQL_BACKENDS)]

# argon2 takes its cost from the hash, so cheap hashes keep the suite fast (see `cheap_hashing`).
CHEAP = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
PASSWORDS = {"alice": "alice pw", "bob": "bob pw", "carol": "carol pw", "dave": "dave pw"}
HASHES = {name: CHEAP.hash(password) for name, password in PASSWORDS.items()}

# The one model every backend holds. dave is in no group and has no grants.
STATIC_MODEL = {
    **{f"user.{name}": hashed for name, hashed in HASHES.items()},
    "auth.admins": "alice",
    "group.devs": "bob carol",
    "package.private-pkg.user.bob": "rw",
    "package.Team_Pkg.group.devs": "r",  # stored normalized, as set_grant does
    "package.team-pkg.user.carol": "rwd",
    "package.public-pkg.group.everyone": "r",
    "package.internal-pkg.group.authenticated": "r",
    "group.platform": "alice",
    "namespace.corp": "group:platform",
    "namespace.acme.tools": "user:dave",
}
PROJECTS = ["private-pkg", "team-pkg", "public-pkg", "internal-pkg", "other-pkg"]
WHO = ["anonymous", "alice", "bob", "carol", "dave"]
ALL = dict.fromkeys(PROJECTS, "rwdo")  # an admin may do anything, managing grants too


def populate(access: AccessBackend) -> None:
    """The same model as STATIC_MODEL, made through the API."""
    access.create_user("alice", PASSWORDS["alice"], is_admin=True)
    for name in ("bob", "carol", "dave"):
        access.create_user(name, PASSWORDS[name])
    access.set_group("devs", ["carol", "bob"])
    access.set_grant("private-pkg", "user", "bob", "rw")
    access.set_grant("Team_Pkg", "group", "devs", "r")
    access.set_grant("team-pkg", "user", "carol", "rwd")
    access.set_grant("public-pkg", "group", "everyone", "r")
    access.set_grant("internal-pkg", "group", "authenticated", "r")
    access.set_group("platform", ["alice"])
    access.add_namespace("corp", "group", "platform")
    access.add_namespace("acme.tools", "user", "dave")


def _empty(url: str) -> None:
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            for table in (AuditRow, NamespaceRow, TokenRow, GrantRow, GroupMemberRow, GroupRow, UserRow):
                conn.execute(delete(table))
    finally:
        engine.dispose()


AccessFactory = Callable[..., AccessBackend]


@pytest.fixture
def cheap_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Passwords hashed at run time (SQL create_user) and the unknown-user dummy hash become cheap."""
    monkeypatch.setattr(passwords, "_hasher", CHEAP)
    monkeypatch.setattr(passwords, "_DUMMY_HASH", CHEAP.hash("dummy"))


@pytest.fixture(scope="module", params=ACCESS_BACKENDS)
def backend_kind(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """The backend, and for SQL a throw-away database for this module (emptied after each test)."""
    kind: str = request.param
    if kind == "static":
        yield kind, ""
        return
    flavour = kind.removeprefix("sql-")
    with fresh_database(flavour, tmp_path_factory.mktemp(flavour)) as url:
        yield kind, url


@pytest.fixture
def make_access(backend_kind: tuple[str, str], tmp_path: Path, cheap_hashing: None) -> Iterator[AccessFactory]:
    """Build the backend holding the model, with extra settings (defaults differ per call).

    On SQL every call is a new SQLAccess (as another server process would be) on the same database.
    """
    kind, url = backend_kind
    built: list[SQLAccess] = []

    def make(**raw: str) -> AccessBackend:
        base = {"storage.dir": str(tmp_path / "packages")}
        if kind == "static":
            settings = load_settings({**base, "cache.url": "sqlite://", **STATIC_MODEL, **raw}, environ={})
            static, generated = StaticAccess.from_settings(settings.auth)
            assert generated is None
            return static
        sql = {"cache.url": url, "cache.migrate_on_start": "true", "auth.backend": "sql"}
        settings = load_settings({**base, **sql, **raw}, environ={})
        access, generated = SQLAccess.from_settings(settings.auth, settings.cache)
        assert generated is None
        if not built:
            populate(access)
        built.append(access)
        return access

    try:
        yield make
    finally:
        for access in built:
            access.close()
        if url:
            _empty(url)


@pytest.fixture
def access(make_access: AccessFactory) -> AccessBackend:
    return make_access()


def login(access: AccessBackend, who: str) -> Identity | None:
    if who == "anonymous":
        return None
    identity = access.authenticate(who, PASSWORDS[who])
    assert identity is not None, who
    return identity


# -- authentication ----------------------------------------------------------------


def test_the_right_password_gives_the_identity_with_role_and_groups(access: AccessBackend) -> None:
    alice = access.authenticate("alice", PASSWORDS["alice"])
    assert alice == Identity("alice", is_admin=True, groups=frozenset({"platform"}))
    bob = access.authenticate("bob", PASSWORDS["bob"], client="192.0.2.1")
    assert bob == Identity("bob", is_admin=False, groups=frozenset({"devs"}))
    assert bob.principals == {"everyone", "authenticated", "user:bob", "group:devs"}
    dave = access.authenticate("dave", PASSWORDS["dave"])
    assert dave == Identity("dave", is_admin=False, groups=frozenset())
    assert dave.token is None


def test_a_verified_password_still_answers_the_same_from_the_cache(access: AccessBackend) -> None:
    first = access.authenticate("bob", PASSWORDS["bob"])
    assert first is not None
    assert access.authenticate("bob", PASSWORDS["bob"]) == first
    assert access.authenticate("bob", "wrong") is None
    assert access.authenticate("bob", PASSWORDS["bob"]) == first


@pytest.mark.parametrize(
    ("username", "password"),
    [
        pytest.param("alice", "wrong", id="wrong-password"),
        pytest.param("alice", "", id="empty-password"),
        pytest.param("alice", PASSWORDS["bob"], id="another-users-password"),
        pytest.param("alice", PASSWORDS["alice"] + " ", id="password-with-trailing-space"),
        pytest.param("mallory", PASSWORDS["alice"], id="unknown-user"),
        pytest.param("", PASSWORDS["alice"], id="empty-user"),
        pytest.param("ALICE", PASSWORDS["alice"], id="user-in-other-case"),
        pytest.param("alice ", PASSWORDS["alice"], id="user-with-trailing-space"),
        pytest.param("al\x00ice", PASSWORDS["alice"], id="user-with-nul"),
        pytest.param("x" * 300, PASSWORDS["alice"], id="user-too-long"),
        pytest.param("devs", PASSWORDS["bob"], id="group-name"),
        pytest.param("__token__", PASSWORDS["alice"], id="token-user-with-a-password"),
        pytest.param("__token__", "ppc_0123456789abcdef_" + "0" * 48, id="unknown-token"),
    ],
)
def test_wrong_credentials_are_none(access: AccessBackend, username: str, password: str) -> None:
    assert access.authenticate(username, password) is None


@pytest.mark.parametrize("username", ["alice ", " alice", "ALICE", "Alice", "alice\t", "x" * 300])
def test_only_the_exact_user_name_is_a_user(access: AccessBackend, username: str) -> None:
    assert access.get_user("alice") is not None
    assert access.get_user(username) is None


def test_get_user_and_list_users(access: AccessBackend) -> None:
    bob = access.get_user("bob")
    assert bob is not None
    assert (bob.name, bob.is_admin, bob.groups) == ("bob", False, frozenset({"devs"}))
    assert bob.password_hash is not None
    assert PASSWORDS["bob"] not in bob.password_hash
    assert PASSWORDS["bob"] not in repr(bob)
    assert access.get_user("nobody") is None
    assert [(u.name, u.is_admin, u.groups) for u in access.list_users()] == [
        ("alice", True, frozenset({"platform"})),
        ("bob", False, frozenset({"devs"})),
        ("carol", False, frozenset({"devs"})),
        ("dave", False, frozenset()),
    ]


def test_list_groups(access: AccessBackend) -> None:
    groups = access.list_groups()
    assert [(g.name, sorted(g.members)) for g in groups] == [("devs", ["bob", "carol"]), ("platform", ["alice"])]


def test_list_grants_and_grants_for(access: AccessBackend) -> None:
    assert access.list_grants() == [
        Grant("internal-pkg", "group", "authenticated", "r"),
        Grant("private-pkg", "user", "bob", "rw"),
        Grant("public-pkg", "group", "everyone", "r"),
        Grant("team-pkg", "group", "devs", "r"),
        Grant("team-pkg", "user", "carol", "rwd"),
    ]
    assert sorted(access.grants_for("team-pkg"), key=lambda g: g.kind) == [
        Grant("team-pkg", "group", "devs", "r"),
        Grant("team-pkg", "user", "carol", "rwd"),
    ]
    assert access.grants_for("other-pkg") == []


def test_tokens_are_unknown_to_a_fresh_model(access: AccessBackend) -> None:
    assert access.list_tokens() == []
    assert access.list_tokens("bob") == []
    assert access.get_token("0123456789abcdef") is None


# -- authorization -----------------------------------------------------------------

# What each caller may do on each project ("r", "w", "d", "o" letters), per pair of defaults. A write
# or own grant closes its project to `default_write`: private-pkg is bob's, team-pkg carol's.
DEFAULTS: dict[str, dict[str, str]] = {
    "read-everyone-write-authenticated": {"pypi.default_read": "everyone", "pypi.default_write": "authenticated"},
    "read-authenticated-write-none": {"pypi.default_read": "authenticated", "pypi.default_write": ""},
    "read-none-write-none": {"pypi.default_read": "", "pypi.default_write": ""},
    "read-everyone-write-none": {"pypi.default_read": "everyone", "pypi.default_write": ""},
    "read-none-write-authenticated": {"pypi.default_read": "", "pypi.default_write": "authenticated"},
}
EXPECTED: dict[str, dict[str, dict[str, str]]] = {
    "read-everyone-write-authenticated": {
        "anonymous": dict.fromkeys(PROJECTS, "r"),
        "alice": ALL,
        "bob": {**dict.fromkeys(PROJECTS, "rw"), "team-pkg": "r"},
        "carol": {**dict.fromkeys(PROJECTS, "rw"), "private-pkg": "r", "team-pkg": "rwd"},
        "dave": {**dict.fromkeys(PROJECTS, "rw"), "private-pkg": "r", "team-pkg": "r"},
    },
    "read-authenticated-write-none": {
        "anonymous": {**dict.fromkeys(PROJECTS, ""), "public-pkg": "r"},
        "alice": ALL,
        "bob": {**dict.fromkeys(PROJECTS, "r"), "private-pkg": "rw"},
        "carol": {**dict.fromkeys(PROJECTS, "r"), "team-pkg": "rwd"},
        "dave": dict.fromkeys(PROJECTS, "r"),
    },
    "read-none-write-none": {
        "anonymous": {**dict.fromkeys(PROJECTS, ""), "public-pkg": "r"},
        "alice": ALL,
        "bob": {"private-pkg": "rw", "team-pkg": "r", "public-pkg": "r", "internal-pkg": "r", "other-pkg": ""},
        "carol": {"private-pkg": "", "team-pkg": "rwd", "public-pkg": "r", "internal-pkg": "r", "other-pkg": ""},
        "dave": {"private-pkg": "", "team-pkg": "", "public-pkg": "r", "internal-pkg": "r", "other-pkg": ""},
    },
    "read-everyone-write-none": {
        "anonymous": dict.fromkeys(PROJECTS, "r"),
        "alice": ALL,
        "bob": {**dict.fromkeys(PROJECTS, "r"), "private-pkg": "rw"},
        "carol": {**dict.fromkeys(PROJECTS, "r"), "team-pkg": "rwd"},
        "dave": dict.fromkeys(PROJECTS, "r"),
    },
    "read-none-write-authenticated": {
        # Writing does not imply reading: a default write right on a project one cannot read.
        "anonymous": {**dict.fromkeys(PROJECTS, ""), "public-pkg": "r"},
        "alice": ALL,
        "bob": {"private-pkg": "rw", "team-pkg": "r", "public-pkg": "rw", "internal-pkg": "rw", "other-pkg": "w"},
        "carol": {"private-pkg": "", "team-pkg": "rwd", "public-pkg": "rw", "internal-pkg": "rw", "other-pkg": "w"},
        "dave": {"private-pkg": "", "team-pkg": "", "public-pkg": "rw", "internal-pkg": "rw", "other-pkg": "w"},
    },
}


def rights(access: AccessBackend, identity: Identity | None, project: str) -> str:
    by_allowed = "".join(p.value for p in Permission if access.allowed(identity, project, p))
    by_helpers = "".join(
        letter
        for letter, check in (
            ("r", access.can_read),
            ("w", access.can_write),
            ("d", access.can_delete),
            ("o", access.can_own),
        )
        if check(identity, project)
    )
    assert by_allowed == by_helpers
    return by_allowed


@pytest.mark.parametrize("defaults", list(DEFAULTS))
def test_permissions_per_caller_and_project(make_access: AccessFactory, defaults: str) -> None:
    access = make_access(**DEFAULTS[defaults])
    got = {who: {p: rights(access, login(access, who), p) for p in PROJECTS} for who in WHO}
    assert got == EXPECTED[defaults]


@pytest.mark.parametrize("defaults", list(DEFAULTS))
def test_readable_is_the_set_can_read_allows(make_access: AccessFactory, defaults: str) -> None:
    access = make_access(**DEFAULTS[defaults])
    for who in WHO:
        identity = login(access, who)
        expected = {p for p in PROJECTS if "r" in EXPECTED[defaults][who][p]}
        assert {p for p in PROJECTS if access.can_read(identity, p)} == expected, who
        assert access.readable(identity, PROJECTS) == expected, who
        assert access.readable(identity, []) == set(), who
        assert access.readable(identity, ["public-pkg"]) == {"public-pkg"}, who


def test_default_principals_can_name_groups_and_users(make_access: AccessFactory) -> None:
    access = make_access(**{"pypi.default_read": "group:devs user:dave", "pypi.default_write": "user:carol"})
    got = {who: {p: rights(access, login(access, who), p) for p in PROJECTS} for who in WHO}
    assert got["anonymous"] == {**dict.fromkeys(PROJECTS, ""), "public-pkg": "r"}
    assert got["bob"] == {**dict.fromkeys(PROJECTS, "r"), "private-pkg": "rw"}
    assert got["carol"] == {**dict.fromkeys(PROJECTS, "rw"), "private-pkg": "r", "team-pkg": "rwd"}
    assert got["dave"] == dict.fromkeys(PROJECTS, "r")


def test_identities_built_by_hand_are_judged_by_their_principals(access: AccessBackend) -> None:
    # The web layer passes the Identity authenticate() returned; the backend trusts it as given.
    assert access.can_read(Identity("someone-else", groups=frozenset({"devs"})), "team-pkg") is True
    # devs read team-pkg; only carol (a write grant) writes it, whatever default_write says.
    assert access.can_write(Identity("someone-else", groups=frozenset({"devs"})), "team-pkg") is False
    assert access.can_write(Identity("someone-else", groups=frozenset({"devs"})), "other-pkg") is True
    assert access.can_delete(Identity("carol"), "team-pkg") is True
    assert access.can_delete(Identity("bob", groups=frozenset({"devs"})), "team-pkg") is False
    assert access.can_delete(Identity("nobody", is_admin=True), "other-pkg") is True


CREATE_CASES: dict[str, tuple[dict[str, str], dict[str, bool]]] = {
    # pypi.create_projects unset: whoever may write may create.
    "unset": ({}, {"anonymous": False, "alice": True, "bob": True, "carol": True, "dave": True}),
    "group:devs": (
        {"pypi.create_projects": "group:devs"},
        {"anonymous": False, "alice": True, "bob": True, "carol": True, "dave": False},
    ),
    "user:dave": (
        {"pypi.create_projects": "user:dave"},
        {"anonymous": False, "alice": True, "bob": False, "carol": False, "dave": True},
    ),
    "authenticated": (
        {"pypi.create_projects": "authenticated"},
        {"anonymous": False, "alice": True, "bob": True, "carol": True, "dave": True},
    ),
    "admins-only": (
        {"pypi.create_projects": ""},
        {"anonymous": False, "alice": True, "bob": False, "carol": False, "dave": False},
    ),
}


@pytest.mark.parametrize("case", list(CREATE_CASES))
def test_create_projects_restricts_who_creates_new_projects(make_access: AccessFactory, case: str) -> None:
    raw, expected = CREATE_CASES[case]
    access = make_access(**raw)
    got = {who: access.can_create(login(access, who), "new-pkg") for who in WHO}
    assert got == expected


def test_creating_needs_the_write_right_too(make_access: AccessFactory) -> None:
    access = make_access(**{"pypi.default_write": "", "pypi.create_projects": "group:devs"})
    bob, carol, dave = (login(access, who) for who in ("bob", "carol", "dave"))
    # bob may write private-pkg (a user grant) and is in devs; carol and dave may not write it.
    assert access.can_create(bob, "private-pkg") is True
    assert access.can_create(carol, "private-pkg") is False
    assert access.can_create(bob, "new-pkg") is False
    assert access.can_create(carol, "team-pkg") is True
    assert access.can_create(dave, "team-pkg") is False
    assert access.can_create(login(access, "alice"), "new-pkg") is True


# -- changes -----------------------------------------------------------------------

MUTATIONS: list[tuple[str, tuple[Any, ...]]] = [
    ("create_user", ("erin", "erin pw")),
    ("update_user", ("bob", "new pw")),
    ("update_user", ("bob", None, True)),
    ("delete_user", ("bob",)),
    ("set_group", ("devs", ["alice"])),
    ("set_group", ("ops", ["alice"])),
    ("delete_group", ("devs",)),
    ("set_grant", ("other-pkg", "user", "dave", "rw")),
    ("delete_grant", ("private-pkg", "user", "bob")),
    ("create_token", ("bob",)),
    ("add_namespace", ("other", "user", "bob")),
    ("delete_namespace", ("corp",)),
]


@pytest.mark.parametrize(("method", "args"), MUTATIONS, ids=lambda v: v if isinstance(v, str) else None)
def test_read_only_backends_refuse_every_change(access: AccessBackend, method: str, args: tuple[Any, ...]) -> None:
    if not access.read_only:
        getattr(access, method)(*args)  # a writable backend accepts each of them
        return
    with pytest.raises(ReadOnlyAccess) as caught:
        getattr(access, method)(*args)
    assert isinstance(caught.value, Conflict)
    assert "auth.backend" in caught.value.message
    # Nothing changed.
    assert access.authenticate("bob", PASSWORDS["bob"]) == Identity("bob", groups=frozenset({"devs"}))
    assert [(g.name, sorted(g.members)) for g in access.list_groups()] == [
        ("devs", ["bob", "carol"]),
        ("platform", ["alice"]),
    ]
    assert len(access.list_grants()) == 5
    assert access.list_tokens() == []
    assert [ns.name for ns in access.list_namespaces()] == ["acme-tools", "corp"]


def test_revoking_a_token_on_a_read_only_backend_is_refused(access: AccessBackend) -> None:
    if access.read_only:
        with pytest.raises(ReadOnlyAccess):
            access.revoke_token("0123456789abcdef")
    else:
        with pytest.raises(NotFound):
            access.revoke_token("0123456789abcdef")


def test_a_token_for_an_unknown_user_is_not_found(access: AccessBackend) -> None:
    with pytest.raises(NotFound):
        access.create_token("nobody")


# -- owners (PyPI's roles) ---------------------------------------------------------


def test_perms_take_the_own_letter_and_keep_rwd() -> None:
    assert check_perms("ordw") == "rwdo"
    assert check_perms("RWD") == "rwd"
    assert check_perms(MAINTAINER_PERMS) == "rw"
    with pytest.raises(InvalidInput, match="rwdo"):
        check_perms("rwx")


def test_an_owner_grant_closes_the_project_to_default_write(make_access: AccessFactory) -> None:
    access = make_access(**{"pypi.default_write": "authenticated"})
    bob, dave = login(access, "bob"), login(access, "dave")
    assert access.can_write(dave, "other-pkg") is True  # nobody keeps other-pkg: the default applies
    if access.read_only:
        assert access.claim_first_owner("other-pkg", "bob") is False  # the ini cannot record owners
        return
    assert access.claim_first_owner("other-pkg", "bob") is True
    assert access.owners("other-pkg") == [Grant("other-pkg", "user", "bob", OWNER_PERMS)]
    assert rights(access, bob, "other-pkg") == "rwdo"
    assert rights(access, dave, "other-pkg") == "r"
    # A second claim (a racing first upload) makes nobody a co-owner.
    assert access.claim_first_owner("other-pkg", "dave") is False
    assert [g.name for g in access.owners("other-pkg")] == ["bob"]
    access.set_grant("other-pkg", "user", "dave", MAINTAINER_PERMS)
    assert rights(access, dave, "other-pkg") == "rw"


def test_a_read_grant_leaves_the_project_open_to_default_write(make_access: AccessFactory) -> None:
    access = make_access(**{"pypi.default_write": "authenticated"})
    # public-pkg has only a read grant for everyone: it stays ownerless, so writable per default_write.
    assert access.can_write(login(access, "dave"), "public-pkg") is True
    assert access.can_own(login(access, "dave"), "public-pkg") is False


# -- namespaces (PEP 752) ---------------------------------------------------------------


def _shape(namespaces: list[Namespace]) -> list[tuple[str, str, str, str]]:
    return [(ns.name, ns.display_name, ns.kind, ns.owner) for ns in namespaces]


def test_list_and_get_namespaces(access: AccessBackend) -> None:
    assert _shape(access.list_namespaces()) == [
        ("acme-tools", "acme.tools", "user", "dave"),
        ("corp", "corp", "group", "platform"),
    ]
    found = access.get_namespace("acme-tools")
    assert found is not None and (found.kind, found.owner) == ("user", "dave")
    assert access.get_namespace("acme") is None


@pytest.mark.parametrize(
    ("name", "reserved"),
    [
        ("corp", True),
        ("Corp.Tools", True),
        ("corp-a-b", True),
        ("acme_tools-x", True),
        ("corptools", False),
        ("acme", False),
        ("acme-other", False),
        ("other-pkg", False),
    ],
)
def test_is_reserved_says_whether_a_namespace_covers_a_name(access: AccessBackend, name: str, reserved: bool) -> None:
    assert access.is_reserved(name) is reserved


def test_namespaces_for_a_project(access: AccessBackend) -> None:
    assert _shape(access.namespaces_for("CORP-x")) == [("corp", "corp", "group", "platform")]
    assert access.namespaces_for("corpx") == []


def test_namespaces_are_added_and_removed_for_every_process(make_access: AccessFactory) -> None:
    access = make_access()
    if access.read_only:
        return
    added = access.add_namespace("Corp.ML", "user", "bob")  # a child of corp, for another owner
    assert (added.name, added.display_name, added.created is not None) == ("corp-ml", "Corp.ML", True)
    other = make_access()  # another server process
    assert _shape(other.namespaces_for("corp-ml-x")) == [
        ("corp", "corp", "group", "platform"),
        ("corp-ml", "Corp.ML", "user", "bob"),
    ]
    other.delete_namespace("CORP-ML")
    assert access.get_namespace("corp-ml") is None
    with pytest.raises(NotFound):
        access.delete_namespace("corp-ml")


@pytest.mark.parametrize(
    ("args", "error", "words"),
    [
        (("corp", "group", "platform"), Conflict, "already reserved"),
        (("Corp", "user", "bob"), Conflict, "already reserved"),
        (("acme", "user", "bob"), Conflict, "acme-tools"),  # covers dave's namespace
        (("new", "user", "nobody"), NotFound, "nobody"),
        (("new", "group", "nobody"), NotFound, "nobody"),
        (("new", "group", "everyone"), InvalidInput, "owner"),
        (("new", "team", "devs"), InvalidInput, "owner"),
        (("-bad", "user", "bob"), InvalidInput, "namespace"),
    ],
)
def test_refused_namespaces(
    make_access: AccessFactory, args: tuple[str, str, str], error: type[Exception], words: str
) -> None:
    access = make_access()
    if access.read_only:
        return
    with pytest.raises(error, match=words):
        access.add_namespace(*args)
    assert [ns.name for ns in access.list_namespaces()] == ["acme-tools", "corp"]


def test_a_broader_namespace_for_the_same_owner_is_allowed(make_access: AccessFactory) -> None:
    access = make_access()
    if access.read_only:
        return
    access.add_namespace("acme", "user", "dave")
    assert [ns.name for ns in access.namespaces_for("acme-tools-x")] == ["acme", "acme-tools"]


def test_a_namespace_owner_cannot_be_deleted_while_it_owns_one(make_access: AccessFactory) -> None:
    access = make_access()
    if access.read_only:
        return
    # Deleting the owner must not silently open the namespace to anyone.
    with pytest.raises(Conflict, match="corp"):
        access.delete_group("platform")
    with pytest.raises(Conflict, match="acme-tools"):
        access.delete_user("dave")
    assert access.get_user("dave") is not None
    access.delete_namespace("acme-tools")
    access.delete_user("dave")
    assert access.get_user("dave") is None


def test_the_audit_trail_is_stored_and_found_or_only_logged(access: AccessBackend) -> None:
    access.audit.record("user.create", "admin", "10.0.0.1", target="carol", detail="x" * 2000)
    access.audit.record("grant.set", "admin", None, project="widget", target="user:carol", detail="rw\n")
    if not access.audit.store.stored:
        with pytest.raises(Conflict, match="log only"):
            access.audit.find(AuditQuery())
        return
    found = access.audit.find(AuditQuery())
    assert [(e.action, e.project, e.address) for e in found] == [
        ("grant.set", "widget", None),
        ("user.create", None, "10.0.0.1"),
    ]
    assert found[0].detail == "rw?" and found[1].detail == "x" * 1000
    assert access.audit.find(AuditQuery(action="grant.", project="widget")) == [found[0]]
    assert access.audit.find(AuditQuery(actor="admin", before=found[0].id)) == [found[1]]
    assert access.audit.find(AuditQuery(since=found[0].at)) == [found[0]]
