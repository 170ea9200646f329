"""Read core metadata out of wheels and sdists without extracting them (PEP 658 source)."""

from __future__ import annotations

import io
import re
import struct
import tarfile
import zipfile
import zlib
from pathlib import Path
from typing import BinaryIO

from packaging.metadata import parse_email
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from pypicloud_lite.errors import InvalidUpload
from pypicloud_lite.models import CoreMetadata
from pypicloud_lite.naming import DistFilename

# A METADATA file holds the long description too; PyPI's largest are a few MB.
MAX_METADATA_BYTES = 8 * 1024 * 1024
# The long description kept in every cache row and file record (a DynamoDB item holds 400 KB in all): longer
# ones are cut at a line end before this many UTF-8 bytes, and say so.
MAX_DESCRIPTION_BYTES = 64 * 1024
# Declared-uncompressed to compressed ratio above which an archive is treated as a bomb,
# once it would inflate past ZIP_BOMB_FLOOR bytes.
ZIP_BOMB_RATIO = 100
ZIP_BOMB_FLOOR = 256 * 1024 * 1024

# zipfile builds a ZipInfo (about 400 bytes with its name) per central-directory entry before we can
# look at any of them: a forged directory of a million entries costs seconds and 500 MB. The largest
# real wheels hold a few tens of thousands of files.
MAX_ZIP_ENTRIES = 100_000
# zipfile reads the whole central directory into memory at once and keeps every name: at 16 MiB
# (100,000 entries with 110-byte names) that measured 76 MB of RSS. 8 MiB holds 100,000 entries with
# 38-byte names, or 60,000 with 90-byte names, as the largest real wheels have.
MAX_ZIP_DIRECTORY_BYTES = 8 * 1024 * 1024
# The end-of-central-directory record sits in the last 22 bytes plus a comment of at most 64 KiB.
_EOCD_SEARCH_BYTES = 22 + 0xFFFF + 20 + 56

# An sdist's PKG-INFO may come last (hatchling and flit write it after the sources), so a tarball is
# scanned up to PKG-INFO. tarfile spends about 17 µs on each member header: this caps that at 0.4 s,
# while sdists with tens of thousands of files are rare.
MAX_TAR_MEMBERS_SCANNED = 25_000
# Decompressed bytes a tarball may stream before PKG-INFO: the larger of a floor and a multiple of
# its compressed size. Source compresses 3 to 10 times; a gzip of zeros a thousand times, and inflating
# costs CPU whether the upload is then kept or refused, so the ratio bounds the CPU per uploaded byte.
TAR_INFLATE_FLOOR = 64 * 1024 * 1024
TAR_INFLATE_RATIO = 32
# tarfile reads a pax or GNU long-name header whole into memory and parses it record by record: one
# header may not be larger than this (a path is at most 4 KiB on Linux), nor all of them together: tiny
# records cost tarfile 0.13 s per MiB. Python's tarfile writes a pax header only where ustar cannot say
# it; GNU tar's posix format writes about 100 bytes of times per member, 2.5 MB for 25,000 members.
MAX_TAR_HEADER_BYTES = 64 * 1024
MAX_TAR_HEADER_BYTES_TOTAL = 2 * 1024 * 1024
# Compressed bytes handed to zlib per call, and the most it may inflate them to in one call.
_INFLATE_CHUNK = 64 * 1024

_DIST_INFO_METADATA = re.compile(r"^([^/]+)\.dist-info/METADATA\Z")
_SDIST_PKG_INFO = re.compile(r"^[^/]+/PKG-INFO\Z")


def read_metadata_file(path: Path | bytes, dist: DistFilename) -> bytes:
    """The raw METADATA (wheel) or PKG-INFO (sdist) bytes, or InvalidUpload if unreadable.

    `path`: the file, or its bytes when they are in memory already (a small object a reload read).
    """
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


def _size(path: Path | bytes) -> int:
    return len(path) if isinstance(path, bytes) else path.stat().st_size


def _open(path: Path | bytes) -> BinaryIO:
    return io.BytesIO(path) if isinstance(path, bytes) else path.open("rb")


def _check_zip_bomb(zf: zipfile.ZipFile, path: Path | bytes) -> None:
    declared = sum(info.file_size for info in zf.infolist())
    if declared > ZIP_BOMB_FLOOR and declared > ZIP_BOMB_RATIO * max(_size(path), 1):
        raise InvalidUpload("Invalid distribution file: the archive inflates to an implausible size (zip bomb).")


def _bounded_zip_read(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    if info.file_size > MAX_METADATA_BYTES:
        raise InvalidUpload(f"Invalid distribution file: {info.filename} is larger than {MAX_METADATA_BYTES} bytes.")
    with zf.open(info) as member:
        data = member.read(MAX_METADATA_BYTES + 1)
    if len(data) > MAX_METADATA_BYTES:
        raise InvalidUpload(f"Invalid distribution file: {info.filename} is larger than {MAX_METADATA_BYTES} bytes.")
    return data


def _check_zip_directory(path: Path | bytes) -> None:
    """Refuse a central directory too large for zipfile to parse, before zipfile parses it."""
    size = _size(path)
    with _open(path) as fh:
        fh.seek(max(0, size - _EOCD_SEARCH_BYTES))
        tail = fh.read()
        eocd = tail.rfind(b"PK\x05\x06")
        if eocd < 0 or len(tail) - eocd < 22:
            return  # not a zip at all: zipfile says so
        entries, cd_size = struct.unpack_from("<HI", tail, eocd + 10)
        record_start = eocd
        locator = eocd - 20
        if locator >= 0 and tail[locator : locator + 4] == b"PK\x06\x07" and locator - 56 >= 0:
            # ZIP64: the real counts sit in the record just before the locator, as zipfile reads them.
            record = locator - 56
            if tail[record : record + 4] == b"PK\x06\x06":
                entries, cd_size = struct.unpack_from("<QQ", tail, record + 32)
                record_start = record
        if entries > MAX_ZIP_ENTRIES:
            raise InvalidUpload(f"Invalid distribution file: it lists {entries} files, more than {MAX_ZIP_ENTRIES}.")
        if cd_size > MAX_ZIP_DIRECTORY_BYTES:
            raise InvalidUpload(
                f"Invalid distribution file: its central directory of {cd_size} bytes is larger than "
                f"{MAX_ZIP_DIRECTORY_BYTES} bytes."
            )
        # zipfile parses entries until it has read cd_size bytes, whatever the count says: count them.
        # Every entry starts with this signature, so the count is an upper bound.
        start = size - len(tail) + record_start - cd_size
        if start < 0:
            return  # zipfile reports the truncation
        fh.seek(start)
        found = fh.read(cd_size).count(b"PK\x01\x02")
        if found > MAX_ZIP_ENTRIES:
            raise InvalidUpload(f"Invalid distribution file: it lists {found} files, more than {MAX_ZIP_ENTRIES}.")


def _read_wheel(path: Path | bytes, dist: DistFilename) -> bytes:
    _check_zip_directory(path)
    with _open(path) as fh, zipfile.ZipFile(fh) as zf:
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


def _read_zip_sdist(path: Path | bytes) -> bytes:
    _check_zip_directory(path)
    with _open(path) as fh, zipfile.ZipFile(fh) as zf:
        _check_zip_bomb(zf, path)
        for info in zf.infolist():
            if _SDIST_PKG_INFO.match(info.filename):
                return _bounded_zip_read(zf, info)
    raise InvalidUpload("Invalid sdist: no PKG-INFO in the archive's top folder.")


class _BudgetedGunzip(io.RawIOBase):
    """A gzip stream's decompressed bytes, refused once more than `budget` of them are asked for."""

    def __init__(self, raw: BinaryIO, budget: int) -> None:
        super().__init__()
        self._raw = raw
        self._budget = budget
        self._inflated = 0
        self._zlib = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self._pending = b""

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            size = self._budget + 1
        out: list[bytes] = []
        wanted = size
        while wanted > 0:
            chunk = self._inflate(min(wanted, _INFLATE_CHUNK))
            if not chunk:
                break
            out.append(chunk)
            wanted -= len(chunk)
        return b"".join(out)

    def _inflate(self, limit: int) -> bytes:
        while True:
            if self._zlib.eof:
                # Concatenated gzip members are one stream (gzip(1) reads them so); trailing zeros are not.
                rest = self._zlib.unused_data or self._raw.read(_INFLATE_CHUNK)
                if not rest.strip(b"\0"):
                    return b""
                self._zlib = zlib.decompressobj(16 + zlib.MAX_WBITS)
                self._pending = rest
            data = self._zlib.unconsumed_tail or self._pending or self._raw.read(_INFLATE_CHUNK)
            self._pending = b""
            if not data:
                raise EOFError("compressed file ended before the end-of-stream marker was reached")
            chunk = self._zlib.decompress(data, limit)
            if chunk:
                self._inflated += len(chunk)
                if self._inflated > self._budget:
                    raise InvalidUpload(
                        f"Invalid sdist: it decompresses to more than {self._budget} bytes before its PKG-INFO "
                        f"(the limit is {TAR_INFLATE_RATIO} times the file's size, at least {TAR_INFLATE_FLOOR})."
                    )
                return chunk


class _BoundedTarInfo(tarfile.TarInfo):
    """A tar header whose pax and GNU extension records are size-checked before tarfile reads them."""

    def _proc_member(self, archive: tarfile.TarFile) -> tarfile.TarInfo:
        if self.type in _EXTENSION_TYPES:
            if self.size > MAX_TAR_HEADER_BYTES:
                raise InvalidUpload(
                    f"Invalid sdist: a pax or GNU long-name header of {self.size} bytes is larger than "
                    f"{MAX_TAR_HEADER_BYTES} bytes."
                )
            seen = getattr(archive, "extension_bytes", 0) + self.size
            if seen > MAX_TAR_HEADER_BYTES_TOTAL:
                raise InvalidUpload(
                    f"Invalid sdist: its pax and GNU long-name headers add up to more than "
                    f"{MAX_TAR_HEADER_BYTES_TOTAL} bytes."
                )
            # Kept on the archive: one count per upload read, whichever thread reads it.
            archive.extension_bytes = seen  # type: ignore[attr-defined]
        processed: tarfile.TarInfo = super()._proc_member(archive)  # type: ignore[misc]
        return processed


_EXTENSION_TYPES = frozenset(
    {tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK, tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE}
)


def _read_tar_sdist(path: Path | bytes) -> bytes:
    budget = max(TAR_INFLATE_FLOOR, TAR_INFLATE_RATIO * _size(path))
    with _open(path) as raw:
        # A stream ("r|") never seeks back, so nothing is decompressed twice and nothing past PKG-INFO at all.
        stream = _BudgetedGunzip(raw, budget)
        with tarfile.open(fileobj=stream, mode="r|", tarinfo=_BoundedTarInfo) as tf:
            for _ in range(MAX_TAR_MEMBERS_SCANNED):
                member = tf.next()
                if member is None:
                    raise InvalidUpload("Invalid sdist: no PKG-INFO in the archive's top folder.")
                # tarfile keeps every header it has read; nothing here needs them.
                tf.members.clear()  # type: ignore[attr-defined]
                if member.isfile() and _SDIST_PKG_INFO.match(member.name):
                    if member.size > MAX_METADATA_BYTES:
                        raise InvalidUpload(f"Invalid sdist: PKG-INFO is larger than {MAX_METADATA_BYTES} bytes.")
                    extracted = tf.extractfile(member)
                    if extracted is None:
                        break
                    data = extracted.read(member.size)
                    if len(data) != member.size:
                        raise EOFError("unexpected end of data in PKG-INFO")
                    return data
    raise InvalidUpload(
        f"Invalid sdist: no PKG-INFO among its first {MAX_TAR_MEMBERS_SCANNED} members (the most that are read)."
    )


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
    description, truncated = bounded_description(fields.get("description"))
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
        description=description,
        description_content_type=fields.get("description_content_type"),
        description_truncated=truncated,
    )


def bounded_description(text: str | None) -> tuple[str | None, bool]:
    """The description as kept (None when blank), and whether it was cut to MAX_DESCRIPTION_BYTES."""
    if text is None or not text.strip():
        return None, False
    encoded = text.encode("utf-8", "surrogatepass")
    if len(encoded) <= MAX_DESCRIPTION_BYTES:
        return text, False
    head = encoded[:MAX_DESCRIPTION_BYTES].decode("utf-8", "ignore")
    # At a line end, so a cut never leaves half a markup construct on the last line.
    line_end = head.rfind("\n")
    return (head[: line_end + 1] if line_end > 0 else head), True
