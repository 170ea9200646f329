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

storage.backend = local
storage.dir = {storage_dir}

cache.backend = sql
cache.url = {cache_url}
cache.migrate_on_start = {migrate_on_start}

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


@dataclass(frozen=True)
class Answers:
    storage_dir: str
    cache_url: str
    access: str
    admin: str
    password: str | None  # None: generate one
    listen: str
    default_read: str
    public_url: str = ""  # empty: none (only the loopback names and the listen address are answered)


def _ask(prompt: str, default: str) -> str:
    answer = input(f"{prompt} [{default}]: " if default else f"{prompt}: ").strip()
    return answer or default


def _interactive(args: argparse.Namespace) -> Answers:
    storage_dir = args.storage_dir or _ask("Folder for package files", "%(here)s/var/packages")
    cache_url = args.cache_url or _ask("Cache database URL", "sqlite:///%(here)s/var/cache.sqlite")
    access = args.access or _ask("Users and permissions in the ini (static) or the database (sql)", "sql")
    admin = args.admin or _ask("First admin user name", "admin")
    password = None
    if not args.password_stdin:
        typed = getpass.getpass("Admin password (empty: generate one): ")
        if typed and getpass.getpass("Again: ") != typed:
            raise SystemExit("ppc-make-config: the passwords differ")
        password = typed or None
    else:
        password = sys.stdin.readline().rstrip("\n") or None
    listen = args.listen or _ask("Listen on", "127.0.0.1:6543")
    default_read = args.default_read or _ask("Who may read every project (everyone, authenticated, none)", "everyone")
    public_url = args.public_url or _ask(
        "The URL clients use, such as https://pypi.example.com (empty: this machine only)", ""
    )
    return Answers(storage_dir, cache_url, access, admin, password, listen, default_read, public_url)


def _from_flags(args: argparse.Namespace) -> Answers:
    password = sys.stdin.readline().rstrip("\n") if args.password_stdin else None
    return Answers(
        storage_dir=args.storage_dir or "%(here)s/var/packages",
        cache_url=args.cache_url or "sqlite:///%(here)s/var/cache.sqlite",
        access=args.access or "sql",
        admin=args.admin or "admin",
        password=password or None,
        listen=args.listen or "127.0.0.1:6543",
        default_read=args.default_read or "everyone",
        public_url=args.public_url or "",
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


def render(answers: Answers, password_hash: str) -> str:
    if answers.access == "static":
        auth_lines = f"auth.admins = {answers.admin}\nuser.{answers.admin} = {password_hash}\n"
    else:
        auth_lines = "# Users, groups, grants and tokens live in the database (manage them through /api/).\n"
    return TEMPLATE.format(
        storage_dir=answers.storage_dir,
        cache_url=answers.cache_url,
        # SQLite is embedded: let the server keep its own schema current. Others run ppc-migrate.
        migrate_on_start="true" if answers.cache_url.startswith("sqlite") else "false",
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
    engine = create_db_engine(settings.cache)
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ppc-make-config", description=__doc__)
    parser.add_argument("output", help="the ini file to write")
    parser.add_argument("--storage-dir", help="folder for package files (default %%(here)s/var/packages)")
    parser.add_argument("--cache-url", help="SQLAlchemy URL of the cache (default: SQLite beside the ini)")
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
    args = parser.parse_args(argv)

    output = Path(args.output)
    if args.iam_policy:
        return _print_iam_policy(output, args.account, args.partition)
    if output.exists() and not args.force:
        print(f"ppc-make-config: {output} exists; use --force to overwrite", file=sys.stderr)
        return 1
    interactive = not args.non_interactive and sys.stdin.isatty()
    answers = _interactive(args) if interactive else _from_flags(args)
    if answers.access not in ("static", "sql") or not USER_NAME.match(answers.admin):
        print("ppc-make-config: access must be static or sql, and the admin a valid user name", file=sys.stderr)
        return 1
    try:
        answers = replace(answers, public_url=parse_public_url(answers.public_url) or "")
    except ValueError as exc:
        print(f"ppc-make-config: the public URL: {exc}", file=sys.stderr)
        return 1
    try:
        if answers.password:
            PasswordPolicy().check(answers.password, answers.admin)
    except InvalidInput as exc:
        print(f"ppc-make-config: {exc.message}", file=sys.stderr)
        return 1
    password = answers.password or generate_password()
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(render(answers, hash_password(password)), encoding="utf-8")
    settings = load_ini(output)  # the file must be one the server accepts
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
    print(f"Start the server with: ppc-serve {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
