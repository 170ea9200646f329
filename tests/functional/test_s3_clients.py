"""The real clients against pserve on S3 storage (moto): twine uploads, pip and uv installs, pypi-simple reads."""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from packaging.utils import canonicalize_name
from pypi_simple import PyPISimple

from tests.support.aws import Moto
from tests.support.distbuilder import build_wheel
from tests.support.harness import FOO, FOO_NORMALIZED, YANK_REASON, Clients, Corpus, Server, legacy_twine, plain
from tests.support.legacy import wheel_metadata
from tests.support.s3_harness import (
    PREFIX,
    head_object,
    object_keys,
    read_object,
    s3_checksum,
    start_s3_server,
)
from tests.support.simple_client import MODES, PackageKey, expected_key, key


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def s3_key(path: Path, project: str = FOO_NORMALIZED) -> str:
    return f"{PREFIX}{project}/{path.name}"


def no_proxy_session() -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # no proxy from the environment for 127.0.0.1
    return session


# -- the servers: one redirecting to presigned URLs, one streaming, both on one bucket and one cache ---------


@pytest.fixture(scope="module")
def bucket(moto: Moto) -> str:
    return moto.new_bucket()


@pytest.fixture(scope="module")
def s3_server(moto: Moto, bucket: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = start_s3_server(tmp_path_factory.mktemp("s3-server"), moto, bucket)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def s3_clients(s3_server: Server, tmp_path_factory: pytest.TempPathFactory) -> Clients:
    return Clients(s3_server, tmp_path_factory.mktemp("s3-client-home"))


@pytest.fixture(scope="module")
def s3_published(corpus: Corpus, s3_server: Server, s3_clients: Clients) -> Corpus:
    """The corpus uploaded to the S3 server with twine 7; yankee 2.0 yanked with a reason, 3.0 without."""
    s3_clients.twine(*corpus.published).check()
    s3_server.yank("yankee", "2.0", YANK_REASON)
    s3_server.yank("yankee", "3.0")
    return corpus


@pytest.fixture(scope="module")
def stream_server(
    moto: Moto, bucket: str, s3_server: Server, s3_published: Corpus, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """A second pserve on the same bucket and SQLite cache, with storage.stream_files = true."""
    cache_url = f"sqlite:///{s3_server.folder / 'cache.sqlite'}"
    running = start_s3_server(
        tmp_path_factory.mktemp("s3-stream-server"), moto, bucket, stream_files=True, cache_url=cache_url
    )
    yield running
    running.stop()


@pytest.fixture(scope="module")
def stream_clients(stream_server: Server, tmp_path_factory: pytest.TempPathFactory) -> Clients:
    return Clients(stream_server, tmp_path_factory.mktemp("s3-stream-client-home"))


# -- uploads ---------------------------------------------------------------------------------------------


def test_twine7_uploads_land_in_the_bucket_under_the_prefix(
    s3_published: Corpus, s3_server: Server, moto: Moto, bucket: str
) -> None:
    listed = s3_server.listed_files(FOO_NORMALIZED)
    keys = object_keys(moto, bucket, prefix="")
    assert all(key.startswith(PREFIX) for key in keys), sorted(keys)
    for path in (s3_published.foo_wheel, s3_published.foo_tar, s3_published.foo_zip):
        assert listed.get(path.name) == sha256(path), listed
        assert read_object(moto, bucket, s3_key(path)) == path.read_bytes()
    # The PEP 658 sidecar is stored next to the wheel.
    sidecar = s3_key(s3_published.foo_wheel) + ".metadata"
    assert sidecar in keys
    assert read_object(moto, bucket, sidecar) == wheel_metadata(s3_published.foo_wheel)
    for path in s3_published.published:
        project = canonicalize_name(path.name.split("-")[0])
        assert s3_key(path, project) in keys, path.name


def test_uploaded_objects_carry_their_sha256_checksum(s3_published: Corpus, moto: Moto, bucket: str) -> None:
    # What a reload reads instead of downloading every object to hash it.
    missing = []
    for path in (s3_published.foo_wheel, s3_published.foo_tar, s3_published.foo_zip):
        found = head_object(moto, bucket, s3_key(path))
        assert found["ContentLength"] == path.stat().st_size
        if found.get("ChecksumSHA256") != s3_checksum(path.read_bytes()):
            missing.append((path.name, found.get("ChecksumSHA256")))
    assert not missing, f"objects without their SHA-256 checksum: {missing}"


def test_twine_6_1_uploads_to_s3(
    s3_published: Corpus, s3_server: Server, s3_clients: Clients, moto: Moto, bucket: str
) -> None:
    twine = legacy_twine()
    s3_clients.twine(*s3_published.foo_legacy, executable=twine).check()
    listed = s3_server.listed_files(FOO_NORMALIZED)
    stored = {f.filename: f for f in s3_server.stored_files(FOO)}
    for path in s3_published.foo_legacy:
        assert listed.get(path.name) == sha256(path)
        assert stored[path.name].md5 == hashlib.md5(path.read_bytes()).hexdigest()
        assert read_object(moto, bucket, s3_key(path)) == path.read_bytes()


def test_identical_reupload_succeeds_and_other_bytes_are_refused(
    s3_published: Corpus, s3_server: Server, s3_clients: Clients, moto: Moto, bucket: str, tmp_path: Path
) -> None:
    files = (s3_published.foo_wheel, s3_published.foo_tar, s3_published.foo_zip)
    before = s3_server.listed_files(FOO_NORMALIZED)
    s3_clients.twine(*files).check()
    assert s3_server.listed_files(FOO_NORMALIZED) == before
    impostor = build_wheel(tmp_path, FOO, "1.0", summary="Different bytes, same filename")
    assert impostor.name == s3_published.foo_wheel.name
    done = s3_clients.twine(impostor)
    assert done.returncode != 0, done.output
    assert "File already exists" in plain(done.output), done.output
    assert s3_server.listed_files(FOO_NORMALIZED)[impostor.name] == sha256(s3_published.foo_wheel)
    assert read_object(moto, bucket, s3_key(impostor)) == s3_published.foo_wheel.read_bytes()


# -- downloads through presigned URLs (the default) ------------------------------------------------------


def test_file_urls_redirect_to_presigned_moto_urls(
    s3_published: Corpus, s3_server: Server, moto: Moto, bucket: str
) -> None:
    with no_proxy_session() as http:
        for path in (s3_published.foo_wheel, s3_published.foo_tar, s3_published.foo_zip):
            resp = http.get(f"{s3_server.url}/packages/{FOO_NORMALIZED}/{path.name}", allow_redirects=False)
            assert resp.status_code == 302
            location = resp.headers["Location"]
            assert location.startswith(f"{moto.endpoint_url}/{bucket}/{s3_key(path)}?"), location
            assert http.get(location, timeout=10).content == path.read_bytes()


def test_pip_download_uses_pep658_metadata_and_follows_the_redirect(
    s3_published: Corpus, s3_server: Server, s3_clients: Clients, moto: Moto, bucket: str, tmp_path: Path
) -> None:
    dest = tmp_path / "downloads"
    done = s3_clients.pip(
        "download",
        "--no-deps",
        "-vvv",
        "--only-binary",
        ":all:",
        "--index-url",
        s3_server.simple_url,
        "--dest",
        dest,
        f"{FOO}==1.0",
    ).check()
    wheel = s3_published.foo_wheel.name
    # pip read the dependencies from the PEP 658 sidecar (served by the app itself)...
    assert f"/packages/{FOO_NORMALIZED}/{wheel}.metadata" in done.output, done.output
    # ...then fetched the file: a redirect from the index, the bytes from moto (urllib3 logs both at -vvv).
    assert f'"GET /packages/{FOO_NORMALIZED}/{wheel} HTTP/1.1" 302' in done.output, done.output
    assert f'"GET /{bucket}/{s3_key(s3_published.foo_wheel)}?' in done.output, done.output
    assert [p.name for p in dest.iterdir()] == [wheel]
    assert sha256(dest / wheel) == s3_server.listed_files(FOO_NORMALIZED)[wheel] == sha256(s3_published.foo_wheel)


def test_pip_install_into_a_fresh_venv(s3_published: Corpus, s3_clients: Clients, tmp_path: Path) -> None:
    python = s3_clients.new_venv(tmp_path / "venv")
    s3_clients.pip_install(python, f"{FOO}==1.0", "localver==1.0+cpu", "yankee").check()
    assert s3_clients.module_version(python, "foo_bar_baz") == "1.0"
    assert s3_clients.module_version(python, "localver") == "1.0+cpu"
    assert s3_clients.module_version(python, "yankee") == "1.0"


def test_uv_pip_install(s3_published: Corpus, s3_server: Server, s3_clients: Clients, tmp_path: Path) -> None:
    venv = tmp_path / "uv-venv"
    s3_clients.uv("venv", "--python", sys.executable, venv).check()
    python = venv / "bin" / "python"
    s3_clients.uv(
        "pip", "install", "--python", python, "--index-url", s3_server.simple_url, f"{FOO}==1.0", "localver==1.0+cpu"
    ).check()
    assert s3_clients.module_version(python, "foo_bar_baz") == "1.0"
    assert s3_clients.module_version(python, "localver") == "1.0+cpu"


@pytest.mark.parametrize("client", ["uv", "pip"])
def test_three_installs_with_a_warm_cache_download_the_wheel_from_s3_once(
    client: str, s3_published: Corpus, s3_server: Server, moto: Moto, bucket: str, tmp_path: Path
) -> None:
    # The redirect names the same presigned URL all window long, cacheable: the client's cache answers for it.
    clients = Clients(s3_server, tmp_path / "home")
    wheel = s3_key(s3_published.foo_wheel)
    before = moto.object_downloads(bucket, wheel)
    for run in range(3):
        python = clients.new_venv(tmp_path / f"venv-{run}")
        if client == "uv":
            clients.uv("pip", "install", "--python", python, "--index-url", s3_server.simple_url, f"{FOO}==1.0").check()
        else:
            # pip caches http:// responses of trusted hosts only: moto's too.
            trusted = ("--trusted-host", moto.endpoint_url.removeprefix("http://"))
            args = ("--python", python, "install", *trusted, "--index-url", s3_server.simple_url, f"{FOO}==1.0")
            clients.pip(*args, cache=tmp_path / "pip-cache").check()
        assert clients.module_version(python, "foo_bar_baz") == "1.0"
    assert moto.object_downloads(bucket, wheel) - before == 1, [r for r in moto.requests if r[1].endswith(".whl")]


def test_pypi_simple_html_and_json_agree(s3_published: Corpus, s3_server: Server, tmp_path: Path) -> None:
    def expected(path: Path, *, yanked: bool = False, reason: str | None = None) -> PackageKey:
        return expected_key(path, f"{s3_server.url}/packages/yankee/{path.name}", yanked=yanked, reason=reason)

    wheel_ok, sdist_ok = s3_published.yankee_ok
    want = {
        expected(wheel_ok),
        expected(sdist_ok),
        expected(s3_published.yankee_reason, yanked=True, reason=YANK_REASON),
        expected(s3_published.yankee_no_reason, yanked=True),
    }
    with no_proxy_session() as session, PyPISimple(s3_server.simple_url, session=session) as client:
        for project in (FOO, "pyreq", "yankee"):
            pages = {mode: client.get_project_page(project, accept=accept) for mode, accept in MODES.items()}
            html, json = ({key(pkg) for pkg in pages[mode].packages} for mode in MODES)
            assert html == json, project
            assert html, project
        assert {key(pkg) for pkg in client.get_project_page("yankee", accept=MODES["json"]).packages} == want
        requires = {pkg.filename: pkg.requires_python for pkg in client.get_project_page("pyreq").packages}
        assert requires == {
            s3_published.pyreq_ok.name: ">=3.8",
            s3_published.pyreq_py2.name: "<3",
            s3_published.pyreq_future.name: ">=3.99",
        }
        # Files (through the presigned redirect) and metadata verify against the listed digests.
        for mode, accept in MODES.items():
            wheel = s3_published.foo_wheel.name
            (pkg,) = [p for p in client.get_project_page(FOO, accept=accept).packages if p.filename == wheel]
            target = tmp_path / mode / pkg.filename
            client.download_package(pkg, target, verify=True)
            assert target.read_bytes() == s3_published.foo_wheel.read_bytes()
            assert client.get_package_metadata_bytes(pkg, verify=True) == wheel_metadata(s3_published.foo_wheel)


# -- storage.stream_files = true -------------------------------------------------------------------------


def test_stream_server_sends_the_bytes_itself(s3_published: Corpus, stream_server: Server) -> None:
    path = s3_published.foo_wheel
    with no_proxy_session() as http:
        resp = http.get(f"{stream_server.url}/packages/{FOO_NORMALIZED}/{path.name}", allow_redirects=False)
    assert resp.status_code == 200
    assert resp.content == path.read_bytes()
    assert resp.headers["ETag"] == f'"{sha256(path)}"'


def test_stream_pip_install(s3_published: Corpus, stream_clients: Clients, tmp_path: Path) -> None:
    python = stream_clients.new_venv(tmp_path / "venv")
    stream_clients.pip_install(python, f"{FOO}==1.0", "localver==1.0+cpu").check()
    assert stream_clients.module_version(python, "foo_bar_baz") == "1.0"
    assert stream_clients.module_version(python, "localver") == "1.0+cpu"


def test_stream_uv_pip_install(
    s3_published: Corpus, stream_server: Server, stream_clients: Clients, tmp_path: Path
) -> None:
    venv = tmp_path / "uv-venv"
    stream_clients.uv("venv", "--python", sys.executable, venv).check()
    python = venv / "bin" / "python"
    stream_clients.uv(
        "pip", "install", "--python", python, "--index-url", stream_server.simple_url, f"{FOO}==1.0", "yankee"
    ).check()
    assert stream_clients.module_version(python, "foo_bar_baz") == "1.0"
    assert stream_clients.module_version(python, "yankee") == "1.0"


def test_stream_range_head_and_metadata(s3_published: Corpus, stream_server: Server) -> None:
    with no_proxy_session() as http:
        for path in (s3_published.foo_wheel, s3_published.foo_tar, s3_published.foo_zip):
            url = f"{stream_server.url}/packages/{FOO_NORMALIZED}/{path.name}"
            body = path.read_bytes()
            ranged = http.get(url, headers={"Range": "bytes=0-9"}, allow_redirects=False)
            assert ranged.status_code == 206, path.name
            assert ranged.content == body[:10]
            assert ranged.headers["Content-Range"] == f"bytes 0-9/{len(body)}"
            head = http.head(url, allow_redirects=False)
            assert head.status_code == 200
            assert head.headers["Content-Length"] == str(len(body))
            assert head.content == b""
        meta = http.get(f"{stream_server.url}/packages/{FOO_NORMALIZED}/{s3_published.foo_wheel.name}.metadata")
    assert meta.status_code == 200
    assert meta.content == wheel_metadata(s3_published.foo_wheel)
    assert meta.headers["Content-Type"] == "text/plain; charset=utf-8"


def test_stream_missing_object_is_a_404_not_a_500(
    stream_server: Server, s3_clients: Clients, moto: Moto, bucket: str, tmp_path: Path
) -> None:
    # The row stays, the object goes behind the index's back (a lifecycle rule, a manual delete).
    wheel = build_wheel(tmp_path, "vanishing", "1.0")
    s3_clients.twine(wheel).check()
    moto.client("s3").delete_object(Bucket=bucket, Key=s3_key(wheel, "vanishing"))
    with no_proxy_session() as http:
        resp = http.get(f"{stream_server.url}/packages/vanishing/{wheel.name}")
    assert resp.status_code == 404, (resp.status_code, resp.text[:300])
    assert resp.headers["Content-Type"] == "application/json"
    assert wheel.name in resp.json()["message"]


def test_health_on_both_servers(s3_server: Server, stream_server: Server) -> None:
    for server in (s3_server, stream_server):
        status, _headers, body = server.get("/health")
        assert status == 200, body
