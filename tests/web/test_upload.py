"""The legacy upload API as twine and `uv publish` use it: endpoints, digests, re-uploads and rejections."""

from __future__ import annotations

import gzip
import io
import os
import tarfile
import time
import zipfile
from pathlib import Path

import pytest
import webtest

from pypicloud_lite import metadata
from pypicloud_lite.config import Settings, load_settings
from pypicloud_lite.service import PackageIndex
from pypicloud_lite.web import make_app
from tests.support import hostile
from tests.support.common import UPLOADER, basic_auth, services
from tests.support.distbuilder import build_sdist, build_wheel, metadata_text
from tests.support.legacy import JSON_V1, Fields, post_upload, sha256, stored_files, upload_dist
from tests.support.settings import server_settings

# Deterministic junk: the content of corrupt archives.
JUNK = bytes(range(256)) * 40


def sdist_bytes(dist_dir: Path, name: str = "Foo.Bar", version: str = "1.0") -> bytes:
    return build_sdist(dist_dir, name, version).read_bytes()


def assert_rejected(
    resp: webtest.TestResponse, status: int, message_start: str, testapp: webtest.TestApp, settings: Settings
) -> None:
    """The error is in the status line and the JSON body, and nothing at all was stored."""
    assert resp.status_int == status
    assert resp.headers["Content-Type"] == "application/json"
    message = resp.json["message"]
    assert resp.json["status"] == status
    assert message.startswith(message_start), message
    assert resp.status == f"{status} {message}"
    assert stored_files(settings) == []
    assert testapp.get("/simple/", headers={"Accept": JSON_V1}).json["projects"] == []
    assert testapp.get("/simple/foo-bar/", status=404)


def simple_files(testapp: webtest.TestApp, project: str = "foo-bar") -> dict[str, dict[str, object]]:
    files = testapp.get(f"/simple/{project}/", headers={"Accept": JSON_V1}).json["files"]
    return {f["filename"]: f for f in files}


# -- success -------------------------------------------------------------------


@pytest.mark.parametrize("url", ["/legacy/", "/simple/", "/", "/legacy", "/simple"])
@pytest.mark.parametrize("kind", ["wheel", "sdist"])
def test_upload_endpoints(
    testapp: webtest.TestApp, auth: dict[str, str], dist_dir: Path, settings: Settings, url: str, kind: str
) -> None:
    build = build_wheel if kind == "wheel" else build_sdist
    path = build(dist_dir, "Foo.Bar", "1.0")
    # The upload URL is answered where it is: a redirect would turn twine's POST into a GET.
    resp = upload_dist(testapp, auth, path, "Foo.Bar", "1.0", url=url)
    assert resp.status == "200 OK"
    assert resp.json["filename"] == path.name
    assert resp.json["sha256"] == sha256(path.read_bytes())
    assert list(simple_files(testapp)) == [path.name]
    assert testapp.get(f"/packages/foo-bar/{path.name}").body == path.read_bytes()
    assert settings.storage.dir is not None
    assert (settings.storage.dir / "foo-bar" / path.name).read_bytes() == path.read_bytes()


def test_action_in_query_string(testapp: webtest.TestApp, auth: dict[str, str], dist_dir: Path) -> None:
    wheel = build_wheel(dist_dir, "Foo.Bar", "1.0")
    resp = upload_dist(
        testapp, auth, wheel, "Foo.Bar", "1.0", url="/legacy/?:action=file_upload", overrides={":action": None}
    )
    assert resp.status == "200 OK"
    assert list(simple_files(testapp)) == [wheel.name]


@pytest.mark.parametrize("kept", ["md5_digest", "sha256_digest", "blake2_256_digest"])
def test_any_single_digest_is_enough(testapp: webtest.TestApp, auth: dict[str, str], dist_dir: Path, kept: str) -> None:
    wheel = build_wheel(dist_dir, "Foo.Bar", "1.0")
    dropped: Fields = {d: None for d in ("md5_digest", "sha256_digest", "blake2_256_digest") if d != kept}
    assert upload_dist(testapp, auth, wheel, "Foo.Bar", "1.0", overrides=dropped).status == "200 OK"
    assert simple_files(testapp)[wheel.name]["hashes"] == {"sha256": sha256(wheel.read_bytes())}


def test_digests_are_case_insensitive(testapp: webtest.TestApp, auth: dict[str, str], dist_dir: Path) -> None:
    wheel = build_wheel(dist_dir, "Foo.Bar", "1.0")
    upload_dist(testapp, auth, wheel, "Foo.Bar", "1.0", overrides={"sha256_digest": sha256(wheel.read_bytes()).upper()})


def test_unknown_fields_are_ignored(testapp: webtest.TestApp, auth: dict[str, str], dist_dir: Path) -> None:
    wheel = build_wheel(dist_dir, "Foo.Bar", "1.0")
    extra = [
        ("classifiers", "Programming Language :: Python :: 3"),
        ("classifiers", "License :: OSI Approved :: MIT License"),
        ("requires_dist", "requests>=2"),
        ("description", "# Foo.Bar\n\nLong *text* \u2603"),
        ("description_content_type", "text/markdown"),
        ("comment", "uploaded by CI"),
        ("attestations", "[]"),
        ("some_future_field", "whatever"),
    ]
    assert upload_dist(testapp, auth, wheel, "Foo.Bar", "1.0", extra=extra).status == "200 OK"
    assert list(simple_files(testapp)) == [wheel.name]


def test_zip_sdist(testapp: webtest.TestApp, auth: dict[str, str], dist_dir: Path) -> None:
    sdist = build_sdist(dist_dir, "Foo.Bar", "1.0", fmt="zip")
    assert upload_dist(testapp, auth, sdist, "Foo.Bar", "1.0").status == "200 OK"
    assert simple_files(testapp)[sdist.name]["core-metadata"] is False


def test_identical_reupload_changes_nothing(
    testapp: webtest.TestApp, auth: dict[str, str], dist_dir: Path, settings: Settings, index: PackageIndex
) -> None:
    wheel = build_wheel(dist_dir, "Foo.Bar", "1.0")
    upload_dist(testapp, auth, wheel, "Foo.Bar", "1.0")
    serial, files, page = index.serial(), stored_files(settings), simple_files(testapp)
    # twine --skip-existing, retries and CI re-runs: 200 and no change.
    again = upload_dist(testapp, auth, wheel, "Foo.Bar", "1.0")
    assert again.status == "200 OK"
    assert again.json["sha256"] == sha256(wheel.read_bytes())
    assert index.serial() == serial
    assert stored_files(settings) == files
    assert simple_files(testapp) == page


def test_different_bytes_under_an_existing_filename(
    testapp: webtest.TestApp, auth: dict[str, str], dist_dir: Path, settings: Settings, index: PackageIndex
) -> None:
    original = build_wheel(dist_dir / "a", "Foo.Bar", "1.0", summary="first")
    other = build_wheel(dist_dir / "b", "Foo.Bar", "1.0", summary="second")
    assert original.name == other.name and original.read_bytes() != other.read_bytes()
    upload_dist(testapp, auth, original, "Foo.Bar", "1.0")
    serial, files = index.serial(), stored_files(settings)

    resp = upload_dist(testapp, auth, other, "Foo.Bar", "1.0", status=400)
    message = resp.json["message"]
    assert message.startswith("File already exists")
    assert resp.status == f"400 {message}"
    assert index.serial() == serial
    assert stored_files(settings) == files
    assert testapp.get(f"/packages/foo-bar/{original.name}").body == original.read_bytes()


# -- rejections ------------------------------------------------------------------


FORM_ERRORS = [
    pytest.param(
        {"md5_digest": None, "sha256_digest": None, "blake2_256_digest": None}, "Include at least one", id="no-digest"
    ),
    pytest.param(
        {"md5_digest": "", "sha256_digest": " ", "blake2_256_digest": None}, "Include at least one", id="blank-digests"
    ),
    pytest.param({"md5_digest": "0" * 32}, "The digest supplied does not match", id="md5-mismatch"),
    pytest.param({"sha256_digest": "0" * 64}, "The digest supplied does not match", id="sha256-mismatch"),
    pytest.param({"blake2_256_digest": "0" * 64}, "The digest supplied does not match", id="blake2-mismatch"),
    pytest.param({"sha256_digest": "not hexadecimal"}, "", id="sha256-not-hex"),
    pytest.param({"md5_digest": "0" * 31}, "", id="md5-short"),
    # One right digest does not excuse a wrong one.
    pytest.param(
        {"md5_digest": None, "blake2_256_digest": "f" * 64}, "The digest supplied does not match", id="one-of-two-wrong"
    ),
    pytest.param({"name": "Other"}, "Start filename for 'Other'", id="name-mismatch"),
    pytest.param({"version": "2.0"}, "Version in filename should be", id="version-mismatch"),
    pytest.param({"version": "not a version"}, "Invalid value for version", id="invalid-version"),
    pytest.param({"version": None}, "Invalid value for version", id="missing-version"),
    pytest.param({"name": None}, "Invalid value for name", id="missing-name"),
    pytest.param({"name": "-foo.bar-"}, "Invalid value for name", id="invalid-name"),
    pytest.param({"filetype": "bdist_wheel"}, "Invalid value for filetype", id="filetype-mismatch"),
    pytest.param({"protocol_version": "2"}, "Unknown protocol_version", id="protocol-version"),
    pytest.param({":action": "submit"}, "Unsupported :action 'submit'", id="action-submit"),
    pytest.param({":action": "doc_upload"}, "Unsupported :action 'doc_upload'", id="action-doc-upload"),
    pytest.param({":action": None}, "Unsupported :action", id="action-missing"),
]


@pytest.mark.parametrize(("overrides", "message"), FORM_ERRORS)
def test_bad_form(
    testapp: webtest.TestApp,
    auth: dict[str, str],
    dist_dir: Path,
    settings: Settings,
    overrides: Fields,
    message: str,
) -> None:
    sdist = build_sdist(dist_dir, "Foo.Bar", "1.0")
    resp = upload_dist(testapp, auth, sdist, "Foo.Bar", "1.0", overrides=overrides, status="*")
    assert_rejected(resp, 400, message, testapp, settings)


BAD_FILENAMES = [
    pytest.param("../evil-1.0.tar.gz", "Invalid filename", id="parent-dir-other-name"),
    pytest.param("/abs/x-1.0.tar.gz", "Invalid filename", id="absolute-other-name"),
    pytest.param("..\\x-1.0.tar.gz", "Invalid filename", id="backslash-other-name"),
    pytest.param("../foo_bar-1.0.tar.gz", "Invalid filename", id="parent-dir"),
    pytest.param("/abs/foo_bar-1.0.tar.gz", "Invalid filename", id="absolute"),
    pytest.param("..\\foo_bar-1.0.tar.gz", "Invalid filename", id="backslash"),
    pytest.param("sub/foo_bar-1.0.tar.gz", "Invalid filename", id="subfolder"),
    pytest.param("C:foo_bar-1.0.tar.gz", "Invalid filename", id="drive"),
    pytest.param(".foo_bar-1.0.tar.gz", "Invalid filename", id="hidden"),
    pytest.param("foo_bar\x01-1.0.tar.gz", "Invalid filename", id="control-char"),
    pytest.param("foo_bar-1.0\x7f.tar.gz", "Invalid filename", id="delete-char"),
    pytest.param("foo_bar-1.0.exe", "Invalid file extension", id="exe"),
    pytest.param("foo_bar-1.0-py3.11.egg", "Invalid file extension", id="egg"),
    pytest.param("foo_bar-1.0.tar.bz2", "Invalid file extension", id="tar-bz2"),
    pytest.param("foo_bar-1.0.tar", "Invalid file extension", id="tar"),
    pytest.param("foo_bar-1.0-py3-none.whl", "Invalid wheel filename", id="wheel-missing-tag"),
    pytest.param("foo_bar.tar.gz", "Invalid sdist filename", id="sdist-missing-version"),
]


# Names a real Foo.Bar 1.0 wheel is uploaded under: each must be refused before anything is stored,
# or its link breaks `pip install foo-bar` for everyone.
CRAFTED_WHEEL_NAMES = [
    pytest.param("foo_bar-1.0-py3-none-any x.whl", "Invalid wheel filename", id="space"),
    pytest.param('foo_bar-1.0-py3-none-any.whl"><script>.whl', "Invalid wheel filename", id="markup"),
    pytest.param("foo_bar-1.0-py3-none-any%23.whl", "Invalid wheel filename", id="percent"),
    pytest.param("foo_bar-1.0-py3-none-any#x.whl", "Invalid wheel filename", id="fragment"),
    pytest.param("foo_bar-1.0-py3-none-any?x=1.whl", "Invalid wheel filename", id="query"),
    pytest.param("foo_bar-1.0-py3-none-any!.whl", "Invalid wheel filename", id="bad-platform-tag"),
    pytest.param("foo_bar-1.0-py3-no+ne-any.whl", "Invalid wheel filename", id="bad-abi-tag"),
    pytest.param("foo_bar-1.0-1!-py3-none-any.whl", "Invalid wheel filename", id="bad-build-tag"),
    pytest.param("foo_bar-1.0-py3-none-\u0430ny.whl", "Invalid filename", id="cyrillic-a"),
    pytest.param("foo..bar-1.0-py3-none-any.whl", "Invalid filename", id="double-dot"),
    pytest.param("fooobar-1.0-py3-none-any.whl", "Start filename for 'Foo.Bar'", id="other-project"),
]


BAD_NAMES_AND_BYTES = [
    *(pytest.param(*param.values, "sdist", id=param.id) for param in BAD_FILENAMES),
    *(pytest.param(*param.values, "wheel", id=f"wheel-{param.id}") for param in CRAFTED_WHEEL_NAMES),
]


@pytest.mark.parametrize(("filename", "message", "kind"), BAD_NAMES_AND_BYTES)
def test_bad_filename(
    testapp: webtest.TestApp,
    auth: dict[str, str],
    tmp_path: Path,
    dist_dir: Path,
    settings: Settings,
    filename: str,
    message: str,
    kind: str,
) -> None:
    data = sdist_bytes(dist_dir) if kind == "sdist" else build_wheel(dist_dir, "Foo.Bar", "1.0").read_bytes()
    resp = post_upload(testapp, auth, filename=filename, data=data, name="Foo.Bar", version="1.0", status="*")
    assert_rejected(resp, 400, message, testapp, settings)
    # Nothing escaped the storage folder either: only the test's own dist and the cache database exist.
    written = {p for p in tmp_path.rglob("*") if p.is_file() and dist_dir not in p.parents}
    assert {p.name for p in written} <= {"cache.sqlite", "cache.sqlite-wal", "cache.sqlite-shm", "cache.sqlite-journal"}


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def _tar_gz_without_pkg_info() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tf:
        data = b"print('hi')\n"
        info = tarfile.TarInfo("foo_bar-1.0/setup.py")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


WHEEL = "foo_bar-1.0-py3-none-any.whl"
WHEEL_INFO = "foo_bar-1.0.dist-info"
SDIST = "foo_bar-1.0.tar.gz"

CORRUPT = [
    pytest.param(WHEEL, JUNK, "Invalid distribution file", id="wheel-random-bytes"),
    pytest.param(WHEEL, _zip({"foo_bar/__init__.py": b""}), "Invalid wheel", id="wheel-without-metadata"),
    pytest.param(
        WHEEL,
        _zip({f"{WHEEL_INFO}/METADATA": metadata_text("Foo.Bar", "1.0").encode()}),
        "Invalid wheel",
        id="wheel-without-WHEEL",
    ),
    pytest.param(
        WHEEL,
        _zip({f"{WHEEL_INFO}/METADATA": metadata_text("Other", "1.0").encode(), f"{WHEEL_INFO}/WHEEL": b"x"}),
        "Invalid distribution file",
        id="wheel-metadata-other-project",
    ),
    pytest.param(
        WHEEL,
        _zip({f"{WHEEL_INFO}/METADATA": metadata_text("Foo.Bar", "2.0").encode(), f"{WHEEL_INFO}/WHEEL": b"x"}),
        "Invalid distribution file",
        id="wheel-metadata-other-version",
    ),
    pytest.param(SDIST, JUNK, "Invalid distribution file", id="tar-gz-random-bytes"),
    pytest.param(SDIST, gzip.compress(JUNK), "Invalid distribution file", id="tar-gz-not-a-tar"),
    pytest.param(SDIST, gzip.compress(JUNK)[:100], "Invalid distribution file", id="tar-gz-truncated"),
    pytest.param(SDIST, _tar_gz_without_pkg_info(), "Invalid sdist", id="tar-gz-without-pkg-info"),
    pytest.param("foo_bar-1.0.zip", JUNK, "Invalid distribution file", id="zip-sdist-random-bytes"),
    pytest.param(SDIST, b"", "Invalid distribution file", id="empty"),
]


@pytest.mark.parametrize(("filename", "data", "message"), CORRUPT)
def test_corrupt_archive(
    testapp: webtest.TestApp,
    auth: dict[str, str],
    settings: Settings,
    filename: str,
    data: bytes,
    message: str,
) -> None:
    resp = post_upload(testapp, auth, filename=filename, data=data, name="Foo.Bar", version="1.0", status="*")
    assert_rejected(resp, 400, message, testapp, settings)


HOSTILE = [
    pytest.param(SDIST, hostile.zeros_before_pkg_info(8_000_000), "Invalid sdist: it decompresses", id="gzip-of-zeros"),
    pytest.param(SDIST, hostile.pax_header_sdist(1_000_000), "Invalid sdist: a pax", id="huge-pax-header"),
    pytest.param(SDIST, hostile.gnu_long_name_sdist(1_000_000), "Invalid sdist: a pax", id="huge-gnu-long-name"),
    pytest.param(
        WHEEL,
        hostile.forged_entry_count(hostile.demo_wheel(), 10_000_000),
        "Invalid distribution file: it lists 10000000 files",
        id="wheel-forged-entry-count",
    ),
]


@pytest.mark.parametrize(("filename", "data", "message"), HOSTILE)
def test_hostile_archive(
    testapp: webtest.TestApp,
    auth: dict[str, str],
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    filename: str,
    data: bytes,
    message: str,
) -> None:
    # The test app takes 1 MB uploads: the zeros bomb is 8 KB, so a 1 MB floor makes it one.
    monkeypatch.setattr(metadata, "TAR_INFLATE_FLOOR", 1_000_000, raising=False)
    assert len(data) < settings.upload.max_size
    resp = post_upload(testapp, auth, filename=filename, data=data, name="Foo.Bar", version="1.0", status="*")
    # No object, no sidecar, no spooled .part, no row.
    assert_rejected(resp, 400, message, testapp, settings)


@pytest.mark.parametrize(
    "size",
    [
        pytest.param(1_000_001, id="one-byte-over"),  # caught while spooling
        pytest.param(2_500_000, id="content-length-over"),  # caught before reading the body
    ],
)
def test_too_large(testapp: webtest.TestApp, auth: dict[str, str], settings: Settings, size: int) -> None:
    assert settings.upload.max_size == 1_000_000
    data = os.urandom(size)
    resp = post_upload(testapp, auth, filename=SDIST, data=data, name="Foo.Bar", version="1.0", status="*")
    assert_rejected(resp, 413, "File too large", testapp, settings)
    # Both checks name the same, real limit.
    assert "1000000 bytes" in resp.json["message"]
    assert " 0 " not in resp.json["message"]


def test_both_size_checks_say_the_same(testapp: webtest.TestApp, auth: dict[str, str]) -> None:
    messages = {
        post_upload(testapp, auth, filename=SDIST, data=b"x" * size, name="Foo.Bar", version="1.0", status=413).json[
            "message"
        ]
        for size in (1_000_001, 2_500_000)
    }
    assert len(messages) == 1


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="no-credentials"),
        pytest.param(basic_auth(UPLOADER, "wrong password"), id="wrong-password"),
        pytest.param(basic_auth("nobody", "correct horse battery staple"), id="unknown-user"),
        pytest.param({"Authorization": "Basic !!!not-base64"}, id="malformed"),
        pytest.param({"Authorization": "Bearer some-token"}, id="not-basic"),
    ],
)
def test_unauthenticated(testapp: webtest.TestApp, dist_dir: Path, settings: Settings, headers: dict[str, str]) -> None:
    wheel = build_wheel(dist_dir, "Foo.Bar", "1.0")
    resp = upload_dist(testapp, headers, wheel, "Foo.Bar", "1.0", status="*")
    assert_rejected(resp, 401, "", testapp, settings)
    assert resp.headers["WWW-Authenticate"] == 'Basic realm="pypicloud_lite"'
    assert resp.json["message"]


def test_missing_content(testapp: webtest.TestApp, auth: dict[str, str], settings: Settings) -> None:
    resp = post_upload(testapp, auth, filename=None, data=b"", name="Foo.Bar", version="1.0", status="*")
    assert_rejected(resp, 400, "Upload payload does not have a file", testapp, settings)


def test_content_as_text_field(testapp: webtest.TestApp, auth: dict[str, str], settings: Settings) -> None:
    resp = post_upload(
        testapp,
        auth,
        filename=None,
        data=b"",
        name="Foo.Bar",
        version="1.0",
        extra=[("content", "not a file")],
        status="*",
    )
    assert_rejected(resp, 400, "Upload payload does not have a file", testapp, settings)


def test_not_multipart(testapp: webtest.TestApp, auth: dict[str, str], settings: Settings) -> None:
    resp = testapp.post(
        "/legacy/",
        params={":action": "file_upload", "name": "Foo.Bar", "version": "1.0"},
        headers=auth,
        expect_errors=True,
    )
    assert_rejected(resp, 400, "Uploads must be multipart/form-data", testapp, settings)


@pytest.mark.parametrize(
    ("name", "reason_name"),
    [
        pytest.param("пакет", "?????", id="cyrillic"),
        pytest.param("paquet\u00e9\u2603", "paquet\u00e9?", id="latin1-and-beyond"),
    ],
)
def test_non_ascii_message_is_reason_safe(
    testapp: webtest.TestApp, auth: dict[str, str], dist_dir: Path, settings: Settings, name: str, reason_name: str
) -> None:
    sdist = build_sdist(dist_dir, "Foo.Bar", "1.0")
    resp = upload_dist(testapp, auth, sdist, "Foo.Bar", "1.0", overrides={"name": name}, status="*")
    assert resp.status_int == 400
    # The body keeps the exact text...
    assert resp.json["message"] == f"Invalid value for name: {name!r} is not a valid project name."
    # ...and the status line, which HTTP/1.1 carries as ISO-8859-1, a faithful approximation.
    resp.status.encode("latin-1")
    assert "\n" not in resp.status and "\r" not in resp.status
    assert resp.status == f"400 Invalid value for name: '{reason_name}' is not a valid project name."
    assert stored_files(settings) == []


def test_get_on_upload_url_is_not_redirected(testapp: webtest.TestApp) -> None:
    resp = testapp.get("/legacy", expect_errors=True)
    assert resp.status_int == 405
    assert "POST" in resp.headers["Allow"]
    assert "Location" not in resp.headers


def test_the_app_sweeps_stale_spool_files_at_start(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    stale, live = spool / "ppc-upload-crashed.part", spool / "ppc-upload-live.part"
    for path in (stale, live):
        path.write_bytes(b"part of a wheel")
    os.utime(stale, (time.time() - 2 * 3600,) * 2)
    settings = load_settings(server_settings(tmp_path, {"upload.spool_dir": str(spool)}), environ={})
    app = make_app(settings)
    try:
        assert not stale.exists() and live.exists()
    finally:
        services(app).index.cache.close()


def test_a_chunked_body_is_refused_before_the_caller_is_checked(testapp: webtest.TestApp) -> None:
    # waitress hands the app decoded bodies; another server (gunicorn) may pass the header through.
    resp = testapp.post("/legacy/", b"5\r\nhello\r\n0\r\n\r\n", headers={"Transfer-Encoding": "chunked"}, status=413)
    assert "Chunked request bodies are not accepted" in resp.json["message"]
