"""Password hashing, StaticAccess users from the ini, and the bootstrap admin file."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher

from pypicloud_lite.access import base as access_base
from pypicloud_lite.access import passwords
from pypicloud_lite.access.base import Identity
from pypicloud_lite.access.passwords import generate_password, hash_password, verify_password
from pypicloud_lite.access.static import BOOTSTRAP_ADMIN, StaticAccess, load_bootstrap_admin
from pypicloud_lite.config import AuthSettings, load_settings
from pypicloud_lite.errors import ConfigError, ReadOnlyAccess

PASSWORD = "s3cret pässword"
# argon2 is slow on purpose. Verification takes its cost from the hash itself, so users get
# cheap hashes here, and only test_hash_and_verify and the bootstrap tests pay full price.
_CHEAP = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
HASHED = _CHEAP.hash(PASSWORD)


@pytest.fixture(autouse=True)
def cheap_dummy_hash(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unknown users are verified against a dummy hash; make that one cheap too."""
    monkeypatch.setattr(passwords, "_DUMMY_HASH", _CHEAP.hash("dummy"))


def auth_settings(tmp_path: Path, **raw: str) -> AuthSettings:
    base = {"storage.dir": str(tmp_path / "packages"), "cache.url": "sqlite://"}
    return load_settings({**base, **raw}, environ={}).auth


@pytest.fixture
def access(tmp_path: Path) -> StaticAccess:
    settings = auth_settings(tmp_path, **{"user.alice": HASHED, "user.bob": HASHED, "auth.admins": "alice"})
    backend, generated = StaticAccess.from_settings(settings)
    assert generated is None
    return backend


def test_hash_and_verify() -> None:
    hashed = hash_password(PASSWORD)
    assert hashed.startswith("$argon2id$")
    assert PASSWORD not in hashed
    assert verify_password(hashed, PASSWORD) is True
    assert verify_password(hashed, "wrong") is False


def test_verify_cheap_hashes() -> None:
    assert verify_password(HASHED, PASSWORD) is True
    assert verify_password(HASHED, PASSWORD.upper()) is False
    assert verify_password(HASHED, "") is False


@pytest.mark.parametrize(
    "hashed", [None, "", "not a hash", "$2b$12$abcdefghijklmnopqrstuuOqJ5cmBMjbsHcH/WqFdw6rr4Zzb0Oa"], ids=str
)
def test_verify_without_a_usable_hash_is_false(hashed: str | None) -> None:
    assert verify_password(hashed, PASSWORD) is False


def test_generated_passwords_are_long_and_random() -> None:
    first, second = generate_password(), generate_password()
    assert first != second
    assert len(first) >= 20


def test_generated_passwords_paste_as_one_command_line_argument() -> None:
    # Only letters and digits: never read as an option after `twine upload -p` (a leading "-"), never
    # needing shell quotes, and safe inside Basic auth and `user:hash` lines.
    passwords = [generate_password() for _ in range(2000)]
    assert all(password.isascii() and password.isalnum() for password in passwords)


def test_authenticate_users(access: StaticAccess) -> None:
    alice = access.authenticate("alice", PASSWORD)
    assert alice is not None
    assert (alice.username, alice.is_admin) == ("alice", True)
    bob = access.authenticate("bob", PASSWORD)
    assert bob is not None
    assert (bob.username, bob.is_admin) == ("bob", False)


def test_wrong_password_and_unknown_user_are_both_none(access: StaticAccess) -> None:
    assert access.authenticate("alice", "wrong") is None
    assert access.authenticate("alice", "") is None
    assert access.authenticate("mallory", PASSWORD) is None
    assert access.authenticate("", PASSWORD) is None
    assert access.authenticate("ALICE", PASSWORD) is None


def test_unknown_user_and_wrong_password_cost_the_same(access: StaticAccess, monkeypatch: pytest.MonkeyPatch) -> None:
    checked: list[str | None] = []
    real = passwords.verify_password

    def counting(hashed: str | None, password: str) -> bool:
        checked.append(hashed)
        return real(hashed, password)

    monkeypatch.setattr(access_base, "verify_password", counting)  # the name authenticate() calls
    assert access.authenticate("alice", "wrong") is None
    assert access.authenticate("mallory", "wrong") is None
    assert len(checked) == 2  # one argon2 check each: an unknown user is not answered faster


def test_get_user_and_list_users(access: StaticAccess) -> None:
    assert access.get_user("alice") is not None
    assert access.get_user("carol") is None
    assert [u.name for u in access.list_users()] == ["alice", "bob"]


def test_default_permissions(access: StaticAccess) -> None:
    bob = access.authenticate("bob", PASSWORD)
    assert bob is not None
    assert access.can_read(None, "demo") is True
    assert access.can_write(None, "demo") is False
    assert access.can_read(bob, "demo") is True
    assert access.can_write(bob, "demo") is True
    assert access.can_write(Identity("alice", is_admin=True), "demo") is True


def test_bootstrap_admin_is_created_once(tmp_path: Path) -> None:
    path = tmp_path / "var" / "state" / "admin.credentials"
    settings = auth_settings(tmp_path, **{"auth.bootstrap_admin_file": str(path)})

    backend, generated = StaticAccess.from_settings(settings)

    assert generated is not None
    assert generated.username == BOOTSTRAP_ADMIN == "admin"
    assert generated.path == path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    content = path.read_text(encoding="utf-8")
    assert content.startswith("admin:$argon2")
    assert content.count("\n") == 1
    assert generated.password not in content
    identity = backend.authenticate("admin", generated.password)
    assert identity is not None
    assert identity.is_admin is True

    again, generated_again = StaticAccess.from_settings(settings)
    assert generated_again is None
    assert path.read_text(encoding="utf-8") == content
    reused = again.authenticate("admin", generated.password)
    assert reused is not None
    assert reused.is_admin is True


def test_bootstrap_file_of_another_user(tmp_path: Path) -> None:
    path = tmp_path / "admin.credentials"
    path.write_text(f"ops:{HASHED}\n", encoding="utf-8")
    (name, hashed), generated = load_bootstrap_admin(path)
    assert (name, hashed, generated) == ("ops", HASHED, None)
    backend, _ = StaticAccess.from_settings(auth_settings(tmp_path, **{"auth.bootstrap_admin_file": str(path)}))
    identity = backend.authenticate("ops", PASSWORD)
    assert identity is not None
    assert identity.is_admin is True


@pytest.mark.parametrize(
    "content",
    [
        pytest.param("", id="empty"),
        pytest.param("\n", id="blank-line"),
        pytest.param("garbage", id="no-colon"),
        pytest.param("admin", id="user-only"),
        pytest.param("admin:hunter2", id="plain-password"),
        pytest.param("admin:$2b$12$abcdefghijklmnopqrstuv", id="bcrypt"),
        pytest.param(f":{HASHED}", id="no-user-name"),
    ],
)
def test_a_malformed_bootstrap_file_is_refused(tmp_path: Path, content: str) -> None:
    path = tmp_path / "admin.credentials"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError, match=r"'auth\.bootstrap_admin_file'"):
        load_bootstrap_admin(path)
    settings = auth_settings(tmp_path, **{"auth.bootstrap_admin_file": str(path)})
    with pytest.raises(ConfigError, match=r"'auth\.bootstrap_admin_file'"):
        StaticAccess.from_settings(settings)
    assert path.read_text(encoding="utf-8") == content


def test_static_access_is_read_only(access: StaticAccess) -> None:
    calls: list[tuple[str, tuple[Any, ...]]] = [
        ("create_user", ("carol", "pw")),
        ("delete_user", ("bob",)),
        ("set_group", ("devs", ["alice"])),
        ("set_grant", ("demo", "user", "bob", "rw")),
    ]
    for method, args in calls:
        with pytest.raises(ReadOnlyAccess):
            getattr(access, method)(*args)


# -- namespaces from the ini (PEP 752) ---------------------------------------------------------


def test_namespaces_come_from_the_ini(tmp_path: Path) -> None:
    settings = auth_settings(
        tmp_path,
        **{
            "user.alice": HASHED,
            "group.platform": "alice",
            "namespace.corp": "group:platform",
            "namespace.acme.tools": "user:alice",
            # A child namespace of another owner: the ini is read broadest first, as an admin would add them.
            "namespace.corp-ml": "user:alice",
        },
    )
    access = StaticAccess(settings)
    assert [(ns.name, ns.display_name, ns.principal) for ns in access.list_namespaces()] == [
        ("acme-tools", "acme.tools", "user:alice"),
        ("corp", "corp", "group:platform"),
        ("corp-ml", "corp-ml", "user:alice"),
    ]
    assert access.is_reserved("Corp_Tool") is True
    assert access.is_reserved("acme") is False
    with pytest.raises(ReadOnlyAccess):
        access.add_namespace("new", "user", "alice")


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        ({"namespace.corp": "alice"}, "owner"),
        ({"namespace.corp": "user:nobody"}, "nobody"),
        ({"namespace.corp": "group:nobody"}, "nobody"),
        ({"namespace.-corp": "user:alice"}, "namespace"),
        ({"namespace.corp-x": "user:alice", "namespace.corp_x": "user:alice"}, "already reserved"),
    ],
)
def test_bad_namespaces_in_the_ini_are_config_errors(tmp_path: Path, raw: dict[str, str], words: str) -> None:
    base = {"user.alice": HASHED, "group.platform": "alice"}
    with pytest.raises(ConfigError, match=words) as caught:
        auth_settings(tmp_path, **base, **raw)
    assert "namespace." in caught.value.message
