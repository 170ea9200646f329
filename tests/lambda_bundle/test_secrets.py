"""Secrets in the handler's settings: SSM and Secrets Manager references, max age, refresh on rejected credentials."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from pypicloud_lite.cache.base import Cache
from pypicloud_lite.config import CacheSettings
from pypicloud_lite.errors import BackendUnavailable, ConfigError
from pypicloud_lite.secrets import SecretResolver
from tests.support.aws import Moto
from tests.support.cache import fresh_database
from tests.support.handler_env import (
    PREFIX,
    cache_truth,
    destroy_bucket,
    handler_env,
    put_object,
    s3_event,
    s3_record,
    sqs_event,
    wheel_bytes,
)

DB_PARAMETER = "/ppc/db-url"
DB_SECRET = "ppc/db-url"


# -- fixtures ------------------------------------------------------------------------------


@pytest.fixture
def bucket(moto: Moto) -> Iterator[str]:
    name = moto.new_bucket()
    yield name
    destroy_bucket(moto, name)


def settings_with(moto: Moto, bucket: str, **values: str) -> dict[str, Any]:
    return {**moto.s3_settings(bucket, PREFIX), "cache.migrate_on_start": "true", **values}


def sqlite_url(tmp_path: Path, name: str) -> str:
    return f"sqlite:///{tmp_path / name}"


def upload(moto: Moto, bucket: str, tmp_path: Path, version: str) -> tuple[str, dict[str, Any]]:
    """A new wheel in the bucket: (its filename, the S3 event announcing it)."""
    filename, data = wheel_bytes(tmp_path, "secretive", version)
    key = f"{PREFIX}secretive/{filename}"
    put_object(moto, bucket, key, data)
    return filename, s3_event(s3_record(bucket, key, "ObjectCreated:Put"))


def files_in(url: str) -> set[str]:
    with create_engine(url).connect() as conn:
        return {row[0] for row in conn.execute(text("SELECT filename FROM ppc_files"))}


# -- resolving -----------------------------------------------------------------------------


def test_cache_url_from_an_ssm_secure_string(
    moto: Moto,
    bucket: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    fetches: list[str],
    ssm: Callable[[str, str], None],
) -> None:
    url = sqlite_url(tmp_path, "from-ssm.sqlite")
    ssm(DB_PARAMETER, url)
    with handler_env(monkeypatch, settings_with(moto, bucket, **{"cache.url": f"ssm:{DB_PARAMETER}"})) as module:
        for version in ("1.0", "1.1", "1.2"):
            _filename, event = upload(moto, bucket, tmp_path, version)
            assert module.handler(event, None) == {"messages": 1, "applied": 1}
        assert module.runtime().settings.cache.url == url
        assert files_in(url) == {f"secretive-{v}-py3-none-any.whl" for v in ("1.0", "1.1", "1.2")}
    # Fetched once for three warm invocations (and the runtime() calls above).
    assert fetches == [DB_PARAMETER]


def test_cache_url_from_a_secrets_manager_secret(
    moto: Moto,
    bucket: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    fetches: list[str],
    secret: Callable[[str, str], None],
) -> None:
    url = sqlite_url(tmp_path, "from-secretsmanager.sqlite")
    secret(DB_SECRET, url)
    settings = settings_with(moto, bucket, **{"cache.url": f"secretsmanager:{DB_SECRET}"})
    with handler_env(monkeypatch, settings) as module:
        for version in ("1.0", "1.1"):
            _filename, event = upload(moto, bucket, tmp_path, version)
            assert module.handler(event, None) == {"messages": 1, "applied": 1}
        assert module.runtime().settings.cache.url == url
        assert len(files_in(url)) == 2
    assert fetches == [DB_SECRET]


def test_a_missing_parameter_names_the_setting(
    moto: Moto, bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fetches: list[str]
) -> None:
    settings = settings_with(moto, bucket, **{"cache.url": "ssm:/ppc/no-such-parameter"})
    with handler_env(monkeypatch, settings) as module:
        _filename, event = upload(moto, bucket, tmp_path, "1.0")
        with pytest.raises(ConfigError, match=r"cache\.url.*ssm.*/ppc/no-such-parameter"):
            module.handler(event, None)
        # From SQS: every message goes back to the queue, and the batch does not blow up.
        queued = sqs_event(json.dumps(event), json.dumps(event))
        result = module.handler(queued, None)
        assert sorted(f["itemIdentifier"] for f in result["batchItemFailures"]) == sorted(
            r["messageId"] for r in queued["Records"]
        )


def test_cache_keys_are_the_full_parameter_names(
    moto: Moto,
    bucket: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    fetches: list[str],
    ssm: Callable[[str, str], None],
    secret: Callable[[str, str], None],
) -> None:
    """Three parameters and a secret whose names share their last part: each setting gets its own value."""
    url = sqlite_url(tmp_path, "keys.sqlite")
    ssm("/ppc/region-a/value", bucket)
    ssm("/ppc/region-b/value", url)
    ssm("value", PREFIX)
    secret("/ppc/region-a/value", "20")  # same name as an SSM parameter, another service
    settings = settings_with(
        moto,
        bucket,
        **{
            "storage.bucket": "ssm:/ppc/region-a/value",
            "cache.url": "ssm:/ppc/region-b/value",
            "storage.prefix": "ssm:value",
            "cache.pool_size": "secretsmanager:/ppc/region-a/value",
        },
    )
    with handler_env(monkeypatch, settings) as module:
        filename, event = upload(moto, bucket, tmp_path, "1.0")
        assert module.handler(event, None) == {"messages": 1, "applied": 1}
        resolved = module.runtime().settings
        assert resolved.storage.s3.bucket == bucket
        assert resolved.storage.s3.prefix == PREFIX
        assert resolved.cache.url == url
        assert resolved.cache.pool_size == 20
        assert cache_truth(module.runtime().cache).keys() == {filename}
    assert sorted(fetches) == sorted(["/ppc/region-a/value", "/ppc/region-b/value", "value", "/ppc/region-a/value"])


def test_resolver_keys_values_by_service_and_full_name() -> None:
    values = {
        ("ssm", "/team-a/db-url"): "a",
        ("ssm", "/team-b/db-url"): "b",
        ("ssm", "db-url"): "plain",
        ("secretsmanager", "/team-a/db-url"): "secret-a",
    }
    calls: list[tuple[str, str]] = []

    class FakeClient:
        def __init__(self, service: str) -> None:
            self.service = service

        def get_parameter(self, Name: str, WithDecryption: bool) -> dict[str, Any]:
            assert WithDecryption
            calls.append((self.service, Name))
            return {"Parameter": {"Value": values[(self.service, Name)]}}

        def get_secret_value(self, SecretId: str) -> dict[str, Any]:
            calls.append((self.service, SecretId))
            return {"SecretString": values[(self.service, SecretId)]}

    resolver = SecretResolver(max_age=300, client_factory=FakeClient)
    raw = {
        "x.a": "ssm:/team-a/db-url",
        "x.b": "ssm:/team-b/db-url",
        "x.plain": "ssm:db-url",
        "x.secret": "secretsmanager:/team-a/db-url",
        "x.literal": "db-url",
        "x.number": 5,
    }
    expected = {
        "x.a": "a",
        "x.b": "b",
        "x.plain": "plain",
        "x.secret": "secret-a",
        "x.literal": "db-url",
        "x.number": 5,
    }
    assert resolver.resolve(raw) == expected
    assert resolver.resolve(raw) == expected
    assert len(calls) == 4


# -- max age -------------------------------------------------------------------------------


def test_a_changed_parameter_is_picked_up_after_the_max_age_not_before(
    moto: Moto,
    bucket: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    fetches: list[str],
    ssm: Callable[[str, str], None],
) -> None:
    first, second = sqlite_url(tmp_path, "first.sqlite"), sqlite_url(tmp_path, "second.sqlite")
    ssm(DB_PARAMETER, first)
    settings = settings_with(moto, bucket, **{"cache.url": f"ssm:{DB_PARAMETER}", "sync.secret_max_age": "60"})
    with handler_env(monkeypatch, settings) as module:
        a, event = upload(moto, bucket, tmp_path, "1.0")
        assert module.handler(event, None)["applied"] == 1
        resolver = module._resolver
        assert resolver.max_age == 60
        warm = module.runtime()
        skew = [0.0]
        resolver._clock = lambda: time.monotonic() + skew[0]

        ssm(DB_PARAMETER, second)  # rotated: the next fetch gets it
        skew[0] = 55.0
        b, event = upload(moto, bucket, tmp_path, "1.1")
        assert module.handler(event, None)["applied"] == 1
        assert module.runtime() is warm, "the parameter was fetched again before its max age"
        assert fetches == [DB_PARAMETER]

        skew[0] = 61.0
        c, event = upload(moto, bucket, tmp_path, "1.2")
        assert module.handler(event, None)["applied"] == 1
        assert fetches == [DB_PARAMETER, DB_PARAMETER]
        assert module.runtime() is not warm
        assert module.runtime().settings.cache.url == second
    assert files_in(first) == {a, b}
    assert files_in(second) == {c}


# -- credentials rejected ----------------------------------------------------------------------

REJECTED = 'connection failed: FATAL:  password authentication failed for user "ppc"'


class RejectingCache(Cache):
    """A cache whose database refuses the credentials: every call fails as the SQL cache reports it."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def _refuse(self, *_args: Any, **_kwargs: Any) -> Any:
        self.calls += 1
        try:
            raise RuntimeError(f"(psycopg.OperationalError) {REJECTED}")
        except RuntimeError as cause:
            raise BackendUnavailable("The package cache database is unavailable (OperationalError).") from cause

    get_file = _commit = _commit_reload = get_project = _refuse
    list_projects = search_projects = counts = files_of_projects = project_files = all_files = _refuse
    acquire_lock = update_lock = release_lock = lock_state = serial = check_health = _refuse
    outbox_pending = outbox_batch = open_outbox_batch = close_outbox_batch = cdn_history = _refuse
    add_downloads = download_counts = _refuse

    def close(self) -> None:
        pass


def fake_build_cache(
    module: ModuleType, monkeypatch: pytest.MonkeyPatch, *, refuse_on_build: bool = False
) -> list[RejectingCache]:
    """Caches built from a URL naming `wrong` refuse their credentials (on every call, or when built)."""
    real_build = module.build_cache
    refusing: list[RejectingCache] = []

    def build(settings: CacheSettings) -> Cache:
        if "wrong" in settings.url:
            cache = RejectingCache()
            refusing.append(cache)
            if refuse_on_build:
                cache._refuse()
            return cache
        built: Cache = real_build(settings)
        return built

    monkeypatch.setattr(module, "build_cache", build)
    return refusing


def test_rejected_credentials_on_a_warm_runtime_force_a_refresh(
    moto: Moto,
    bucket: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    fetches: list[str],
    ssm: Callable[[str, str], None],
) -> None:
    right = sqlite_url(tmp_path, "right.sqlite")
    ssm(DB_PARAMETER, sqlite_url(tmp_path, "wrong.sqlite"))
    with handler_env(monkeypatch, settings_with(moto, bucket, **{"cache.url": f"ssm:{DB_PARAMETER}"})) as module:
        refusing = fake_build_cache(module, monkeypatch)
        filename, event = upload(moto, bucket, tmp_path, "1.0")
        # Refused: the secrets are fetched again at once and the record retried once, then the failure surfaces.
        with pytest.raises(BackendUnavailable):
            module.handler(event, None)
        assert fetches == [DB_PARAMETER, DB_PARAMETER]
        # Each build's first call (whether the index has a CDN, read as the runtime starts) is refused.
        assert [c.calls for c in refusing] == [1, 1]

        ssm(DB_PARAMETER, right)  # the operator fixes the parameter; max age is 300 s
        assert module.handler(event, None) == {"messages": 1, "applied": 1}
        assert fetches == [DB_PARAMETER, DB_PARAMETER, DB_PARAMETER]
        assert module.runtime().settings.cache.url == right
        assert files_in(right) == {filename}

        # Another unavailability (not the credentials) does not throw the secrets away.
        monkeypatch.setattr(
            module.runtime().cache,
            "get_file",
            lambda _name: (_ for _ in ()).throw(BackendUnavailable("The package cache database is busy.")),
        )
        _other, event = upload(moto, bucket, tmp_path, "1.1")
        with pytest.raises(BackendUnavailable):
            module.handler(event, None)
        assert len(fetches) == 3


def test_rejected_credentials_at_a_cold_start_force_a_refresh(
    moto: Moto,
    bucket: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    fetches: list[str],
    ssm: Callable[[str, str], None],
) -> None:
    """The first connection is made while the runtime is built (the SQL cache migrates or checks its schema)."""
    right = sqlite_url(tmp_path, "right.sqlite")
    ssm(DB_PARAMETER, sqlite_url(tmp_path, "wrong.sqlite"))
    with handler_env(monkeypatch, settings_with(moto, bucket, **{"cache.url": f"ssm:{DB_PARAMETER}"})) as module:
        fake_build_cache(module, monkeypatch, refuse_on_build=True)
        filename, event = upload(moto, bucket, tmp_path, "1.0")
        with pytest.raises(BackendUnavailable):
            module.handler(event, None)
        ssm(DB_PARAMETER, right)
        try:
            assert module.handler(event, None) == {"messages": 1, "applied": 1}
        except BackendUnavailable as exc:
            pytest.fail(f"the refused secret was kept until its max age: {exc!r}")
        assert len(fetches) >= 2
        assert files_in(right) == {filename}


# -- a real database refusing a password (MariaDB: the PostgreSQL test server trusts 127.0.0.1) ---------


@contextmanager
def mariadb_user(tmp_path: Path) -> Iterator[tuple[str, Callable[[str], str], Any]]:
    """(user, url_with(password), root engine) on a fresh database the user owns; dropped afterwards."""
    with fresh_database("mariadb", tmp_path) as root_url:
        database = make_url(root_url).database
        user = f"ppc_{uuid.uuid4().hex[:10]}"
        root = create_engine(root_url, isolation_level="AUTOCOMMIT")
        with root.connect() as conn:
            conn.execute(text(f"CREATE USER '{user}'@'%' IDENTIFIED BY 'first-password'"))
            conn.execute(text(f"GRANT ALL ON `{database}`.* TO '{user}'@'%'"))

        def url_with(password: str) -> str:
            return make_url(root_url).set(username=user, password=password).render_as_string(hide_password=False)

        try:
            yield user, url_with, root
        finally:
            with root.connect() as conn:
                conn.execute(text(f"DROP USER IF EXISTS '{user}'@'%'"))
            root.dispose()


def test_a_password_the_database_refuses_at_cold_start_is_fetched_again_at_once(
    moto: Moto,
    bucket: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    fetches: list[str],
    ssm: Callable[[str, str], None],
) -> None:
    with mariadb_user(tmp_path) as (_user, url_with, _root):
        ssm(DB_PARAMETER, url_with("not-the-password"))
        with handler_env(monkeypatch, settings_with(moto, bucket, **{"cache.url": f"ssm:{DB_PARAMETER}"})) as module:
            _filename, event = upload(moto, bucket, tmp_path, "1.0")
            with pytest.raises(Exception, match=r"(?i)access denied for user") as refused:
                module.handler(event, None)
            ssm(DB_PARAMETER, url_with("first-password"))
            try:
                assert module.handler(event, None) == {"messages": 1, "applied": 1}
            except Exception as exc:
                pytest.fail(f"the refused password was kept until its max age: {exc!r}")
            assert len(fetches) >= 2
            assert isinstance(refused.value, BackendUnavailable), (
                f"a refused connection surfaces as {type(refused.value).__name__}, not BackendUnavailable"
            )


def test_a_rotated_password_is_fetched_again_when_the_database_refuses_the_old_one(
    moto: Moto,
    bucket: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    fetches: list[str],
    ssm: Callable[[str, str], None],
) -> None:
    with mariadb_user(tmp_path) as (user, url_with, root):
        ssm(DB_PARAMETER, url_with("first-password"))
        with handler_env(monkeypatch, settings_with(moto, bucket, **{"cache.url": f"ssm:{DB_PARAMETER}"})) as module:
            first, event = upload(moto, bucket, tmp_path, "1.0")
            assert module.handler(event, None) == {"messages": 1, "applied": 1}
            warm = module.runtime()

            # Rotation: new password in the database and in SSM; the old sessions end.
            with root.connect() as conn:
                conn.execute(text(f"ALTER USER '{user}'@'%' IDENTIFIED BY 'second-password'"))
                ids = conn.execute(text("SELECT id FROM information_schema.processlist WHERE user = :u"), {"u": user})
                for (session_id,) in ids.fetchall():
                    conn.execute(text(f"KILL {int(session_id)}"))
            ssm(DB_PARAMETER, url_with("second-password"))

            second, event = upload(moto, bucket, tmp_path, "1.1")
            assert module.handler(event, None) == {"messages": 1, "applied": 1}
            assert fetches == [DB_PARAMETER, DB_PARAMETER]
            assert module.runtime() is not warm
            assert cache_truth(module.runtime().cache).keys() == {first, second}
