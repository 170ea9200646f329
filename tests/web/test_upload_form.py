"""The legacy upload's body read in one pass (web/upload_form.py): what it keeps, streams and refuses."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import webtest

from pypicloud_lite.config import Settings
from tests.support.distbuilder import build_wheel
from tests.support.legacy import JSON_V1, stored_files, twine_fields

BOUNDARY = "ppc-form-test-4c1d"
CONTENT_TYPE = f"multipart/form-data; boundary={BOUNDARY}"


def _field(name: str, value: bytes) -> bytes:
    return f'Content-Disposition: form-data; name="{name}"\r\n\r\n'.encode() + value


def _file(name: str, filename: str, data: bytes) -> bytes:
    head = f'Content-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
    return (head + "Content-Type: application/octet-stream\r\n\r\n").encode() + data


def _body(*parts: bytes, end: bool = True) -> bytes:
    sep = f"--{BOUNDARY}".encode()
    return b"".join(sep + b"\r\n" + part + b"\r\n" for part in parts) + (sep + b"--\r\n" if end else b"")


@pytest.fixture
def wheel(dist_dir: Path) -> tuple[str, bytes]:
    path = build_wheel(dist_dir, "Foo.Bar", "1.0")
    return path.name, path.read_bytes()


def _fields(wheel: tuple[str, bytes]) -> list[bytes]:
    return [_field(k, v.encode()) for k, v in twine_fields("Foo.Bar", "1.0", wheel[0], wheel[1]).items()]


def _post(testapp: webtest.TestApp, auth: dict[str, str], body: bytes) -> webtest.TestResponse:
    return testapp.post("/legacy/", body, headers={**auth, "Content-Type": CONTENT_TYPE}, expect_errors=True)


def _listed(testapp: webtest.TestApp) -> list[str]:
    return [p["name"] for p in testapp.get("/simple/", headers={"Accept": JSON_V1}).json["projects"]]


def test_fields_after_the_file_and_a_signature_part_are_read(
    testapp: webtest.TestApp, auth: dict[str, str], wheel: tuple[str, bytes]
) -> None:
    # The file first, the fields after it, and a file part the upload does not read (twine --sign's).
    body = _body(_file("content", *wheel), _file("gpg_signature", wheel[0] + ".asc", b"sig"), *_fields(wheel))
    resp = _post(testapp, auth, body)
    assert resp.status_int == 200, resp.text
    assert resp.json["sha256"] == hashlib.sha256(wheel[1]).hexdigest()
    page = testapp.get("/simple/foo-bar/", headers={"Accept": JSON_V1}).json
    assert [f["filename"] for f in page["files"]] == [wheel[0]]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        pytest.param(
            lambda w: [_file("content", *w)], "The upload has more than one file in its 'content' field", id="two-files"
        ),
        pytest.param(
            lambda w: [_field("description", "caf\u00e9 ".encode() * 1000 + b"\xff")],
            "A form field is not valid UTF-8",
            id="dropped-field-not-utf8",
        ),
        pytest.param(
            lambda w: [_field("summary", b"x" * (64 * 1024 + 1))], "The form field 'summary' is longer", id="long-field"
        ),
    ],
)
def test_refused_forms_leave_nothing(
    testapp: webtest.TestApp,
    auth: dict[str, str],
    settings: Settings,
    wheel: tuple[str, bytes],
    extra: object,
    message: str,
) -> None:
    body = _body(*_fields(wheel), _file("content", *wheel), *extra(wheel))  # type: ignore[operator]
    resp = _post(testapp, auth, body)
    assert resp.status_int == 400, resp.text
    assert resp.json["message"].startswith(message), resp.json["message"]
    assert stored_files(settings) == []
    assert _listed(testapp) == []


def test_a_body_cut_before_its_end_is_refused(
    testapp: webtest.TestApp, auth: dict[str, str], settings: Settings, wheel: tuple[str, bytes]
) -> None:
    body = _body(*_fields(wheel), _file("content", *wheel), end=False)
    resp = _post(testapp, auth, body)
    assert resp.status_int == 400, resp.text
    assert resp.json["message"].startswith("The form body cannot be read"), resp.json["message"]
    assert stored_files(settings) == []
