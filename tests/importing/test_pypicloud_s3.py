"""pypicloud's S3 storage on moto: hashed and unhashed keys, current, underscore (1.0.14-1.1.2) and no metadata."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pypicloud_lite.errors import BackendUnavailable, InvalidInput
from pypicloud_lite.importing.pypicloud_s3 import parse_s3_url, read_pypicloud_s3, s3_client
from pypicloud_lite.service import PackageIndex
from tests.support.aws import Moto
from tests.support.distbuilder import build_sdist, build_wheel
from tests.support.peers import files_of, import_all, md5, pypicloud_s3_key, sha256

PREFIX = "packages/"


def put(client: Any, bucket: str, key: str, path: Path, metadata: dict[str, str]) -> None:
    client.put_object(Bucket=bucket, Key=key, Body=path.read_bytes(), Metadata=metadata)


@pytest.fixture
def source(moto: Moto, tmp_path: Path) -> tuple[Any, str, dict[str, Path]]:
    """(client, bucket, {key: the file}) of a bucket pypicloud has written over the years."""
    client, bucket = moto.client("s3"), moto.new_bucket()
    dist = tmp_path / "dist"
    wheel = build_wheel(dist, "hello.pkg", "1.0", summary="Café greeter", requires_python=">=3.8")
    sdist = build_sdist(dist, "hello.pkg", "1.0", summary=None)
    legacy = build_wheel(dist, "Other.Lib", "2.0")
    keys = {
        pypicloud_s3_key(PREFIX, "hello-pkg", wheel.name): wheel,
        pypicloud_s3_key(PREFIX, "hello-pkg", sdist.name): sdist,
        pypicloud_s3_key(PREFIX, "other-lib", legacy.name, prepend_hash=False): legacy,
    }
    wheel_key, sdist_key, legacy_key = keys
    # 1.3.10 and later: hyphenated keys, the summary stripped to ASCII, the uploader.
    put(client, bucket, wheel_key, wheel, {
        "name": "hello-pkg", "version": "1.0", "summary": "Cafe greeter", "requires-python": ">=3.8",
        "hash-sha256": sha256(wheel), "hash-md5": md5(wheel), "uploader": "alice",
    })  # fmt: skip
    # 1.1.0 to 1.1.2: underscore keys, no uploader.
    put(client, bucket, sdist_key, sdist, {
        "name": "hello-pkg", "version": "1.0", "summary": "Greets in French",
        "hash_sha256": sha256(sdist), "hash_md5": md5(sdist),
    })  # fmt: skip
    # 0.x with storage.prepend_hash = false: no metadata at all.
    put(client, bucket, legacy_key, legacy, {})
    put(client, bucket, "elsewhere/x_y-1.0.tar.gz", sdist, {})
    return client, bucket, keys


def test_the_bucket_moves_in(index: PackageIndex, source: tuple[Any, str, dict[str, Path]]) -> None:
    client, bucket, keys = source
    wheel_key, sdist_key, legacy_key = keys
    assert wheel_key.startswith(PREFIX) and wheel_key.count("/") == 3
    assert import_all(index, read_pypicloud_s3(client, bucket, PREFIX)) == dict.fromkeys(keys, "imported")
    assert [(p.name, p.display_name) for p in index.list_projects()] == [
        ("hello-pkg", "hello.pkg"),
        ("other-lib", "Other.Lib"),
    ]
    for key, path in keys.items():
        file = files_of(index, "other-lib" if key == legacy_key else "hello-pkg")[path.name]
        assert file.sha256 == sha256(path)
        # pypicloud shows an object's LastModified as its upload time.
        assert file.upload_time == client.head_object(Bucket=bucket, Key=key)["LastModified"]
    hello = files_of(index, "hello-pkg")
    wheel, sdist = hello[keys[wheel_key].name], hello[keys[sdist_key].name]
    assert (wheel.uploader, wheel.summary, wheel.requires_python) == ("alice", "Café greeter", ">=3.8")
    assert (sdist.uploader, sdist.summary) == (None, "Greets in French")


def test_a_second_import_changes_nothing(index: PackageIndex, source: tuple[Any, str, dict[str, Path]]) -> None:
    client, bucket, keys = source
    import_all(index, read_pypicloud_s3(client, bucket, PREFIX))
    serial = index.serial()
    assert import_all(index, read_pypicloud_s3(client, bucket, PREFIX)) == dict.fromkeys(keys, "existing")
    assert index.serial() == serial


def test_strays_are_skipped_and_a_reused_filename_reported(
    index: PackageIndex, source: tuple[Any, str, dict[str, Path]], tmp_path: Path
) -> None:
    client, bucket, keys = source
    wheel_key = next(iter(keys))
    client.put_object(Bucket=bucket, Key=PREFIX + "1a2b/notes/readme.txt", Body=b"hi")
    client.put_object(Bucket=bucket, Key=PREFIX + "dir/", Body=b"")
    other = build_sdist(tmp_path / "o", "other.lib", "2.0")
    put(client, bucket, PREFIX + "other-lib/" + other.name, other, {"name": "hello-pkg", "version": "2.0"})
    reused = build_wheel(tmp_path / "r", "hello.pkg", "1.0", summary="Other bytes")
    with reused.open("rb") as fh:
        index.import_file(reused.name, fh, upload_time=None, uploader=None, display_name=None, summary=None)
    outcomes = import_all(index, read_pypicloud_s3(client, bucket, PREFIX))
    assert outcomes[PREFIX + "1a2b/notes/readme.txt"].startswith("skipped: Invalid file extension in 'readme.txt'")
    assert outcomes[PREFIX + "dir/"] == "skipped: Missing filename."
    assert outcomes[PREFIX + "other-lib/" + other.name] == (
        "skipped: its metadata names project 'hello-pkg', its filename 'other-lib'"
    )
    assert outcomes[wheel_key].startswith("failed: File already exists: 'hello_pkg-1.0-py3-none-any.whl'")
    assert [s for s, o in outcomes.items() if o == "imported"] == list(keys)[1:]


def test_a_missing_bucket_is_an_error(moto: Moto) -> None:
    with pytest.raises(BackendUnavailable, match="cannot list s3://no-such-bucket/"):
        list(read_pypicloud_s3(s3_client(moto.endpoint_url, "us-east-1"), "no-such-bucket", ""))


@pytest.mark.parametrize(
    ("url", "expected"),
    [("s3://b/packages/", ("b", "packages/")), ("s3://b", ("b", "")), ("s3://b/packages", ("b", "packages"))],
)
def test_parse_s3_url(url: str, expected: tuple[str, str]) -> None:
    assert parse_s3_url(url) == expected


@pytest.mark.parametrize("url", ["b/packages", "https://b/x", "s3:///x", "s3://b/x?y=1"])
def test_parse_s3_url_refuses_other_urls(url: str) -> None:
    with pytest.raises(InvalidInput):
        parse_s3_url(url)
