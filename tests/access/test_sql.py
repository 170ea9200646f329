"""SQLAccess on SQLite, PostgreSQL and MariaDB: tokens, bootstrap admin, validation and run-time changes."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from sqlalchemy import create_engine, delete, text

from pypicloud_lite.access import passwords
from pypicloud_lite.access.base import OWNER_PERMS, Identity, Permission, TokenScope
from pypicloud_lite.access.sql import SQLAccess
from pypicloud_lite.access.static import BOOTSTRAP_ADMIN, GeneratedAdmin
from pypicloud_lite.config import load_settings
from pypicloud_lite.db.tables import GrantRow, GroupMemberRow, GroupRow, TokenRow, UserRow
from pypicloud_lite.errors import Conflict, InvalidInput, NotFound
from pypicloud_lite.models import Grant, utcnow
from tests.support.cache import SQL_BACKENDS, fresh_database, statements_on

CHEAP = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
PASSWORDS = {"alice": "alice pw", "bob": "bob pw", "carol": "carol pw", "dave": "dave pw"}
TOKEN = re.compile(r"^ppc_([0-9a-f]{16})_([0-9a-f]{48})$")
PROJECTS = ["private-pkg", "team-pkg", "other-pkg"]

Opener = Callable[..., tuple[SQLAccess, GeneratedAdmin | None]]


@pytest.fixture(autouse=True)
def cheap_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(passwords, "_hasher", CHEAP)
    monkeypatch.setattr(passwords, "_DUMMY_HASH", CHEAP.hash("dummy"))


@pytest.fixture(scope="module", params=SQL_BACKENDS)
def database(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    flavour: str = request.param
    with fresh_database(flavour, tmp_path_factory.mktemp(flavour)) as url:
        yield url


@pytest.fixture
def open_access(database: str, tmp_path: Path) -> Iterator[Opener]:
    """Open SQLAccess instances on one empty database; each is what another server process would hold."""
    opened: list[SQLAccess] = []

    def open_(**raw: str) -> tuple[SQLAccess, GeneratedAdmin | None]:
        settings = load_settings(
            {
                "storage.dir": str(tmp_path / "packages"),
                "cache.url": database,
                "cache.migrate_on_start": "true",
                "auth.backend": "sql",
                **raw,
            },
            environ={},
        )
        access, generated = SQLAccess.from_settings(settings.auth, settings.cache)
        opened.append(access)
        assert generated is None or settings.auth.bootstrap_admin
        return access, generated

    try:
        yield open_
    finally:
        for access in opened:
            access.close()
        engine = create_engine(database)
        try:
            with engine.begin() as conn:
                for table in (TokenRow, GrantRow, GroupMemberRow, GroupRow, UserRow):
                    conn.execute(delete(table))
        finally:
            engine.dispose()


def populate(access: SQLAccess) -> None:
    access.create_user("alice", PASSWORDS["alice"], is_admin=True)
    for name in ("bob", "carol", "dave"):
        access.create_user(name, PASSWORDS[name])
    access.set_group("devs", ["bob", "carol"])
    access.set_grant("private-pkg", "user", "bob", "rw")
    access.set_grant("team-pkg", "group", "devs", "r")
    access.set_grant("team-pkg", "user", "carol", "rwd")


@pytest.fixture
def access(open_access: Opener) -> SQLAccess:
    """The model, with nothing granted by default, so every right seen comes from a grant."""
    built, _ = open_access(**{"pypi.default_read": "", "pypi.default_write": ""})
    populate(built)
    return built


@pytest.fixture
def other(open_access: Opener, access: SQLAccess) -> SQLAccess:
    """A second SQLAccess on the same database: another server process."""
    return open_access(**{"pypi.default_read": "", "pypi.default_write": ""})[0]


def login(access: SQLAccess, who: str, password: str | None = None) -> Identity:
    identity = access.authenticate(who, PASSWORDS[who] if password is None else password)
    assert identity is not None, who
    return identity


def rights(access: SQLAccess, identity: Identity | None, project: str) -> str:
    return "".join(p.value for p in Permission if access.allowed(identity, project, p))


def token_rows(access: SQLAccess) -> list[tuple[object, ...]]:
    with access.engine.connect() as conn:
        return [tuple(row) for row in conn.execute(text("SELECT * FROM ppc_tokens"))]


# -- tokens ------------------------------------------------------------------------


def test_a_token_is_shown_once_and_stored_only_as_a_hash(access: SQLAccess) -> None:
    new = access.create_token("bob", "CI for private-pkg")
    match = TOKEN.match(new.secret)
    assert match is not None, new.secret
    token_id, secret = match.groups()
    assert new.token.id == token_id
    assert (new.token.username, new.token.description) == ("bob", "CI for private-pkg")
    assert (new.token.projects, new.token.read_only, new.token.expires) == (None, False, None)
    assert new.token.secret_hash not in (new.secret, secret)
    assert secret not in repr(new.token)

    rows = token_rows(access)
    assert len(rows) == 1
    stored = " ".join(str(value) for value in rows[0])
    assert token_id in stored
    assert secret not in stored
    assert new.secret not in stored

    listed = access.list_tokens("bob")
    assert [t.id for t in listed] == [token_id]
    assert access.get_token(token_id) == listed[0]
    assert access.list_tokens("carol") == []
    assert access.create_token("bob").secret != new.secret


def test_a_token_authenticates_as_its_user_with_a_scope(access: SQLAccess) -> None:
    new = access.create_token("bob")
    identity = access.authenticate("__token__", new.secret, client="192.0.2.1")
    assert identity == Identity(
        "bob", is_admin=False, groups=frozenset({"devs"}), token=TokenScope(new.token.id, None, False)
    )
    assert {p: rights(access, identity, p) for p in PROJECTS} == {
        "private-pkg": "rw",
        "team-pkg": "r",
        "other-pkg": "",
    }


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda s: s[:-1] + ("0" if s[-1] != "0" else "1"), id="last-secret-digit"),
        pytest.param(lambda s: s.upper(), id="upper-case"),
        pytest.param(lambda s: s[4:], id="no-prefix"),
        pytest.param(lambda s: s + "0", id="too-long"),
        pytest.param(lambda s: s[:21], id="id-only"),
        pytest.param(lambda s: " " + s, id="leading-space"),
        pytest.param(lambda s: s + "\n", id="trailing-newline"),
        pytest.param(lambda s: "", id="empty"),
    ],
)
def test_a_tampered_token_is_refused(access: SQLAccess, tamper: Callable[[str], str]) -> None:
    new = access.create_token("bob")
    assert access.authenticate("__token__", tamper(new.secret)) is None
    assert access.authenticate("__token__", new.secret) is not None


def test_a_token_is_only_a_token_under_the_token_user_name(access: SQLAccess) -> None:
    new = access.create_token("bob")
    assert access.authenticate("bob", new.secret) is None


def test_a_read_only_token_only_reads_even_for_an_admin(access: SQLAccess) -> None:
    new = access.create_token("alice", read_only=True)
    identity = access.authenticate("__token__", new.secret)
    assert identity is not None
    assert identity.is_admin is True
    assert identity.token is not None
    assert identity.token.read_only is True
    assert {p: rights(access, identity, p) for p in PROJECTS} == dict.fromkeys(PROJECTS, "r")
    assert access.can_create(identity, "new-pkg") is False
    assert access.readable(identity, PROJECTS) == set(PROJECTS)


def test_a_project_token_only_reaches_its_projects(access: SQLAccess) -> None:
    new = access.create_token("carol", projects=["Team_Pkg", "Other.Pkg"])
    assert new.token.projects == frozenset({"team-pkg", "other-pkg"})
    identity = access.authenticate("__token__", new.secret)
    assert identity is not None
    assert identity.token == TokenScope(new.token.id, frozenset({"team-pkg", "other-pkg"}), False)
    # Scope narrows the user's rights; it never adds any (carol has none on other-pkg).
    assert {p: rights(access, identity, p) for p in PROJECTS} == {
        "private-pkg": "",
        "team-pkg": "rwd",
        "other-pkg": "",
    }
    assert access.readable(identity, PROJECTS) == {"team-pkg"}

    admin = access.authenticate("__token__", access.create_token("alice", projects=["private-pkg"]).secret)
    assert admin is not None
    assert {p: rights(access, admin, p) for p in PROJECTS} == {
        "private-pkg": "rwdo",
        "team-pkg": "",
        "other-pkg": "",
    }
    assert access.readable(admin, PROJECTS) == {"private-pkg"}
    assert access.can_create(admin, "private-pkg") is True
    assert access.can_create(admin, "new-pkg") is False


def test_scoped_tokens_and_default_rights(open_access: Opener, access: SQLAccess) -> None:
    public, _ = open_access(**{"pypi.default_read": "everyone", "pypi.default_write": "authenticated"})
    identity = public.authenticate("__token__", public.create_token("dave", projects=["other-pkg"]).secret)
    assert identity is not None
    assert {p: rights(public, identity, p) for p in PROJECTS} == {
        "private-pkg": "",
        "team-pkg": "",
        "other-pkg": "rw",
    }
    assert public.readable(identity, PROJECTS) == {"other-pkg"}
    # Anonymous callers still read everything: a token never takes rights from others.
    assert public.readable(None, PROJECTS) == set(PROJECTS)


def test_expiry_is_honoured_in_any_time_zone(access: SQLAccess) -> None:
    plus_two, minus_five = timezone(timedelta(hours=2)), timezone(timedelta(hours=-5))
    expired = access.create_token("bob", expires=utcnow() - timedelta(seconds=1))
    expired_east = access.create_token("bob", expires=datetime.now(plus_two) - timedelta(minutes=1))
    valid_west = access.create_token("bob", expires=datetime.now(minus_five) + timedelta(minutes=10))
    valid_utc = access.create_token("bob", expires=utcnow() + timedelta(minutes=10))

    assert access.authenticate("__token__", expired.secret) is None
    assert access.authenticate("__token__", expired_east.secret) is None
    assert access.authenticate("__token__", valid_west.secret) is not None
    assert access.authenticate("__token__", valid_utc.secret) is not None

    stored = access.get_token(valid_west.token.id)
    assert stored is not None
    assert stored.expires == valid_west.token.expires  # the same instant, read back in UTC
    assert stored.expires is not None
    assert stored.expires.utcoffset() == timedelta(0)
    assert stored.expired(utcnow()) is False
    assert stored.expired(utcnow() + timedelta(minutes=11)) is True


def test_token_fields_round_trip(access: SQLAccess) -> None:
    before = datetime.now(UTC) - timedelta(seconds=5)
    new = access.create_token("bob", "x" * 300, projects=["b-pkg", "A_Pkg"], read_only=True)
    stored = access.get_token(new.token.id)
    assert stored is not None
    assert stored == new.token
    assert stored.description == "x" * 255
    assert stored.projects == frozenset({"a-pkg", "b-pkg"})
    assert stored.read_only is True
    assert before <= stored.created <= datetime.now(UTC) + timedelta(seconds=5)


def test_a_revoked_token_is_refused_at_once_everywhere(access: SQLAccess, other: SQLAccess) -> None:
    first, second = access.create_token("bob"), access.create_token("bob")
    assert access.authenticate("__token__", first.secret) is not None
    assert other.authenticate("__token__", first.secret) is not None

    access.revoke_token(first.token.id)
    assert access.authenticate("__token__", first.secret) is None
    assert other.authenticate("__token__", first.secret) is None

    # Revoked by another process, right after this one accepted it.
    assert access.authenticate("__token__", second.secret) is not None
    other.revoke_token(second.token.id)
    assert access.authenticate("__token__", second.secret) is None
    assert access.list_tokens() == []

    with pytest.raises(NotFound):
        access.revoke_token(first.token.id)


def test_a_token_follows_its_users_current_role_and_groups(access: SQLAccess, other: SQLAccess) -> None:
    new = access.create_token("alice")
    assert login(access, "alice").is_admin is True
    other.update_user("alice", is_admin=False)
    other.set_group("devs", ["alice", "bob"])
    identity = access.authenticate("__token__", new.secret)
    assert identity is not None
    assert (identity.is_admin, identity.groups) == (False, frozenset({"devs"}))
    assert rights(access, identity, "private-pkg") == ""
    assert rights(access, identity, "team-pkg") == "r"


def test_a_token_request_reads_its_token_with_its_user_and_groups_once_and_writes_nothing(access: SQLAccess) -> None:
    """What every request of a CI job costs: one indexed read (the token, its user and all their groups), no write
    while the token's last use is recent, and one read of the project's grants to decide an upload."""
    access.set_group("ops", ["bob"])
    new = access.create_token("bob")
    access.authenticate("__token__", new.secret)  # the first use is recorded: a write
    with statements_on(access.engine) as seen:
        identity = access.authenticate("__token__", new.secret)
        assert identity is not None
        assert identity.groups == frozenset({"devs", "ops"})
        assert access.can_write(identity, "private-pkg")
    assert [s.split()[0].upper() for s in seen] == ["SELECT", "SELECT"], seen
    assert "ppc_tokens" in seen[0] and "ppc_group_members" in seen[0]


def test_a_token_of_a_user_in_no_group_authenticates_with_no_groups(access: SQLAccess) -> None:
    new = access.create_token("dave")
    identity = access.authenticate("__token__", new.secret)
    assert identity is not None and (identity.username, identity.groups) == ("dave", frozenset())
    assert access.authenticate("__token__", new.secret.replace(new.token.id, "0" * 16)) is None


def test_a_grant_set_again_changes_its_permissions(access: SQLAccess, other: SQLAccess) -> None:
    access.set_grant("Private_Pkg", "user", "bob", "rwd")
    assert other.grants_for("private-pkg") == [Grant("private-pkg", "user", "bob", "rwd")]
    access.set_grant("private-pkg", "user", "bob", "r")
    assert other.grants_for("private-pkg") == [Grant("private-pkg", "user", "bob", "r")]


def test_a_first_owner_is_claimed_with_one_read_while_nobody_owns_the_project(
    access: SQLAccess, other: SQLAccess
) -> None:
    """One read and one insert: nothing for a project a user or a group owns already, nor for a user who does not
    exist (the uploader of a new project's first file is a user of this backend)."""
    with statements_on(access.engine) as seen:
        assert access.claim_first_owner("New_Pkg", "bob") is True
    assert [s.split()[0].upper() for s in seen] == ["SELECT", "INSERT"], seen
    assert other.owners("new-pkg") == [Grant("new-pkg", "user", "bob", OWNER_PERMS)]
    assert access.claim_first_owner("new-pkg", "bob") is False
    assert other.claim_first_owner("new-pkg", "carol") is False
    access.set_grant("group-pkg", "group", "devs", "rwdo")
    assert access.claim_first_owner("group-pkg", "bob") is False
    assert access.claim_first_owner("ghost-pkg", "nobody") is False
    assert other.grants_for("new-pkg") == [Grant("new-pkg", "user", "bob", OWNER_PERMS)]
    assert other.grants_for("ghost-pkg") == []
    # A maintainer named before the project existed (a pending publisher's registrant) becomes its owner.
    access.set_grant("pending-pkg", "user", "carol", "rw")
    assert access.claim_first_owner("pending-pkg", "carol") is True
    assert other.grants_for("pending-pkg") == [Grant("pending-pkg", "user", "carol", OWNER_PERMS)]


def claimed_at_once(claims: list[tuple[SQLAccess, str, str]]) -> list[bool]:
    """claim_first_owner(project, user) on each backend, started together in threads."""
    barrier = threading.Barrier(len(claims))
    results: dict[int, bool] = {}

    def claim(n: int) -> None:
        backend, project, user = claims[n]
        barrier.wait()
        results[n] = backend.claim_first_owner(project, user)

    threads = [threading.Thread(target=claim, args=(n,)) for n in range(len(claims))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return [results[n] for n in range(len(claims))]  # a KeyError: a claim raised


def test_first_owner_claims_at_once_make_one_owner_each_without_an_error(access: SQLAccess, other: SQLAccess) -> None:
    """First uploads at once (two processes): of one user's new project, one claim wins and the other answers False;
    of two new projects, both win. Neither deadlocks (an INSERT ... SELECT did on MariaDB, 3 runs in 15)."""
    for round_ in range(5):
        same, one, two = f"same-{round_}", f"one-{round_}", f"two-{round_}"
        assert sorted(claimed_at_once([(access, same, "bob"), (other, same, "bob")])) == [False, True]
        assert claimed_at_once([(access, one, "bob"), (other, two, "carol")]) == [True, True]
        assert [[g.name for g in other.owners(p)] for p in (same, one, two)] == [["bob"], ["bob"], ["carol"]]


# -- users, groups and grants changed at run time ----------------------------------


def test_a_changed_password_fails_at_once_even_when_cached(access: SQLAccess, other: SQLAccess) -> None:
    login(access, "bob")
    login(other, "bob")  # both processes have the old password verified and cached
    access.update_user("bob", password="new pw")
    assert access.authenticate("bob", PASSWORDS["bob"]) is None
    assert other.authenticate("bob", PASSWORDS["bob"]) is None
    assert login(access, "bob", "new pw").username == "bob"
    assert login(other, "bob", "new pw").username == "bob"

    other.update_user("bob", password="third pw")
    assert access.authenticate("bob", "new pw") is None
    assert login(access, "bob", "third pw").username == "bob"


def test_an_empty_new_password_leaves_the_password_alone(access: SQLAccess) -> None:
    access.update_user("bob", password="")
    assert login(access, "bob").username == "bob"
    assert access.authenticate("bob", "") is None


def test_role_changes_show_at_once_everywhere(access: SQLAccess, other: SQLAccess) -> None:
    assert login(access, "dave").is_admin is False
    other.update_user("dave", is_admin=True)
    dave = login(access, "dave")
    assert dave.is_admin is True
    assert rights(access, dave, "private-pkg") == "rwdo"
    other.update_user("dave", is_admin=False)
    assert login(access, "dave").is_admin is False


def test_a_deleted_user_is_gone_with_tokens_grants_and_memberships(access: SQLAccess, other: SQLAccess) -> None:
    token = access.create_token("bob")
    login(access, "bob")  # cached
    other.delete_user("bob")

    assert access.authenticate("bob", PASSWORDS["bob"]) is None
    assert access.authenticate("__token__", token.secret) is None
    assert access.get_user("bob") is None
    assert access.list_tokens() == []
    assert token_rows(access) == []
    assert [g for g in access.list_grants() if g.name == "bob"] == []
    assert [(g.name, g.members) for g in access.list_groups()] == [("devs", ("carol",))]

    # A new user of the same name inherits nothing.
    access.create_user("bob", "fresh pw")
    bob = login(access, "bob", "fresh pw")
    assert bob.groups == frozenset()
    assert {p: rights(access, bob, p) for p in PROJECTS} == dict.fromkeys(PROJECTS, "")
    assert access.authenticate("__token__", token.secret) is None


def test_group_changes_show_at_once_everywhere(access: SQLAccess, other: SQLAccess) -> None:
    assert rights(access, login(access, "dave"), "team-pkg") == ""
    group = other.set_group("devs", ["dave", "carol", "dave"])
    assert (group.name, group.members) == ("devs", ("carol", "dave"))
    assert login(access, "dave").groups == frozenset({"devs"})
    assert login(access, "bob").groups == frozenset()
    assert rights(access, login(access, "dave"), "team-pkg") == "r"
    assert rights(access, login(access, "bob"), "team-pkg") == ""
    assert [(g.name, g.members) for g in access.list_groups()] == [("devs", ("carol", "dave"))]

    assert other.set_group("empty", []).members == ()
    assert [(g.name, g.members) for g in access.list_groups()] == [("devs", ("carol", "dave")), ("empty", ())]


def test_a_deleted_group_takes_its_grants_along(access: SQLAccess, other: SQLAccess) -> None:
    other.delete_group("devs")
    assert access.list_groups() == []
    assert access.list_grants() == [
        Grant("private-pkg", "user", "bob", "rw"),
        Grant("team-pkg", "user", "carol", "rwd"),
    ]
    assert login(access, "bob").groups == frozenset()
    assert rights(access, login(access, "bob"), "team-pkg") == ""
    # Re-created, the group starts without the old grant.
    access.set_group("devs", ["bob"])
    assert rights(access, login(access, "bob"), "team-pkg") == ""
    with pytest.raises(NotFound):
        access.delete_group("devs-gone")


def test_grant_changes_show_at_once_everywhere(access: SQLAccess, other: SQLAccess) -> None:
    dave = login(access, "dave")
    assert rights(access, dave, "other-pkg") == ""
    assert other.set_grant("Other_Pkg", "user", "dave", "WR") == Grant("other-pkg", "user", "dave", "rw")
    assert rights(access, dave, "other-pkg") == "rw"
    assert other.set_grant("other.pkg", "user", "dave", "dr") == Grant("other-pkg", "user", "dave", "rd")
    assert rights(access, dave, "other-pkg") == "rd"
    assert access.grants_for("other-pkg") == [Grant("other-pkg", "user", "dave", "rd")]
    other.delete_grant("Other-Pkg", "user", "dave")
    assert rights(access, dave, "other-pkg") == ""
    with pytest.raises(NotFound):
        access.delete_grant("other-pkg", "user", "dave")


def test_grants_to_the_built_in_groups(access: SQLAccess) -> None:
    access.set_grant("other-pkg", "group", "everyone", "r")
    access.set_grant("team-pkg", "group", "authenticated", "w")
    assert rights(access, None, "other-pkg") == "r"
    assert rights(access, None, "team-pkg") == ""
    dave = login(access, "dave")
    assert rights(access, dave, "other-pkg") == "r"
    assert rights(access, dave, "team-pkg") == "w"
    assert access.readable(None, PROJECTS) == {"other-pkg"}


# -- validation --------------------------------------------------------------------


def test_a_duplicate_user_is_a_conflict_and_changes_nothing(access: SQLAccess) -> None:
    with pytest.raises(Conflict):
        access.create_user("bob", "another pw", is_admin=True)
    bob = login(access, "bob")
    assert bob.is_admin is False
    assert access.authenticate("bob", "another pw") is None


@pytest.mark.parametrize("name", ["", "bad name", "__token__", "-bob", "a" * 101, "bob:x", "bób", "bob\n"])
def test_invalid_user_names_are_refused(access: SQLAccess, name: str) -> None:
    with pytest.raises(InvalidInput):
        access.create_user(name, "pw")
    assert access.get_user(name) is None


def test_a_user_needs_a_password(access: SQLAccess) -> None:
    with pytest.raises(InvalidInput):
        access.create_user("erin", "")
    assert access.get_user("erin") is None


def test_changing_an_unknown_user_is_not_found(access: SQLAccess) -> None:
    with pytest.raises(NotFound):
        access.update_user("nobody", password="pw")
    with pytest.raises(NotFound):
        access.update_user("nobody", is_admin=True)
    with pytest.raises(NotFound):
        access.delete_user("nobody")


def test_a_group_of_unknown_users_is_refused_whole(access: SQLAccess) -> None:
    with pytest.raises(InvalidInput, match="ghost"):
        access.set_group("devs", ["bob", "ghost"])
    with pytest.raises(InvalidInput, match="ghost"):
        access.set_group("ops", ["ghost"])
    assert [(g.name, g.members) for g in access.list_groups()] == [("devs", ("bob", "carol"))]


@pytest.mark.parametrize("name", ["everyone", "authenticated", "bad name", "", "__token__", "devs\n"])
def test_invalid_group_names_are_refused(access: SQLAccess, name: str) -> None:
    with pytest.raises(InvalidInput):
        access.set_group(name, ["bob"])
    assert [g.name for g in access.list_groups()] == ["devs"]


@pytest.mark.parametrize("perms", ["", "x", "rwx", "r w", "read", "admin"])
def test_grant_permissions_are_letters_from_rwd(access: SQLAccess, perms: str) -> None:
    with pytest.raises(InvalidInput):
        access.set_grant("other-pkg", "user", "dave", perms)
    assert access.grants_for("other-pkg") == []


@pytest.mark.parametrize("kind", ["users", "role", "", "USER"])
def test_grant_kind_is_user_or_group(access: SQLAccess, kind: str) -> None:
    with pytest.raises(InvalidInput):
        access.set_grant("other-pkg", kind, "dave", "r")
    assert access.grants_for("other-pkg") == []


def test_a_grant_to_an_unknown_user_or_group_is_not_found(access: SQLAccess) -> None:
    with pytest.raises(NotFound):
        access.set_grant("other-pkg", "user", "ghost", "r")
    with pytest.raises(NotFound):
        access.set_grant("other-pkg", "group", "ghosts", "r")
    with pytest.raises(NotFound):
        access.set_grant("other-pkg", "group", "bob", "r")  # a user, not a group
    assert access.grants_for("other-pkg") == []


# -- bootstrap admin ---------------------------------------------------------------


def test_the_first_start_creates_an_admin_once(open_access: Opener) -> None:
    first, generated = open_access(**{"auth.bootstrap_admin": "true"})
    assert generated is not None
    assert (generated.username, generated.path) == (BOOTSTRAP_ADMIN, None)
    assert len(generated.password) >= 20
    admin = first.authenticate(BOOTSTRAP_ADMIN, generated.password)
    assert admin == Identity(BOOTSTRAP_ADMIN, is_admin=True)
    with first.engine.connect() as conn:
        stored = conn.execute(text("SELECT password_hash FROM ppc_users")).scalars().all()
    assert len(stored) == 1
    assert stored[0].startswith("$argon2")
    assert generated.password not in stored[0]

    second, generated_again = open_access(**{"auth.bootstrap_admin": "true"})
    assert generated_again is None
    assert first.bootstrap_admin() is None
    assert second.authenticate(BOOTSTRAP_ADMIN, generated.password) == admin
    assert [u.name for u in second.list_users()] == [BOOTSTRAP_ADMIN]


def test_no_admin_is_generated_when_one_exists(open_access: Opener, access: SQLAccess) -> None:
    _, generated = open_access(**{"auth.bootstrap_admin": "true"})
    assert generated is None
    assert access.get_user(BOOTSTRAP_ADMIN) is None


def test_without_the_setting_no_admin_is_generated(open_access: Opener) -> None:
    started, generated = open_access()
    assert generated is None
    assert started.list_users() == []


def test_the_admin_is_generated_again_once_no_admin_is_left(access: SQLAccess) -> None:
    access.update_user("alice", is_admin=False)
    generated = access.bootstrap_admin()
    assert generated is not None
    assert login_admin(access, generated).is_admin is True


def login_admin(access: SQLAccess, generated: GeneratedAdmin) -> Identity:
    identity = access.authenticate(generated.username, generated.password)
    assert identity is not None
    return identity


def test_workers_starting_together_generate_one_admin(open_access: Opener) -> None:
    workers = [open_access()[0] for _ in range(4)]
    barrier = threading.Barrier(len(workers))
    results: list[GeneratedAdmin | BaseException | None] = [None] * len(workers)

    def start(i: int) -> None:
        barrier.wait()
        try:
            results[i] = workers[i].bootstrap_admin()
        except BaseException as exc:
            results[i] = exc

    threads = [threading.Thread(target=start, args=(i,)) for i in range(len(workers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not [r for r in results if isinstance(r, BaseException)], results
    generated = [r for r in results if isinstance(r, GeneratedAdmin)]
    assert len(generated) == 1, results
    assert [u.name for u in workers[0].list_users()] == [BOOTSTRAP_ADMIN]
    assert login_admin(workers[1], generated[0]).is_admin is True
