"""What the web UI's page modules share: the checks on a form post, and the answers after one."""

from __future__ import annotations

from pyramid.httpexceptions import HTTPSeeOther
from pyramid.request import Request

from pypicloud_lite.access.base import Identity
from pypicloud_lite.errors import AuthenticationRequired
from pypicloud_lite.web.csrf import require_csrf_token


def checked_post(request: Request) -> Identity:
    """A UI form post: this session's CSRF token, and someone logged in."""
    require_csrf_token(request)
    identity: Identity | None = request.identity
    if identity is None:
        raise AuthenticationRequired("Log in first.")
    return identity


# Flash messages live in the session cookie (4 KB in all): a message quoting a huge form value, or
# messages piling up from posts whose result page was never shown, must not make the cookie unstorable
# (a 500 for the user's mistake). The newest few, each cut short, are kept.
FLASH_MAX_CHARS = 300
FLASH_MAX_QUEUED = 3


def flash(request: Request, message: str) -> None:
    if len(message) > FLASH_MAX_CHARS:
        message = message[: FLASH_MAX_CHARS - 1] + "\u2026"
    session = request.session
    if len(session.peek_flash()) >= FLASH_MAX_QUEUED:
        kept = session.pop_flash()[-(FLASH_MAX_QUEUED - 1) :]
        for older in kept:
            session.flash(older)
    session.flash(message)


def back_to(request: Request, route: str, message: str, **parts: str) -> HTTPSeeOther:
    """303 to a UI page with a flash message: a reload of the result page never re-posts the form."""
    flash(request, message)
    return HTTPSeeOther(location=request.route_url(route, **parts))


def wants_json(request: Request) -> bool:
    """A script's fetch (Accept: application/json) rather than a page load or a plain form post."""
    offers = request.accept.acceptable_offers(["text/html", "application/json"])
    return bool(offers) and offers[0][0] == "application/json"
