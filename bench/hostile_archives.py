"""Hostile archives against the real server: per upload, the status, the peak RSS growth and the CPU it cost.

    .venv/bin/python -m bench.hostile_archives
    .venv/bin/python -m bench.hostile_archives --only pax-header-1GB gzip-of-zeros-2GB

Builds decompression bombs, oversized tar headers and forged zip directories (tests/support/hostile.py), then
uploads each to a fresh `pserve` with the default `upload.max_size` and prints the server's answer, how much its
peak RSS (VmHWM, reset after a warm-up upload) rose above its RSS before the upload, and its user+system CPU
seconds for the upload (spooling and hashing included). The goal (issue 14): under 64 MB and 1 s each.
See bench/README.md.
"""

from __future__ import annotations

import argparse
import base64
import os
import platform
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.servers import cpu_seconds
from tests.support import hostile
from tests.support.common import UPLOADER, UPLOADER_PASSWORD
from tests.support.harness import free_port, launch, pserve_settings
from tests.support.legacy import twine_fields
from tests.support.settings import write_ini

GOAL_RSS_MB = 64
GOAL_CPU_S = 1.0
GB = 1 << 30
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass(frozen=True)
class Hostile:
    name: str
    filename: str
    build: Callable[[], bytes]
    what: str


def _nested() -> bytes:
    inner = hostile.gzip_parts([(b"\0", GB)])
    return hostile.gzip_parts([*hostile.file_member("demo-1.0/inner.gz", inner), *hostile.pkg_info_member()])


ARCHIVES = [
    Hostile("control-sdist", "demo-1.0.tar.gz", lambda: hostile.gzip_parts(hostile.pkg_info_member()), "valid"),
    Hostile("control-wheel", "demo-1.0-py3-none-any.whl", hostile.demo_wheel, "valid"),
    Hostile(
        "gzip-of-zeros-2GB",
        "demo-1.0.tar.gz",
        lambda: hostile.zeros_before_pkg_info(2 * GB),
        "a 2 GB member of zeros before PKG-INFO",
    ),
    Hostile("pax-header-1GB", "demo-1.0.tar.gz", lambda: hostile.pax_header_sdist(GB), "one pax record of 1 GB"),
    Hostile("gnu-long-name-1GB", "demo-1.0.tar.gz", lambda: hostile.gnu_long_name_sdist(GB), "a 1 GB GNU long name"),
    Hostile(
        "many-pax-headers",
        "demo-1.0.tar.gz",
        lambda: hostile.many_pax_headers_sdist(2000, 60_000),
        "2,000 members with a 60 KB pax header each",
    ),
    Hostile(
        "tar-1M-members",
        "demo-1.0.tar.gz",
        lambda: hostile.many_members_sdist(1_000_000),
        "a million empty members before PKG-INFO",
    ),
    Hostile(
        "tar-24k-members-ok",
        "demo-1.0.tar.gz",
        lambda: hostile.many_members_sdist(24_990),
        "24,990 members, PKG-INFO last (accepted)",
    ),
    Hostile(
        "tiny-pax-records-ok",
        "demo-1.0.tar.gz",
        lambda: hostile.tiny_pax_records_sdist(2_000_000),
        "2 MB of tiny pax records, under the cap (accepted)",
    ),
    Hostile(
        "tiny-pax-records-8MB",
        "demo-1.0.tar.gz",
        lambda: hostile.tiny_pax_records_sdist(8_000_000),
        "8 MB of tiny pax records",
    ),
    Hostile(
        "nested-gzip-bomb",
        "demo-1.0.tar.gz",
        _nested,
        "a .tar.gz holding a gzip of 1 GB of zeros (accepted: never opened)",
    ),
    Hostile(
        "wheel-forged-10M-entries",
        "demo-1.0-py3-none-any.whl",
        lambda: hostile.forged_entry_count(hostile.demo_wheel(), 10_000_000),
        "ZIP64 end record claiming 10M files",
    ),
    Hostile(
        "wheel-1M-entries",
        "demo-1.0-py3-none-any.whl",
        lambda: hostile.huge_directory(hostile.demo_wheel(), 1_000_000),
        "a real central directory of 1M entries (47 MB)",
    ),
    Hostile(
        "wheel-99k-entries-ok",
        "demo-1.0-py3-none-any.whl",
        lambda: hostile.huge_directory(hostile.demo_wheel(), 99_000),
        "99,000 entries, under both caps (accepted)",
    ),
    Hostile(
        "wheel-long-names-ok",
        "demo-1.0-py3-none-any.whl",
        lambda: hostile.long_names_directory(hostile.demo_wheel(), 99_990, 37),
        "99,990 distinct 37-byte names, under both caps (accepted)",
    ),
    Hostile(
        "wheel-long-names-16MB",
        "demo-1.0-py3-none-any.whl",
        lambda: hostile.long_names_directory(hostile.demo_wheel(), 99_990, 110),
        "99,990 distinct 110-byte names: a 16 MB directory",
    ),
    Hostile(
        "wheel-METADATA-1GB",
        "demo-1.0-py3-none-any.whl",
        lambda: hostile.metadata_bomb_wheel(GB),
        "METADATA inflating to 1 GB",
    ),
]


def _multipart(filename: str, data: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = []
    for key, value in twine_fields("demo", "1.0", filename, data).items():
        if value is not None:
            parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n{value}\r\n'.encode())
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="content"; filename="{filename}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n".encode()
    )
    parts += [data, f"\r\n--{boundary}--\r\n".encode()]
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def _upload(url: str, filename: str, data: bytes) -> tuple[int, str]:
    body, content_type = _multipart(filename, data)
    token = base64.b64encode(f"{UPLOADER}:{UPLOADER_PASSWORD}".encode()).decode()
    request = urllib.request.Request(
        f"{url}/legacy/",
        data=body,
        method="POST",
        headers={"Content-Type": content_type, "Authorization": f"Basic {token}"},
    )
    try:
        with _OPENER.open(request, timeout=600) as resp:
            return resp.status, resp.reason
    except urllib.error.HTTPError as exc:
        return exc.code, exc.reason


def _status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} for {pid}")


@dataclass(frozen=True)
class Measured:
    status: int
    reason: str
    rss_growth_mb: float
    cpu_s: float
    wall_s: float


def measure(work: Path, archive: Hostile, data: bytes) -> Measured:
    folder = work / archive.name
    folder.mkdir()
    port = free_port()
    # No upload.max_size: the default (100 MB), as a server is deployed.
    ini = write_ini(folder / "server.ini", pserve_settings(overrides={"upload.max_size": None}), port)
    server = launch(folder, ini, port)
    try:
        pid = server.process.pid
        # The first authenticated request pays argon2's 64 MiB and the lazy imports; then the peak is reset.
        _upload(server.url, "demo-1.0.tar.gz", b"not a tarball")
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        rss_before = _status_kb(pid, "VmRSS")
        cpu_before = cpu_seconds(pid)
        started = time.perf_counter()
        status, reason = _upload(server.url, archive.filename, data)
        wall = time.perf_counter() - started
        cpu = cpu_seconds(pid) - cpu_before
        peak = _status_kb(pid, "VmHWM")
        return Measured(status, reason, (peak - rss_before) / 1024, cpu, wall)
    finally:
        server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="*", choices=[a.name for a in ARCHIVES], help="archives to run (default all)")
    args = parser.parse_args(argv)
    chosen = [a for a in ARCHIVES if not args.only or a.name in args.only]
    print(
        f"Machine: {os.cpu_count()} cores, Python {platform.python_version()}, Linux {platform.release()}; "
        f"a fresh pserve per upload, default upload.max_size; goal: < {GOAL_RSS_MB} MB, < {GOAL_CPU_S} s CPU\n"
    )
    print("| archive | upload MB | status | peak RSS growth MB | server CPU s | wall s | what |")
    print("| --- | ---: | --- | ---: | ---: | ---: | --- |")
    missed = 0
    with tempfile.TemporaryDirectory(prefix="ppc-hostile-") as tmp:
        for archive in chosen:
            print(f"building {archive.name} ...", file=sys.stderr, flush=True)
            data = archive.build()
            print(f"uploading {archive.name} ({len(data):,} bytes) ...", file=sys.stderr, flush=True)
            m = measure(Path(tmp), archive, data)
            ok = m.rss_growth_mb < GOAL_RSS_MB and m.cpu_s < GOAL_CPU_S
            missed += not ok
            print(
                f"| {archive.name} | {len(data) / 1e6:.2f} | {m.status} {m.reason[:60]} | {m.rss_growth_mb:.1f} "
                f"| {m.cpu_s:.2f} | {m.wall_s:.2f} | {archive.what}{'' if ok else ' **goal missed**'} |",
                flush=True,
            )
    print(f"\n{len(chosen) - missed} of {len(chosen)} within the goal")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
