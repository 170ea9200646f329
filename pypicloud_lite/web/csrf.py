"""Cross-site request protection for every state-changing request (uploads and the APIs).

API and upload clients (twine, uv, curl) send no Origin; a browser always does on a
cross-site POST/PUT/DELETE, and modern ones add Sec-Fetch-Site. Cookie sessions
(the web UI) additionally carry a CSRF token, checked where they are accepted.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from pyramid.csrf import check_csrf_token
from pyramid.events import ContextFound, subscriber
from pyramid.request import Request

from pypicloud_lite.errors import PermissionDenied
from pypicloud_lite.web.forms import check_body_size
from pypicloud_lite.web.session import has_session_cookie

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"


def origin_of(url: str) -> tuple[str, str]:
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
    if origin is not None and (origin == "null" or origin_of(origin) != origin_of(request.host_url)):
        raise PermissionDenied(f"Cross-site request from {origin} refused.")
    if request.authorization is None and has_session_cookie(request):
        # The cookie rides along on any request the browser makes, so it proves nothing
        # about intent: a request it authenticates must also carry the session's token.
        require_csrf_token(request)


def require_csrf_token(request: Request) -> None:
    """403 unless the form field or header carries this session's CSRF token."""
    # Finding the form field parses the body: refuse an oversized one before that, as the upload view does.
    check_body_size(request)
    if not check_csrf_token(request, token=CSRF_FIELD, header=CSRF_HEADER, raises=False):
        raise PermissionDenied("The form's security token is missing or stale: reload the page and try again.")
