"""Typed, frozen settings built once from ini strings plus PPC_* environment overrides."""

from __future__ import annotations

import configparser
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, TypeVar

from pypicloud_lite.config_checks import check_unknown_keys
from pypicloud_lite.config_environ import env_name, environ_settings
from pypicloud_lite.config_values import (
    parse_allowed_hosts,
    parse_bool,
    parse_count,
    parse_list,
    parse_non_negative,
    parse_public_url,
    parse_seconds,
    parse_size,
)
from pypicloud_lite.errors import ConfigError, InvalidInput, PypicloudLiteError
from pypicloud_lite.models import Grant
from pypicloud_lite.namespaces import Namespace, check_namespace_name, check_new_namespace, parse_owner
from pypicloud_lite.naming import normalize
from pypicloud_lite.ops_settings import OPS_PREFIXES, OpsSettings, ops_settings
from pypicloud_lite.password_policy import PasswordPolicy, password_policy
from pypicloud_lite.presign_settings import PresignSettings, presign_settings
from pypicloud_lite.publishing_settings import PublishingSettings, publishing_settings
from pypicloud_lite.upstream_settings import UpstreamSettings, upstream_settings

# Settings whose keys are ours: anything else under these prefixes is a typo and refused.
OWN_PREFIXES = (
    "storage.",
    "cache.",
    "auth.",
    "upload.",
    "web.",
    "pypi.",
    "sync.",
    "cdn.",
    "upstream.",
    "trusted_publishing.",
    *OPS_PREFIXES,
)
PERM_LETTERS = frozenset("rwdo")  # read, write, delete/yank, own (access.base.Permission)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_@+-]*\Z")
T = TypeVar("T")


@dataclass(frozen=True)
class S3Settings:
    bucket: str
    prefix: str
    region: str | None
    endpoint_url: str | None
    addressing_style: str
    sse: str | None  # "AES256" or "aws:kms"
    kms_key_id: str | None
    storage_class: str | None
    acl: str | None
    presign: PresignSettings
    max_pool_connections: int


@dataclass(frozen=True)
class StorageSettings:
    backend: str
    dir: Path | None
    stream_files: bool = False  # the files view streams objects instead of redirecting to presigned URLs
    s3: S3Settings | None = None


@dataclass(frozen=True)
class DynamoSettings:
    table_prefix: str
    region: str | None
    endpoint_url: str | None
    create_tables: bool
    # PAY_PER_REQUEST (on demand) unless capacities are given.
    read_capacity: int | None
    write_capacity: int | None
    # HTTP connections pynamodb keeps: enough for the reload's workers and the request threads at once.
    max_pool_connections: int = 10


@dataclass(frozen=True)
class CacheSettings:
    backend: str
    url: str  # SQLAlchemy URL ("" for the dynamo backend)
    migrate_on_start: bool
    pool_size: int
    echo: bool
    dynamo: DynamoSettings | None = None
    # Seconds to wait for a database connection (and, on MySQL, for an answer) before a 503.
    connect_timeout: int = 10
    # Seconds a server process may reuse the change serial it read (0: read it on every request).
    serial_max_age: float = 0.0
    # Record every change in the CDN outbox (in the change's own transaction): cdn.backend != none.
    cdn_outbox: bool = False
    # SQL connections at most (pool_size kept open, the rest opened when needed): see config._pool.
    max_connections: int = 24
    # Check the SQL schema's revision when opening (no migration): False only for another process of a server
    # that has checked it (settings_elsewhere). Loading the schema's history costs a new process 0.5 s of CPU.
    check_schema: bool = True


@dataclass(frozen=True)
class AuthSettings:
    backend: str  # "static" (the ini) or "sql" (tables managed through the API)
    # SQL access database; defaults to cache.url.
    url: str | None
    realm: str
    admins: frozenset[str]
    # (username, argon2 hash) pairs from `user.<name> = <hash>`.
    users: tuple[tuple[str, str], ...]
    groups: tuple[tuple[str, tuple[str, ...]], ...]
    grants: tuple[Grant, ...]
    # Principals: "everyone", "authenticated", "group:<name>", "user:<name>".
    default_read: frozenset[str]
    default_write: frozenset[str]
    # Who may create a new project; None: whoever may write to it.
    create_projects: frozenset[str] | None
    bootstrap_admin_file: Path | None
    bootstrap_admin: bool
    credential_cache_seconds: int
    max_failed_logins: int
    failed_login_window: int
    # Failed logins from one client address, whatever the user names, before it is blocked.
    max_failed_logins_per_address: int = 30
    # The longest block: each further block of the same key lasts twice as long, up to this.
    failed_login_max_backoff: int = 3600
    # PEP 752 namespaces from `namespace.<prefix> = user:<name> | group:<name>` (the static backend's).
    namespaces: tuple[Namespace, ...] = ()


# multipart boundaries and an upload form's text fields ride on top of the file itself.
FORM_OVERHEAD = 1024 * 1024


@dataclass(frozen=True)
class UploadSettings:
    max_size: int
    spool_dir: Path | None

    @property
    def max_body(self) -> int:
        """The largest request body worth reading: one file of max_size and its form."""
        return self.max_size + FORM_OVERHEAD


@dataclass(frozen=True)
class WebSettings:
    page_max_age: int
    file_max_age: int
    # Bytes of rendered simple pages (identity and gzip) each server process keeps.
    page_cache_size: int = 64_000_000
    # Signs the UI's session cookie; shared by every process (unset: generated once, kept in storage).
    session_secret: str | None = None
    # Seconds a login lasts without use (the idle limit), and at most however much it is used.
    session_max_age: int = 43200
    session_absolute_max_age: int = 86400
    # Send the session cookie over HTTPS only (set when TLS ends in front of the server).
    session_cookie_secure: bool = False
    # scheme://host[:port][/prefix]: every absolute URL and redirect is made from it (None: the request's Host).
    public_url: str | None = None
    # The Host names (host or host:port, lower case, or *) a request may name. None: the default, which
    # is any Host when public_url is set, else the loopback names and the listen address (web/public_address.py).
    allowed_hosts: tuple[str, ...] | None = None


@dataclass(frozen=True)
class ReloadSettings:
    on_start: bool = False
    workers: int = 16


@dataclass(frozen=True)
class SyncSettings:
    """The S3 sync Lambda's own settings."""

    secret_max_age: float = 300.0


# CloudFront's limits: paths per invalidation (and in progress at once), wildcard paths in progress.
CLOUDFRONT_MAX_PATHS = 3000
CLOUDFRONT_MAX_WILDCARDS = 15
# SQS delays a message by at most 15 minutes: the longest window the Lambda can schedule.
MAX_CDN_WINDOW = 900


@dataclass(frozen=True)
class CdnSettings:
    """Purging a CDN in front of the index (see pypicloud_lite.cdn)."""

    backend: str = "none"  # "none" or "cloudfront"
    distribution_id: str | None = None
    # The public path the index is served under on the CDN ("" or e.g. "/pypi").
    path_prefix: str = ""
    # Seconds changes are gathered before one invalidation is sent.
    window: int = 60
    # Above this many paths, an invalidation collapses paths into one wildcard per top-level prefix.
    wildcard_threshold: int = 300
    # Index pages: how long the CDN keeps them (s-maxage) and how long clients do (max-age).
    s_maxage: int = 600
    max_age: int = 600
    endpoint_url: str | None = None
    # The Lambda's own delayed-flush queue (set by ppc-create-s3-sync --cdn).
    queue_url: str | None = None

    @property
    def enabled(self) -> bool:
        return self.backend != "none"


@dataclass(frozen=True)
class Settings:
    storage: StorageSettings
    cache: CacheSettings
    auth: AuthSettings
    upload: UploadSettings
    web: WebSettings
    reload: ReloadSettings = ReloadSettings()
    sync: SyncSettings = SyncSettings()
    cdn: CdnSettings = CdnSettings()
    upstream: UpstreamSettings = field(default_factory=UpstreamSettings)
    publishing: PublishingSettings = field(default_factory=PublishingSettings)
    ops: OpsSettings = field(default_factory=OpsSettings)
    passwords: PasswordPolicy = field(default_factory=PasswordPolicy)


class _Reader:
    """Reads raw settings, applying environment overrides and naming the key on error."""

    def __init__(self, raw: Mapping[str, Any], environ: Mapping[str, str]) -> None:
        self.raw = {str(k): v for k, v in raw.items()}
        self.environ = environ
        self.known: set[str] = set()

    def get(self, key: str, default: str | None = None) -> str | None:
        self.known.add(key)
        if env_name(key) in self.environ:
            return self.environ[env_name(key)]
        value = self.raw.get(key, default)
        return None if value is None else str(value)

    def typed(self, key: str, parse: Callable[[str], T], default: str) -> T:
        value = self.get(key, default)
        assert value is not None
        try:
            return parse(value)
        except ValueError as exc:
            raise ConfigError(f"setting {key!r}: {exc}") from exc

    def required(self, key: str) -> str:
        value = self.get(key)
        if value is None or not value.strip():
            raise ConfigError(f"setting {key!r} is required")
        return value.strip()

    def choice(self, key: str, default: str, choices: tuple[str, ...]) -> str:
        value = (self.get(key, default) or default).strip()
        if value not in choices:
            raise ConfigError(f"setting {key!r}: expected one of {', '.join(choices)}, got {value!r}")
        return value

    def path(self, key: str, default: str | None = None) -> Path | None:
        value = self.get(key, default)
        return Path(value).expanduser() if value and value.strip() else None

    def users(self) -> tuple[tuple[str, str], ...]:
        found = {k[len("user.") :]: str(v).strip() for k, v in self.raw.items() if k.startswith("user.")}
        for name, hashed in found.items():
            if not name or not hashed.startswith("$argon2"):
                raise ConfigError(f"setting 'user.{name}': expected an argon2 hash (make one with ppc-gen-password)")
        return tuple(sorted(found.items()))

    def groups(self) -> tuple[tuple[str, tuple[str, ...]], ...]:
        found = []
        for key, value in self.raw.items():
            if key.startswith("group."):
                name = key[len("group.") :]
                if not _NAME.match(name):
                    raise ConfigError(f"setting {key!r}: invalid group name")
                found.append((name, parse_list(str(value))))
        return tuple(sorted(found))

    def grants(self) -> tuple[Grant, ...]:
        found = []
        for key, value in self.raw.items():
            if not key.startswith("package."):
                continue
            # Project names may contain dots; principal names may not.
            parts = key[len("package.") :].rsplit(".", 2)
            perms = str(value).strip().lower()
            if len(parts) != 3 or parts[1] not in ("user", "group") or not _NAME.match(parts[2]):
                raise ConfigError(f"setting {key!r}: expected package.<project>.user.<name> or ...group.<name>")
            if not set(perms) <= PERM_LETTERS:
                raise ConfigError(f"setting {key!r}: permissions are letters from 'rwdo', got {value!r}")
            found.append(Grant(normalize(parts[0]), parts[1], parts[2], perms))
        return tuple(sorted(found, key=lambda g: (g.project, g.kind, g.name)))

    def namespaces(self, users: set[str], groups: set[str]) -> tuple[Namespace, ...]:
        found: list[Namespace] = []
        # Broadest first, as an admin adding them one by one would have to (namespaces.check_new_namespace).
        keys = sorted((k for k in self.raw if k.startswith("namespace.")), key=lambda k: (normalize(k).count("-"), k))
        for key in keys:
            value = self.raw[key]
            try:
                display = key[len("namespace.") :]
                kind, owner = parse_owner(str(value))
                if owner not in (users if kind == "user" else groups):
                    raise InvalidInput(f"the owner {kind} {owner!r} is not defined in this file")
                namespace = Namespace(check_namespace_name(display), display, kind, owner)
                check_new_namespace(found, namespace)
            except PypicloudLiteError as exc:
                raise ConfigError(f"setting {key!r}: {exc.message}") from exc
            found.append(namespace)
        return tuple(sorted(found, key=lambda ns: ns.name))

    def principals(self, key: str, default: str) -> frozenset[str]:
        values = frozenset(self.typed(key, parse_list, default))
        for value in values:
            kind, _, name = value.partition(":")
            if value not in ("everyone", "authenticated") and not (kind in ("user", "group") and _NAME.match(name)):
                raise ConfigError(
                    f"setting {key!r}: {value!r} is not everyone, authenticated, group:<name> or user:<name>"
                )
        return values

    def check_unknown(self) -> None:
        check_unknown_keys(self.raw, self.known, OWN_PREFIXES)


def _default(cls: Any, name: str) -> str:
    """A settings dataclass's default for field `name`, as the ini would write it.

    The dataclasses hold the only copy of these defaults: the loader and code that builds
    settings without an ini (tests, CdnSettings()) cannot disagree.
    """
    value = next(f.default for f in fields(cls) if f.name == name)
    assert value is not MISSING, f"{cls.__name__}.{name} has no default"
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def _dynamo_settings(r: _Reader, concurrency: int) -> DynamoSettings:
    read, write = r.get("cache.read_capacity"), r.get("cache.write_capacity")
    if bool(read) != bool(write):
        raise ConfigError(
            "settings 'cache.read_capacity' and 'cache.write_capacity' go together (or neither: on demand)"
        )
    return DynamoSettings(
        table_prefix=r.get("cache.table_prefix", "ppc-") or "",
        region=r.get("cache.region") or None,
        endpoint_url=r.get("cache.endpoint_url") or None,
        create_tables=r.typed("cache.create_tables", parse_bool, "false"),
        read_capacity=r.typed("cache.read_capacity", int, read) if read else None,
        write_capacity=r.typed("cache.write_capacity", int, write) if write else None,
        max_pool_connections=_pool(r, "cache.max_pool_connections", concurrency),
    )


def _s3_settings(r: _Reader, concurrency: int) -> S3Settings:
    prefix = (r.get("storage.prefix", "") or "").strip().lstrip("/")
    sse = r.choice("storage.sse", "none", ("none", "AES256", "aws:kms"))
    kms_key_id = r.get("storage.kms_key_id") or None
    if kms_key_id and sse != "aws:kms":
        raise ConfigError("setting 'storage.kms_key_id' needs storage.sse = aws:kms")
    return S3Settings(
        bucket=r.required("storage.bucket"),
        prefix=prefix + "/" if prefix and not prefix.endswith("/") else prefix,
        region=r.get("storage.region") or None,
        endpoint_url=r.get("storage.endpoint_url") or None,
        addressing_style=r.choice("storage.addressing_style", "auto", ("auto", "path", "virtual")),
        sse=None if sse == "none" else sse,
        kms_key_id=kms_key_id,
        storage_class=r.get("storage.storage_class") or None,
        acl=r.get("storage.acl") or None,
        presign=presign_settings(r),
        max_pool_connections=_pool(r, "storage.max_pool_connections", concurrency),
    )


# The request threads of the shipped waitress settings (`threads` in [server:main]).
REQUEST_THREADS = 8


def _pool(r: _Reader, key: str, concurrency: int) -> int:
    """A client's connection pool: by default one connection for each thread that may use it at once.

    A reload's workers all read storage (and write the cache) together, besides the request threads:
    a smaller pool makes them queue, and urllib3 discards connections ("Connection pool is full").
    """
    size = r.typed(key, parse_count, str(concurrency))
    workers = r.typed("pypi.reload_workers", parse_count, str(_default(ReloadSettings, "workers")))
    if size < workers:
        raise ConfigError(
            f"setting {key!r} ({size}) is below 'pypi.reload_workers' ({workers}): a reload's workers would wait "
            "for connections; raise it or lower the workers"
        )
    return size


MIN_SESSION_SECRET = 32


def _session_secret(r: _Reader) -> str | None:
    secret = (r.get("web.session_secret") or "").strip()
    if secret and len(secret) < MIN_SESSION_SECRET:
        raise ConfigError(
            f"setting 'web.session_secret': use at least {MIN_SESSION_SECRET} random characters "
            "(python -c 'import secrets; print(secrets.token_urlsafe(32))')"
        )
    return secret or None


def _allowed_hosts(r: _Reader) -> tuple[str, ...] | None:
    value = r.get("web.allowed_hosts")
    return None if value is None or not value.strip() else r.typed("web.allowed_hosts", parse_allowed_hosts, "")


def _cdn_settings(r: _Reader, page_max_age: int) -> CdnSettings:
    backend = r.choice("cdn.backend", _default(CdnSettings, "backend"), ("none", "cloudfront"))
    purging = backend != "none"
    prefix = (r.get("cdn.path_prefix", "") or "").strip().rstrip("/")
    if prefix and not prefix.startswith("/"):
        prefix = "/" + prefix
    window = r.typed("cdn.window", int, _default(CdnSettings, "window"))
    if not 1 <= window <= MAX_CDN_WINDOW:
        raise ConfigError(f"setting 'cdn.window': 1 to {MAX_CDN_WINDOW} seconds (SQS delays at most 15 minutes)")
    threshold = r.typed("cdn.wildcard_threshold", int, _default(CdnSettings, "wildcard_threshold"))
    if not 1 <= threshold <= CLOUDFRONT_MAX_PATHS:
        raise ConfigError(f"setting 'cdn.wildcard_threshold': 1 to {CLOUDFRONT_MAX_PATHS} paths")
    # Purged pages can stay at the edge for long; clients, which nobody purges, keep them briefly.
    s_maxage = r.typed("cdn.s_maxage", int, "86400" if purging else str(page_max_age))
    max_age = r.typed("cdn.max_age", int, "60" if purging else str(page_max_age))
    distribution_id = r.get("cdn.distribution_id") or None
    if purging and not distribution_id:
        raise ConfigError("setting 'cdn.distribution_id' is required with cdn.backend = cloudfront")
    return CdnSettings(
        backend=backend,
        distribution_id=distribution_id,
        path_prefix=prefix,
        window=window,
        wildcard_threshold=threshold,
        s_maxage=s_maxage,
        max_age=max_age,
        endpoint_url=r.get("cdn.endpoint_url") or None,
        queue_url=r.get("cdn.queue_url") or None,
    )


def _sync_settings(r: _Reader) -> SyncSettings:
    return SyncSettings(secret_max_age=r.typed("sync.secret_max_age", float, _default(SyncSettings, "secret_max_age")))


def sync_settings(raw: Mapping[str, Any]) -> SyncSettings:
    """The sync.* settings alone: the Lambda needs them to resolve the secrets the others may name."""
    return _sync_settings(_Reader(raw, {}))


def load_settings(raw: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> Settings:
    """Build Settings from ini-style strings; PPC_* variables in `environ` win over the ini."""
    env = os.environ if environ is None else environ
    raw = {**raw, **environ_settings(env)}
    r = _Reader(raw, env)
    reload = ReloadSettings(
        on_start=r.typed("pypi.reload_on_start", parse_bool, _default(ReloadSettings, "on_start")),
        workers=r.typed("pypi.reload_workers", parse_count, str(_default(ReloadSettings, "workers"))),
    )
    concurrency = reload.workers + REQUEST_THREADS
    storage_backend = r.choice("storage.backend", "local", ("local", "s3"))
    storage = StorageSettings(
        backend=storage_backend,
        dir=r.path("storage.dir"),
        stream_files=r.typed("storage.stream_files", parse_bool, _default(StorageSettings, "stream_files")),
        s3=_s3_settings(r, concurrency) if storage_backend == "s3" else None,
    )
    if storage.backend == "local" and storage.dir is None:
        raise ConfigError("setting 'storage.dir' is required with storage.backend = local")
    cache_backend = r.choice("cache.backend", "sql", ("sql", "dynamo"))
    cache = CacheSettings(
        backend=cache_backend,
        url=r.required("cache.url") if cache_backend == "sql" else (r.get("cache.url") or ""),
        migrate_on_start=r.typed("cache.migrate_on_start", parse_bool, "false"),
        pool_size=r.typed("cache.pool_size", int, "5"),
        echo=r.typed("cache.echo", parse_bool, "false"),
        connect_timeout=r.typed("cache.connect_timeout", int, _default(CacheSettings, "connect_timeout")),
        serial_max_age=r.typed("cache.serial_max_age", parse_non_negative, _default(CacheSettings, "serial_max_age")),
        dynamo=_dynamo_settings(r, concurrency) if cache_backend == "dynamo" else None,
        max_connections=_pool(r, "cache.max_connections", concurrency) if cache_backend == "sql" else concurrency,
    )
    create_projects = r.get("pypi.create_projects")
    users, groups = r.users(), r.groups()
    auth = AuthSettings(
        backend=r.choice("auth.backend", "static", ("static", "sql")),
        url=r.get("auth.url") or cache.url or None,
        realm=r.get("auth.realm", "pypicloud_lite") or "pypicloud_lite",
        admins=frozenset(r.typed("auth.admins", parse_list, "")),
        users=users,
        groups=groups,
        grants=r.grants(),
        default_read=r.principals("pypi.default_read", "everyone"),
        default_write=r.principals("pypi.default_write", "authenticated"),
        create_projects=None if create_projects is None else r.principals("pypi.create_projects", ""),
        bootstrap_admin_file=r.path("auth.bootstrap_admin_file"),
        bootstrap_admin=r.typed("auth.bootstrap_admin", parse_bool, "false"),
        credential_cache_seconds=r.typed("auth.credential_cache_seconds", int, "300"),
        max_failed_logins=r.typed("auth.max_failed_logins", int, "10"),
        failed_login_window=r.typed("auth.failed_login_window", int, "300"),
        max_failed_logins_per_address=r.typed(
            "auth.max_failed_logins_per_address", int, _default(AuthSettings, "max_failed_logins_per_address")
        ),
        failed_login_max_backoff=r.typed(
            "auth.failed_login_max_backoff", int, _default(AuthSettings, "failed_login_max_backoff")
        ),
        namespaces=r.namespaces({name for name, _ in users}, {name for name, _ in groups}),
    )
    upload = UploadSettings(
        max_size=r.typed("upload.max_size", parse_size, "100MB"),
        spool_dir=r.path("upload.spool_dir"),
    )
    web = WebSettings(
        page_max_age=r.typed("web.page_max_age", int, "600"),
        file_max_age=r.typed("web.file_max_age", int, "31536000"),
        page_cache_size=r.typed("web.page_cache_size", parse_size, _default(WebSettings, "page_cache_size")),
        session_secret=_session_secret(r),
        session_max_age=r.typed("web.session_max_age", int, _default(WebSettings, "session_max_age")),
        session_absolute_max_age=r.typed(
            "web.session_absolute_max_age", parse_seconds, _default(WebSettings, "session_absolute_max_age")
        ),
        session_cookie_secure=r.typed(
            "web.session_cookie_secure", parse_bool, _default(WebSettings, "session_cookie_secure")
        ),
        public_url=r.typed("web.public_url", parse_public_url, ""),
        allowed_hosts=_allowed_hosts(r),
    )
    sync = _sync_settings(r)
    cdn = _cdn_settings(r, web.page_max_age)
    upstream = upstream_settings(r)
    publishing, ops, passwords = publishing_settings(r), ops_settings(r), password_policy(r)
    if cdn.enabled:
        cache = replace(cache, cdn_outbox=True)
    r.check_unknown()
    if auth.backend == "sql" and not auth.url:
        raise ConfigError("setting 'auth.url' is required with auth.backend = sql when the cache is not SQL")
    for name in auth.admins:
        if name not in dict(auth.users) and auth.bootstrap_admin_file is None:
            raise ConfigError(f"setting 'auth.admins': admin {name!r} has no 'user.{name}' password hash")
    settings = Settings(storage=storage, cache=cache, auth=auth, upload=upload, web=web, reload=reload, sync=sync)
    return replace(settings, cdn=cdn, upstream=upstream, publishing=publishing, ops=ops, passwords=passwords)


def read_ini(path: str | Path, section: str = "app:main") -> dict[str, str]:
    """The raw settings of one ini section, with %(here)s set as PasteDeploy does."""
    ini = Path(path).resolve()
    parser = configparser.ConfigParser(defaults={"here": str(ini.parent), "__file__": str(ini)})
    if not parser.read(ini):
        raise ConfigError(f"cannot read ini file {str(ini)!r}")
    if not parser.has_section(section):
        raise ConfigError(f"ini file {str(ini)!r} has no [{section}] section")
    return {k: v for k, v in parser.items(section) if k not in ("here", "__file__")}


def load_ini(path: str | Path, environ: Mapping[str, str] | None = None) -> Settings:
    return load_settings(read_ini(path), environ)
