"""ppc-make-config: write a working server ini, with a first admin, interactively or from flags."""

from __future__ import annotations

import argparse
import getpass
import json
import secrets
import sys
from dataclasses import dataclass, replace
from pathlib import Path

from pypicloud_lite.access.base import USER_NAME
from pypicloud_lite.access.passwords import generate_password, hash_password
from pypicloud_lite.config import UploadSettings, load_ini, load_settings, read_ini
from pypicloud_lite.config_values import parse_public_url, parse_size
from pypicloud_lite.errors import ConfigError, InvalidInput
from pypicloud_lite.password_policy import PasswordPolicy

# The logging sections of every server ini this project writes (this template, the test servers).
LOGGING_SECTIONS = """\
[loggers]
keys = root, pypicloud_lite, waitress

[handlers]
keys = console

[formatters]
keys = generic

[logger_root]
level = WARNING
handlers = console

[logger_pypicloud_lite]
level = INFO
handlers =
qualname = pypicloud_lite

[logger_waitress]
level = INFO
handlers =
qualname = waitress

[handler_console]
class = StreamHandler
args = (sys.stderr,)
level = NOTSET
formatter = generic

[formatter_generic]
format = %(asctime)s %(levelname)-5.5s [%(name)s] %(message)s
"""

# The upload limit every ini this project writes starts with.
UPLOAD_MAX_SIZE = "100MB"


def waitress_options(upload_max_size: str = UPLOAD_MAX_SIZE) -> str:
    """waitress's [server:main] options after `listen`, for a server whose upload.max_size is `upload_max_size`.

    development.ini carries the same lines (a test keeps them equal).
    """
    max_body = UploadSettings(parse_size(upload_max_size), None).max_body
    return f"""\
threads = 8
# Bodies above this are spooled to disk while the request arrives.
inbuf_overflow = 1048576
# upload.max_size plus the form around the file (waitress refuses this many bytes or more):
# a bigger Content-Length is a 413 before a byte of the body is buffered. Change it with upload.max_size.
max_request_body_size = {max_body + 1}
# Idle or slow clients must not use up the server: many connections may be open (poll(), not
# select(), which fails above 1024 descriptors), and one silent for a minute is closed.
connection_limit = 1000
asyncore_use_poll = true
channel_timeout = 60
cleanup_interval = 10
# Behind a reverse proxy, waitress takes the scheme, host and client address from its headers
# (the proxy must overwrite what clients send): name the proxy's address and the headers it sets.
# trusted_proxy = 127.0.0.1
# trusted_proxy_headers = x-forwarded-proto x-forwarded-host x-forwarded-port x-forwarded-for
# trusted_proxy_count = 1
"""


TEMPLATE = """\
# Written by ppc-make-config. Reference: README.md ("Configuration").
[app:main]
use = egg:pypicloud_lite

{storage_lines}
{cache_lines}
upload.max_size = {upload_max_size}

auth.backend = {access}
auth.realm = pypicloud_lite
{auth_lines}
# Reads: who may read every project (grants add to it). Writes, as on PyPI: any user may create a
# project and becomes its owner (auth.backend = sql; static grants record no owners); only the project's
# grants (owners, maintainers) let others upload to it. default_write never opens a project that has
# an owner or a maintainer, only projects nobody keeps.
pypi.default_read = {default_read}
pypi.default_write = authenticated

# Signs the web UI's login cookie: keep it secret, the same on every server process.
web.session_secret = {session_secret}

{public_url_lines}

[server:main]
use = egg:waitress#main
listen = {listen}
{waitress_options}
{logging}"""


DEFAULT_STORAGE_DIR = "%(here)s/var/packages"
DEFAULT_CACHE_URL = "sqlite:///%(here)s/var/cache.sqlite"
# With a DynamoDB cache, users, groups, grants and tokens still live in an SQL database of their own.
DEFAULT_ACCESS_URL = "sqlite:///%(here)s/var/access.sqlite"
SSE_CHOICES = ("none", "AES256", "aws:kms")


@dataclass(frozen=True)
class StorageAnswers:
    backend: str = "local"
    dir: str = DEFAULT_STORAGE_DIR
    bucket: str = ""
    prefix: str = "packages/"
    region: str = ""  # empty: boto3's (AWS_REGION, the profile's)
    endpoint_url: str = ""  # empty: AWS's
    sse: str = "none"
    kms_key_id: str = ""  # empty: the aws/s3 key (with sse aws:kms)


@dataclass(frozen=True)
class CacheAnswers:
    backend: str = "sql"
    url: str = DEFAULT_CACHE_URL
    region: str = ""
    table_prefix: str = "ppc-"
    endpoint_url: str = ""
    create_tables: bool = False
    auth_url: str = ""  # the access database with a DynamoDB cache and auth.backend = sql


@dataclass(frozen=True)
class Answers:
    storage: StorageAnswers
    cache: CacheAnswers
    access: str
    admin: str
    password: str | None  # None: generate one
    listen: str
    default_read: str
    public_url: str = ""  # empty: none (only the loopback names and the listen address are answered)


def _ask(prompt: str, default: str) -> str:
    answer = input(f"{prompt} [{default}]: " if default else f"{prompt}: ").strip()
    return answer or default


def _answer(given: str | None, prompt: str, default: str, ask: bool) -> str:
    """The flag's value if given, else the answer to `prompt` (asking), else `default`."""
    if given is not None:
        return given
    return _ask(prompt, default) if ask else default


def _storage(args: argparse.Namespace, ask: bool) -> StorageAnswers:
    backend = _answer(args.storage, "Package files in a local folder or an S3 bucket (local, s3)", "local", ask)
    if backend != "s3":
        return StorageAnswers(
            backend, dir=_answer(args.storage_dir, "Folder for package files", DEFAULT_STORAGE_DIR, ask)
        )
    bucket = _answer(args.s3_bucket, "S3 bucket", "", ask)
    prefix = _answer(args.s3_prefix, "Key prefix in the bucket (/ for none)", "packages/", ask)
    region = _answer(args.s3_region, "The bucket's region (empty: boto3's, e.g. AWS_REGION)", "", ask)
    endpoint = _answer(
        args.s3_endpoint_url, "S3 endpoint URL (empty: AWS; MinIO or another S3-compatible server)", "", ask
    )
    sse = _answer(
        args.s3_sse,
        "Server-side encryption of each object written (none: the bucket's default, AES256, aws:kms)",
        "aws:kms" if args.s3_kms_key_id else "none",
        ask,
    )
    kms = _answer(args.s3_kms_key_id, "KMS key ID, ARN or alias/NAME (empty: aws/s3)", "", ask and sse == "aws:kms")
    return StorageAnswers(
        "s3", bucket=bucket, prefix=prefix, region=region, endpoint_url=endpoint, sse=sse, kms_key_id=kms
    )


def _cache(args: argparse.Namespace, ask: bool) -> CacheAnswers:
    backend = _answer(args.cache, "Cache in an SQL database or in DynamoDB (sql, dynamo)", "sql", ask)
    if backend != "dynamo":
        prompt = "Cache database URL (sqlite:///PATH, postgresql+psycopg://USER:PW@HOST/DB, mysql+pymysql://...)"
        return CacheAnswers(backend, url=_answer(args.cache_url, prompt, DEFAULT_CACHE_URL, ask))
    region = _answer(args.dynamo_region, "DynamoDB region (empty: boto3's, e.g. AWS_REGION)", "", ask)
    table_prefix = _answer(
        args.dynamo_table_prefix, "Table name prefix (tables PREFIXprojects, PREFIXfiles, ...)", "ppc-", ask
    )
    endpoint = _answer(args.dynamo_endpoint_url, "DynamoDB endpoint URL (empty: AWS)", "", ask)
    create = args.create_tables or _answer(
        None, "Create missing tables when the server starts (yes, no)", "no", ask
    ).lower() in ("y", "yes")
    return CacheAnswers(
        "dynamo", url="", region=region, table_prefix=table_prefix, endpoint_url=endpoint, create_tables=create
    )


def _answers(args: argparse.Namespace, ask: bool) -> Answers:
    """Flags first; what they leave open is asked (interactive) or takes its default."""
    storage = _storage(args, ask)
    cache = _cache(args, ask)
    access = _answer(args.access, "Users and permissions in the ini (static) or the database (sql)", "sql", ask)
    if cache.backend == "dynamo" and access == "sql":
        cache = replace(
            cache, auth_url=_answer(args.auth_url, "Users and permissions database URL", DEFAULT_ACCESS_URL, ask)
        )
    admin = _answer(args.admin, "First admin user name", "admin", ask)
    password = None
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n") or None
    elif ask:
        typed = getpass.getpass("Admin password (empty: generate one): ")
        if typed and getpass.getpass("Again: ") != typed:
            raise SystemExit("ppc-make-config: the passwords differ")
        password = typed or None
    listen = _answer(args.listen, "Listen on", "127.0.0.1:6543", ask)
    default_read = _answer(
        args.default_read, "Who may read every project (everyone, authenticated, none)", "everyone", ask
    )
    public_url = _answer(
        args.public_url, "The URL clients use, such as https://pypi.example.com (empty: this machine only)", "", ask
    )
    return Answers(storage, cache, access, admin, password, listen, default_read, public_url)


def _ini(value: str) -> str:
    """`value` as an ini value: a % doubled (configparser would read it as interpolation), but %(here)s kept."""
    return value.replace("%", "%%").replace("%%(here)s", "%(here)s")


def _lines(settings: dict[str, str]) -> str:
    return "".join(f"{key} = {_ini(value)}\n" for key, value in settings.items() if value)


AWS_CREDENTIALS_NOTE = """\
# AWS credentials come from boto3's chain (environment, profile, instance or task role), never from this
# file; `ppc-make-config <this ini> --iam-policy` prints the IAM policy they need.
"""


def _storage_lines(storage: StorageAnswers) -> str:
    if storage.backend != "s3":
        return _lines({"storage.backend": "local", "storage.dir": storage.dir})
    return AWS_CREDENTIALS_NOTE + _lines(
        {
            "storage.backend": "s3",
            "storage.bucket": storage.bucket,
            "storage.prefix": storage.prefix.lstrip("/"),
            "storage.region": storage.region,
            "storage.endpoint_url": storage.endpoint_url,
            "storage.sse": "" if storage.sse == "none" else storage.sse,
            "storage.kms_key_id": storage.kms_key_id,
        }
    )


def _cache_lines(cache: CacheAnswers, access: str) -> str:
    sql_urls = [cache.url] if cache.backend != "dynamo" else ([cache.auth_url] if access == "sql" else [])
    # SQLite is embedded: let the server keep its own schema current. Others run ppc-migrate.
    migrate = {"cache.migrate_on_start": str(bool(sql_urls) and all(u.startswith("sqlite") for u in sql_urls)).lower()}
    if cache.backend != "dynamo":
        lines = _lines({"cache.backend": "sql", "cache.url": cache.url, **migrate})
        if not cache.url.startswith("sqlite"):
            lines += "# Run `ppc-migrate <this ini>` before the first start and after each upgrade.\n"
        return lines
    tables = "" if cache.create_tables else "# Create the tables once with `ppc-create-tables <this ini>`.\n"
    return tables + _lines(
        {
            "cache.backend": "dynamo",
            "cache.region": cache.region,
            "cache.table_prefix": cache.table_prefix,
            "cache.endpoint_url": cache.endpoint_url,
            "cache.create_tables": str(cache.create_tables).lower(),
            **(migrate if access == "sql" else {}),
        }
    )


PUBLIC_URL_UNSET = """\
# The URL clients use (https://pypi.example.com, or with a path: https://example.com/pypi):
# every absolute link and redirect is made from it, whatever Host a request names. Unset, the
# server answers only requests naming localhost or its listen address (add names to web.allowed_hosts).
# web.public_url =
"""

PUBLIC_URL_SET = """\
# The URL clients use: every absolute link and redirect is made from it, whatever Host a request names.
web.public_url = {public_url}
"""


def _aws_problem(answers: Answers) -> str | None:
    """What is wrong with the storage and cache answers, or None."""
    storage, cache = answers.storage, answers.cache
    if storage.backend not in ("local", "s3") or cache.backend not in ("sql", "dynamo"):
        return "storage must be local or s3, and the cache sql or dynamo"
    if storage.backend == "s3" and not storage.bucket:
        return "S3 storage needs a bucket (--s3-bucket)"
    if storage.sse not in SSE_CHOICES:
        return f"server-side encryption must be one of {', '.join(SSE_CHOICES)}"
    if storage.kms_key_id and storage.sse != "aws:kms":
        return "a KMS key needs server-side encryption aws:kms"
    return None


def render(answers: Answers, password_hash: str) -> str:
    if answers.access == "static":
        auth_lines = f"auth.admins = {answers.admin}\nuser.{answers.admin} = {password_hash}\n"
    else:
        auth_lines = "# Users, groups, grants and tokens live in the database (manage them through /api/).\n"
        auth_lines += _lines({"auth.url": answers.cache.auth_url})
    return TEMPLATE.format(
        storage_lines=_storage_lines(answers.storage),
        cache_lines=_cache_lines(answers.cache, answers.access),
        access=answers.access,
        auth_lines=auth_lines,
        default_read="" if answers.default_read == "none" else answers.default_read,
        listen=answers.listen,
        upload_max_size=UPLOAD_MAX_SIZE,
        waitress_options=waitress_options(),
        session_secret=secrets.token_urlsafe(32),
        public_url_lines=PUBLIC_URL_SET.format(public_url=answers.public_url)
        if answers.public_url
        else PUBLIC_URL_UNSET,
        logging=LOGGING_SECTIONS,
    )


def _create_sql_admin(ini: Path, admin: str, password: str, reset: bool) -> bool:
    """Create the admin in the ini's access database; an existing user keeps its password unless `reset`
    (False when nothing was changed)."""
    from pypicloud_lite.access.sql import SQLAccess
    from pypicloud_lite.db import migrate
    from pypicloud_lite.db.engine import create_db_engine

    settings = load_ini(ini)
    # The access database: the cache's, or auth.url's (with a DynamoDB cache).
    url = settings.auth.url or settings.cache.url
    engine = create_db_engine(
        replace(settings.cache, url=url), "cache.url" if url == settings.cache.url else "auth.url"
    )
    migrate.upgrade(engine)
    engine.dispose()
    access, _ = SQLAccess.from_settings(settings.auth, settings.cache)
    try:
        if access.get_user(admin) is None:
            access.create_user(admin, password, is_admin=True)
        elif reset:
            access.update_user(admin, password=password, is_admin=True)
        else:
            return False
        return True
    finally:
        access.close()


def _print_iam_policy(ini: Path, account: str, partition: str) -> int:
    from pypicloud_lite.deploy.server_policy import server_policy

    try:
        raw = read_ini(ini)
        policy = server_policy(load_settings(raw), raw, account=account, partition=partition)
    except ConfigError as exc:
        print(f"ppc-make-config: {exc.message}", file=sys.stderr)
        return 1
    if not policy["Statement"]:
        print(
            f"ppc-make-config: {ini} needs no AWS permissions (no S3, DynamoDB, KMS, secrets or CDN)", file=sys.stderr
        )
        return 1
    print(json.dumps(policy, indent=2))
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ppc-make-config", description=__doc__)
    parser.add_argument("output", help="the ini file to write")
    parser.add_argument("--storage", choices=("local", "s3"), help="package files in a folder or an S3 bucket")
    parser.add_argument("--storage-dir", help="folder for package files (default %%(here)s/var/packages)")
    parser.add_argument("--s3-bucket", help="with --storage s3: the bucket (storage.bucket)")
    parser.add_argument("--s3-prefix", help="key prefix in the bucket (default packages/; / for none)")
    parser.add_argument("--s3-region", help="the bucket's region (default: boto3's)")
    parser.add_argument("--s3-endpoint-url", help="an S3-compatible server instead of AWS (MinIO, moto)")
    parser.add_argument("--s3-sse", choices=SSE_CHOICES, help="server-side encryption of each object written")
    parser.add_argument("--s3-kms-key-id", help="KMS key ID, ARN or alias/NAME (implies --s3-sse aws:kms)")
    parser.add_argument("--cache", choices=("sql", "dynamo"), help="the cache: an SQL database or DynamoDB")
    parser.add_argument(
        "--cache-url", help="SQLAlchemy URL of the cache: sqlite, postgresql+psycopg, mysql+pymysql (default: SQLite)"
    )
    parser.add_argument("--dynamo-region", help="with --cache dynamo: the tables' region (default: boto3's)")
    parser.add_argument("--dynamo-table-prefix", help="the tables' name prefix (default ppc-)")
    parser.add_argument("--dynamo-endpoint-url", help="a DynamoDB-compatible server instead of AWS (moto, Local)")
    parser.add_argument("--create-tables", action="store_true", help="with --cache dynamo: create them on start")
    parser.add_argument(
        "--auth-url", help="with --cache dynamo and --access sql: the users' database (default: SQLite beside the ini)"
    )
    parser.add_argument("--access", choices=("static", "sql"), help="users in the ini or in the database")
    parser.add_argument("--admin", help="first admin user name (default admin)")
    parser.add_argument("--password-stdin", action="store_true", help="read the admin password from stdin")
    parser.add_argument("--listen", help="host:port for waitress (default 127.0.0.1:6543)")
    parser.add_argument("--default-read", choices=("everyone", "authenticated", "none"))
    parser.add_argument("--public-url", help="the URL clients use, e.g. https://pypi.example.com (web.public_url)")
    parser.add_argument("-y", "--non-interactive", action="store_true", help="ask nothing; flags and defaults")
    parser.add_argument("--force", action="store_true", help="overwrite an existing file")
    parser.add_argument(
        "--reset-admin-password",
        action="store_true",
        help="with --access sql: set the password of an admin that already exists in the database",
    )
    parser.add_argument(
        "--iam-policy",
        action="store_true",
        help="print the IAM policy the servers of this existing ini need (JSON), and write nothing",
    )
    parser.add_argument("--account", default="*", help="with --iam-policy: the AWS account ID in the ARNs")
    parser.add_argument("--partition", default="aws", help="with --iam-policy: aws, aws-cn or aws-us-gov")
    return parser


def _checked(answers: Answers) -> Answers:
    """The answers with the public URL normalized; InvalidInput naming the first one that cannot be used."""
    if answers.access not in ("static", "sql") or not USER_NAME.match(answers.admin):
        raise InvalidInput("access must be static or sql, and the admin a valid user name")
    problem = _aws_problem(answers)
    if problem:
        raise InvalidInput(problem)
    try:
        answers = replace(answers, public_url=parse_public_url(answers.public_url) or "")
    except ValueError as exc:
        raise InvalidInput(f"the public URL: {exc}") from None
    if answers.password:
        PasswordPolicy().check(answers.password, answers.admin)
    return answers


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)

    output = Path(args.output)
    if args.iam_policy:
        return _print_iam_policy(output, args.account, args.partition)
    if output.exists() and not args.force:
        print(f"ppc-make-config: {output} exists; use --force to overwrite", file=sys.stderr)
        return 1
    interactive = not args.non_interactive and sys.stdin.isatty()
    try:
        answers = _checked(_answers(args, interactive))
    except InvalidInput as exc:
        print(f"ppc-make-config: {exc.message}", file=sys.stderr)
        return 1
    password = answers.password or generate_password()
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(render(answers, hash_password(password)), encoding="utf-8")
    try:
        settings = load_ini(output)  # the file must be one the server accepts
    except ConfigError as exc:
        output.unlink()
        print(f"ppc-make-config: {exc.message}", file=sys.stderr)
        return 1
    for url in {settings.cache.url, settings.auth.url or ""}:
        # The folder of the SQLite database this file names: the server refuses to start without it.
        if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    changed = answers.access != "sql" or _create_sql_admin(output, answers.admin, password, args.reset_admin_password)
    print(f"Wrote {output}. Admin user: {answers.admin}")
    if not changed:
        print(
            f"The user {answers.admin!r} already exists in the access database: its password is unchanged "
            "(run again with --reset-admin-password to set a new one)."
        )
    elif answers.password is None:
        print(f"Generated admin password (shown only now): {password}")
    for step in _next_steps(answers, output):
        print(step)
    print(f"Start the server with: ppc-serve {output}")
    return 0


def _next_steps(answers: Answers, output: Path) -> list[str]:
    """What the ini needs done before the server starts, beyond starting it."""
    steps = []
    if answers.cache.backend == "dynamo" and not answers.cache.create_tables:
        steps.append(f"Create the DynamoDB tables once with: ppc-create-tables {output}")
    if answers.cache.backend == "sql" and not answers.cache.url.startswith("sqlite") and answers.access != "sql":
        steps.append(f"Create the cache's schema with: ppc-migrate {output}")
    if answers.storage.backend == "s3" or answers.cache.backend == "dynamo":
        steps.append(f"Print the IAM policy the servers need with: ppc-make-config {output} --iam-policy")
    return steps


if __name__ == "__main__":
    sys.exit(main())
