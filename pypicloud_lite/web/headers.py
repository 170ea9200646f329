"""Security headers on every response: nosniff and the referrer policy everywhere, a CSP and no framing on HTML."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

# What the UI's pages load: its own stylesheet and script (base.jinja2), fetches to this site (ui.js),
# forms posting here, the favicon. Images from https too, as PyPI shows them: a README's badges and
# screenshots (an image runs no script). No inline script or style attribute, no fonts, frames or plugins.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' https: data:; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)

EVERY_RESPONSE: tuple[tuple[str, str], ...] = (
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "same-origin"),
)
HTML_RESPONSE: tuple[tuple[str, str], ...] = (
    *EVERY_RESPONSE,
    ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
    ("X-Frame-Options", "DENY"),
)


def with_security_headers(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """`headers` and the security headers its content type calls for (a header already set is kept as it is)."""
    present = {name.lower() for name, _ in headers}
    content_type = next((value for name, value in headers if name.lower() == "content-type"), "")
    wanted = HTML_RESPONSE if content_type.startswith("text/html") else EVERY_RESPONSE
    return [*headers, *(header for header in wanted if header[0].lower() not in present)]


def secured(start_response: Callable[..., Any]) -> Callable[..., Any]:
    """A WSGI start_response that adds the security headers to whatever the application answers."""

    def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        return start_response(status, with_security_headers(headers), exc_info)

    return start
