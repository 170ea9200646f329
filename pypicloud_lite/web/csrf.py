"""Cross-site request protection for every state-changing request (uploads and the APIs).

API and upload clients (twine, uv, curl) send no Origin; a browser always does on a
cross-site POST/PUT/DELETE, and modern ones add Sec-Fetch-Site. Cookie sessions
(the web UI) additionally carry a CSRF token, checked where they are accepted.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from pyramid.events import ContextFound, subscriber

from pypicloud_lite.errors import PermissionDenied

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _origin_of(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower()


@subscriber(ContextFound)
def reject_cross_site(event: ContextFound) -> None:
    request = event.request
    if request.method in SAFE_METHODS:
        return
    if request.headers.get("Sec-Fetch-Site") == "cross-site":
        raise PermissionDenied("Cross-site request refused.")
    origin = request.headers.get("Origin")
    if origin is not None and (origin == "null" or _origin_of(origin) != _origin_of(request.host_url)):
        raise PermissionDenied(f"Cross-site request from {origin} refused.")
