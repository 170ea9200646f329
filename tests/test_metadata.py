"""Core metadata read out of wheels and sdists, and every way a distribution file is refused."""

from __future__ import annotations

import contextlib
import gzip
import io
import random
import struct
import tarfile
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pypicloud_lite import metadata
from pypicloud_lite.errors import InvalidUpload
from pypicloud_lite.metadata import parse_core_metadata, read_metadata_file
from pypicloud_lite.models import CoreMetadata
from pypicloud_lite.naming import parse_filename
from tests.support import hostile
from tests.support.distbuilder import build_sdist, build_wheel, metadata_text

WHEEL_FILE = b"Wheel-Version: 1.0\nGenerator: ppc-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"


def write_zip(path: Path, members: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def write_tar_gz(path: Path, members: dict[str, bytes]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def read(path: Path) -> bytes:
    return read_metadata_file(path, parse_filename(path.name))


def parsed(path: Path) -> CoreMetadata:
    return parse_core_metadata(read(path), parse_filename(path.name))


def demo_wheel_members(meta: str | None = None) -> dict[str, bytes]:
    return {
        "demo/__init__.py": b"",
        "demo-1.0.dist-info/METADATA": (meta or metadata_text("demo", "1.0")).encode(),
        "demo-1.0.dist-info/WHEEL": WHEEL_FILE,
    }


# -- reading -------------------------------------------------------------------


def test_reads_metadata_from_a_wheel(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path, "Demo_Pkg", "1.0", summary="Hello")
    expected = metadata_text("Demo_Pkg", "1.0", summary="Hello").encode()
    assert read(wheel) == expected


@pytest.mark.parametrize("fmt", ["tar.gz", "zip"])
def test_reads_pkg_info_from_an_sdist(tmp_path: Path, fmt: str) -> None:
    sdist = build_sdist(tmp_path, "demo.pkg", "2.0", fmt=fmt, summary="Hello", requires_python=">=3.10")
    assert sdist.name == f"demo_pkg-2.0.{fmt}"
    assert read(sdist) == metadata_text("demo.pkg", "2.0", summary="Hello", requires_python=">=3.10").encode()


def test_parses_core_metadata_fields(tmp_path: Path) -> None:
    wheel = build_wheel(
        tmp_path,
        "Demo",
        "1.0+cpu",
        summary="Ünïcödé summary ☃ — ok",
        requires_python=">=3.9,<4",
        requires_dist=("requests>=2.31", 'tomli>=1; python_version < "3.11"', "rich[jupyter]"),
    )
    meta = parsed(wheel)
    assert meta.metadata_version == "2.1"
    assert meta.name == "Demo"
    assert meta.version == "1.0+cpu"
    assert meta.summary == "Ünïcödé summary ☃ — ok"
    assert meta.requires_python == ">=3.9,<4"
    assert meta.requires_dist == ("requests>=2.31", 'tomli>=1; python_version < "3.11"', "rich[jupyter]")
    assert meta.author == "Test Author"
    assert meta.license == "MIT"
    assert meta.project_urls == (("Homepage", "https://example.invalid/"),)


def test_parses_every_kept_field(tmp_path: Path) -> None:
    text = (
        "Metadata-Version: 2.4\n"
        "Name: demo\n"
        "Version: 1.0\n"
        "Summary: Everything\n"
        "Home-page: https://home.invalid/\n"
        "Author: Zoë\n"
        "Author-email: Zoë <zoe@example.invalid>\n"
        "License: Old style\n"
        "License-Expression: Apache-2.0 OR MIT\n"
        "Classifier: Programming Language :: Python :: 3\n"
        "Classifier: License :: OSI Approved :: MIT License\n"
        "Project-URL: Homepage, https://example.invalid/\n"
        "Project-URL: Issues, https://example.invalid/issues\n"
        "Description-Content-Type: text/markdown\n"
        "\n"
        "Long description.\n"
    )
    wheel = write_zip(tmp_path / "demo-1.0-py3-none-any.whl", demo_wheel_members(text))
    assert parsed(wheel) == CoreMetadata(
        metadata_version="2.4",
        name="demo",
        version="1.0",
        summary="Everything",
        requires_python=None,
        requires_dist=(),
        author="Zoë",
        author_email="Zoë <zoe@example.invalid>",
        license="Apache-2.0 OR MIT",
        home_page="https://home.invalid/",
        project_urls=(("Homepage", "https://example.invalid/"), ("Issues", "https://example.invalid/issues")),
        classifiers=("Programming Language :: Python :: 3", "License :: OSI Approved :: MIT License"),
        description="Long description.\n",
        description_content_type="text/markdown",
    )


def test_metadata_to_dict_round_trips(tmp_path: Path) -> None:
    meta = parsed(build_wheel(tmp_path, "demo", "1.0", requires_dist=("a", "b>1")))
    assert CoreMetadata.from_dict(meta.to_dict()) == meta


def test_minimal_metadata(tmp_path: Path) -> None:
    dist = parse_filename("demo-1.0.tar.gz")
    meta = parse_core_metadata(b"Name: demo\nVersion: 1.0\n", dist)
    assert meta.metadata_version == "1.0"
    assert meta.summary is None
    assert meta.requires_python is None
    assert meta.requires_dist == ()
    assert meta.project_urls == ()


def test_equal_versions_and_names_in_other_spellings_match() -> None:
    dist = parse_filename("zope_interface-1.0.tar.gz")
    assert parse_core_metadata(b"Name: Zope.Interface\nVersion: 1.0.0\n", dist).name == "Zope.Interface"


def test_undecodable_metadata_fields_are_not_kept() -> None:
    dist = parse_filename("demo-1.0.tar.gz")
    meta = parse_core_metadata(b"Name: demo\nVersion: 1.0\nSummary: caf\xe9\n", dist)
    assert meta.name == "demo"


# -- refusals: what the metadata says ------------------------------------------


def test_metadata_name_must_match_the_filename(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path, "demo", "1.0", metadata=metadata_text("other", "1.0"))
    with pytest.raises(InvalidUpload, match="names project 'other'"):
        parsed(wheel)


def test_metadata_version_must_match_the_filename(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path, "demo", "1.0", metadata=metadata_text("demo", "1.1"))
    with pytest.raises(InvalidUpload, match=r"says version 1\.1, not 1\.0"):
        parsed(wheel)


@pytest.mark.parametrize("raw", [b"Name: demo\n", b"Version: 1.0\n", b"", b"\x00\xff garbage \x80"])
def test_metadata_without_name_or_version_is_refused(raw: bytes) -> None:
    with pytest.raises(InvalidUpload, match="lacks Name or Version"):
        parse_core_metadata(raw, parse_filename("demo-1.0.tar.gz"))


def test_metadata_with_an_invalid_version_is_refused() -> None:
    with pytest.raises(InvalidUpload, match="metadata version 'one' is invalid"):
        parse_core_metadata(b"Name: demo\nVersion: one\n", parse_filename("demo-1.0.tar.gz"))


# -- refusals: the archive -----------------------------------------------------


def test_random_bytes_are_not_a_wheel(tmp_path: Path) -> None:
    wheel = tmp_path / "demo-1.0-py3-none-any.whl"
    wheel.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    with pytest.raises(InvalidUpload, match="not a readable wheel"):
        read(wheel)


def test_a_wheel_without_metadata_is_refused(tmp_path: Path) -> None:
    members = demo_wheel_members()
    del members["demo-1.0.dist-info/METADATA"]
    wheel = write_zip(tmp_path / "demo-1.0-py3-none-any.whl", members)
    with pytest.raises(InvalidUpload, match=r"exactly one \.dist-info/METADATA \(found 0\)"):
        read(wheel)


def test_a_nested_metadata_does_not_count(tmp_path: Path) -> None:
    members = demo_wheel_members()
    members["vendor/demo-1.0.dist-info/METADATA"] = members.pop("demo-1.0.dist-info/METADATA")
    wheel = write_zip(tmp_path / "demo-1.0-py3-none-any.whl", members)
    with pytest.raises(InvalidUpload, match=r"\(found 0\)"):
        read(wheel)


def test_a_wheel_with_two_metadata_files_is_refused(tmp_path: Path) -> None:
    members = demo_wheel_members()
    members["Demo-1.0.dist-info/METADATA"] = members["demo-1.0.dist-info/METADATA"]
    wheel = write_zip(tmp_path / "demo-1.0-py3-none-any.whl", members)
    with pytest.raises(InvalidUpload, match=r"\(found 2\)"):
        read(wheel)


def test_a_wheel_with_a_duplicated_metadata_entry_is_refused(tmp_path: Path) -> None:
    # Tools disagree on which of two same-named entries wins, so neither may be trusted.
    wheel = tmp_path / "demo-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf, warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # zipfile warns about the duplicate name
        for name, data in demo_wheel_members().items():
            zf.writestr(name, data)
        zf.writestr("demo-1.0.dist-info/METADATA", metadata_text("demo", "1.0", requires_dist=("evil",)))
    with pytest.raises(InvalidUpload, match=r"\(found 2\)"):
        read(wheel)


def test_a_wheel_without_a_wheel_file_is_refused(tmp_path: Path) -> None:
    members = demo_wheel_members()
    del members["demo-1.0.dist-info/WHEEL"]
    wheel = write_zip(tmp_path / "demo-1.0-py3-none-any.whl", members)
    with pytest.raises(InvalidUpload, match=r"no demo-1\.0\.dist-info/WHEEL"):
        read(wheel)


def test_a_wheel_with_another_projects_dist_info_is_refused(tmp_path: Path) -> None:
    wheel = write_zip(
        tmp_path / "demo-1.0-py3-none-any.whl",
        {
            "other-1.0.dist-info/METADATA": metadata_text("demo", "1.0").encode(),
            "other-1.0.dist-info/WHEEL": WHEEL_FILE,
        },
    )
    with pytest.raises(InvalidUpload, match=r"other-1\.0\.dist-info does not belong to project 'demo'"):
        read(wheel)


def test_an_oversized_metadata_member_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wheel = build_wheel(tmp_path, "demo", "1.0")
    monkeypatch.setattr(metadata, "MAX_METADATA_BYTES", 64)
    with pytest.raises(InvalidUpload, match="larger than 64 bytes"):
        read(wheel)


@pytest.mark.parametrize("fmt", ["tar.gz", "zip"])
def test_an_oversized_pkg_info_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str) -> None:
    sdist = build_sdist(tmp_path, "demo", "1.0", fmt=fmt)
    monkeypatch.setattr(metadata, "MAX_METADATA_BYTES", 64)
    with pytest.raises(InvalidUpload, match="larger than 64 bytes"):
        read(sdist)


def test_metadata_of_exactly_the_limit_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wheel = build_wheel(tmp_path, "demo", "1.0")
    size = len(metadata_text("demo", "1.0", summary="A tiny test package").encode())
    monkeypatch.setattr(metadata, "MAX_METADATA_BYTES", size)
    assert len(read(wheel)) == size


@pytest.mark.parametrize("name", ["demo-1.0-py3-none-any.whl", "demo-1.0.zip"])
def test_a_zip_bomb_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    members = demo_wheel_members() if name.endswith(".whl") else {"demo-1.0/PKG-INFO": b"Name: demo\nVersion: 1.0\n"}
    members["demo/zeros.bin"] = b"\0" * 2_000_000  # deflates about a thousand to one
    archive = write_zip(tmp_path / name, members)
    assert archive.stat().st_size * metadata.ZIP_BOMB_RATIO < 2_000_000
    monkeypatch.setattr(metadata, "ZIP_BOMB_FLOOR", 100_000)
    with pytest.raises(InvalidUpload, match="zip bomb"):
        read(archive)


def test_a_large_but_plausible_archive_is_no_bomb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    members = demo_wheel_members()
    members["demo/data.bin"] = bytes(range(256)) * 1000  # incompressible enough
    wheel = write_zip(tmp_path / "demo-1.0-py3-none-any.whl", members, compression=zipfile.ZIP_STORED)
    monkeypatch.setattr(metadata, "ZIP_BOMB_FLOOR", 1000)
    assert read(wheel).startswith(b"Metadata-Version: 2.1\n")


def _patch_zip_member(path: Path, member: str, *, flag_bits: int = 0, method: int | None = None) -> None:
    """Rewrite one member's general-purpose flags or compression method in both zip headers."""
    with zipfile.ZipFile(path) as zf:
        offset = zf.getinfo(member).header_offset
    data = bytearray(path.read_bytes())
    assert data[offset : offset + 4] == b"PK\x03\x04"
    headers = [(offset + 6, offset + 8)]  # local header: flags at +6, method at +8
    central = data.find(b"PK\x01\x02")
    while central >= 0:
        if struct.unpack_from("<I", data, central + 42)[0] == offset:
            headers.append((central + 8, central + 10))  # central directory: flags at +8, method at +10
        central = data.find(b"PK\x01\x02", central + 4)
    for flags_at, method_at in headers:
        struct.pack_into("<H", data, flags_at, struct.unpack_from("<H", data, flags_at)[0] | flag_bits)
        if method is not None:
            struct.pack_into("<H", data, method_at, method)
    path.write_bytes(bytes(data))


def test_an_encrypted_metadata_member_is_refused(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path, "demo", "1.0")
    _patch_zip_member(wheel, "demo-1.0.dist-info/METADATA", flag_bits=0x1)
    with pytest.raises(InvalidUpload, match=r"demo-1\.0-py3-none-any\.whl"):
        read(wheel)


def test_an_unsupported_compression_method_is_refused(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path, "demo", "1.0")
    _patch_zip_member(wheel, "demo-1.0.dist-info/METADATA", method=99)
    with pytest.raises(InvalidUpload, match=r"demo-1\.0-py3-none-any\.whl"):
        read(wheel)


def test_a_zip_sdist_without_pkg_info_is_refused(tmp_path: Path) -> None:
    sdist = write_zip(tmp_path / "demo-1.0.zip", {"demo-1.0/setup.py": b"", "PKG-INFO": b"Name: demo\n"})
    with pytest.raises(InvalidUpload, match="no PKG-INFO"):
        read(sdist)


def test_a_tar_without_pkg_info_is_refused(tmp_path: Path) -> None:
    sdist = write_tar_gz(
        tmp_path / "demo-1.0.tar.gz",
        {"demo-1.0/setup.py": b"", "demo-1.0/src/PKG-INFO": b"Name: demo\nVersion: 1.0\n", "PKG-INFO": b"x"},
    )
    with pytest.raises(InvalidUpload, match="no PKG-INFO"):
        read(sdist)


def test_a_pkg_info_link_is_not_followed(tmp_path: Path) -> None:
    sdist = tmp_path / "demo-1.0.tar.gz"
    with tarfile.open(sdist, "w:gz") as tf:
        link = tarfile.TarInfo("demo-1.0/PKG-INFO")
        link.type = tarfile.SYMTYPE
        link.linkname = "/etc/passwd"
        tf.addfile(link)
    with pytest.raises(InvalidUpload, match="no PKG-INFO"):
        read(sdist)


def test_an_empty_tar_is_refused(tmp_path: Path) -> None:
    sdist = tmp_path / "demo-1.0.tar.gz"
    sdist.write_bytes(gzip.compress(b"\0" * 10240))
    with pytest.raises(InvalidUpload, match="sdist"):
        read(sdist)


def test_not_gzip_is_refused(tmp_path: Path) -> None:
    sdist = tmp_path / "demo-1.0.tar.gz"
    sdist.write_bytes(b"this is plain text, not gzip\n" * 20)
    with pytest.raises(InvalidUpload, match="not a readable sdist"):
        read(sdist)


def test_gzip_of_something_else_is_refused(tmp_path: Path) -> None:
    sdist = tmp_path / "demo-1.0.tar.gz"
    sdist.write_bytes(gzip.compress(b"definitely not a tar header " * 100))
    with pytest.raises(InvalidUpload, match="not a readable sdist"):
        read(sdist)


def _padded_sdist(tmp_path: Path) -> Path:
    """An sdist whose PKG-INFO comes after a big member, so damage lands before it is found."""
    return write_tar_gz(
        tmp_path / "demo-1.0.tar.gz",
        {
            "demo-1.0/data.bin": bytes(i * 7 % 251 for i in range(200_000)),
            "demo-1.0/PKG-INFO": b"Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n",
        },
    )


def test_a_corrupt_gzip_stream_is_refused(tmp_path: Path) -> None:
    sdist = _padded_sdist(tmp_path)
    assert read(sdist).startswith(b"Metadata-Version")
    data = bytearray(sdist.read_bytes())
    for i in range(len(data) // 4, len(data) // 2):
        data[i] ^= 0x5A
    sdist.write_bytes(bytes(data))
    with pytest.raises(InvalidUpload, match="not a readable sdist"):
        read(sdist)


def test_a_truncated_gzip_is_refused(tmp_path: Path) -> None:
    sdist = _padded_sdist(tmp_path)
    sdist.write_bytes(sdist.read_bytes()[: sdist.stat().st_size // 2])
    with pytest.raises(InvalidUpload, match="not a readable sdist"):
        read(sdist)


def test_a_tar_sdist_that_is_really_a_zip_is_refused(tmp_path: Path) -> None:
    zipped = build_sdist(tmp_path / "z", "demo", "1.0", fmt="zip")
    fake = tmp_path / "demo-1.0.tar.gz"
    fake.write_bytes(zipped.read_bytes())
    with pytest.raises(InvalidUpload, match="not a readable sdist"):
        read(fake)


# -- archive bombs: every read is under a byte, header, member and directory budget -----------


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _sdist(tmp_path: Path, data: bytes) -> Path:
    return _write(tmp_path, "demo-1.0.tar.gz", data)


def _wheel(tmp_path: Path, data: bytes) -> Path:
    return _write(tmp_path, "demo-1.0-py3-none-any.whl", data)


def test_a_gzip_of_zeros_is_decompressed_only_up_to_the_budget(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # 8 MB of zeros gzip to about 8 KB; the budget is then the 1 MB floor (32 times 8 KB is less).
    monkeypatch.setattr(metadata, "TAR_INFLATE_FLOOR", 1_000_000, raising=False)
    sdist = _sdist(tmp_path, hostile.zeros_before_pkg_info(8_000_000))
    assert sdist.stat().st_size * 32 < 1_000_000
    with pytest.raises(InvalidUpload, match=r"decompresses to more than 1000000 bytes before its PKG-INFO"):
        read(sdist)


def test_a_sdist_just_under_the_inflate_budget_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metadata, "TAR_INFLATE_FLOOR", 1_000_000, raising=False)
    sdist = _sdist(tmp_path, hostile.zeros_before_pkg_info(990_000))
    assert parsed(sdist).name == "demo"


def test_the_inflate_budget_grows_with_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Data that compresses only a few times, as source does, is never cut off by the ratio.
    monkeypatch.setattr(metadata, "TAR_INFLATE_FLOOR", 1000, raising=False)
    source_like = bytes(random.Random(1).choices(b"abcdefgh \n", k=300_000))
    sdist = write_tar_gz(
        tmp_path / "demo-1.0.tar.gz",
        {"demo-1.0/big.py": source_like, "demo-1.0/PKG-INFO": metadata_text("demo", "1.0").encode()},
    )
    assert sdist.stat().st_size * 2 < len(source_like)
    assert parsed(sdist).name == "demo"


def test_a_pax_header_over_the_cap_is_refused(tmp_path: Path) -> None:
    # tarfile reads an extended header whole into memory: a 1 GB one in a 1 MB upload, as the attack had.
    sdist = _sdist(tmp_path, hostile.pax_header_sdist(100_000))
    with pytest.raises(InvalidUpload, match=r"pax or GNU long-name header of 100016 bytes is larger than 65536 bytes"):
        read(sdist)


def test_a_gnu_long_name_over_the_cap_is_refused(tmp_path: Path) -> None:
    sdist = _sdist(tmp_path, hostile.gnu_long_name_sdist(100_000))
    with pytest.raises(InvalidUpload, match=r"pax or GNU long-name header of 100001 bytes is larger than 65536 bytes"):
        read(sdist)


@pytest.mark.parametrize("build", [hostile.pax_header_sdist, hostile.gnu_long_name_sdist])
def test_extended_headers_under_the_cap_are_read(tmp_path: Path, build: Callable[[int], bytes]) -> None:
    assert parsed(_sdist(tmp_path, build(60_000))).name == "demo"


def test_extended_headers_are_capped_in_total(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metadata, "MAX_TAR_HEADER_BYTES_TOTAL", 50_000, raising=False)
    sdist = _sdist(tmp_path, hostile.many_pax_headers_sdist(10, 10_000))
    with pytest.raises(InvalidUpload, match=r"headers add up to more than 50000 bytes"):
        read(sdist)
    monkeypatch.setattr(metadata, "MAX_TAR_HEADER_BYTES_TOTAL", 200_000)
    assert parsed(sdist).name == "demo"


def test_the_tar_member_scan_is_capped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metadata, "MAX_TAR_MEMBERS_SCANNED", 100)
    with pytest.raises(InvalidUpload, match=r"no PKG-INFO among its first 100 members"):
        read(_sdist(tmp_path, hostile.many_members_sdist(100)))
    # PKG-INFO as the last member read is still found.
    assert parsed(_sdist(tmp_path, hostile.many_members_sdist(99))).name == "demo"


def test_a_deep_sdist_with_pkg_info_last_is_read(tmp_path: Path) -> None:
    members = {f"demo-1.0/pkg/{'/'.join(['sub'] * (i % 40))}/m{i}.py": b"x = 1\n" for i in range(3000)}
    members["demo-1.0/PKG-INFO"] = metadata_text("demo", "1.0").encode()
    sdist = write_tar_gz(tmp_path / "demo-1.0.tar.gz", members)
    assert parsed(sdist).name == "demo"


def test_concatenated_gzip_members_are_one_stream(tmp_path: Path) -> None:
    tar = gzip.decompress(build_sdist(tmp_path / "src", "demo", "1.0").read_bytes())
    sdist = _sdist(tmp_path, gzip.compress(tar[:1024]) + gzip.compress(tar[1024:]))
    assert parsed(sdist).name == "demo"


def test_a_forged_entry_count_is_refused_before_zipfile_parses_it(tmp_path: Path) -> None:
    wheel = _wheel(tmp_path, hostile.forged_entry_count(hostile.demo_wheel(), 10_000_000))
    with pytest.raises(InvalidUpload, match=r"lists 10000000 files, more than 100000"):
        read(wheel)


def test_a_zip64_end_record_with_a_true_count_is_read(tmp_path: Path) -> None:
    wheel = _wheel(tmp_path, hostile.forged_entry_count(hostile.demo_wheel(), 3))
    assert parsed(wheel).name == "demo"


@pytest.mark.parametrize("name", ["demo-1.0-py3-none-any.whl", "demo-1.0.zip"])
def test_a_directory_with_too_many_entries_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    # The end record says 0 more than the real count wraps to: the entries themselves are counted.
    monkeypatch.setattr(metadata, "MAX_ZIP_ENTRIES", 1000, raising=False)
    archive = _write(tmp_path, name, hostile.huge_directory(hostile.demo_wheel(), 65_536))
    with pytest.raises(InvalidUpload, match=r"lists 65539 files, more than 1000"):
        read(archive)


def test_a_directory_just_under_the_entry_cap_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metadata, "MAX_ZIP_ENTRIES", 1000, raising=False)
    assert parsed(_wheel(tmp_path, hostile.huge_directory(hostile.demo_wheel(), 997))).name == "demo"


def test_a_directory_over_the_byte_cap_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metadata, "MAX_ZIP_DIRECTORY_BYTES", 10_000, raising=False)
    wheel = _wheel(tmp_path, hostile.huge_directory(hostile.demo_wheel(), 500))
    with pytest.raises(InvalidUpload, match=r"central directory of \d+ bytes is larger than 10000 bytes"):
        read(wheel)


def test_a_wheel_with_thousands_of_files_is_read(tmp_path: Path) -> None:
    extra = {f"demo/sub{i % 50}/m{i}.py": b"x = 1\n" for i in range(5000)}
    assert parsed(_wheel(tmp_path, hostile.demo_wheel(extra))).name == "demo"


def test_a_metadata_member_that_inflates_to_gigabytes_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(metadata, "ZIP_BOMB_FLOOR", 10**12)  # reach the member read itself
    wheel = _wheel(tmp_path, hostile.metadata_bomb_wheel(20_000_000))
    with pytest.raises(InvalidUpload, match=r"METADATA is larger than 8388608 bytes"):
        read(wheel)


# -- fuzzing: whatever the bytes, the readers answer with metadata or InvalidUpload -------------

_FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
# (position, byte) overwrites, then an optional cut: small, so every example runs in milliseconds.
_EDITS = st.lists(st.tuples(st.integers(min_value=0), st.integers(min_value=0, max_value=255)), max_size=8)
_CUT = st.one_of(st.none(), st.integers(min_value=0))


def _mutate(data: bytes, edits: list[tuple[int, int]], cut: int | None) -> bytes:
    mutated = bytearray(data)
    for position, byte in edits:
        mutated[position % len(mutated)] = byte
    return bytes(mutated[: cut % (len(mutated) + 1)] if cut is not None else mutated)


def _read_or_refuse(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    # The index's own refusal is the one allowed outcome besides metadata.
    with contextlib.suppress(InvalidUpload):
        parse_core_metadata(read(path), parse_filename(path.name))


_FUZZ_WHEEL = hostile.demo_wheel()
_FUZZ_TAR = gzip.decompress(hostile.gzip_parts([*hostile.pkg_info_member(), b"\0" * 1024]))


@_FUZZ
@given(edits=_EDITS, cut=_CUT, stored=st.booleans())
def test_fuzz_wheel(tmp_path: Path, edits: list[tuple[int, int]], cut: int | None, stored: bool) -> None:
    wheel = _FUZZ_WHEEL if not stored else hostile.demo_wheel(compression=zipfile.ZIP_STORED)
    _read_or_refuse(tmp_path / "demo-1.0-py3-none-any.whl", _mutate(wheel, edits, cut))


@_FUZZ
@given(edits=_EDITS, cut=_CUT, inside=st.booleans())
def test_fuzz_sdist(tmp_path: Path, edits: list[tuple[int, int]], cut: int | None, inside: bool) -> None:
    # Mutating the tar before gzip reaches the header parser; mutating the gzip reaches the inflater.
    data = gzip.compress(_mutate(_FUZZ_TAR, edits, cut)) if inside else _mutate(gzip.compress(_FUZZ_TAR), edits, cut)
    _read_or_refuse(tmp_path / "demo-1.0.tar.gz", data)


@_FUZZ
@given(
    data=st.binary(max_size=2048),
    kind=st.sampled_from(["demo-1.0-py3-none-any.whl", "demo-1.0.tar.gz", "demo-1.0.zip"]),
)
def test_fuzz_random_bytes(tmp_path: Path, data: bytes, kind: str) -> None:
    _read_or_refuse(tmp_path / kind, data or b"\0")
