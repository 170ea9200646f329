"""Fuzzing the legacy upload form: never a 5xx, a rejection stores nothing, an acceptance is listed."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import webtest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from pypicloud_lite.config import load_settings
from pypicloud_lite.web import make_app
from tests.support.common import (
    UPLOADER,
    UPLOADER_PASSWORD,
    basic_auth,
    services,
)
from tests.support.distbuilder import build_sdist, build_wheel
from tests.support.legacy import all_digests, twine_fields
from tests.support.settings import server_settings


@dataclass
class Site:
    testapp: webtest.TestApp
    root: Path
    dists: list[Path]

    def state(self) -> tuple[set[str], dict[str, str | None], set[str]]:
        """(stored objects, rows as filename: sha256, spool files)."""
        stored = {
            str(p.relative_to(self.root / "packages")) for p in (self.root / "packages").rglob("*") if p.is_file()
        }
        rows = {f.filename: f.sha256 for f in services(self.testapp.app).index.cache.all_files()}
        spool = {p.name for p in (self.root / "spool").glob("*") if p.is_file()}
        return stored, rows, spool


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    root = tmp_path / "site"
    app = make_app(load_settings(server_settings(root), environ={}))
    dists = tmp_path / "dists"
    built = [build_wheel(dists, "Demo", v) for v in ("1.0", "2.0", "3.0")] + [
        build_sdist(dists, "Demo", v) for v in ("1.0", "2.0")
    ]
    yield Site(webtest.TestApp(app), root, built)
    services(app).index.cache.close()


# Text a multipart body can carry (no lone surrogates: they cannot be encoded at all).
TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40)
ODD = st.one_of(
    TEXT,
    st.sampled_from(
        [
            "",
            " ",
            "\x00",
            "ǅemo",
            "\uff24\uff45\uff4d\uff4f",
            "demo\n1",
            "../../etc",
            "x" * 70_000,
            "1.0" * 30_000,
            "🐍",
        ]
    ),
)


# Bounded: PPC_FUZZ_EXAMPLES raises it for a longer hunt.
FUZZ = settings(
    max_examples=int(os.environ.get("PPC_FUZZ_EXAMPLES", "200")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)


def maybe(values: list[str]) -> st.SearchStrategy[str | None]:
    """One of `values` (as a client would send), odd text, or the field left out."""
    return st.one_of(st.sampled_from(values), ODD, st.none())


@st.composite
def uploads(draw: st.DrawFn, site: Site) -> tuple[list[tuple[str, str]], tuple[str, str, bytes] | None]:
    base = draw(st.sampled_from(site.dists))
    version = base.name.split("-")[1].removesuffix(".tar.gz")
    data = base.read_bytes()
    content = draw(
        st.one_of(
            st.just(data),
            st.just(data),
            st.binary(max_size=2000),
            st.builds(
                lambda i, b: data[:i] + b + data[i + len(b) :], st.integers(0, len(data)), st.binary(max_size=64)
            ),
            st.just(data[: len(data) // 2]),
        )
    )
    filename = draw(
        st.one_of(
            st.just(base.name), st.just(base.name), st.sampled_from([p.name for p in site.dists]), TEXT, st.none()
        )
    )
    fields: dict[str, str | None] = dict(twine_fields("Demo", version, base.name, content))
    fields.update(all_digests(content))
    for key, choices in (
        (":action", ["file_upload", "remove_pkg", "doc_upload", "submit"]),
        ("name", ["Demo", "demo", "de_mo", "other"]),
        ("version", ["1.0", "1.0.0", "2.0", "v1"]),
        ("filetype", ["bdist_wheel", "sdist", "bdist_egg"]),
        ("metadata_version", ["2.1", "2.4", "3.0", "1.0"]),
        ("protocol_version", ["1", "2"]),
        ("sha256_digest", [all_digests(content)["sha256_digest"], all_digests(data)["sha256_digest"], "0" * 64]),
        ("md5_digest", [all_digests(content)["md5_digest"], "0" * 32]),
        ("blake2_256_digest", [all_digests(content)["blake2_256_digest"], "0" * 64]),
    ):
        if draw(st.integers(0, 5)) == 0:  # mostly what twine sends, one or two fields off
            fields[key] = draw(maybe(choices))
    params = [(k, v) for k, v in fields.items() if v is not None]
    params += draw(st.lists(st.tuples(ODD, ODD), max_size=3))
    return params, (None if filename is None else ("content", filename, content))


BOUNDARY = "----ppc-fuzz-7d3f0c2a9b1e"


def _quoted(text: str) -> bytes:
    """A name or filename in Content-Disposition, escaped as browsers do; UTF-8 as the WHATWG spec says."""
    return text.replace("\r", "%0D").replace("\n", "%0A").replace('"', "%22").encode("utf-8")


def multipart(params: list[tuple[str, str]], file: tuple[str, str, bytes] | None) -> bytes:
    """The body of a multipart/form-data POST, any unicode in UTF-8 (webtest only encodes Latin-1 names)."""
    parts = [
        b'Content-Disposition: form-data; name="' + _quoted(key) + b'"\r\n\r\n' + value.encode("utf-8")
        for key, value in params
    ]
    if file is not None:
        head = b'Content-Disposition: form-data; name="content"; filename="' + _quoted(file[1]) + b'"\r\n'
        parts.append(head + b"Content-Type: application/octet-stream\r\n\r\n" + file[2])
    sep = b"--" + BOUNDARY.encode()
    return b"".join(sep + b"\r\n" + part + b"\r\n" for part in parts) + sep + b"--\r\n"


def post(site: Site, body: bytes, content_type: str) -> webtest.TestResponse:
    """A legacy upload of this exact body, as the uploader."""
    request = webtest.TestRequest.blank(
        "/legacy/",
        method="POST",
        body=body,
        content_type=content_type,
        headers=basic_auth(UPLOADER, UPLOADER_PASSWORD),
    )
    return site.testapp.do_request(request, status="*", expect_errors=True)


def posted(site: Site, body: bytes, content_type: str) -> tuple[webtest.TestResponse, Any, Any]:
    """(response, state before, state after) of an upload that must not fail the server or half-store."""
    before = site.state()
    resp = post(site, body, content_type)
    assert resp.status_int < 500, resp.text[:2000]
    event(f"{resp.status_int} {resp.text[:60]!r}" if resp.status_int >= 400 else f"{resp.status_int}")
    after = site.state()
    assert not after[2], f"spool files left: {after[2]}"
    if resp.status_int >= 400:
        assert after == before, f"a rejected upload ({resp.status_int}: {resp.text[:300]}) changed what is stored"
    return resp, before, after


def check_upload(site: Site, params: list[tuple[str, str]], file: tuple[str, str, bytes] | None) -> None:
    resp, _before, after = posted(site, multipart(params, file), f"multipart/form-data; boundary={BOUNDARY}")
    if resp.status_int >= 400:
        return
    assert resp.status_int == 200, resp.status
    assert file is not None
    filename, content = file[1], file[2]
    assert after[1].get(filename) == hashlib.sha256(content).hexdigest(), (filename, resp.text[:300])
    page = site.testapp.get("/simple/demo/", headers={"Accept": "application/vnd.pypi.simple.v1+json"}).json
    listed = {f["filename"]: f["hashes"]["sha256"] for f in page["files"]}
    assert listed[filename] == hashlib.sha256(content).hexdigest()


@FUZZ
@given(data=st.data())
def test_fuzzed_upload_forms_never_fail_the_server(site: Site, data: Any) -> None:
    params, file = data.draw(uploads(site))
    check_upload(site, params, file)


@st.composite
def mangled_bodies(draw: st.DrawFn, site: Site) -> tuple[bytes, str]:
    """A twine upload's multipart body with bytes cut, replaced or inserted, under an odd Content-Type at times."""
    base = draw(st.sampled_from(site.dists))
    version = base.name.split("-")[1].removesuffix(".tar.gz")
    params = list(twine_fields("Demo", version, base.name, base.read_bytes()).items())
    body = multipart(params, ("content", base.name, base.read_bytes()))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(body)))
        cut = draw(st.integers(0, 80))
        body = body[:at] + draw(st.binary(max_size=40)) + body[at + cut :]
    content_type = draw(
        st.one_of(
            st.just(f"multipart/form-data; boundary={BOUNDARY}"),
            st.just(f"multipart/form-data; boundary={BOUNDARY[:-1]}"),
            st.just("multipart/form-data"),
            st.just("application/x-www-form-urlencoded"),
            st.just(f'multipart/form-data; boundary="{BOUNDARY}"; charset=latin-1'),
            TEXT.map(lambda t: "multipart/form-data; boundary=" + t.encode("ascii", "replace").decode()),
        )
    )
    return body, content_type


@FUZZ
@given(data=st.data())
def test_mangled_multipart_bodies_never_fail_the_server(site: Site, data: Any) -> None:
    body, content_type = data.draw(mangled_bodies(site))
    resp, before, after = posted(site, body, content_type)
    if resp.status_int < 400:
        assert set(after[1]) - set(before[1]) <= {p.name for p in site.dists}
        for filename in set(after[1]) - set(before[1]):
            assert after[1][filename] == hashlib.sha256((site.dists[0].parent / filename).read_bytes()).hexdigest()


def test_a_form_declaring_another_charset_is_a_400(site: Site) -> None:
    """Found by the fuzzer: webob raises DeprecationWarning for a non-UTF-8 charset, which was a 500."""
    wheel = site.dists[0]
    params = list(twine_fields("Demo", "1.0", wheel.name, wheel.read_bytes()).items())
    body = multipart(params, ("content", wheel.name, wheel.read_bytes()))
    before = site.state()
    resp = post(site, body, f'multipart/form-data; boundary="{BOUNDARY}"; charset=latin-1')
    assert resp.status_int == 400, resp.text[:500]
    assert resp.json["message"] == "Form bodies must be UTF-8, not charset=latin-1."
    assert site.state() == before
