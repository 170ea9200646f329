"""Read core metadata out of wheels and sdists without extracting them (PEP 658 source)."""

from __future__ import annotations

import re
import tarfile
import zipfile
import zlib
from pathlib import Path

from packaging.metadata import parse_email
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from pypicloud_lite.errors import InvalidUpload
from pypicloud_lite.models import CoreMetadata
from pypicloud_lite.naming import DistFilename

# A METADATA file holds the long description too; PyPI's largest are a few MB.
MAX_METADATA_BYTES = 8 * 1024 * 1024
# Declared-uncompressed to compressed ratio above which an archive is treated as a bomb,
# once it would inflate past ZIP_BOMB_FLOOR bytes.
ZIP_BOMB_RATIO = 100
ZIP_BOMB_FLOOR = 256 * 1024 * 1024
# An sdist's PKG-INFO sits at the top; give up scanning a tarball after this many members.
MAX_TAR_MEMBERS_SCANNED = 100_000

_DIST_INFO_METADATA = re.compile(r"^([^/]+)\.dist-info/METADATA\Z")
_SDIST_PKG_INFO = re.compile(r"^[^/]+/PKG-INFO\Z")


def read_metadata_file(path: Path, dist: DistFilename) -> bytes:
    """The raw METADATA (wheel) or PKG-INFO (sdist) bytes, or InvalidUpload if unreadable."""
    try:
        if dist.packagetype == "bdist_wheel":
            return _read_wheel(path, dist)
        if dist.filename.endswith(".zip"):
            return _read_zip_sdist(path)
        return _read_tar_sdist(path)
    except InvalidUpload:
        raise
    # zipfile raises RuntimeError for encrypted members and NotImplementedError for unknown compression.
    except (
        zipfile.BadZipFile,
        tarfile.TarError,
        zlib.error,
        EOFError,
        OSError,
        ValueError,
        RuntimeError,
        NotImplementedError,
    ) as exc:
        kind = "wheel" if dist.packagetype == "bdist_wheel" else "sdist"
        raise InvalidUpload(f"Invalid distribution file: {dist.filename} is not a readable {kind} ({exc}).") from exc


def _check_zip_bomb(zf: zipfile.ZipFile, path: Path) -> None:
    declared = sum(info.file_size for info in zf.infolist())
    if declared > ZIP_BOMB_FLOOR and declared > ZIP_BOMB_RATIO * max(path.stat().st_size, 1):
        raise InvalidUpload("Invalid distribution file: the archive inflates to an implausible size (zip bomb).")


def _bounded_zip_read(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    if info.file_size > MAX_METADATA_BYTES:
        raise InvalidUpload(f"Invalid distribution file: {info.filename} is larger than {MAX_METADATA_BYTES} bytes.")
    with zf.open(info) as member:
        data = member.read(MAX_METADATA_BYTES + 1)
    if len(data) > MAX_METADATA_BYTES:
        raise InvalidUpload(f"Invalid distribution file: {info.filename} is larger than {MAX_METADATA_BYTES} bytes.")
    return data


def _read_wheel(path: Path, dist: DistFilename) -> bytes:
    with zipfile.ZipFile(path) as zf:
        _check_zip_bomb(zf, path)
        candidates = [info for info in zf.infolist() if _DIST_INFO_METADATA.match(info.filename)]
        if len(candidates) != 1:
            raise InvalidUpload(
                f"Invalid wheel: {dist.filename} must contain exactly one .dist-info/METADATA "
                f"(found {len(candidates)})."
            )
        info = candidates[0]
        dist_info = info.filename.split("/", 1)[0]
        if f"{dist_info}/WHEEL" not in zf.NameToInfo:
            raise InvalidUpload(f"Invalid wheel: {dist.filename} has no {dist_info}/WHEEL file.")
        dist_name = dist_info[: -len(".dist-info")].rpartition("-")[0]
        if canonicalize_name(dist_name) != dist.project:
            raise InvalidUpload(f"Invalid wheel: {dist_info} does not belong to project {dist.project!r}.")
        return _bounded_zip_read(zf, info)


def _read_zip_sdist(path: Path) -> bytes:
    with zipfile.ZipFile(path) as zf:
        _check_zip_bomb(zf, path)
        for info in zf.infolist():
            if _SDIST_PKG_INFO.match(info.filename):
                return _bounded_zip_read(zf, info)
    raise InvalidUpload("Invalid sdist: no PKG-INFO in the archive's top folder.")


def _read_tar_sdist(path: Path) -> bytes:
    with tarfile.open(path, mode="r:gz") as tf:
        for _ in range(MAX_TAR_MEMBERS_SCANNED):
            member = tf.next()
            if member is None:
                break
            if member.isfile() and _SDIST_PKG_INFO.match(member.name):
                if member.size > MAX_METADATA_BYTES:
                    raise InvalidUpload(f"Invalid sdist: PKG-INFO is larger than {MAX_METADATA_BYTES} bytes.")
                extracted = tf.extractfile(member)
                if extracted is None:
                    break
                return extracted.read(MAX_METADATA_BYTES)
    raise InvalidUpload("Invalid sdist: no PKG-INFO in the archive's top folder.")


def parse_core_metadata(raw: bytes, dist: DistFilename) -> CoreMetadata:
    """Parse METADATA / PKG-INFO and check it describes the file it came from."""
    fields, _unparsed = parse_email(raw)
    name = fields.get("name")
    version = fields.get("version")
    if not name or not version:
        raise InvalidUpload(f"Invalid distribution file: the metadata of {dist.filename} lacks Name or Version.")
    if canonicalize_name(name) != dist.project:
        raise InvalidUpload(f"Invalid distribution file: its metadata names project {name!r}, not {dist.project!r}.")
    try:
        same_version = Version(version) == dist.version
    except InvalidVersion as exc:
        raise InvalidUpload(f"Invalid distribution file: its metadata version {version!r} is invalid.") from exc
    if not same_version:
        raise InvalidUpload(f"Invalid distribution file: its metadata says version {version}, not {dist.version}.")
    urls = fields.get("project_urls") or {}
    return CoreMetadata(
        metadata_version=fields.get("metadata_version") or "1.0",
        name=name,
        version=version,
        summary=fields.get("summary"),
        requires_python=fields.get("requires_python"),
        requires_dist=tuple(fields.get("requires_dist") or ()),
        author=fields.get("author"),
        author_email=fields.get("author_email"),
        license=fields.get("license_expression") or fields.get("license"),
        home_page=fields.get("home_page"),
        project_urls=tuple(urls.items()),
        classifiers=tuple(fields.get("classifiers") or ()),
    )
