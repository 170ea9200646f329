"""The files view, uploads and /health on S3 storage (moto): presigned redirects, streaming, and S3 failures."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import re
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import webtest
from botocore.exceptions import ClientError, EndpointConnectionError

from pypicloud_lite.config import load_settings
from pypicloud_lite.errors import ConfigError
from pypicloud_lite.file_lease import FileLease
from pypicloud_lite.models import HeldLease
from pypicloud_lite.service import PackageIndex
from pypicloud_lite.storage.s3 import S3Storage
from pypicloud_lite.web import make_app
from tests.support.aws import Moto
from tests.support.common import UPLOADER, UPLOADER_PASSWORD, basic_auth, services
from tests.support.distbuilder import build_wheel
from tests.support.legacy import sha256, upload_dist, wheel_metadata
from tests.support.settings import server_settings
from tests.support.webapp import ALL_URLS, METADATA_URL, SDIST_URL, WHEEL_URL, Shared, Uploaded

PREFIX = "packages/"
WHEEL = WHEEL_URL.rsplit("/", 1)[1]
SDIST = SDIST_URL.rsplit("/", 1)[1]
STREAM = pytest.mark.parametrize("stream_files", [True], ids=["stream"])
# Headers whose values must not depend on where the bytes are stored (Last-Modified is the upload time).
COMPARED_HEADERS = ("Content-Type", "Content-Length", "Content-Range", "ETag", "Accept-Ranges", "Cache-Control")
ErrorFactory = Callable[[str], Exception]


def client_error(code: str, status: int) -> ErrorFactory:
    def make(operation: str) -> Exception:
        response = {"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}}
        error: Exception = ClientError(response, operation)
        return error

    return make


def unreachable(operation: str) -> Exception:
    error: Exception = EndpointConnectionError(endpoint_url="http://127.0.0.1:9/")
    return error


TRANSIENT: dict[str, ErrorFactory] = {
    "SlowDown": client_error("SlowDown", 503),
    "ServiceUnavailable": client_error("ServiceUnavailable", 503),
    "EndpointConnectionError": unreachable,
}


# -- fixtures ------------------------------------------------------------------


@pytest.fixture
def stream_files() -> bool:
    """Redirect to presigned URLs unless a test parametrizes this to True."""
    return False


@pytest.fixture
def extra() -> dict[str, str]:
    """More settings, for tests that parametrize this."""
    return {}


@pytest.fixture
def bucket(moto: Moto) -> str:
    return moto.new_bucket()


@pytest.fixture
def raw_settings(
    raw_settings: dict[str, Any], moto: Moto, bucket: str, stream_files: bool, extra: dict[str, str]
) -> dict[str, Any]:
    """The shared settings with storage in a new moto bucket instead of a folder."""
    kept = {k: v for k, v in raw_settings.items() if k != "storage.dir"}
    return {**kept, **moto.s3_settings(bucket, PREFIX), "storage.stream_files": str(stream_files).lower(), **extra}


@pytest.fixture
def s3(moto: Moto) -> Any:
    return moto.client("s3")


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        session.trust_env = False  # no proxy from the environment for 127.0.0.1
        yield session


@pytest.fixture(scope="module")
def stream_shared(moto: Moto, readonly: Shared, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shared]:
    """An S3 app streaming files, holding the very bytes of `readonly` (the same app on local storage)."""
    root = tmp_path_factory.mktemp("s3-stream")
    storage = {"storage.dir": None, **moto.s3_settings(moto.new_bucket(), PREFIX), "storage.stream_files": "true"}
    user = {f"user.{UPLOADER}": readonly_hash(readonly), "auth.admins": None}
    raw = server_settings(root, {**storage, "upload.spool_dir": None, **user})
    app = make_app(load_settings(raw, environ={}))
    testapp = webtest.TestApp(app)
    auth = basic_auth(UPLOADER, UPLOADER_PASSWORD)
    assert upload_dist(testapp, auth, readonly.wheel, "Foo.Bar", "1.0").status_int == 200
    assert upload_dist(testapp, auth, readonly.sdist, "Foo.Bar", "1.0").status_int == 200
    yield Shared(app=testapp, wheel=readonly.wheel, sdist=readonly.sdist)
    services(app).index.cache.close()


def readonly_hash(readonly: Shared) -> str:
    """The uploader's password hash in the `readonly` app (reused: argon2 is slow on purpose)."""
    return dict(services(readonly.app.app).settings.auth.users)[UPLOADER]


# -- helpers -------------------------------------------------------------------


def s3_key(filename: str, project: str = "foo-bar") -> str:
    return f"{PREFIX}{project}/{filename}"


def bucket_keys(s3: Any, bucket: str) -> list[str]:
    return sorted(item["Key"] for item in s3.list_objects_v2(Bucket=bucket).get("Contents", []))


def fetch(testapp: webtest.TestApp, url: str, method: str = "GET", **kwargs: Any) -> webtest.TestResponse:
    """The response, whatever its status; an exception escaping the app (while it sends the body) fails the test.

    Under a real WSGI server such an exception is a bare 500 (or a connection cut mid-body), never the
    JSON error the exception views would have made.
    """
    try:
        return testapp.request(url, method=method, expect_errors=True, **kwargs)
    except Exception as exc:
        pytest.fail(
            f"{method} {url} raised {exc.__class__.__name__}({exc}) out of the WSGI app while sending the body: "
            "the error escaped the exception views (a WSGI server answers 500)"
        )


def assert_json_error(resp: webtest.TestResponse, status: int) -> str:
    assert resp.status_int == status, (resp.status, resp.body[:500])
    assert resp.headers["Content-Type"] == "application/json"
    assert resp.json["status"] == status
    message: str = resp.json["message"]
    assert message
    assert resp.status == f"{status} {message}"
    return message


def storage_client(testapp: webtest.TestApp) -> Any:
    """The app's own boto3 S3 client, on which tests register botocore event handlers."""
    storage = services(testapp.app).index.storage
    assert isinstance(storage, S3Storage)
    return storage.client


class Failing:
    """The app's S3 client raising `error` for `operation` on the keys `only` accepts, until stop()."""

    def __init__(
        self, testapp: webtest.TestApp, operation: str, error: ErrorFactory, only: Callable[[str], bool]
    ) -> None:
        self.client = storage_client(testapp)
        self.event = f"before-call.s3.{operation}"
        self.operation = operation
        self.error = error
        self.only = only
        self.failed: list[str] = []
        self.client.meta.events.register(self.event, self._before_call)

    def _before_call(self, params: dict[str, Any], **kwargs: Any) -> None:
        key = str(params["url_path"]).split("?", 1)[0]
        if self.only(key):
            self.failed.append(key)
            raise self.error(self.operation)

    def stop(self) -> None:
        self.client.meta.events.unregister(self.event, self._before_call)


def head(s3: Any, bucket: str, key: str) -> dict[str, Any]:
    found: dict[str, Any] = s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    return found


def presigned_expiry(url: str) -> int:
    """Seconds a presigned URL stays valid: X-Amz-Expires (SigV4), or Expires, an epoch time (SigV2)."""
    query = parse_qs(urlsplit(url).query)
    if "X-Amz-Expires" in query:
        return int(query["X-Amz-Expires"][0])
    assert "Signature" in query, url
    return round(int(query["Expires"][0]) - time.time())


def b64_sha256(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


# -- redirect mode (the default) -----------------------------------------------


def test_redirects_to_a_presigned_url_that_serves_the_bytes_and_ranges(
    testapp: webtest.TestApp, uploaded: Uploaded, moto: Moto, bucket: str, http: requests.Session
) -> None:
    for url, path in ((WHEEL_URL, uploaded.wheel), (SDIST_URL, uploaded.sdist)):
        body = path.read_bytes()
        resp = testapp.get(url, status=302)
        location = resp.headers["Location"]
        assert location.startswith(f"{moto.endpoint_url}/{bucket}/{s3_key(path.name)}?"), location
        # Valid for the window (1 hour) plus storage.presign_expiry; cacheable until the window ends at most.
        assert presigned_expiry(location) == 3600 + 300
        assert re.fullmatch(r"public, max-age=(\d+)", resp.headers["Cache-Control"]), resp.headers["Cache-Control"]
        assert 0 < int(resp.headers["Cache-Control"].rsplit("=", 1)[1]) <= 3600

        whole = http.get(location, timeout=10)
        assert whole.status_code == 200
        assert whole.content == body
        ranged = http.get(location, headers={"Range": "bytes=0-9"}, timeout=10)
        assert ranged.status_code == 206
        assert ranged.content == body[:10]
        assert ranged.headers["Content-Range"] == f"bytes 0-9/{len(body)}"
    # The PEP 658 sidecar is small: the app serves it itself.
    meta = testapp.get(METADATA_URL, status=200)
    assert meta.body == wheel_metadata(uploaded.wheel)
    assert meta.headers["ETag"] == f'"{sha256(meta.body)}"'
    # Each redirect is counted as a download (S3 serves the bytes); the sidecar is not a download.
    counted = services(testapp.app).downloads.counts("foo-bar")
    assert counted == {uploaded.wheel.name: 1, uploaded.sdist.name: 1}


@pytest.mark.parametrize("extra", [{"storage.presign_expiry": "60"}], ids=["expiry-60"])
def test_presign_expiry_is_the_setting(testapp: webtest.TestApp, uploaded: Uploaded) -> None:
    assert presigned_expiry(testapp.get(WHEEL_URL, status=302).headers["Location"]) == 3600 + 60


def at(testapp: webtest.TestApp, when: float) -> webtest.TestResponse:
    """GET the wheel with the storage's clock at `when` (epoch seconds)."""
    storage = services(testapp.app).index.storage
    assert isinstance(storage, S3Storage)
    storage.clock = lambda: when
    return testapp.get(WHEEL_URL, status=302)


WINDOW_START = 1_800_000_000 - 1_800_000_000 % 3600  # 2027-01-15T08:00:00Z


def test_one_presigned_url_per_window_cacheable_until_the_window_ends(
    testapp: webtest.TestApp, uploaded: Uploaded
) -> None:
    first, later = at(testapp, WINDOW_START + 10), at(testapp, WINDOW_START + 3599)
    assert first.headers["Location"] == later.headers["Location"]
    assert parse_qs(urlsplit(first.headers["Location"]).query)["X-Amz-Date"] == ["20270115T080000Z"]
    assert first.headers["Cache-Control"] == "public, max-age=3590"
    assert later.headers["Cache-Control"] == "public, max-age=1"
    # Credentials make the redirect private: no shared cache keeps what they unlocked.
    authorized = testapp.get(WHEEL_URL, headers=basic_auth(UPLOADER, UPLOADER_PASSWORD), status=302)
    assert authorized.headers["Cache-Control"] == "private, max-age=1"
    following = at(testapp, WINDOW_START + 3600)
    assert following.headers["Location"] != first.headers["Location"]
    assert parse_qs(urlsplit(following.headers["Location"]).query)["X-Amz-Date"] == ["20270115T090000Z"]
    assert following.headers["Cache-Control"] == "public, max-age=3600"


@pytest.mark.parametrize("extra", [{"storage.presign_window": "0"}], ids=["no-window"])
def test_without_a_window_each_redirect_is_signed_anew_and_not_stored(
    testapp: webtest.TestApp, uploaded: Uploaded
) -> None:
    first, later = at(testapp, WINDOW_START + 10), at(testapp, WINDOW_START + 11)
    assert first.headers["Location"] != later.headers["Location"]
    assert "no-store" in first.headers["Cache-Control"]
    assert presigned_expiry(first.headers["Location"]) == 300


def test_a_url_valid_beyond_seven_days_is_refused(raw_settings: dict[str, Any]) -> None:
    def load(window: str) -> Any:
        return load_settings({**raw_settings, "storage.presign_window": window, "storage.presign_expiry": "1d"}, {})

    assert load("6d").storage.s3.presign.validity == 7 * 86400
    with pytest.raises(ConfigError, match="exceed 7 days"):
        load("7d")


def test_head_is_answered_by_the_server_and_the_redirect_serves_get_at_moto(
    testapp: webtest.TestApp, uploaded: Uploaded, http: requests.Session
) -> None:
    # S3 signs the method: a URL presigned for GET is refused for HEAD, so HEAD never gets that redirect.
    body = uploaded.wheel.read_bytes()
    head = testapp.head(WHEEL_URL, status=200)
    assert head.headers["Content-Length"] == str(len(body))
    assert head.headers["ETag"] == f'"{sha256(body)}"'
    assert "Location" not in head.headers
    assert services(testapp.app).downloads.counts("foo-bar") == {}
    # The windowed URL (signed up to an hour ago) serves the bytes.
    got = http.get(testapp.get(WHEEL_URL, status=302).headers["Location"], timeout=10)
    assert got.status_code == 200
    assert got.content == body


def test_presigned_urls_are_signed_with_sigv4(testapp: webtest.TestApp, uploaded: Uploaded) -> None:
    # Without signature_version="s3v4" in its Config, botocore presigns with SigV2 in the regions that still
    # take it (us-east-1 among them). AWS refuses SigV2 for SSE-KMS objects (storage.sse = aws:kms) and for
    # buckets created since mid-2020; SigV4 works everywhere.
    query = parse_qs(urlsplit(testapp.get(WHEEL_URL, status=302).headers["Location"]).query)
    assert query.get("X-Amz-Algorithm") == ["AWS4-HMAC-SHA256"], f"not a SigV4 presigned URL: {sorted(query)}"
    assert "X-Amz-Signature" in query


def test_objects_land_under_the_prefix_with_a_metadata_sidecar(
    testapp: webtest.TestApp, uploaded: Uploaded, s3: Any, bucket: str
) -> None:
    keys = bucket_keys(s3, bucket)
    assert all(key.startswith(PREFIX) for key in keys), keys
    assert {s3_key(WHEEL), s3_key(SDIST), s3_key(WHEEL + ".metadata")} <= set(keys)
    for path in (uploaded.wheel, uploaded.sdist):
        stored = s3.get_object(Bucket=bucket, Key=s3_key(path.name))["Body"].read()
        assert stored == path.read_bytes()
    sidecar = s3.get_object(Bucket=bucket, Key=s3_key(WHEEL + ".metadata"))["Body"].read()
    assert sidecar == wheel_metadata(uploaded.wheel)


def test_objects_carry_their_sha256_checksum(
    testapp: webtest.TestApp, uploaded: Uploaded, s3: Any, bucket: str, index: PackageIndex
) -> None:
    # A reload reads the checksum from HeadObject instead of downloading every object to hash it.
    for path in (uploaded.wheel, uploaded.sdist):
        found = head(s3, bucket, s3_key(path.name))
        assert found.get("ChecksumSHA256") == b64_sha256(path.read_bytes()), f"{path.name}: no SHA-256 checksum"
        stat = index.storage.stat(f"foo-bar/{path.name}")
        assert stat is not None
        assert stat.sha256 == sha256(path.read_bytes())


# -- stream mode -----------------------------------------------------------------


def parity_cases(url: str, resp: webtest.TestResponse) -> dict[str, tuple[str, dict[str, str]]]:
    """Requests whose answers must not depend on the storage; validators taken from `resp`, a plain GET."""
    etag, last_modified = resp.headers["ETag"], resp.headers["Last-Modified"]
    return {
        "get": ("GET", {}),
        "head": ("HEAD", {}),
        "range": ("GET", {"Range": "bytes=0-9"}),
        "open-range": ("GET", {"Range": "bytes=10-"}),
        "suffix-range": ("GET", {"Range": "bytes=-5"}),
        "unsatisfiable": ("GET", {"Range": "bytes=100000000-"}),
        "if-none-match": ("GET", {"If-None-Match": etag}),
        "if-none-match-weak": ("GET", {"If-None-Match": f"W/{etag}"}),
        "if-none-match-other": ("GET", {"If-None-Match": '"other"'}),
        "if-none-match-star": ("GET", {"If-None-Match": "*"}),
        "head-if-none-match": ("HEAD", {"If-None-Match": etag}),
        "if-range-etag": ("GET", {"Range": "bytes=0-9", "If-Range": etag}),
        "if-range-stale": ("GET", {"Range": "bytes=0-9", "If-Range": '"0000"'}),
        "if-range-date": ("GET", {"Range": "bytes=0-9", "If-Range": last_modified}),
    }


@pytest.mark.parametrize("url", ALL_URLS)
def test_stream_mode_answers_as_local_storage_does(readonly: Shared, stream_shared: Shared, url: str) -> None:
    local_get, s3_get = readonly.app.get(url), fetch(stream_shared.app, url)
    assert s3_get.status_int == 200, s3_get.status
    local_cases, s3_cases = parity_cases(url, local_get), parity_cases(url, s3_get)
    statuses = set()
    for case, (method, headers) in local_cases.items():
        local = readonly.app.request(url, method=method, headers=headers, expect_errors=True)
        on_s3 = fetch(stream_shared.app, url, method=method, headers=s3_cases[case][1])
        assert (on_s3.status, on_s3.body) == (local.status, local.body), case
        for name in COMPARED_HEADERS:
            assert on_s3.headers.get(name) == local.headers.get(name), (case, name)
        assert ("Location" in on_s3.headers) is False, case
        statuses.add(local.status_int)
    assert statuses == {200, 206, 304, 416}


@STREAM
def test_stream_mode_reads_only_the_requested_range_from_s3(testapp: webtest.TestApp, uploaded: Uploaded) -> None:
    ranges: list[str | None] = []

    def record(params: dict[str, Any], **kwargs: Any) -> None:
        ranges.append(params["headers"].get("Range"))

    storage_client(testapp).meta.events.register("before-call.s3.GetObject", record)
    body = uploaded.wheel.read_bytes()
    assert testapp.get(WHEEL_URL, headers={"Range": "bytes=5-14"}, status=206).body == body[5:15]
    assert ranges == ["bytes=5-14"]
    # HEAD and 304 answers never fetch the object.
    testapp.head(WHEEL_URL, status=200)
    testapp.get(WHEEL_URL, headers={"If-None-Match": f'"{sha256(body)}"'}, status=304)
    assert ranges == ["bytes=5-14"]


@pytest.mark.parametrize("stream_files", [False, True], ids=["redirect", "stream"])
def test_a_missing_sidecar_is_read_again_and_only_a_missing_wheel_is_404(
    testapp: webtest.TestApp, uploaded: Uploaded, s3: Any, bucket: str
) -> None:
    s3.delete_object(Bucket=bucket, Key=s3_key(WHEEL + ".metadata"))
    served = fetch(testapp, METADATA_URL)
    assert served.status_int == 200
    assert s3.get_object(Bucket=bucket, Key=s3_key(WHEEL + ".metadata"))["Body"].read() == served.body

    s3.delete_object(Bucket=bucket, Key=s3_key(WHEEL + ".metadata"))
    s3.delete_object(Bucket=bucket, Key=s3_key(WHEEL))
    assert services(testapp.app).index.cache.get_file(WHEEL) is not None
    message = assert_json_error(fetch(testapp, METADATA_URL), 404)
    assert WHEEL in message


@STREAM
@pytest.mark.parametrize("url", [WHEEL_URL, SDIST_URL], ids=["wheel", "sdist"])
def test_stream_mode_missing_object_is_404_with_a_message(
    testapp: webtest.TestApp, uploaded: Uploaded, s3: Any, bucket: str, url: str
) -> None:
    # The row remains, the object was removed behind the index's back (a lifecycle rule, a manual delete).
    filename = url.rsplit("/", 1)[1]
    s3.delete_object(Bucket=bucket, Key=s3_key(filename))
    assert services(testapp.app).index.cache.get_file(filename) is not None
    message = assert_json_error(fetch(testapp, url), 404)
    assert filename in message


@STREAM
@pytest.mark.parametrize("error", TRANSIENT.values(), ids=TRANSIENT.keys())
@pytest.mark.parametrize("url", [WHEEL_URL, METADATA_URL], ids=["file", "metadata"])
def test_stream_mode_s3_read_failure_is_503_with_retry_after(
    testapp: webtest.TestApp, uploaded: Uploaded, error: ErrorFactory, url: str
) -> None:
    failing = Failing(testapp, "GetObject", error, only=lambda key: True)
    resp = fetch(testapp, url)
    assert failing.failed, "GetObject was not called"
    message = assert_json_error(resp, 503)
    assert resp.headers["Retry-After"] == "5"
    assert "S3" in message
    assert "try again" in message
    failing.stop()
    assert testapp.get(url, status=200).body


# -- uploads ---------------------------------------------------------------------


@pytest.mark.parametrize("error", TRANSIENT.values(), ids=TRANSIENT.keys())
@pytest.mark.parametrize("which", ["file", "sidecar", "record"])
def test_s3_write_failure_is_503_and_leaves_nothing(
    testapp: webtest.TestApp,
    auth: dict[str, str],
    dist_dir: Path,
    s3: Any,
    bucket: str,
    error: ErrorFactory,
    which: str,
) -> None:
    wheel = build_wheel(dist_dir, "Foo.Bar", "1.0")
    index = services(testapp.app).index
    spool = services(testapp.app).settings.upload.spool_dir
    assert spool is not None
    kinds = {"sidecar": lambda key: key.endswith(".metadata"), "record": lambda key: "/_ppc/files/" in key}
    failing = Failing(
        testapp, "PutObject", error, only=kinds.get(which, lambda key: "/_ppc/" not in key and ".metadata" not in key)
    )
    resp = upload_dist(testapp, auth, wheel, "Foo.Bar", "1.0", status=503)
    assert failing.failed, "PutObject was not called"
    message = assert_json_error(resp, 503)
    assert resp.headers["Retry-After"] == "5"
    assert "S3" in message
    assert "try again" in message
    # Neither an object nor a row (nor a spooled copy): the next attempt starts from scratch. Only the
    # new project's state (its display name) may stay: it shows nowhere until a file joins the project.
    assert [key for key in bucket_keys(s3, bucket) if key != f"{PREFIX}_ppc/projects/foo-bar.json"] == []
    assert not list(spool.glob("ppc-upload-*"))
    assert index.cache.get_file(wheel.name) is None
    testapp.get("/simple/foo-bar/", status=404)
    failing.stop()
    assert upload_dist(testapp, auth, wheel, "Foo.Bar", "1.0").json["message"] == "OK"
    assert bucket_keys(s3, bucket) == [
        f"{PREFIX}_ppc/files/foo-bar/{wheel.name}.json",
        f"{PREFIX}_ppc/projects/foo-bar.json",
        s3_key(wheel.name),
        s3_key(wheel.name + ".metadata"),
    ]


def test_s3_access_denied_on_upload_is_500_naming_access(
    testapp: webtest.TestApp, auth: dict[str, str], dist_dir: Path, s3: Any, bucket: str
) -> None:
    wheel = build_wheel(dist_dir, "Foo.Bar", "1.0")
    index = services(testapp.app).index
    Failing(testapp, "PutObject", client_error("AccessDenied", 403), only=lambda key: True)
    resp = upload_dist(testapp, auth, wheel, "Foo.Bar", "1.0", status=500)
    message = assert_json_error(resp, 500)
    # Not an outage: no Retry-After (tests/web/test_aws_credentials.py has every credentials problem).
    assert "Retry-After" not in resp.headers
    assert "not allowed" in message
    assert "credentials" in message
    assert bucket_keys(s3, bucket) == []
    assert index.cache.get_file(wheel.name) is None


def test_racing_uploads_of_other_bytes_one_wins(
    testapp: webtest.TestApp,
    auth: dict[str, str],
    tmp_path: Path,
    s3: Any,
    bucket: str,
    http: requests.Session,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The filename's lease serializes uploads of one filename; S3's conditional write is the second line
    # of defence, for a lease that lapsed (an upload slower than FILE_LEASE_TTL): this test takes the lease away.
    index = services(testapp.app).index

    def no_lease(_filename: str, project: str | None = None) -> contextlib.AbstractContextManager[FileLease]:
        return contextlib.nullcontext(
            FileLease(HeldLease("file:none", "nobody"), None, index.find_project(project or ""))
        )

    monkeypatch.setattr(index, "_file_lease", no_lease)
    first = build_wheel(tmp_path / "a", "Foo.Bar", "1.0", summary="first")
    second = build_wheel(tmp_path / "b", "Foo.Bar", "1.0", summary="second")
    assert first.name == second.name
    assert first.read_bytes() != second.read_bytes()
    client = storage_client(testapp)
    # Both uploads pass the index's "not there yet" check, then their conditional writes reach S3 one
    # after the other (S3 makes If-None-Match atomic; moto does not, so the test orders the writes).
    both_checked = threading.Barrier(2, timeout=20)
    one_at_a_time = threading.Lock()
    holding = threading.local()
    write_statuses: list[int] = []

    def before(params: dict[str, Any], **kwargs: Any) -> None:
        if str(params["url_path"]).endswith(".whl"):  # the file itself: not its sidecar, record or project state
            both_checked.wait()
            assert one_at_a_time.acquire(timeout=20)
            holding.lock = True

    def after(http_response: Any, **kwargs: Any) -> None:
        if getattr(holding, "lock", False):
            write_statuses.append(http_response.status_code)
            holding.lock = False
            one_at_a_time.release()

    client.meta.events.register("before-call.s3.PutObject", before)
    client.meta.events.register("after-call.s3.PutObject", after)

    def upload(path: Path) -> webtest.TestResponse:
        return upload_dist(webtest.TestApp(testapp.app), auth, path, "Foo.Bar", "1.0", status="*")

    with ThreadPoolExecutor(2) as pool:
        responses = list(pool.map(upload, (first, second)))
    assert sorted(resp.status_int for resp in responses) == [200, 400], [r.status for r in responses]
    # The loser's conditional write was refused by S3 (If-None-Match: *), not by the index's own check.
    assert sorted(write_statuses) == [200, 412]
    loser = next(resp for resp in responses if resp.status_int == 400)
    assert "File already exists" in loser.json["message"]
    winner = (first, second)[[resp.status_int for resp in responses].index(200)]
    row = services(testapp.app).index.cache.get_file(first.name)
    assert row is not None
    assert row.sha256 == sha256(winner.read_bytes())
    stored = s3.get_object(Bucket=bucket, Key=s3_key(first.name))["Body"].read()
    assert sha256(stored) == row.sha256
    assert http.get(testapp.get(WHEEL_URL, status=302).headers["Location"], timeout=10).content == stored


@pytest.mark.parametrize("extra", [{"storage.sse": "AES256"}], ids=["sse-aes256"])
def test_sse_aes256_encrypts_every_object(testapp: webtest.TestApp, uploaded: Uploaded, s3: Any, bucket: str) -> None:
    keys = bucket_keys(s3, bucket)
    assert {s3_key(WHEEL), s3_key(SDIST), s3_key(WHEEL + ".metadata")} <= set(keys)
    for key in keys:
        assert head(s3, bucket, key).get("ServerSideEncryption") == "AES256", key


# -- health ----------------------------------------------------------------------


def test_health_on_s3(testapp: webtest.TestApp, s3: Any, bucket: str) -> None:
    resp = testapp.get("/health", status=200)
    assert resp.json == {"status": "ok", "storage": "ok", "cache": "ok"}
    s3.delete_bucket(Bucket=bucket)
    resp = testapp.get("/health", status=503)
    assert resp.json["status"] == "unavailable"
    assert resp.json["cache"] == "ok"
    assert bucket in resp.json["storage"], resp.json
    assert "no-store" in resp.headers["Cache-Control"]


def test_health_says_the_bucket_is_missing(testapp: webtest.TestApp, s3: Any, bucket: str) -> None:
    s3.delete_bucket(Bucket=bucket)
    message = testapp.get("/health", status=503).json["storage"]
    # HeadBucket's 404 is about the bucket: "No such object: <bucket>" sends the operator looking for a file.
    assert "bucket" in message.lower(), message
    assert "object" not in message.lower(), message
