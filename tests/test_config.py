"""Settings: defaults, parsing of every key, environment and JSON overrides, and errors that name the key."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import pytest

from pypicloud_lite.config import (
    CacheSettings,
    CdnSettings,
    ReloadSettings,
    Settings,
    StorageSettings,
    SyncSettings,
    UploadSettings,
    WebSettings,
    load_ini,
    load_settings,
    read_ini,
    sync_settings,
)
from pypicloud_lite.config_environ import env_name, environ_settings
from pypicloud_lite.config_values import parse_bool, parse_list, parse_size
from pypicloud_lite.errors import ConfigError
from pypicloud_lite.models import Grant

# The config only checks the prefix; no real argon2 hashing is needed here.
FAKE_HASH = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"


def minimal(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {"storage.dir": str(tmp_path / "packages"), "cache.url": "sqlite:///:memory:", **extra}


def test_defaults(tmp_path: Path) -> None:
    settings = load_settings(minimal(tmp_path), environ={})
    assert settings.storage == StorageSettings(backend="local", dir=tmp_path / "packages")
    assert settings.cache == CacheSettings(
        backend="sql", url="sqlite:///:memory:", migrate_on_start=False, pool_size=5, echo=False
    )
    auth = settings.auth
    assert auth.backend == "static"
    assert auth.url == "sqlite:///:memory:"  # the access tables default to the cache database
    assert auth.realm == "pypicloud_lite"
    assert auth.admins == frozenset()
    assert auth.users == ()
    assert auth.groups == ()
    assert auth.grants == ()
    assert auth.default_read == frozenset({"everyone"})
    assert auth.default_write == frozenset({"authenticated"})
    assert auth.create_projects is None
    assert auth.bootstrap_admin_file is None
    assert auth.bootstrap_admin is False
    assert auth.credential_cache_seconds == 300
    assert auth.max_failed_logins == 10
    assert auth.failed_login_window == 300
    assert settings.upload == UploadSettings(max_size=100_000_000, spool_dir=None)
    assert settings.web == WebSettings(page_max_age=600, file_max_age=31_536_000)
    assert (settings.reload, settings.sync, settings.cdn) == (ReloadSettings(), SyncSettings(), CdnSettings())


def test_every_key_is_parsed(tmp_path: Path) -> None:
    raw = {
        "storage.backend": "local",
        "storage.dir": str(tmp_path / "packages"),
        "cache.backend": "sql",
        "cache.url": "postgresql+psycopg://ppc@db/ppc",
        "cache.migrate_on_start": "yes",
        "cache.pool_size": "12",
        "cache.echo": "on",
        "auth.realm": "Team packages",
        "auth.admins": "alice, bob",
        "auth.bootstrap_admin_file": str(tmp_path / "admin.credentials"),
        "user.alice": FAKE_HASH,
        "user.bob": "  " + FAKE_HASH + "  ",
        "user.carol": FAKE_HASH,
        "upload.max_size": "1GiB",
        "upload.spool_dir": str(tmp_path / "spool"),
        "web.page_max_age": "30",
        "web.file_max_age": "0",
        "auth.backend": "sql",
        "auth.url": "postgresql+psycopg://ppc@db/access",
        "auth.bootstrap_admin": "true",
        "auth.credential_cache_seconds": "60",
        "auth.max_failed_logins": "3",
        "auth.failed_login_window": "900",
        "group.devs": "alice bob",
        "group.ops": "carol",
        "package.Zope.Interface.group.devs": "rw",
        "package.secret.user.carol": "RWD",
        "pypi.default_read": "authenticated",
        "pypi.default_write": "group:devs, user:carol",
        "pypi.create_projects": "group:ops",
        # Keys outside our prefixes belong to Pyramid or PasteDeploy and are left alone.
        "pyramid.reload_templates": "true",
        "use": "egg:pypicloud_lite",
    }
    settings = load_settings(raw, environ={})
    assert settings.storage == StorageSettings(backend="local", dir=tmp_path / "packages")
    assert settings.cache == CacheSettings(
        backend="sql", url="postgresql+psycopg://ppc@db/ppc", migrate_on_start=True, pool_size=12, echo=True
    )
    assert settings.auth.realm == "Team packages"
    assert settings.auth.admins == frozenset({"alice", "bob"})
    assert settings.auth.users == (("alice", FAKE_HASH), ("bob", FAKE_HASH), ("carol", FAKE_HASH))
    assert settings.auth.bootstrap_admin_file == tmp_path / "admin.credentials"
    assert settings.auth.backend == "sql"
    assert settings.auth.url == "postgresql+psycopg://ppc@db/access"
    assert settings.auth.bootstrap_admin is True
    assert settings.auth.credential_cache_seconds == 60
    assert settings.auth.max_failed_logins == 3
    assert settings.auth.failed_login_window == 900
    assert settings.auth.groups == (("devs", ("alice", "bob")), ("ops", ("carol",)))
    assert settings.auth.grants == (
        Grant(project="secret", kind="user", name="carol", perms="rwd"),
        Grant(project="zope-interface", kind="group", name="devs", perms="rw"),
    )
    assert settings.auth.default_read == frozenset({"authenticated"})
    assert settings.auth.default_write == frozenset({"group:devs", "user:carol"})
    assert settings.auth.create_projects == frozenset({"group:ops"})
    assert settings.upload == UploadSettings(max_size=1024**3, spool_dir=tmp_path / "spool")
    assert settings.web == WebSettings(page_max_age=30, file_max_age=0)


def test_settings_are_frozen(tmp_path: Path) -> None:
    settings = load_settings(minimal(tmp_path), environ={})
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.upload.max_size = 1  # type: ignore[misc]


@pytest.mark.parametrize("value", ["1", "true", "True", "YES", "on", " on "])
def test_true_values(value: str) -> None:
    assert parse_bool(value) is True


@pytest.mark.parametrize("value", ["0", "false", "FALSE", "no", "off", ""])
def test_false_values(value: str) -> None:
    assert parse_bool(value) is False


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("4096", 4096),
        ("100MB", 100_000_000),
        ("100mb", 100_000_000),
        ("100 MB", 100_000_000),
        ("10kB", 10_000),
        ("10K", 10_000),
        ("1GiB", 1024**3),
        ("2 KiB", 2048),
        ("3Mi", 3 * 1024**2),
        ("1G", 10**9),
        ("2TB", 2 * 10**12),
        ("1TiB", 1024**4),
        ("512B", 512),
        (" 7 ", 7),
    ],
)
def test_sizes(value: str, expected: int) -> None:
    assert parse_size(value) == expected


@pytest.mark.parametrize("value", ["", "MB", "-1", "1.5GB", "10 XB", "ten", "1e6", "100 MB extra"])
def test_bad_sizes(value: str) -> None:
    with pytest.raises(ValueError, match="size"):
        parse_size(value)


def test_lists() -> None:
    assert parse_list("alice, bob\n  carol,,dave ") == ("alice", "bob", "carol", "dave")
    assert parse_list("") == ()
    assert parse_list(" \n ") == ()


def test_env_name() -> None:
    assert env_name("upload.max_size") == "PPC_UPLOAD_MAX_SIZE"
    assert env_name("cache.migrate_on_start") == "PPC_CACHE_MIGRATE_ON_START"
    assert env_name("storage.dir") == "PPC_STORAGE_DIR"


def test_environment_overrides_win(tmp_path: Path) -> None:
    raw = minimal(tmp_path, **{"upload.max_size": "1MB", "cache.echo": "true", "auth.realm": "ini"})
    environ = {
        "PPC_UPLOAD_MAX_SIZE": "1KiB",
        "PPC_CACHE_ECHO": "false",
        "PPC_CACHE_URL": "sqlite:///from-env.sqlite",
        "PPC_AUTH_REALM": "env",
        "PPC_WEB_FILE_MAX_AGE": "60",
        "PPC_STORAGE_DIR": str(tmp_path / "env-packages"),
        "UNRELATED": "ignored",
    }
    settings = load_settings(raw, environ=environ)
    assert settings.upload.max_size == 1024
    assert settings.cache.echo is False
    assert settings.cache.url == "sqlite:///from-env.sqlite"
    assert settings.auth.realm == "env"
    assert settings.web.file_max_age == 60
    assert settings.storage.dir == tmp_path / "env-packages"


def test_environment_can_supply_required_keys(tmp_path: Path) -> None:
    environ = {"PPC_STORAGE_DIR": str(tmp_path), "PPC_CACHE_URL": "sqlite://"}
    settings = load_settings({}, environ=environ)
    assert settings.storage.dir == tmp_path
    assert settings.cache.url == "sqlite://"


def test_process_environment_is_the_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PPC_WEB_PAGE_MAX_AGE", "5")
    assert load_settings(minimal(tmp_path)).web.page_max_age == 5


def test_pypicloud_settings_json(tmp_path: Path) -> None:
    blob = {
        "cache.url": "postgresql+psycopg://lambda@db/ppc",
        "upload.max_size": 2048,
        "cache.migrate_on_start": True,
        "web.page_max_age": 15,
    }
    settings = load_settings(minimal(tmp_path), environ={"PYPICLOUD_SETTINGS": json.dumps(blob)})
    assert settings.cache.url == "postgresql+psycopg://lambda@db/ppc"
    assert settings.upload.max_size == 2048
    assert settings.cache.migrate_on_start is True
    assert settings.web.page_max_age == 15


def test_pypicloud_settings_json_alone_is_enough(tmp_path: Path) -> None:
    blob = json.dumps({"storage.dir": str(tmp_path), "cache.url": "sqlite://"})
    settings = load_settings({}, environ={"PYPICLOUD_SETTINGS": blob})
    assert settings.storage.dir == tmp_path


def test_ppc_variables_win_over_pypicloud_settings(tmp_path: Path) -> None:
    environ = {"PYPICLOUD_SETTINGS": json.dumps({"web.page_max_age": "15"}), "PPC_WEB_PAGE_MAX_AGE": "20"}
    assert load_settings(minimal(tmp_path), environ=environ).web.page_max_age == 20


def test_pypicloud_settings_json_keys_are_checked_too(tmp_path: Path) -> None:
    environ = {"PYPICLOUD_SETTINGS": json.dumps({"cache.urll": "sqlite://"})}
    with pytest.raises(ConfigError, match=r"'cache\.urll'"):
        load_settings(minimal(tmp_path), environ=environ)


@pytest.mark.parametrize("blob", ["{not json", "", "{'single': 'quotes'}"])
def test_pypicloud_settings_invalid_json(tmp_path: Path, blob: str) -> None:
    with pytest.raises(ConfigError, match="PYPICLOUD_SETTINGS"):
        load_settings(minimal(tmp_path), environ={"PYPICLOUD_SETTINGS": blob})


@pytest.mark.parametrize("blob", ['["cache.url", "sqlite://"]', '"sqlite://"', "42", "null"])
def test_pypicloud_settings_must_be_an_object(tmp_path: Path, blob: str) -> None:
    with pytest.raises(ConfigError, match="PYPICLOUD_SETTINGS"):
        load_settings(minimal(tmp_path), environ={"PYPICLOUD_SETTINGS": blob})


def test_pypicloud_settings_json_list_is_a_list_or_refused(tmp_path: Path) -> None:
    # A JSON list for a list setting must not be read as the Python repr "['alice', 'bob']".
    raw = minimal(tmp_path, **{"auth.bootstrap_admin_file": str(tmp_path / "admin")})
    environ = {"PYPICLOUD_SETTINGS": json.dumps({"auth.admins": ["alice", "bob"]})}
    try:
        settings = load_settings(raw, environ=environ)
    except ConfigError as exc:
        assert "auth.admins" in exc.message
    else:
        assert settings.auth.admins == frozenset({"alice", "bob"})


def test_environ_settings_are_the_json_object_as_ini_strings() -> None:
    assert environ_settings({}) == {}
    blob = {"cache.migrate_on_start": True, "web.page_max_age": 15, "auth.admins": ["a", "b"], "cache.url": "ssm:/x"}
    assert environ_settings({"PYPICLOUD_SETTINGS": json.dumps(blob)}) == {
        "cache.migrate_on_start": "true",
        "web.page_max_age": "15",
        "auth.admins": "a b",
        "cache.url": "ssm:/x",
    }


def test_sync_settings_alone_leave_the_other_settings_unread() -> None:
    # The Lambda reads them before it resolves the secret references the others may hold.
    assert sync_settings({}) == SyncSettings()
    assert sync_settings({"sync.secret_max_age": "60", "cache.read_capacity": "ssm:/x"}).secret_max_age == 60.0
    with pytest.raises(ConfigError, match=r"'sync\.secret_max_age'"):
        sync_settings({"sync.secret_max_age": "soon"})


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("storage.backend", "ftp"),
        ("cache.backend", "redis"),
        ("cache.migrate_on_start", "maybe"),
        ("cache.pool_size", "five"),
        ("cache.pool_size", "1.5"),
        ("cache.echo", "2"),
        ("upload.max_size", "lots"),
        ("upload.max_size", "1.5GB"),
        ("web.page_max_age", "soon"),
        ("web.file_max_age", "1y"),
    ],
)
def test_a_wrong_value_names_the_key(tmp_path: Path, key: str, value: str) -> None:
    with pytest.raises(ConfigError, match=rf"'{key}'") as excinfo:
        load_settings(minimal(tmp_path, **{key: value}), environ={})
    assert value in excinfo.value.message or repr(value) in excinfo.value.message


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("group.bad name", "alice"),
        ("package.demo.team.devs", "r"),
        ("package.demo", "r"),
        ("package.demo.user.alice", "rx"),
        ("pypi.default_read", "nobody"),
        ("pypi.default_write", "group:"),
        ("pypi.create_projects", "user:bad name"),
        ("auth.backend", "ldap"),
        ("auth.max_failed_logins", "ten"),
    ],
)
def test_a_wrong_access_setting_names_the_key(tmp_path: Path, key: str, value: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        load_settings(minimal(tmp_path, **{key: value}), environ={})
    assert key.split(" ", maxsplit=1)[0] in excinfo.value.message


def test_a_wrong_environment_value_names_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"'upload\.max_size'"):
        load_settings(minimal(tmp_path), environ={"PPC_UPLOAD_MAX_SIZE": "huge"})


@pytest.mark.parametrize(
    "key",
    ["storage.typo", "cache.urll", "auth.admin", "upload.maxsize", "web.page_max_agee", "storage.bucket", "pypi.x"],
)
def test_an_unknown_key_of_ours_is_refused(tmp_path: Path, key: str) -> None:
    with pytest.raises(ConfigError, match=rf"unknown setting '{key}'"):
        load_settings(minimal(tmp_path, **{key: "x"}), environ={})


def test_missing_cache_url_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"'cache\.url'"):
        load_settings({"storage.dir": str(tmp_path)}, environ={})


def test_blank_cache_url_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"'cache\.url'"):
        load_settings(minimal(tmp_path, **{"cache.url": "   "}), environ={})


def test_missing_storage_dir_is_named() -> None:
    with pytest.raises(ConfigError, match=r"'storage\.dir'"):
        load_settings({"cache.url": "sqlite://"}, environ={})


def test_blank_storage_dir_from_the_environment_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"'storage\.dir'"):
        load_settings(minimal(tmp_path), environ={"PPC_STORAGE_DIR": ""})


def test_paths_expand_the_home_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    settings = load_settings({"storage.dir": "~/pkgs", "cache.url": "sqlite://"}, environ={})
    assert settings.storage.dir == tmp_path / "pkgs"


@pytest.mark.parametrize("hashed", ["hunter2", "$2b$12$abcdefghijklmnopqrstuv", ""])
def test_a_user_without_an_argon2_hash_is_refused(tmp_path: Path, hashed: str) -> None:
    with pytest.raises(ConfigError, match=r"'user\.alice'.*argon2"):
        load_settings(minimal(tmp_path, **{"user.alice": hashed}), environ={})


def test_a_user_without_a_name_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"'user\.'"):
        load_settings(minimal(tmp_path, **{"user.": FAKE_HASH}), environ={})


def test_an_admin_needs_a_password(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"'auth\.admins'.*'bob'"):
        load_settings(minimal(tmp_path, **{"auth.admins": "bob", "user.alice": FAKE_HASH}), environ={})


def test_an_admin_without_a_hash_is_fine_with_a_bootstrap_file(tmp_path: Path) -> None:
    raw = minimal(tmp_path, **{"auth.admins": "admin", "auth.bootstrap_admin_file": str(tmp_path / "a")})
    assert load_settings(raw, environ={}).auth.admins == frozenset({"admin"})


def _write_ini(path: Path, body: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body, encoding="utf-8")
    return path


INI = """\
[DEFAULT]
debug = false

[app:main]
use = egg:pypicloud_lite
storage.dir = %(here)s/var/packages
cache.url = sqlite:///%(here)s/var/cache.sqlite
upload.max_size = 10MB
upload.spool_dir = %(here)s/spool
auth.admins =
    alice
    bob
user.alice = {hash}
user.bob = {hash}

[server:main]
use = egg:waitress#main
"""


def test_read_ini_sets_here(tmp_path: Path) -> None:
    ini = _write_ini(tmp_path / "conf" / "prod.ini", INI.format(hash=FAKE_HASH))
    raw = read_ini(ini)
    here = str((tmp_path / "conf").resolve())
    assert raw["storage.dir"] == f"{here}/var/packages"
    assert raw["cache.url"] == f"sqlite:///{here}/var/cache.sqlite"
    assert "here" not in raw
    assert "__file__" not in raw


def test_load_ini(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ini = _write_ini(tmp_path / "conf" / "prod.ini", INI.format(hash=FAKE_HASH))
    monkeypatch.chdir(tmp_path)
    settings = load_ini(Path("conf") / "prod.ini", environ={"PPC_UPLOAD_MAX_SIZE": "2MB"})
    here = (tmp_path / "conf").resolve()
    assert settings.storage.dir == here / "var" / "packages"
    assert settings.cache.url == f"sqlite:///{here}/var/cache.sqlite"
    assert settings.upload.max_size == 2_000_000
    assert settings.upload.spool_dir == here / "spool"
    assert settings.auth.admins == frozenset({"alice", "bob"})
    assert dict(settings.auth.users).keys() == {"alice", "bob"}
    assert ini.exists()


def test_read_ini_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        read_ini(tmp_path / "absent.ini")


def test_read_ini_missing_section(tmp_path: Path) -> None:
    ini = _write_ini(tmp_path / "other.ini", "[server:main]\nuse = egg:waitress#main\n")
    with pytest.raises(ConfigError, match=r"\[app:main\]"):
        read_ini(ini)


def test_read_ini_other_section(tmp_path: Path) -> None:
    ini = _write_ini(tmp_path / "multi.ini", "[app:second]\nstorage.dir = %(here)s/x\ncache.url = sqlite://\n")
    raw: dict[str, Any] = dict(read_ini(ini, section="app:second"))
    assert raw["storage.dir"] == f"{tmp_path.resolve()}/x"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("https://pypi.example.com", "https://pypi.example.com"),
        ("https://PyPI.Example.com:443/", "https://pypi.example.com"),
        ("http://pypi.example.com:80/base/", "http://pypi.example.com/base"),
        ("https://pypi.example.com:8443/team/pypi", "https://pypi.example.com:8443/team/pypi"),
        ("http://10.0.0.5:6543", "http://10.0.0.5:6543"),
        ("https://[2001:db8::1]/x", "https://[2001:db8::1]/x"),
        ("", None),
    ],
)
def test_public_url_is_normalized(tmp_path: Path, value: str, expected: str | None) -> None:
    settings = load_settings(minimal(tmp_path, **{"web.public_url": value}), environ={})
    assert settings.web.public_url == expected


@pytest.mark.parametrize(
    "value",
    [
        "pypi.example.com",
        "ftp://pypi.example.com",
        "https://",
        "https://pypi.example.com/?x=1",
        "https://pypi.example.com/#top",
        "https://pypi.example.com/base?",
        "https://user:pw@pypi.example.com",
        "https://pypi.example.com:99999",
        "https://pypi.example.com:port",
        "https://pypi_example.com",
        "https://pypi.example.com/a//b",
        "https://pypi.example.com/a/../b",
        "https://pypi.example.com/a%2Fb",
        "https://pypi.example.com/a b",
    ],
)
def test_a_wrong_public_url_names_the_key(tmp_path: Path, value: str) -> None:
    with pytest.raises(ConfigError, match=r"^setting 'web\.public_url': ") as excinfo:
        load_settings(minimal(tmp_path, **{"web.public_url": value}), environ={})
    assert (
        "expected" in excinfo.value.message
        or "is not a host" in excinfo.value.message
        or "path" in excinfo.value.message
    )


def test_allowed_hosts_are_a_list_of_host_names(tmp_path: Path) -> None:
    raw = minimal(tmp_path, **{"web.allowed_hosts": "PyPI.example.com\n  pypi.lan:8080, 10.0.0.5 [::1]:6543"})
    hosts = load_settings(raw, environ={}).web.allowed_hosts
    assert hosts == ("pypi.example.com", "pypi.lan:8080", "10.0.0.5", "[::1]:6543")
    assert load_settings(minimal(tmp_path, **{"web.allowed_hosts": "*"}), environ={}).web.allowed_hosts == ("*",)
    assert load_settings(minimal(tmp_path, **{"web.allowed_hosts": " "}), environ={}).web.allowed_hosts is None


@pytest.mark.parametrize("value", ["http://pypi.example.com", "pypi.example.com/x", "host:port", "::1", "a@b"])
def test_a_wrong_allowed_host_names_the_key(tmp_path: Path, value: str) -> None:
    with pytest.raises(ConfigError, match=r"'web\.allowed_hosts'") as excinfo:
        load_settings(minimal(tmp_path, **{"web.allowed_hosts": value}), environ={})
    assert repr(value) in excinfo.value.message


def _pools(raw: dict[str, str]) -> tuple[int, int, int]:
    """(S3 pool, DynamoDB pool, SQL connections) the settings give each client."""
    sql_keys = {k: v for k, v in raw.items() if k != "cache.max_pool_connections"}
    dynamo_keys = {k: v for k, v in raw.items() if k not in ("storage.max_pool_connections", "cache.max_connections")}
    s3 = load_settings(
        {**sql_keys, "storage.backend": "s3", "storage.bucket": "b", "cache.url": "sqlite://"}, environ={}
    )
    dynamo = load_settings({**dynamo_keys, "storage.dir": "/p", "cache.backend": "dynamo"}, environ={})
    assert s3.storage.s3 is not None and dynamo.cache.dynamo is not None
    return s3.storage.s3.max_pool_connections, dynamo.cache.dynamo.max_pool_connections, s3.cache.max_connections


def test_connection_pools_are_sized_with_the_reload_workers() -> None:
    """Each client's pool holds every reload worker and request thread at once (16 + 8 by default)."""
    assert _pools({}) == (24, 24, 24)
    assert _pools({"pypi.reload_workers": "32"}) == (40, 40, 40)
    assert _pools({"storage.max_pool_connections": "50", "cache.max_pool_connections": "60"})[:2] == (50, 60)


@pytest.mark.parametrize("key", ["storage.max_pool_connections", "cache.max_pool_connections", "cache.max_connections"])
def test_a_pool_smaller_than_the_reload_workers_is_refused(key: str) -> None:
    with pytest.raises(ConfigError, match=rf"'{key}' \(10\) is below 'pypi.reload_workers' \(16\)"):
        _pools({key: "10"})


# -- upstream.* ------------------------------------------------------------------------------


def _upstream(tmp_path: Path, **extra: str) -> Settings:
    return load_settings(minimal(tmp_path, **extra), environ={})


def test_no_upstream_by_default(tmp_path: Path) -> None:
    assert not _upstream(tmp_path).upstream.enabled


def test_upstreams_are_read_in_order_with_their_options(tmp_path: Path) -> None:
    settings = _upstream(
        tmp_path,
        **{
            "upstream.indexes": "second first",
            "upstream.first.url": "https://one.example/simple",
            "upstream.first.token": "t0ken",
            "upstream.second.url": "http://127.0.0.1:9/root/pypi/+simple/",
            "upstream.second.mode": "redirect",
            "upstream.second.username": "reader",
            "upstream.second.password": "pw",
            "upstream.second.read_timeout": "2.5",
            "upstream.page_ttl": "60",
            "upstream.wait": "12.5",
            "upstream.lease_ttl": "90",
            "upstream.secret_max_age": "30",
        },
    ).upstream
    assert [i.name for i in settings.indexes] == ["second", "first"]
    second, first = settings.indexes
    assert first.url == "https://one.example/simple/" and first.token == "t0ken" and first.mode == "cache"
    assert (second.mode, second.username, second.password, second.read_timeout) == ("redirect", "reader", "pw", 2.5)
    assert settings.page_ttl == 60 and settings.secret_max_age == 30 and settings.enabled
    assert (settings.wait, settings.lease_ttl) == (12.5, 90)
    assert "pw" not in repr(second) and "t0ken" not in repr(first)


def test_an_upstream_set_off_is_not_a_proxy(tmp_path: Path) -> None:
    settings = _upstream(
        tmp_path, **{"upstream.indexes": "a", "upstream.a.url": "http://a.example/simple/", "upstream.a.mode": "off"}
    )
    assert not settings.upstream.enabled


@pytest.mark.parametrize(
    ("extra", "key"),
    [
        ({"upstream.indexes": "a"}, "upstream.a.url"),
        ({"upstream.indexes": "a", "upstream.a.url": "ftp://x/simple/"}, "upstream.a.url"),
        ({"upstream.indexes": "a", "upstream.a.url": "https://u:p@x/simple/"}, "upstream.a.url"),
        (
            {"upstream.indexes": "a", "upstream.a.url": "https://x/simple/", "upstream.a.mode": "mirror"},
            "upstream.a.mode",
        ),
        ({"upstream.indexes": "a", "upstream.a.url": "https://x/", "upstream.a.username": "u"}, "upstream.a.password"),
        (
            {
                "upstream.indexes": "a",
                "upstream.a.url": "https://x/",
                "upstream.a.token": "t",
                "upstream.a.username": "u",
            },
            "upstream.a.token",
        ),
        (
            {"upstream.indexes": "a", "upstream.a.url": "https://x/", "upstream.a.connect_timeout": "0"},
            "upstream.a.connect_timeout",
        ),
        ({"upstream.indexes": "a b a"}, "upstream.indexes"),
        ({"upstream.indexes": "A!"}, "upstream.indexes"),
        ({"upstream.indexes": "a", "upstream.a.url": "https://x/", "upstream.b.url": "https://y/"}, "upstream.b.url"),
        ({"upstream.page_ttl": "-1"}, "upstream.page_ttl"),
        ({"upstream.wait": "0"}, "upstream.wait"),
        ({"upstream.lease_ttl": "soon"}, "upstream.lease_ttl"),
        ({"upstream.indexes": "wait"}, "upstream.indexes"),
        ({"upstream.secret_max_age": "soon"}, "upstream.secret_max_age"),
        ({"upstream.indexes": "secret_max_age"}, "upstream.indexes"),
    ],
)
def test_bad_upstream_settings_name_their_key(tmp_path: Path, extra: dict[str, str], key: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(repr(key))):
        _upstream(tmp_path, **extra)


def test_trusted_publishing_settings(tmp_path: Path) -> None:
    defaults = load_settings(minimal(tmp_path), environ={}).publishing
    assert (defaults.enabled, defaults.audience, defaults.token_lifetime, defaults.leeway) == (True, None, 900, 30)
    assert defaults.known_issuers() == ("https://token.actions.githubusercontent.com", "https://gitlab.com")
    raw = minimal(
        tmp_path,
        **{
            "trusted_publishing.audience": "pypi-corp",
            "trusted_publishing.github_issuer": "https://ghes.example.com/_services/token/",
            "trusted_publishing.gitlab_issuer": "https://gitlab.example.com",
            "trusted_publishing.issuers": "https://ci.example.com https://sso.example.com/realms/ci",
            "trusted_publishing.token_lifetime": "2h",
        },
    )
    publishing = load_settings(raw, environ={}).publishing
    assert publishing.audience == "pypi-corp"
    assert publishing.token_lifetime == 7200
    assert publishing.known_issuers() == (
        "https://ghes.example.com/_services/token",
        "https://gitlab.example.com",
        "https://ci.example.com",
        "https://sso.example.com/realms/ci",
    )


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("trusted_publishing.token_lifetime", "7h", "6h"),
        ("trusted_publishing.token_lifetime", "10", "60 seconds"),
        ("trusted_publishing.github_issuer", "ftp://x.example", "issuer URL"),
        ("trusted_publishing.issuers", "https://ok.example gitlab.example.com", "issuer URL"),
        ("trusted_publishing.gitlab_issuer", "https://token.actions.githubusercontent.com", "same issuer"),
        ("trusted_publishing.lifetime", "1h", "unknown setting"),
    ],
)
def test_bad_trusted_publishing_settings(tmp_path: Path, key: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(minimal(tmp_path, **{key: value}), environ={})
