"""Project-name normalization and distribution-filename parsing (PEP 503, 427, 625)."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Literal

from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    NormalizedName,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from pypicloud_lite.errors import InvalidUpload

PackageType = Literal["bdist_wheel", "sdist"]

SDIST_SUFFIXES = (".tar.gz", ".zip")
METADATA_SUFFIX = ".metadata"
MAX_FILENAME_LENGTH = 255

# PEP 508 project names: what Warehouse accepts in the upload form.
_PROJECT_NAME = re.compile(r"^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])\Z", re.IGNORECASE)
# Every character a valid wheel or sdist filename can hold: project names, PEP 440 versions
# (epoch `!`, local `+`), build tags and compatibility tags. Anything else (spaces, quotes, `%`,
# `#`, `?`, `<>`) only serves to break a link, a storage key or a client's parser.
_FILENAME_CHARS = re.compile(r"^[A-Za-z0-9._+!-]+\Z")
_ASCII_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# One compatibility tag (py3, cp313t, abi3, manylinux_2_17_x86_64, macosx_11_0_arm64, any).
_TAG = re.compile(r"^[A-Za-z0-9_]+\Z")
_BUILD_TAG = re.compile(r"^[0-9][A-Za-z0-9_]*\Z")


def normalize(name: str) -> NormalizedName:
    """PEP 503 normalized form of a project name."""
    return canonicalize_name(name)


def is_valid_project_name(name: str) -> bool:
    return bool(_PROJECT_NAME.match(name))


def safe_name(metadata_name: str) -> str:
    """The project name twine sends in the upload form for this metadata Name (pkg_resources' safe_name)."""
    return re.sub(r"[^A-Za-z0-9.]+", "-", metadata_name)


@dataclass(frozen=True)
class DistFilename:
    """What a distribution's filename says about it."""

    filename: str
    project: NormalizedName
    version: Version
    packagetype: PackageType
    python_version: str


def check_safe_filename(filename: str) -> None:
    """Refuse anything that could escape the project folder or confuse a client."""
    if not filename:
        raise InvalidUpload("Missing filename.")
    if len(filename) > MAX_FILENAME_LENGTH:
        raise InvalidUpload(f"Filename is longer than {MAX_FILENAME_LENGTH} characters.")
    # `..` anywhere, not only as a segment: some storage tools and proxies normalize it away.
    if any(c in filename for c in "/\\:") or ".." in filename or filename.startswith((".", "~")):
        raise InvalidUpload(f"Invalid filename {filename!r}: it must not contain a path.")
    # The only ASCII characters of Unicode's "C" categories are the C0 controls and DEL (a reload checks every file).
    if (
        _ASCII_CONTROL.search(filename)
        if filename.isascii()
        else any(unicodedata.category(ch).startswith("C") for ch in filename)
    ):
        raise InvalidUpload("Invalid filename: it contains control characters.")
    if not filename.isascii():
        # Escaped, so a look-alike letter shows as what it is (and the status line carries it intact).
        raise InvalidUpload(f"Invalid filename {filename!a}: only ASCII characters are allowed.")


def _check_name_part(filename: str, name: str) -> None:
    # packaging's parsers accept any text before the version; Warehouse wants a project name.
    if not is_valid_project_name(name):
        raise InvalidUpload(f"Invalid filename {filename!r}: {name!r} is not a valid project name.")


def _check_characters(filename: str, kind: str) -> None:
    if not _FILENAME_CHARS.match(filename):
        raise InvalidUpload(
            f"Invalid {kind} filename {filename!r}: a distribution filename holds only letters, digits and . _ - + !"
        )


def _check_tags(filename: str) -> None:
    # packaging splits the tag triple on `-` and `.` but takes any text between them as a tag.
    parts = filename.removesuffix(".whl").split("-")
    if len(parts) == 6 and not _BUILD_TAG.match(parts[2]):
        raise InvalidUpload(
            f"Invalid wheel filename {filename!r}: build tag {parts[2]!r} must be a number, "
            "then letters, digits or underscores."
        )
    for part in parts[-3:]:
        for tag in part.split("."):
            if not _TAG.match(tag):
                raise InvalidUpload(
                    f"Invalid wheel filename {filename!r}: {tag!r} is not a compatibility tag "
                    "(letters, digits and underscores; see PEP 425)."
                )


def parse_filename(filename: str) -> DistFilename:
    """Parse a wheel or sdist filename, or raise InvalidUpload saying why it is not one."""
    check_safe_filename(filename)
    if filename.endswith(".whl"):
        try:
            name, version, _build, _tags = parse_wheel_filename(filename)
        except (InvalidWheelFilename, InvalidVersion) as exc:
            raise InvalidUpload(f"Invalid wheel filename {filename!r}: {exc}") from exc
        _check_name_part(filename, filename.split("-", 1)[0])
        _check_characters(filename, "wheel")
        _check_tags(filename)
        python_tag = filename[: -len(".whl")].split("-")[-3]
        return DistFilename(filename, name, version, "bdist_wheel", python_tag)
    if filename.endswith(SDIST_SUFFIXES):
        try:
            name, version = parse_sdist_filename(filename)
        except (InvalidSdistFilename, InvalidVersion) as exc:
            raise InvalidUpload(f"Invalid sdist filename {filename!r}: {exc}") from exc
        stem = filename.removesuffix(".tar.gz").removesuffix(".zip")
        _check_name_part(filename, stem.rpartition("-")[0])
        _check_characters(filename, "sdist")
        return DistFilename(filename, name, version, "sdist", "source")
    raise InvalidUpload(
        f"Invalid file extension in {filename!r}: use .whl, .tar.gz or .zip "
        "(see https://packaging.python.org/specifications/)."
    )


def filename_project(filename: str) -> NormalizedName:
    """The project a stored file's name puts it in, split as the parsers split it but without their checks.

    For rows already in the index: one stored before a check was added stays reachable (to be deleted).
    """
    if filename.endswith(".whl"):
        return canonicalize_name(filename.split("-", 1)[0])
    return canonicalize_name(filename.removesuffix(".tar.gz").removesuffix(".zip").rpartition("-")[0])


# -- the storage key layout: the one place that knows it ----------------------------------


def storage_key(project: str, filename: str) -> str:
    """Where a file lives in storage: one folder per normalized project."""
    return f"{project}/{filename}"


def sidecar_key(object_key: str) -> str:
    """Where the PEP 658 core-metadata sidecar of the object under `object_key` lives: beside it."""
    return object_key + METADATA_SUFFIX


# The index's own objects live under this folder: no project folder is spelled so (a name starts with a
# letter or a digit), so a reload, the S3 sync and the simple API never take them for packages.
INTERNAL_PREFIX = "_ppc/"


def tombstone_key(project: str, filename: str) -> str:
    """Where the record of a deleted file lives: a filename once used never comes back with other bytes."""
    return f"{INTERNAL_PREFIX}deleted/{project}/{filename}"


# What storage records of each file and project beyond the bytes (see pypicloud_lite/stored_state.py).
FILE_RECORDS = f"{INTERNAL_PREFIX}files/"
PROJECT_STATES = f"{INTERNAL_PREFIX}projects/"
FIRST_SIGHTINGS = f"{INTERNAL_PREFIX}seen/"
STATE_SUFFIX = ".json"


def file_record_key(project: str, filename: str) -> str:
    """Where a file's record lives: its upload time, uploader, hashes and core metadata."""
    return f"{FILE_RECORDS}{project}/{filename}{STATE_SUFFIX}"


def project_state_key(project: str) -> str:
    """Where a project's state lives: display name, status and reason, yanked files and reasons."""
    return f"{PROJECT_STATES}{project}{STATE_SUFFIX}"


def sightings_prefix(project: str) -> str:
    """Where the first sightings of a project's files live: one object per batch a reload (or the S3 sync) read.

    All in one folder (a normalized name has no '.'): a fill of a folder of many projects then creates one
    file per batch, not a folder per project as well.
    """
    return f"{FIRST_SIGHTINGS}{project}."


def sighting_key(project: str, batch: str) -> str:
    return f"{sightings_prefix(project)}{batch}{STATE_SUFFIX}"


def parse_sighting_key(key: str) -> str | None:
    """The project of a first-sightings object's key, or None for any other key."""
    if not (key.startswith(FIRST_SIGHTINGS) and key.endswith(STATE_SUFFIX)):
        return None
    project, sep, batch = key[len(FIRST_SIGHTINGS) : -len(STATE_SUFFIX)].partition(".")
    if not sep or "/" in batch or "." in batch or not batch or not project or normalize(project) != project:
        return None
    return project


def parse_record_key(key: str) -> tuple[str, str] | None:
    """(project, filename) of a file record's key, or None for any other key."""
    if not (key.startswith(FILE_RECORDS) and key.endswith(STATE_SUFFIX)):
        return None
    project, sep, filename = key[len(FILE_RECORDS) : -len(STATE_SUFFIX)].partition("/")
    if not sep or "/" in filename or not project or not filename:
        return None
    return project, filename


def parse_state_key(key: str) -> str | None:
    """The project of a project state's key, or None for any other key."""
    if not (key.startswith(PROJECT_STATES) and key.endswith(STATE_SUFFIX)):
        return None
    project = key[len(PROJECT_STATES) : -len(STATE_SUFFIX)]
    return project if project and "/" not in project and normalize(project) == project else None


def parse_key(key: str) -> DistFilename | None:
    """The distribution a storage key holds, or None for anything else (sidecars, strays).

    The folder must name the file's project, spelled any way that normalizes to it
    (`my_lib/`, `My.Lib/` or `my-lib/`): other tools do not all use our spelling.
    """
    found = explain_key(key)
    return found if isinstance(found, DistFilename) else None


def explain_key(key: str) -> DistFilename | str:
    """The distribution a storage key holds (see parse_key), or why it holds none, for the reload's log."""
    folder, sep, filename = key.partition("/")
    if key.endswith(METADATA_SUFFIX):
        return "a core-metadata sidecar"
    if not sep or "/" in filename:
        return "not <project>/<filename>: this index reads one folder per project, one level deep"
    try:
        dist = parse_filename(filename)
    except InvalidUpload as exc:
        return exc.message
    if normalize(folder) != dist.project:
        return f"its folder {folder!r} does not name the project of {filename!r} ({dist.project!r})"
    return dist
