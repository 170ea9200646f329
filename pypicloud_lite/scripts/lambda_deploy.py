"""The command lines of ppc-build-lambda-bundle, ppc-create-s3-sync and ppc-remove-s3-sync."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from pypicloud_lite.config import load_settings, read_ini
from pypicloud_lite.config_values import parse_list
from pypicloud_lite.deploy.aws import Options, is_client_error
from pypicloud_lite.deploy.bundle import (
    ARCHITECTURE,
    DEFAULT_BUNDLE,
    DEFAULT_LAMBDA_DIR,
    HANDLER,
    RUNTIME,
    SQL_DRIVERS,
    build_bundle,
)
from pypicloud_lite.deploy.create import Creator
from pypicloud_lite.deploy.remove import Remover
from pypicloud_lite.deploy.settings import lambda_settings
from pypicloud_lite.errors import PypicloudLiteError

DEFAULT_TIMEOUT = 60
DEFAULT_MEMORY = 512


def _setting(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key.strip(), value.strip()


def _deploy_parser(prog: str, description: str | None, create: bool) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("ini", help="the server's ini file (its [app:main] storage.* and cache.* settings)")
    parser.add_argument("--region", help="the bucket's region (default: the bucket's, as S3 reports it)")
    parser.add_argument("--function-name", help="default: ppc-s3-sync-<bucket>; names the role and queues too")
    parser.add_argument("--endpoint-url", help="send every AWS call here (a test server such as moto)")
    parser.add_argument("--role-arn", help="use this execution role instead of creating (or removing) one")
    parser.add_argument("--sqs", action="store_true", help="deliver events through an SQS queue with a DLQ")
    if create:
        parser.add_argument(
            "--cdn",
            action="store_true",
            help="purge the ini's CloudFront distribution (cdn.*): a delayed-flush queue and invalidation rights",
        )
    parser.add_argument("--dry-run", action="store_true", help="print every action and change nothing")
    if create:
        parser.add_argument("--zip", help="deploy this bundle instead of building one")
        parser.add_argument("--no-deps", action="store_true", help="build the bundle without pip (for tests)")
        parser.add_argument("--sql-driver", choices=sorted(SQL_DRIVERS), help="database driver to bundle")
        parser.add_argument("--lambda-dir", default=str(DEFAULT_LAMBDA_DIR), help=argparse.SUPPRESS)
        parser.add_argument(
            "--set",
            dest="settings",
            action="append",
            type=_setting,
            default=[],
            metavar="KEY=VALUE",
            help="a Lambda setting instead of the ini's, e.g. cache.url=ssm:/ppc/cache-url (empty value: drop it)",
        )
        parser.add_argument("--timeout", type=int, default=DEFAULT_TIMEOUT, help="seconds (default 60)")
        parser.add_argument("--memory", type=int, default=DEFAULT_MEMORY, help="MB (default 512)")
        parser.add_argument("--subnet-ids", type=parse_list, default=(), help="run in these VPC subnets (SQL in a VPC)")
        parser.add_argument("--security-group-ids", type=parse_list, default=(), help="with --subnet-ids")
    return parser


def _options(args: argparse.Namespace) -> Options:
    return Options(
        ini=args.ini,
        region=args.region,
        function_name=args.function_name,
        endpoint_url=args.endpoint_url,
        role_arn=args.role_arn,
        sqs=args.sqs,
        dry_run=args.dry_run,
        cdn=getattr(args, "cdn", False),
        zip=getattr(args, "zip", None),
        no_deps=getattr(args, "no_deps", False),
        sql_driver=getattr(args, "sql_driver", None),
        lambda_dir=getattr(args, "lambda_dir", str(DEFAULT_LAMBDA_DIR)),
        settings=dict(getattr(args, "settings", [])),
        timeout=getattr(args, "timeout", DEFAULT_TIMEOUT),
        memory=getattr(args, "memory", DEFAULT_MEMORY),
        subnet_ids=getattr(args, "subnet_ids", ()),
        security_group_ids=getattr(args, "security_group_ids", ()),
    )


def _run(prog: str, action: Callable[[], int]) -> int:
    try:
        return action()
    except PypicloudLiteError as exc:
        print(f"{prog}: {exc.message}", file=sys.stderr)
        return 1
    except Exception as exc:
        problem = _credentials_problem(exc)
        if problem is not None:
            print(f"{prog}: AWS credentials problem ({problem[0]}): {problem[1]}", file=sys.stderr)
            return 1
        if not is_client_error(exc):
            raise
        print(f"{prog}: AWS refused: {exc}", file=sys.stderr)
        return 1


def _credentials_problem(exc: Exception) -> tuple[str, str] | None:
    """(code, what is wrong) when `exc` is about the AWS credentials; botocore is imported only then."""
    if not type(exc).__module__.startswith("botocore"):
        return None
    from pypicloud_lite.aws_errors import credentials_problem, error_code

    problem = credentials_problem(exc)
    return (error_code(exc), problem) if problem is not None else None


def build_main(argv: list[str] | None = None) -> int:
    """ppc-build-lambda-bundle: zip the S3 sync handler with what the ini's cache needs."""
    parser = argparse.ArgumentParser(prog="ppc-build-lambda-bundle", description=build_main.__doc__)
    parser.add_argument("ini", help="the server's ini file (its cache.backend and cache.url choose the dependencies)")
    parser.add_argument("-o", "--output", default=DEFAULT_BUNDLE, help=f"the zip to write (default {DEFAULT_BUNDLE})")
    parser.add_argument("--no-deps", action="store_true", help="skip pip: only the handler and pypicloud_lite")
    parser.add_argument("--sql-driver", choices=sorted(SQL_DRIVERS), help="database driver (default: from cache.url)")
    parser.add_argument("--lambda-dir", default=str(DEFAULT_LAMBDA_DIR), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    def build() -> int:
        settings = load_settings(lambda_settings(read_ini(args.ini)), environ={})
        bundle = build_bundle(
            settings,
            Path(args.output),
            lambda_dir=Path(args.lambda_dir),
            deps=not args.no_deps,
            sql_driver=args.sql_driver,
        )
        print(f"{bundle.path}: {bundle.size} bytes ({bundle.size / 1e6:.1f} MB), cache {bundle.cache_backend}")
        if bundle.requirements:
            print(f"dependencies: {' '.join(bundle.requirements)} (boto3/botocore come with the runtime)")
        print(f"handler: {HANDLER} (runtime {RUNTIME}, {ARCHITECTURE})")
        return 0

    return _run("ppc-build-lambda-bundle", build)


def create_main(argv: list[str] | None = None) -> int:
    """ppc-create-s3-sync: deploy the Lambda that applies the bucket's S3 events to the cache."""
    args = _deploy_parser("ppc-create-s3-sync", create_main.__doc__, create=True).parse_args(argv)
    return _run("ppc-create-s3-sync", lambda: Creator(_options(args)).run())


def remove_main(argv: list[str] | None = None) -> int:
    """ppc-remove-s3-sync: remove what ppc-create-s3-sync made for the ini's bucket, and nothing else."""
    args = _deploy_parser("ppc-remove-s3-sync", remove_main.__doc__, create=False).parse_args(argv)
    return _run("ppc-remove-s3-sync", lambda: Remover(_options(args)).run())
