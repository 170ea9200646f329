"""Tiny real distributions built in memory, for the benchmarks: many projects x a few versions."""

from __future__ import annotations

import base64
import hashlib
import io
import random
import tarfile
import zipfile
from dataclasses import dataclass

from packaging.utils import canonicalize_name

from tests.support.distbuilder import dist_name, metadata_text, module_name

# Corpus shape: versions per project (weight: count), files per version.
VERSION_COUNTS = {1: 35, 2: 25, 3: 15, 4: 10, 6: 8, 10: 5, 20: 2}
P_SDIST = 0.8
P_PURE_WHEEL = 0.85
P_PLATFORM_WHEELS = 0.08
PLATFORM_TAGS = (
    "cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64",
    "cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64",
    "cp312-cp312-macosx_11_0_arm64",
    "cp312-cp312-win_amd64",
)
WORDS_A = ("acme", "data", "fast", "py", "internal", "core", "cloud", "tiny", "blue", "auth", "geo", "ml")
WORDS_B = ("utils", "client", "tools", "sdk", "parser", "models", "api", "lib", "kit", "io", "cli", "ops")


# -- corpus ---------------------------------------------------------------------


@dataclass(frozen=True)
class Dist:
    key: str  # storage key (without the bucket prefix): <normalized project>/<filename>
    data: bytes
    sha256: str
    metadata: bytes  # METADATA / PKG-INFO, what the server keeps as the .metadata sidecar
    via_server: bool
    wheel: bool


def _record_line(path: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{path},sha256={digest},{len(data)}"


def make_wheel(name: str, version: str, tag: str, meta: bytes) -> tuple[str, bytes]:
    """Same layout as tests.distbuilder.build_wheel, in memory."""
    base = f"{dist_name(name)}-{version}"
    dist_info = f"{base}.dist-info"
    files = {
        f"{module_name(name)}/__init__.py": f'__version__ = "{version}"\n'.encode(),
        f"{dist_info}/METADATA": meta,
        f"{dist_info}/WHEEL": f"Wheel-Version: 1.0\nGenerator: ppc-bench\nRoot-Is-Purelib: true\nTag: {tag}\n".encode(),
    }
    record = "\n".join(_record_line(p, d) for p, d in files.items()) + f"\n{dist_info}/RECORD,,\n"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for arcname, data in files.items():
            zf.writestr(zipfile.ZipInfo(arcname, date_time=(2024, 1, 1, 0, 0, 0)), data)
        zf.writestr(zipfile.ZipInfo(f"{dist_info}/RECORD", date_time=(2024, 1, 1, 0, 0, 0)), record)
    return f"{base}-{tag}.whl", buf.getvalue()


def make_sdist(name: str, version: str, meta: bytes) -> tuple[str, bytes]:
    """Same layout as tests.distbuilder.build_sdist (.tar.gz), in memory."""
    base = f"{dist_name(name)}-{version}"
    files = {
        f"{base}/PKG-INFO": meta,
        f"{base}/pyproject.toml": (
            '[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n'
            f'[project]\nname = "{name}"\nversion = "{version}"\n'
        ).encode(),
        f"{base}/{module_name(name)}/__init__.py": f'__version__ = "{version}"\n'.encode(),
    }
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for arcname, data in files.items():
            info = tarfile.TarInfo(arcname)
            info.size, info.mtime, info.mode = len(data), 1_704_067_200, 0o644
            tf.addfile(info, io.BytesIO(data))
    return f"{base}.tar.gz", buf.getvalue()


def build_corpus(n: int, server_fraction: float, seed: int) -> tuple[list[Dist], int]:
    """N distributions of many projects x a few versions; returns (dists, number of projects).

    Every file is a real, valid distribution whose metadata names its own project and
    version (the reload checks that), built in memory from one template per kind: only
    the names and versions vary.
    """
    rng = random.Random(seed)  # noqa: S311 - a repeatable corpus, not a secret
    counts, weights = zip(*VERSION_COUNTS.items(), strict=True)
    dists: list[Dist] = []
    projects = 0
    while len(dists) < n:
        projects += 1
        # Mixed spellings ("Acme_Utils.12", "acme-utils-12") all normalize to one project.
        words = (rng.choice(WORDS_A), rng.choice(WORDS_B), str(projects))
        name = rng.choice(("-", "_", ".")).join(words)
        if rng.random() < 0.2:
            name = name.title()
        project = canonicalize_name(name)
        for v in range(rng.choices(counts, weights)[0]):
            version = f"{v // 4 + 1}.{v % 4}.0"
            meta = metadata_text(name, version, summary=f"{name} does things", requires_python=">=3.9").encode()
            files: list[tuple[str, bytes, bool]] = []
            if rng.random() < P_SDIST:
                files.append((*make_sdist(name, version, meta), False))
            if rng.random() < P_PURE_WHEEL or not files:
                files.append((*make_wheel(name, version, "py3-none-any", meta), True))
            if rng.random() < P_PLATFORM_WHEELS:
                files += [(*make_wheel(name, version, tag, meta), True) for tag in PLATFORM_TAGS]
            for filename, data, wheel in files:
                key = f"{project}/{filename}"
                sha = hashlib.sha256(data).hexdigest()
                dists.append(Dist(key, data, sha, meta, rng.random() < server_fraction, wheel))
    return dists[:n], len({d.key.split("/", 1)[0] for d in dists[:n]})


def uniform_corpus(projects: int, files_per_project: int, prefix: str = "") -> list[Dist]:
    """`projects` projects of `files_per_project` files each: per version a wheel and (every other file) an sdist."""
    dists: list[Dist] = []
    for p in range(projects):
        name = f"{prefix}{WORDS_A[p % len(WORDS_A)]}-{WORDS_B[p // len(WORDS_A) % len(WORDS_B)]}-{p}"
        project = canonicalize_name(name)
        made = 0
        version_number = 0
        while made < files_per_project:
            version = f"{version_number // 4 + 1}.{version_number % 4}.0"
            version_number += 1
            meta = metadata_text(name, version, summary=f"{name} does things", requires_python=">=3.9").encode()
            kinds = [make_wheel(name, version, "py3-none-any", meta), make_sdist(name, version, meta)]
            for filename, data in kinds[: files_per_project - made]:
                wheel = filename.endswith(".whl")
                dists.append(Dist(f"{project}/{filename}", data, hashlib.sha256(data).hexdigest(), meta, True, wheel))
                made += 1
    return dists
