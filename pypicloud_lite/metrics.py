"""The Prometheus metrics server processes update (prometheus_client); summed across workers in its multiprocess
mode when PROMETHEUS_MULTIPROC_DIR is set before the process starts. /metrics (web/metrics_view.py) serves them."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

# Seconds: the fast path's cached pages (well under a millisecond) up to uploads of large files.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

REQUESTS = Counter(
    "ppc_http_requests", "HTTP requests answered, by route, method and status.", ["route", "method", "status"]
)
LATENCY = Histogram(
    "ppc_http_request_duration_seconds",
    "Time from the request reaching the app to the last byte of its answer, by route.",
    ["route"],
    buckets=LATENCY_BUCKETS,
)
PAGE_CACHE = Counter(
    "ppc_page_cache_requests",
    "Rendered simple and JSON pages: served from the process's cache (hit) or rendered (miss).",
    ["result"],
)
UPLOADED_BYTES = Counter("ppc_upload_bytes", "Bytes of new files accepted by uploads.")
UPLOADED_FILES = Counter("ppc_upload_files", "New files accepted by uploads.")
UPLOAD_REJECTIONS = Counter("ppc_upload_rejections", "Uploads refused, by reason (the error's kind).", ["reason"])
UPSTREAM_FETCHES = Counter(
    "ppc_upstream_fetches",
    "HTTP requests to upstream indexes, by upstream and outcome (status or error).",
    ["upstream", "outcome"],
)
