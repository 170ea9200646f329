"""Builds tiny but real wheels and sdists for the tests (pip and uv can install the wheels)."""

from __future__ import annotations

import base64
import hashlib
import io
import re
import tarfile
import time
import zipfile
from pathlib import Path

from packaging.utils import canonicalize_name
from packaging.version import Version


def dist_name(name: str) -> str:
    """The project name as it appears in wheel and sdist filenames (PEP 427/625)."""
    return canonicalize_name(name).replace("-", "_")


def module_name(name: str) -> str:
    return re.sub(r"[^a-z0-9_]", "_", dist_name(name))


def metadata_text(
    name: str,
    version: str,
    *,
    summary: str | None = None,
    requires_python: str | None = None,
    requires_dist: tuple[str, ...] = (),
    metadata_version: str = "2.1",
) -> str:
    lines = [f"Metadata-Version: {metadata_version}", f"Name: {name}", f"Version: {version}"]
    if summary is not None:
        lines.append(f"Summary: {summary}")
    if requires_python is not None:
        lines.append(f"Requires-Python: {requires_python}")
    lines += [f"Requires-Dist: {req}" for req in requires_dist]
    lines += ["Author: Test Author", "License: MIT", "Project-URL: Homepage, https://example.invalid/"]
    return "\n".join(lines) + "\n\nA tiny package built by the pypicloud_lite tests.\n"


def _record_line(path: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{path},sha256={digest},{len(data)}"


def build_wheel(
    dest: Path,
    name: str,
    version: str,
    *,
    tag: str = "py3-none-any",
    summary: str | None = "A tiny test package",
    requires_python: str | None = None,
    requires_dist: tuple[str, ...] = (),
    metadata: str | None = None,
    code: str | None = None,
) -> Path:
    """A valid wheel with one module; `metadata` replaces the generated METADATA text, `code` the module's."""
    dest.mkdir(parents=True, exist_ok=True)
    base = f"{dist_name(name)}-{Version(version)}"
    dist_info = f"{base}.dist-info"
    module = module_name(name)
    meta = metadata or metadata_text(
        name, version, summary=summary, requires_python=requires_python, requires_dist=requires_dist
    )
    files = {
        f"{module}/__init__.py": (code or f'__version__ = "{version}"\n').encode(),
        f"{dist_info}/METADATA": meta.encode(),
        f"{dist_info}/WHEEL": f"Wheel-Version: 1.0\nGenerator: ppc-tests\nRoot-Is-Purelib: true\nTag: {tag}\n".encode(),
    }
    record = "\n".join(_record_line(p, d) for p, d in files.items()) + f"\n{dist_info}/RECORD,,\n"
    path = dest / f"{base}-{tag}.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for arcname, data in files.items():
            zf.writestr(zipfile.ZipInfo(arcname, date_time=(2024, 1, 1, 0, 0, 0)), data)
        # Its time fixed too: the same wheel built twice is the same bytes, whichever second each build falls in.
        zf.writestr(zipfile.ZipInfo(f"{dist_info}/RECORD", date_time=(2024, 1, 1, 0, 0, 0)), record)
    return path


def build_sdist(
    dest: Path,
    name: str,
    version: str,
    *,
    fmt: str = "tar.gz",
    summary: str | None = "A tiny test package",
    requires_python: str | None = None,
    metadata_version: str = "2.1",
    backend: tuple[str, str] = ("setuptools", "setuptools.build_meta"),
) -> Path:
    """A valid sdist (PKG-INFO, pyproject.toml, one module) as .tar.gz or .zip; `backend`: its build requirement
    and build backend."""
    dest.mkdir(parents=True, exist_ok=True)
    base = f"{dist_name(name)}-{Version(version)}"
    module = module_name(name)
    pkg_info = metadata_text(
        name, version, summary=summary, requires_python=requires_python, metadata_version=metadata_version
    )
    files = {
        f"{base}/PKG-INFO": pkg_info.encode(),
        f"{base}/pyproject.toml": (
            f'[build-system]\nrequires = ["{backend[0]}"]\nbuild-backend = "{backend[1]}"\n'
            f'[project]\nname = "{name}"\nversion = "{version}"\n'
        ).encode(),
        f"{base}/{module}/__init__.py": f'__version__ = "{version}"\n'.encode(),
    }
    path = dest / f"{base}.{fmt}"
    if fmt == "zip":
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
            for arcname, data in files.items():
                zf.writestr(arcname, data)
    else:
        with tarfile.open(path, "w:gz") as tf:
            for arcname, data in files.items():
                info = tarfile.TarInfo(arcname)
                info.size, info.mtime, info.mode = len(data), int(time.time()), 0o644
                tf.addfile(info, io.BytesIO(data))
    return path


def digests(path: Path) -> dict[str, str]:
    data = path.read_bytes()
    return {
        "md5_digest": hashlib.md5(data).hexdigest(),
        "sha256_digest": hashlib.sha256(data).hexdigest(),
        "blake2_256_digest": hashlib.blake2b(data, digest_size=32).hexdigest(),
    }
