"""A cache that cannot answer (PostgreSQL or DynamoDB gone, throttled, SQLite locked or broken): 503s, then recovery."""

from __future__ import annotations

import contextlib
import errno
import json
import random
import select
import socket
import sqlite3
import struct
import threading
import time
import types
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import webtest
from botocore.awsrequest import AWSResponse
from sqlalchemy import event
from sqlalchemy.engine import make_url

from tests.support.apiutil import assert_error, running
from tests.support.aws import REGION, Moto
from tests.support.cache import fresh_database
from tests.support.common import services
from tests.support.distbuilder import build_wheel
from tests.support.legacy import JSON_V1, stored_files, upload_dist
from tests.support.webapp import Uploaded, upload_foo_bar

PROJECT = "foo-bar"
# How long a request may take to answer 503 when the database does not answer at all.
UNRESPONSIVE_DEADLINE = 15.0


class TcpProxy:
    """Forwards a local port to `target`; `stop()` makes the target unreachable, `start()` brings it back.

    Stopped, the port refuses connections and every forwarded connection is cut, as when the
    database host goes away. With `stop(blackhole=True)` the port still accepts connections but
    never answers on them, as when the network drops packets or the server hangs.
    """

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = 0
        self.blackhole = False
        self._listener: socket.socket | None = None
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    @classmethod
    @contextlib.contextmanager
    def running(cls, target: tuple[str, int]) -> Iterator[TcpProxy]:
        proxy = cls(target)
        proxy.start()
        try:
            yield proxy
        finally:
            proxy.stop()
            for thread in proxy._threads:
                thread.join(timeout=5)

    def start(self) -> None:
        self.stop()
        if self.port:
            # create_server sets SO_REUSEADDR: the same port again, despite connections in TIME_WAIT.
            # The old listener's accept thread may take a moment to let go of the port.
            deadline = time.monotonic() + 10
            while True:
                try:
                    listener = socket.create_server(("127.0.0.1", self.port))
                    break
                except OSError as exc:
                    if exc.errno != errno.EADDRINUSE or time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)
        else:
            listener = _listener_outside_ephemeral_range()
            self.port = listener.getsockname()[1]
        self._listen(listener)

    def stop(self, *, blackhole: bool = False) -> None:
        with self._lock:
            self.blackhole = blackhole
            listener = None if blackhole else self._listener
            if listener is not None:
                self._listener = None
            sockets, self._sockets = self._sockets, set()
        if listener is not None:
            listener.close()
        for sock in sockets:
            _cut(sock)

    def _listen(self, listener: socket.socket) -> None:
        with self._lock:
            self._listener = listener
        thread = threading.Thread(target=self._accept, args=(listener,), daemon=True)
        thread.start()
        self._threads.append(thread)

    def _accept(self, listener: socket.socket) -> None:
        while True:
            with self._lock:
                if self._listener is not listener:
                    return
            try:
                ready, _w, _x = select.select([listener], [], [], 0.05)
                if not ready:
                    continue
                client, _addr = listener.accept()
            except (OSError, ValueError):
                return
            if self.blackhole:
                self._track(client)  # held open, never answered
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            self._track(client)
            self._track(upstream)
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pump, args=(source, sink), daemon=True).start()

    def _track(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.add(sock)


def _listener_outside_ephemeral_range() -> socket.socket:
    """A listening socket on a port the kernel never picks for outgoing connections.

    While the proxy is stopped its port is free; were it an ephemeral one, any connection made
    meanwhile (by this test or another process) could take it and keep start() from binding again.
    """
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    ports = list(range(10000, max(low, 10001)))
    random.shuffle(ports)
    for port in ports[:200]:
        with contextlib.suppress(OSError):
            return socket.create_server(("127.0.0.1", port))
    raise RuntimeError("no free port below the ephemeral range")


def _cut(sock: socket.socket) -> None:
    """Reset the connection: no orderly close that would keep the port busy (FIN_WAIT) after stop()."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.shutdown(socket.SHUT_RD)  # wakes the pump blocked in recv()
    sock.close()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)


# -- what every test checks ------------------------------------------------------------


def reads(dists: Uploaded) -> list[tuple[str, str, dict[str, str]]]:
    """(method, path, headers) of every page and file a client reads."""
    wheel = dists.wheel.name
    return [
        ("GET", "/simple/", {}),
        ("GET", "/simple/", {"Accept": JSON_V1}),
        ("GET", f"/simple/{PROJECT}/", {}),
        ("GET", f"/simple/{PROJECT}/", {"Accept": JSON_V1}),
        ("HEAD", f"/simple/{PROJECT}/", {}),
        ("GET", f"/packages/{PROJECT}/{wheel}", {}),
        ("HEAD", f"/packages/{PROJECT}/{wheel}", {}),
        ("GET", f"/packages/{PROJECT}/{wheel}.metadata", {}),
        ("GET", f"/pypi/{PROJECT}/json", {}),
        ("GET", f"/pypi/{PROJECT}/1.0/json", {}),
        ("GET", "/api/projects", {}),
        ("GET", f"/api/projects/{PROJECT}", {}),
    ]


def send(testapp: webtest.TestApp, method: str, path: str, headers: dict[str, str]) -> webtest.TestResponse:
    return testapp.request(path, method=method, headers=headers, expect_errors=True)


def assert_unavailable(resp: webtest.TestResponse, what: str, leaks: tuple[str, ...] = ()) -> None:
    """503 with Retry-After, never cached, and (except for HEAD) the JSON error and nothing else."""
    assert resp.status_int == 503, (what, resp.status, resp.body[:500])
    assert int(resp.headers.get("Retry-After", "0")) > 0, (what, dict(resp.headers))
    assert "no-store" in resp.headers.get("Cache-Control", ""), (what, dict(resp.headers))
    if resp.request.method == "HEAD":
        return
    assert_error(resp, 503)
    assert set(resp.json) == {"status", "message"}, resp.json
    for leak in ("Traceback", "sqlalchemy", "SELECT ", "ppc_", *leaks):
        assert leak.lower() not in resp.text.lower(), (what, leak, resp.text)


def assert_all_unavailable(
    testapp: webtest.TestApp, dists: Uploaded, auth: dict[str, str], dist_dir: Path, leaks: tuple[str, ...] = ()
) -> None:
    for method, path, headers in reads(dists):
        assert_unavailable(send(testapp, method, path, headers), f"{method} {path} {headers}", leaks)
    # Authenticated callers, and the changes only they make, too.
    assert_unavailable(send(testapp, "GET", "/api/projects", auth), "GET /api/projects as admin", leaks)
    before = stored_files(services(testapp.app).settings)
    late = build_wheel(dist_dir / "late", "Foo.Bar", "3.0")
    assert_unavailable(upload_dist(testapp, auth, late, "Foo.Bar", "3.0", status="*"), "upload", leaks)
    assert stored_files(services(testapp.app).settings) == before  # no object without its row
    delete = f"/api/projects/{PROJECT}/files/{dists.sdist.name}"
    assert_unavailable(send(testapp, "DELETE", delete, auth), f"DELETE {delete}", leaks)
    yank = testapp.post_json(f"/api/projects/{PROJECT}/versions/1.0/yank", {}, headers=auth, expect_errors=True)
    assert_unavailable(yank, "yank", leaks)
    health = testapp.get("/health", expect_errors=True)
    assert health.status_int == 503
    assert health.json["cache"] != "ok"


def assert_reads(testapp: webtest.TestApp, dists: Uploaded) -> None:
    for method, path, headers in reads(dists):
        resp = send(testapp, method, path, headers)
        assert resp.status_int == 200, (method, path, resp.status, resp.body[:300])


def assert_serves(testapp: webtest.TestApp, dists: Uploaded, auth: dict[str, str], dist_dir: Path) -> None:
    """Every read answers 200 at once, nothing changed while the cache was away, and an upload goes in."""
    assert_reads(testapp, dists)
    files = testapp.get(f"/simple/{PROJECT}/", headers={"Accept": JSON_V1}).json["files"]
    assert sorted(f["filename"] for f in files) == sorted([dists.wheel.name, dists.sdist.name])
    assert not any(f["yanked"] for f in files)
    assert testapp.get("/health").json["cache"] == "ok"
    back = build_wheel(dist_dir / "back", "Foo.Bar", "2.0")
    assert upload_dist(testapp, auth, back, "Foo.Bar", "2.0").status_int == 200
    files = testapp.get(f"/simple/{PROJECT}/", headers={"Accept": JSON_V1}).json["files"]
    assert back.name in {f["filename"] for f in files}


# -- PostgreSQL behind a proxy that goes away ------------------------------------------


@pytest.fixture
def pg_proxy(tmp_path: Path) -> Iterator[tuple[TcpProxy, str]]:
    """A throw-away PostgreSQL schema reached through a TcpProxy: (proxy, cache URL through it)."""
    with fresh_database("postgresql", tmp_path) as url, TcpProxy.running(("127.0.0.1", 5432)) as proxy:
        yield proxy, make_url(url).set(port=proxy.port).render_as_string(hide_password=False)


@pytest.fixture
def pg_app(pg_proxy: tuple[TcpProxy, str], raw_settings: dict[str, Any]) -> Iterator[webtest.TestApp]:
    with running({**raw_settings, "cache.url": pg_proxy[1]}) as testapp:
        yield testapp


def test_postgresql_gone_gives_503_then_recovers(
    pg_app: webtest.TestApp, pg_proxy: tuple[TcpProxy, str], auth: dict[str, str], dist_dir: Path
) -> None:
    proxy, _url = pg_proxy
    dists = upload_foo_bar(pg_app, auth, dist_dir)
    assert_reads(pg_app, dists)  # pooled connections exist, and go stale below
    proxy.stop()
    assert_all_unavailable(pg_app, dists, auth, dist_dir, leaks=(str(proxy.port), "postgres"))
    proxy.start()
    assert_serves(pg_app, dists, auth, dist_dir)


def test_postgresql_that_does_not_answer_gives_503_in_time(
    pg_app: webtest.TestApp, pg_proxy: tuple[TcpProxy, str], auth: dict[str, str], dist_dir: Path
) -> None:
    """A database host that accepts connections but never answers (a hung server, a black-holed failover
    address) must not hold requests, and with them every server thread, forever."""
    proxy, _url = pg_proxy
    dists = upload_foo_bar(pg_app, auth, dist_dir)
    proxy.stop(blackhole=True)
    answered: list[webtest.TestResponse] = []
    worker = threading.Thread(target=lambda: answered.append(send(pg_app, "GET", f"/simple/{PROJECT}/", {})))
    started = time.monotonic()
    worker.start()
    worker.join(UNRESPONSIVE_DEADLINE)
    in_time = bool(answered)
    waited = time.monotonic() - started
    proxy.stop()  # cut the held connections: a request still waiting gets its error now
    worker.join(10)
    assert in_time, f"GET /simple/{PROJECT}/ did not answer within {waited:.0f} s of the database hanging"
    assert_unavailable(answered[0], "database hanging")
    proxy.start()
    assert_serves(pg_app, dists, auth, dist_dir)


# -- DynamoDB throttling, and DynamoDB gone ----------------------------------------------


class _Body:
    """The raw body of a canned botocore response."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def stream(self, **_kwargs: Any) -> Iterator[bytes]:
        yield self.data


def throttled(request: Any, **_kwargs: Any) -> AWSResponse:
    """What DynamoDB answers a table over its provisioned throughput (before-send: nothing reaches moto)."""
    body = {
        "__type": "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
        "message": "The level of configured provisioned throughput for the table was exceeded.",
    }
    headers = {"Content-Type": "application/x-amz-json-1.0", "x-amzn-RequestId": "throttled-by-test"}
    return AWSResponse(request.url, 400, headers, _Body(json.dumps(body).encode()))


@pytest.fixture
def no_retry_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    """botocore backs off between its retries of a throttled or refused call; the tests need not wait."""
    import botocore.endpoint

    shim = types.SimpleNamespace(sleep=lambda _seconds: None, time=time.time, monotonic=time.monotonic)
    monkeypatch.setattr(botocore.endpoint, "time", shim)


def table_prefix() -> str:
    return f"ppc-faults-{uuid.uuid4().hex[:10]}-"


def dynamo_settings(raw_settings: dict[str, Any], endpoint_url: str, prefix: str) -> dict[str, Any]:
    kept = {k: v for k, v in raw_settings.items() if k != "cache.url"}
    return {
        **kept,
        "cache.backend": "dynamo",
        "cache.table_prefix": prefix,
        "cache.region": REGION,
        "cache.endpoint_url": endpoint_url,
        "cache.create_tables": "true",
    }


def dynamo_clients(testapp: webtest.TestApp) -> list[Any]:
    """The botocore clients of the app's DynamoCache: one per table model, and the transactions'."""
    cache: Any = services(testapp.app).index.cache
    connections = [model._get_connection().connection for model in cache.t.all()] + [cache._connection]
    return [connection.client for connection in connections]


def test_dynamodb_throttling_gives_503_then_recovers(
    moto: Moto, raw_settings: dict[str, Any], auth: dict[str, str], dist_dir: Path, no_retry_sleep: None
) -> None:
    with running(dynamo_settings(raw_settings, moto.endpoint_url, table_prefix())) as testapp:
        dists = upload_foo_bar(testapp, auth, dist_dir)
        clients = dynamo_clients(testapp)
        for client in clients:
            client.meta.events.register("before-send.dynamodb", throttled, unique_id="ppc-test-throttle")
        try:
            assert_all_unavailable(testapp, dists, auth, dist_dir)
            resp = testapp.get(f"/simple/{PROJECT}/", expect_errors=True)
            assert resp.headers["Retry-After"] == "2"  # throttling: come back soon
            assert "throttling" in resp.json["message"]
        finally:
            for client in clients:
                client.meta.events.unregister("before-send.dynamodb", unique_id="ppc-test-throttle")
        assert_serves(testapp, dists, auth, dist_dir)


def test_dynamodb_gone_gives_503_then_recovers(
    moto: Moto, raw_settings: dict[str, Any], auth: dict[str, str], dist_dir: Path, no_retry_sleep: None
) -> None:
    moto_address = urlsplit(moto.endpoint_url)
    assert moto_address.hostname is not None and moto_address.port is not None
    with TcpProxy.running((moto_address.hostname, moto_address.port)) as proxy:
        settings = dynamo_settings(raw_settings, f"http://127.0.0.1:{proxy.port}", table_prefix())
        with running(settings) as testapp:
            dists = upload_foo_bar(testapp, auth, dist_dir)
            proxy.stop()
            assert_all_unavailable(testapp, dists, auth, dist_dir, leaks=(str(proxy.port),))
            proxy.start()
            assert_serves(testapp, dists, auth, dist_dir)


# -- SQLite locked, or no longer a database --------------------------------------------


def _raise_on(engine: Any, error: Exception, only: Callable[[str], bool]) -> Callable[..., None]:
    def before_cursor_execute(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if only(statement):
            raise error

    event.listen(engine, "before_cursor_execute", before_cursor_execute)
    return before_cursor_execute


def test_sqlite_locked_gives_503_then_recovers(testapp: webtest.TestApp, auth: dict[str, str], dist_dir: Path) -> None:
    dists = upload_foo_bar(testapp, auth, dist_dir)
    engine = services(testapp.app).index.cache.engine  # type: ignore[attr-defined]
    listener = _raise_on(engine, sqlite3.OperationalError("database is locked"), lambda _statement: True)
    try:
        assert_all_unavailable(testapp, dists, auth, dist_dir, leaks=("cache.sqlite",))
    finally:
        event.remove(engine, "before_cursor_execute", listener)
    assert_serves(testapp, dists, auth, dist_dir)


def test_sqlite_writes_locked_fail_the_upload_cleanly_while_reads_go_on(
    testapp: webtest.TestApp, auth: dict[str, str], dist_dir: Path
) -> None:
    """Another process holds the write lock past busy_timeout: reads still answer (WAL), and an upload
    whose row cannot be written answers 503 and leaves no object behind (object first, row second)."""
    dists = upload_foo_bar(testapp, auth, dist_dir)
    app_services = services(testapp.app)
    engine = app_services.index.cache.engine  # type: ignore[attr-defined]

    def writes(statement: str) -> bool:
        # BEGIN IMMEDIATE goes to the driver without these events: tests/db/test_sqlite_safety.py holds a real lock.
        return statement.lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE"))

    listener = _raise_on(engine, sqlite3.OperationalError("database is locked"), writes)
    try:
        before = stored_files(app_services.settings)
        late = build_wheel(dist_dir / "late", "Foo.Bar", "3.0")
        assert_unavailable(upload_dist(testapp, auth, late, "Foo.Bar", "3.0", status="*"), "upload")
        assert stored_files(app_services.settings) == before
        for method, path, headers in reads(dists):
            assert send(testapp, method, path, headers).status_int == 200, (method, path)
    finally:
        event.remove(engine, "before_cursor_execute", listener)
    assert_serves(testapp, dists, auth, dist_dir)


def test_sqlite_file_that_is_no_database_gives_503_then_recovers(
    testapp: webtest.TestApp, auth: dict[str, str], dist_dir: Path, tmp_path: Path
) -> None:
    dists = upload_foo_bar(testapp, auth, dist_dir)
    engine = services(testapp.app).index.cache.engine  # type: ignore[attr-defined]
    database = tmp_path / "cache.sqlite"
    aside = tmp_path / "cache.sqlite.aside"
    # Pooled connections keep the old file open; the pool recycling them is what meets the broken file.
    engine.dispose()
    assert not (tmp_path / "cache.sqlite-wal").exists()
    database.rename(aside)
    database.write_bytes(b"this is not an SQLite database, it was overwritten " * 100)
    try:
        assert_all_unavailable(testapp, dists, auth, dist_dir, leaks=("cache.sqlite",))
    finally:
        database.unlink()
        for suffix in ("-wal", "-shm"):
            (tmp_path / f"cache.sqlite{suffix}").unlink(missing_ok=True)
        aside.rename(database)
    assert_serves(testapp, dists, auth, dist_dir)


def test_sqlite_pool_exhausted_gives_503(testapp: webtest.TestApp, auth: dict[str, str], dist_dir: Path) -> None:
    """Every pooled connection busy for longer than the pool's timeout (a slow database under load):
    the request cannot get a connection, which is the cache being unavailable (503), not a server bug (500)."""
    dists = upload_foo_bar(testapp, auth, dist_dir)
    engine = services(testapp.app).index.cache.engine  # type: ignore[attr-defined]
    pool = engine.pool
    # The default wait is 30 s; the test waits a moment only.
    pool._timeout = 0.2
    held = [engine.connect() for _ in range(pool.size() + pool._max_overflow)]
    try:
        for method, path, headers in reads(dists)[:4]:
            assert_unavailable(send(testapp, method, path, headers), f"{method} {path} with the pool exhausted")
    finally:
        for connection in held:
            connection.close()
    assert_serves(testapp, dists, auth, dist_dir)
