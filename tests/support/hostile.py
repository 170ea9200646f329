"""Hostile archives (decompression bombs, oversized tar headers, forged zip directories), built as bytes."""

from __future__ import annotations

import io
import struct
import tarfile
import zipfile
import zlib
from collections.abc import Iterable, Iterator

from tests.support.distbuilder import metadata_text

BLOCK = 512
# A part of a stream: literal bytes, or one byte value repeated (so a GB never sits in memory).
Part = bytes | tuple[bytes, int]

WHEEL_FILE = b"Wheel-Version: 1.0\nGenerator: ppc-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"


def gzip_parts(parts: Iterable[Part], chunk: int = 1 << 20) -> bytes:
    """Gzip a stream of parts, compressing repeats a chunk at a time."""
    comp = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    out = [comp.compress(piece) for piece in _pieces(parts, chunk)]
    out.append(comp.flush())
    return b"".join(out)


def _pieces(parts: Iterable[Part], chunk: int) -> Iterator[bytes]:
    for part in parts:
        if isinstance(part, bytes):
            yield part
            continue
        byte, count = part
        block = byte * min(count, chunk)
        while count > 0:
            yield block[:count]
            count -= len(block)


def _padding(size: int) -> bytes:
    return b"\0" * (-size % BLOCK)


def _header(name: str, size: int, kind: bytes = tarfile.REGTYPE, fmt: int = tarfile.USTAR_FORMAT) -> bytes:
    info = tarfile.TarInfo(name)
    info.size, info.type, info.mode = size, kind, 0o644
    return info.tobuf(fmt, "utf-8", "surrogateescape")


def file_member(name: str, data: bytes) -> list[Part]:
    """A regular file's header, data and padding."""
    return [_header(name, len(data)), data, _padding(len(data))]


def pkg_info_member(name: str = "demo", version: str = "1.0") -> list[Part]:
    return file_member(f"{name}-{version}/PKG-INFO", metadata_text(name, version).encode())


def _tar_end() -> list[Part]:
    return [b"\0" * (2 * BLOCK)]


def zeros_before_pkg_info(zero_bytes: int) -> bytes:
    """A .tar.gz whose first member is `zero_bytes` of zeros (about a thousand to one), then PKG-INFO."""
    parts: list[Part] = [_header("demo-1.0/zeros.bin", zero_bytes), (b"\0", zero_bytes + len(_padding(zero_bytes)))]
    return gzip_parts([*parts, *pkg_info_member(), *_tar_end()])


def pax_header_sdist(value_bytes: int) -> bytes:
    """A .tar.gz whose first header is a pax extended header with one record of `value_bytes` bytes."""
    value_len = value_bytes
    # A pax record is "<length> <keyword>=<value>\n", its length counting its own digits.
    base = len(b" comment=") + value_len + 1
    length = base + len(str(base))
    while length != base + len(str(length)):
        length = base + len(str(length))
    record_head = f"{length} comment=".encode()
    size = len(record_head) + value_len + 1
    parts: list[Part] = [
        _header("././@PaxHeader", size, tarfile.XHDTYPE),
        record_head,
        (b"x", value_len),
        b"\n" + _padding(size),
        *pkg_info_member(),
        *_tar_end(),
    ]
    return gzip_parts(parts)


def gnu_long_name_sdist(name_bytes: int) -> bytes:
    """A .tar.gz whose first member has a GNU long name of `name_bytes` bytes."""
    size = name_bytes + 1
    parts: list[Part] = [
        _header("././@LongLink", size, tarfile.GNUTYPE_LONGNAME, tarfile.GNU_FORMAT),
        b"demo-1.0/",
        (b"a", name_bytes - len(b"demo-1.0/")),
        b"\0" + _padding(size),
        _header("ignored", 0, fmt=tarfile.GNU_FORMAT),
        *pkg_info_member(),
        *_tar_end(),
    ]
    return gzip_parts(parts)


def many_pax_headers_sdist(headers: int, value_bytes: int) -> bytes:
    """A .tar.gz of `headers` empty members, each with a pax header of about `value_bytes`, then PKG-INFO."""
    parts: list[Part] = []
    for i in range(headers):
        info = tarfile.TarInfo(f"demo-1.0/f{i}")
        info.pax_headers = {"comment": "x" * value_bytes}
        parts.append(info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape"))
    return gzip_parts([*parts, *pkg_info_member(), *_tar_end()])


def tiny_pax_records_sdist(total_bytes: int) -> bytes:
    """A .tar.gz of empty members, each with a pax header of about 64,000 bytes of distinct one-letter
    records (the dearest to parse), `total_bytes` of them in all, then PKG-INFO."""
    records: list[bytes] = []
    size = 0
    while size < 64_000:
        body = f" k{len(records)}=\n"
        length = len(body) + 1
        while length != len(body) + len(str(length)):
            length = len(body) + len(str(length))
        records.append(f"{length}{body}".encode())
        size += len(records[-1])
    payload = b"".join(records)
    parts: list[Part] = []
    for i in range(max(1, total_bytes // len(payload))):
        parts += [_header("././@PaxHeader", len(payload), tarfile.XHDTYPE), payload, _padding(len(payload))]
        parts.append(_header(f"demo-1.0/f{i}", 0))
    return gzip_parts([*parts, *pkg_info_member(), *_tar_end()])


def many_members_sdist(members: int, pkg_info_last: bool = True) -> bytes:
    """A .tar.gz of `members` empty files (one header block each), PKG-INFO after them."""
    empty = _header("demo-1.0/empty.py", 0)
    parts: list[Part] = [empty * min(members, 1000)] * (members // 1000) + [empty * (members % 1000)]
    tail = pkg_info_member() if pkg_info_last else []
    return gzip_parts([*parts, *tail, *_tar_end()])


def _zip(members: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def demo_wheel(extra: dict[str, bytes] | None = None, compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    members = {
        "demo/__init__.py": b"",
        "demo-1.0.dist-info/METADATA": metadata_text("demo", "1.0").encode(),
        "demo-1.0.dist-info/WHEEL": WHEEL_FILE,
    }
    return _zip({**members, **(extra or {})}, compression)


def _eocd(data: bytes) -> int:
    at = data.rfind(b"PK\x05\x06")
    assert at >= 0
    return at


def forged_entry_count(wheel: bytes, entries: int) -> bytes:
    """The wheel with a ZIP64 end record claiming `entries` files (the directory itself unchanged)."""
    at = _eocd(wheel)
    cd_size, cd_offset = struct.unpack_from("<II", wheel, at + 12)
    record = struct.pack("<4sQHHIIQQQQ", b"PK\x06\x06", 44, 45, 45, 0, 0, entries, entries, cd_size, cd_offset)
    locator = struct.pack("<4sIQI", b"PK\x06\x07", 0, at, 1)
    end = struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, cd_size, 0xFFFFFFFF, 0)
    return wheel[:at] + record + locator + end


def huge_directory(wheel: bytes, entries: int) -> bytes:
    """The wheel with `entries` extra central-directory entries (one-byte names, all pointing at its first file)."""
    at = _eocd(wheel)
    cd_offset = struct.unpack_from("<I", wheel, at + 16)[0]
    first = wheel[cd_offset : cd_offset + 46]
    assert first[:4] == b"PK\x01\x02"
    extra = bytearray(first)
    struct.pack_into("<HHH", extra, 28, 1, 0, 0)  # name length 1, no extra field, no comment
    extra_entry = bytes(extra[:30]) + first[30:46] + b"z"
    directory = wheel[cd_offset:at] + extra_entry * entries
    total = (struct.unpack_from("<H", wheel, at + 10)[0] + entries) & 0xFFFF
    end = struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, total, total, len(directory), cd_offset, 0)
    return wheel[:cd_offset] + directory + end


def long_names_directory(wheel: bytes, entries: int, name_bytes: int) -> bytes:
    """The wheel with `entries` extra central-directory entries of distinct `name_bytes`-byte names."""
    at = _eocd(wheel)
    cd_offset = struct.unpack_from("<I", wheel, at + 16)[0]
    first = bytearray(wheel[cd_offset : cd_offset + 46])
    struct.pack_into("<HHH", first, 28, name_bytes, 0, 0)
    pad = b"m" * name_bytes
    extra = b"".join(bytes(first) + (b"demo/%08d/" % i + pad)[:name_bytes] for i in range(entries))
    directory = wheel[cd_offset:at] + extra
    end = struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, len(directory), cd_offset, 0)
    return wheel[:cd_offset] + directory + end


def metadata_bomb_wheel(inflated_bytes: int) -> bytes:
    """A wheel whose METADATA inflates to `inflated_bytes` (a valid header, then spaces)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        zf.writestr("demo-1.0.dist-info/WHEEL", WHEEL_FILE)
        with zf.open("demo-1.0.dist-info/METADATA", "w", force_zip64=True) as member:
            head = metadata_text("demo", "1.0").encode()
            member.write(head)
            for piece in _pieces([(b" ", inflated_bytes - len(head))], 1 << 22):
                member.write(piece)
    return buffer.getvalue()
