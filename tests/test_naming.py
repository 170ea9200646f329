"""Project-name normalization, distribution-filename parsing and the filename safety checks."""

from __future__ import annotations

import pytest
from packaging.version import Version

from pypicloud_lite.errors import InvalidUpload
from pypicloud_lite.naming import (
    MAX_FILENAME_LENGTH,
    DistFilename,
    filename_project,
    is_valid_project_name,
    normalize,
    parse_filename,
    sidecar_key,
    storage_key,
)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Django", "django"),
        ("zope.interface", "zope-interface"),
        ("Foo__Bar", "foo-bar"),
        ("foo-_.bar", "foo-bar"),
        ("A.B-C_D", "a-b-c-d"),
        ("already-normal", "already-normal"),
    ],
)
def test_normalize(name: str, expected: str) -> None:
    assert normalize(name) == expected


@pytest.mark.parametrize("name", ["a", "Z9", "zope.interface", "foo_bar-baz", "A1.b2-C3_d4"])
def test_valid_project_names(name: str) -> None:
    assert is_valid_project_name(name)


@pytest.mark.parametrize("name", ["", "-foo", "foo-", ".foo", "foo.", "_foo", "foo bar", "foo/bar", "føø", "foo$"])
def test_invalid_project_names(name: str) -> None:
    assert not is_valid_project_name(name)


@pytest.mark.parametrize(
    ("filename", "project", "version", "python_version"),
    [
        ("demo-1.0-py3-none-any.whl", "demo", "1.0", "py3"),
        ("Demo_Pkg-2.0.1-py2.py3-none-any.whl", "demo-pkg", "2.0.1", "py2.py3"),
        ("numpy-2.1.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl", "numpy", "2.1.0", "cp311"),
        ("demo-1.0-1-cp312-abi3-win_amd64.whl", "demo", "1.0", "cp312"),  # with a build tag
        ("torch-2.3.0+cpu-cp311-cp311-linux_x86_64.whl", "torch", "2.3.0+cpu", "cp311"),
        ("zope.interface-6.0-py3-none-any.whl", "zope-interface", "6.0", "py3"),
        ("demo-1.0rc1.post2.dev3-py3-none-any.whl", "demo", "1.0rc1.post2.dev3", "py3"),
    ],
)
def test_parse_wheel_filenames(filename: str, project: str, version: str, python_version: str) -> None:
    dist = parse_filename(filename)
    assert dist == DistFilename(filename, project, Version(version), "bdist_wheel", python_version)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("filename", "project", "version"),
    [
        ("demo-1.0.tar.gz", "demo", "1.0"),
        ("demo-1.0.zip", "demo", "1.0"),
        ("demo_pkg-2.0.tar.gz", "demo-pkg", "2.0"),
        ("Demo.Pkg-2.0.zip", "demo-pkg", "2.0"),
        ("zope.interface-6.0.tar.gz", "zope-interface", "6.0"),
        ("torch-2.3.0+cpu.tar.gz", "torch", "2.3.0+cpu"),
        ("demo-1!2.0.tar.gz", "demo", "1!2.0"),
    ],
)
def test_parse_sdist_filenames(filename: str, project: str, version: str) -> None:
    dist = parse_filename(filename)
    assert dist == DistFilename(filename, project, Version(version), "sdist", "source")  # type: ignore[arg-type]


def test_local_versions_are_kept() -> None:
    assert str(parse_filename("demo-1.0+cpu-py3-none-any.whl").version) == "1.0+cpu"
    assert str(parse_filename("demo-1.0+cu121.tar.gz").version) == "1.0+cu121"


@pytest.mark.parametrize(
    "filename",
    [
        "demo/demo-1.0.tar.gz",
        "../demo-1.0.tar.gz",
        "../../etc/passwd.tar.gz",
        "/etc/demo-1.0.tar.gz",
        "demo\\demo-1.0.tar.gz",
        "..\\demo-1.0.tar.gz",
        "C:demo-1.0.tar.gz",
        "..",
        ".demo-1.0.tar.gz",
        "~demo-1.0.tar.gz",
    ],
)
def test_paths_are_refused(filename: str) -> None:
    with pytest.raises(InvalidUpload, match="must not contain a path"):
        parse_filename(filename)


@pytest.mark.parametrize(
    "filename",
    ["demo\x00-1.0.tar.gz", "demo-1.0\n.tar.gz", "demo\t-1.0.tar.gz", "demo-1.0\x7f.tar.gz", "demo\u200b.zip"],
)
def test_control_characters_are_refused(filename: str) -> None:
    with pytest.raises(InvalidUpload, match="control characters"):
        parse_filename(filename)


@pytest.mark.parametrize(
    "filename", ["démo-1.0.tar.gz", "demo-1.0-py3-none-any.whl\u2024", "\uff44\uff45\uff4d\uff4f-1.0.zip"]
)
def test_non_ascii_is_refused(filename: str) -> None:
    with pytest.raises(InvalidUpload, match="only ASCII"):
        parse_filename(filename)


@pytest.mark.parametrize(
    "filename",
    [
        "demo-1.0.tar.bz2",
        "demo-1.0.tgz",
        "demo-1.0.egg",
        "demo-1.0.exe",
        "demo-1.0.msi",
        "demo-1.0.rpm",
        "demo-1.0.TAR.GZ",
        "demo-1.0.tar",
        "demo-1.0-py3-none-any.whl.metadata",
        "demo",
    ],
)
def test_wrong_extensions_are_refused(filename: str) -> None:
    with pytest.raises(InvalidUpload, match="Invalid file extension") as excinfo:
        parse_filename(filename)
    assert ".whl, .tar.gz or .zip" in excinfo.value.message


@pytest.mark.parametrize(
    "filename",
    [
        "demo-1.0.whl",
        "demo-1.0-py3-none.whl",
        "demo-py3-none-any.whl",
        "demo-not.a.version-py3-none-any.whl",
        "demo-1.0-x-py3-none-any.whl",  # a build tag must start with a digit
        "de$mo-1.0-py3-none-any.whl",
        "demo-1.0-py3-none-any-extra-parts.whl",
    ],
)
def test_bad_wheel_filenames_are_refused(filename: str) -> None:
    with pytest.raises(InvalidUpload, match="Invalid wheel filename"):
        parse_filename(filename)


@pytest.mark.parametrize("filename", ["demo.tar.gz", "demo-not.a.version.tar.gz", "-1.0.tar.gz", "demo-.zip"])
def test_bad_sdist_filenames_are_refused(filename: str) -> None:
    with pytest.raises(InvalidUpload, match="Invalid sdist filename"):
        parse_filename(filename)


@pytest.mark.parametrize(
    "filename",
    [
        "demo pkg-1.0.tar.gz",
        "demo$-1.0.tar.gz",
        "demo--1.0.tar.gz",
        "demo@x-1.0.zip",
        "_demo-1.0-py3-none-any.whl",
        "demo_-1.0-py3-none-any.whl",
    ],
)
def test_filenames_whose_project_part_is_no_project_name_are_refused(filename: str) -> None:
    # The filename's project part becomes a storage folder: it must be a valid project name.
    with pytest.raises(InvalidUpload):
        parse_filename(filename)


def test_over_long_names_are_refused() -> None:
    longest = "a" * (MAX_FILENAME_LENGTH - len("-1.0.tar.gz")) + "-1.0.tar.gz"
    assert len(longest) == MAX_FILENAME_LENGTH
    assert parse_filename(longest).project == "a" * (MAX_FILENAME_LENGTH - len("-1.0.tar.gz"))
    with pytest.raises(InvalidUpload, match=f"longer than {MAX_FILENAME_LENGTH}"):
        parse_filename("a" + longest)


def test_empty_filename_is_refused() -> None:
    with pytest.raises(InvalidUpload, match="Missing filename"):
        parse_filename("")


def test_storage_keys() -> None:
    assert storage_key("demo-pkg", "Demo_Pkg-1.0.tar.gz") == "demo-pkg/Demo_Pkg-1.0.tar.gz"
    assert sidecar_key(storage_key("demo", "demo-1.0-py3-none-any.whl")) == "demo/demo-1.0-py3-none-any.whl.metadata"


@pytest.mark.parametrize(
    "filename",
    [
        "demo-1.0-py3-none-any x.whl",
        'demo-1.0-py3-none-any.whl"><script>.whl',
        "demo-1.0-py3-none-a'y.whl",
        "demo-1.0-py3-none-any%2F.whl",
        "demo-1.0-py3-none-any#x.whl",
        "demo-1.0-py3-none-any?x.whl",
        "demo-1.0-py3-none-a<b>.whl",
        "demo-1.0 .tar.gz",  # packaging strips the space from the version
        "demo-1.0%20.zip",
        "demo-1.0&x.tar.gz",
    ],
)
def test_characters_that_break_links_or_keys_are_refused(filename: str) -> None:
    with pytest.raises(InvalidUpload, match=r"Invalid (wheel |sdist )?filename"):
        parse_filename(filename)


@pytest.mark.parametrize(
    "filename",
    [
        "demo-1.0-py3-none-any!.whl",
        "demo-1.0-py3-none-x+y.whl",
        "demo-1.0-py3+x-none-any.whl",
        "demo-1.0-1+x-py3-none-any.whl",  # a build tag: digits, then letters, digits, underscores
        "demo-1.0-1!-py3-none-any.whl",
    ],
)
def test_invalid_wheel_tags_are_refused(filename: str) -> None:
    with pytest.raises(InvalidUpload, match="Invalid wheel filename"):
        parse_filename(filename)


@pytest.mark.parametrize("filename", ["demo..x-1.0.tar.gz", "demo-1.0-py3-none-any..whl", "demo-1.0..zip"])
def test_double_dots_are_refused(filename: str) -> None:
    with pytest.raises(InvalidUpload):
        parse_filename(filename)


@pytest.mark.parametrize(
    "filename",
    [
        "demo-1.0+local.1-py3-none-any.whl",
        "demo-1.0-1-py3-none-any.whl",
        "demo-1.0-12b_x-py2.py3-none-any.whl",
        "demo-1!1.0-py3-none-any.whl",
        "demo-1.0-cp313-cp313t-musllinux_1_2_aarch64.whl",
        "demo-1.0-cp38-abi3-macosx_10_9_x86_64.macosx_11_0_arm64.macosx_10_9_universal2.whl",
        "demo-1.0-pp310-pypy310_pp73-win_amd64.whl",
        "Demo_Pkg-1.0.post1.tar.gz",
        "demo-1.0+local.1.zip",
    ],
)
def test_unusual_but_legal_filenames_are_accepted(filename: str) -> None:
    assert parse_filename(filename).filename == filename


@pytest.mark.parametrize(
    ("filename", "project"),
    [
        ("Demo_Pkg-1.0-py3-none-any.whl", "demo-pkg"),
        ("demo-1.0-py3-none-any x.whl", "demo"),
        ("my-lib-1.0.tar.gz", "my-lib"),
        ("demo-1.0 .zip", "demo"),
        ("README", ""),
    ],
)
def test_filename_project_splits_without_checking(filename: str, project: str) -> None:
    assert filename_project(filename) == project
