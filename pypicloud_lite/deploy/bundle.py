"""The Lambda bundle: the entry module, pypicloud_lite without its web layer, and the cache's dependencies."""

from __future__ import annotations

import csv
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pypicloud_lite
from pypicloud_lite.config import Settings
from pypicloud_lite.deploy import DeployError
from pypicloud_lite.deploy.settings import SECRET_PREFIXES

HANDLER = "s3_sync.handler"
HANDLER_FILE = "s3_sync.py"
RUNTIME = "python3.12"
LAMBDA_PYTHON_VERSION = "3.12"
# python3.12 runs on Amazon Linux 2023 (glibc 2.34): manylinux2014 wheels, and the newer
# manylinux_2_28 ones that some projects publish instead, both load there.
PLATFORMS = ("manylinux2014_x86_64", "manylinux_2_28_x86_64")
ARCHITECTURE = "x86_64"
# The entry module and the requirements files, shipped inside the package so that an installed
# wheel builds the bundle as a checkout does (lambda/ in the repository points here).
DEFAULT_LAMBDA_DIR = Path(__file__).resolve().parent / "lambda_files"
DEFAULT_BUNDLE = "ppc-s3-sync.zip"
# The Lambda runtime ships these; bundling them only makes the zip bigger (and older or newer
# than the runtime's, for no benefit). Names as in `<name>-<version>.dist-info`, normalized.
RUNTIME_PROVIDED = frozenset({"boto3", "botocore", "s3transfer", "jmespath", "python_dateutil", "six", "urllib3"})
# Zip entries get a fixed timestamp, so the same inputs give the same bytes (and CodeSha256).
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)

SQL_DRIVERS = {
    "psycopg": "psycopg[binary]>=3.1",
    "psycopg2": "psycopg2-binary>=2.9",
    "pg8000": "pg8000>=1.30",
    "pymysql": "PyMySQL>=1.1",
    "none": "",
}


@dataclass(frozen=True)
class Bundle:
    path: Path
    size: int
    cache_backend: str
    requirements: tuple[str, ...]  # what pip installed: -r <file> plus the driver, empty with --no-deps


def sql_driver_requirement(cache_url: str, driver: str | None = None) -> str:
    """The pip requirement of the database driver that `cache_url` names ("" for none)."""
    if driver is not None:
        if driver not in SQL_DRIVERS:
            raise DeployError(f"unknown --sql-driver {driver!r}; choose one of {', '.join(SQL_DRIVERS)}")
        return SQL_DRIVERS[driver]
    if cache_url.startswith(SECRET_PREFIXES):
        raise DeployError(
            "cache.url names a secret, so the database driver cannot be read from it: "
            f"pass --sql-driver ({', '.join(SQL_DRIVERS)})"
        )
    scheme = cache_url.split(":", 1)[0].lower()
    backend, _, name = scheme.partition("+")
    if backend == "sqlite":
        return ""
    if backend in ("postgresql", "postgres"):
        if name in ("", "psycopg"):
            return SQL_DRIVERS["psycopg"]
        if name in ("psycopg2", "pg8000"):
            return SQL_DRIVERS[name]
    if backend in ("mysql", "mariadb"):
        if name == "pymysql":
            return SQL_DRIVERS["pymysql"]
        if name in ("", "mysqldb"):
            raise DeployError(
                f"cache.url uses the mysqlclient driver ({scheme}://), which has no manylinux wheel: "
                "use mysql+pymysql:// (or pass --sql-driver pymysql)"
            )
    raise DeployError(f"cache.url: no Lambda driver known for {scheme!r}; pass --sql-driver")


def run_pip(args: Sequence[str]) -> None:
    """Run pip in this interpreter; its output only matters when it fails."""
    command = [sys.executable, "-m", "pip", *args]
    result = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603 - fixed argv
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-25:])
        raise DeployError(f"pip install for the Lambda platform failed:\n{tail}")


def pip_install_args(target: Path, requirements: Path, extra: Sequence[str]) -> list[str]:
    args = ["install", "--target", str(target), "--no-compile", "--disable-pip-version-check", "--quiet"]
    for platform in PLATFORMS:
        args += ["--platform", platform]
    args += ["--only-binary=:all:", "--python-version", LAMBDA_PYTHON_VERSION, "--implementation", "cp"]
    args += ["-r", str(requirements), *extra]
    return args


def _dist_name(dist_info: Path) -> str:
    return re.sub(r"[-_.]+", "_", dist_info.name[: -len(".dist-info")].split("-")[0]).lower()


def prune_runtime_packages(target: Path) -> list[str]:
    """Remove the distributions the Lambda runtime already provides; returns their names."""
    removed = []
    root = target.resolve()
    for dist_info in sorted(target.glob("*.dist-info")):
        name = _dist_name(dist_info)
        if name not in RUNTIME_PROVIDED:
            continue
        record = dist_info / "RECORD"
        if record.exists():
            with record.open(newline="", encoding="utf-8") as fh:
                for row in csv.reader(fh):
                    if not row:
                        continue
                    path = (target / row[0]).resolve()
                    # A RECORD may list files outside the target (scripts with ../): never touch those.
                    if root in path.parents and path.is_file():
                        path.unlink()
        shutil.rmtree(dist_info, ignore_errors=True)
        removed.append(name)
    for folder in sorted((p for p in target.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        if not any(folder.iterdir()):
            folder.rmdir()
    return removed


def package_files(cache_backend: str) -> Iterator[tuple[str, Path]]:
    """(zip name, file) of pypicloud_lite without the web layer, the scripts, this package and the other cache."""
    root = Path(pypicloud_lite.__file__).resolve().parent
    skipped = ["web", "scripts", "deploy"]
    # The other cache's code cannot run without its libraries, which the bundle does not carry.
    skipped += ["cache/dynamo"] if cache_backend == "sql" else ["cache/sql", "db"]
    for relative, path in _tree_files(root):
        if not any(relative == s or relative.startswith(s + "/") for s in skipped):
            yield f"pypicloud_lite/{relative}", path
    packaged = root / "db" / "migrations"
    if cache_backend == "sql" and not packaged.is_dir():
        # A checkout keeps the schema history at the top of the repository (a wheel has it in the package).
        from pypicloud_lite.db.migrate import migrations_dir

        for relative, path in _tree_files(migrations_dir()):
            yield f"pypicloud_lite/db/migrations/{relative}", path


def _tree_files(folder: Path) -> Iterator[tuple[str, Path]]:
    """Files under `folder`, sorted, without compiled leftovers."""
    found = []
    for current, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in files:
            path = Path(current, name)
            if path.suffix not in (".pyc", ".pyo"):
                found.append((path.relative_to(folder).as_posix(), path))
    yield from sorted(found)


def write_zip(entries: Mapping[str, Path], output: Path) -> None:
    """A reproducible zip: sorted names, fixed timestamps, world-readable modes (Lambda needs those)."""
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(output.name + ".partial")
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for name in sorted(entries):
            source = entries[name]
            info = zipfile.ZipInfo(name, date_time=ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            mode = 0o755 if os.access(source, os.X_OK) else 0o644
            info.external_attr = (0o100000 | mode) << 16
            zf.writestr(info, source.read_bytes())
    partial.replace(output)


def build_bundle(
    settings: Settings,
    output: Path,
    *,
    lambda_dir: Path = DEFAULT_LAMBDA_DIR,
    deps: bool = True,
    sql_driver: str | None = None,
    pip: Callable[[Sequence[str]], None] = run_pip,
) -> Bundle:
    """Zip the handler, pypicloud_lite (no web layer) and the chosen cache's dependencies."""
    handler = lambda_dir / HANDLER_FILE
    if not handler.is_file():
        raise DeployError(f"the Lambda handler {handler} does not exist (reinstall pypicloud_lite, or --lambda-dir)")
    backend = settings.cache.backend
    requirements: tuple[str, ...] = ()
    with tempfile.TemporaryDirectory(prefix="ppc-bundle-") as tmp:
        entries: dict[str, Path] = {}
        if deps:
            requirements_file = lambda_dir / f"requirements-{backend}.txt"
            if not requirements_file.is_file():
                raise DeployError(f"{requirements_file} does not exist")
            driver = sql_driver_requirement(settings.cache.url, sql_driver) if backend == "sql" else ""
            extra = [driver] if driver else []
            target = Path(tmp) / "deps"
            pip(pip_install_args(target, requirements_file, extra))
            prune_runtime_packages(target)
            # Console scripts carry the build machine's interpreter path: useless on Lambda.
            shutil.rmtree(target / "bin", ignore_errors=True)
            entries.update(_tree_files(target))
            requirements = (f"-r {requirements_file.name}", *extra)
        stray = sorted(n for n in entries if n.startswith("pypicloud_lite/") or n == HANDLER_FILE)
        if stray:
            raise DeployError(f"a dependency installed files that clash with the bundle's own: {stray[:3]}")
        entries.update(package_files(backend))
        entries[HANDLER_FILE] = handler
        write_zip(entries, output)
    return Bundle(output, output.stat().st_size, backend, requirements)
