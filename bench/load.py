"""Bounded loopback load: wrk when installed, else a small Python keep-alive client; req/s and latency percentiles."""

from __future__ import annotations

import http.client
import re
import shutil
import statistics
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Load:
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int
    tool: str


_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}
_LATENCY = re.compile(r"^\s+(50|99)(?:\.0+)?%\s+([\d.]+)(us|ms|s|m)\s*$", re.MULTILINE)


def drive(
    base: str, paths: list[str], folder: Path, *, duration: float, connections: int, headers: dict[str, str]
) -> Load:
    """GET the paths round-robin for `duration` seconds over `connections` keep-alive connections."""
    if shutil.which("wrk"):
        return _wrk(base, paths, folder, duration=duration, connections=connections, headers=headers)
    return _python(base, paths, duration, connections, headers)


def _wrk(
    base: str, paths: list[str], folder: Path, *, duration: float, connections: int, headers: dict[str, str]
) -> Load:
    script = folder / "paths.lua"
    lua_paths = ",".join('"' + p.replace('"', '\\"') + '"' for p in paths)
    lua_headers = "".join(f'wrk.headers["{k}"] = "{v}"\n' for k, v in headers.items())
    script.write_text(
        f"local paths = {{{lua_paths}}}\nlocal i = 0\n{lua_headers}"
        'request = function()\n  i = i % #paths + 1\n  return wrk.format("GET", paths[i])\nend\n'
        # No response() hook: wrk counts non-2xx itself, and a hook makes it copy every body into Lua.
    )
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{max(1, round(duration))}s",
            "--latency",
            "--timeout",
            "60s",
            "-s",
            str(script),
            base,
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    latency = {q: float(v) * _UNITS_MS[u] for q, v, u in _LATENCY.findall(out)}
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = int(non_2xx.group(1)) if non_2xx else 0
    errors += sum(int(n) for n in socket_errors.groups()) if socket_errors else 0
    return Load(rate, latency.get("50", 0.0), latency.get("99", 0.0), errors, "wrk")


def _python(base: str, paths: list[str], duration: float, connections: int, headers: dict[str, str]) -> Load:
    host, port = urlsplit(base).hostname, urlsplit(base).port
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    deadline = time.monotonic() + duration

    def worker(offset: int) -> None:
        conn = http.client.HTTPConnection(host or "127.0.0.1", port, timeout=60)
        mine: list[float] = []
        i = offset
        while time.monotonic() < deadline:
            start = time.perf_counter()
            conn.request("GET", paths[i % len(paths)], headers=headers)
            resp = conn.getresponse()
            resp.read()
            mine.append(time.perf_counter() - start)
            if resp.status != 200:
                errors[0] += 1
            i += 1
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(connections)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] if latencies else 0.0
    return Load(
        len(latencies) / elapsed,
        statistics.median(latencies) * 1000 if latencies else 0.0,
        p99 * 1000,
        errors[0],
        "python",
    )
