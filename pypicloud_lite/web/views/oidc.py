"""PyPI's Trusted Publishing endpoints at the host root, as `uv publish` and pypa/gh-action-pypi-publish call them.

`GET /_/oidc/audience`, `POST /_/oidc/mint-token` (and the action's `/_/oidc/github/mint-token`),
`POST /_/oidc/burn-token` (uv revokes its token when done), and PEP 807's discovery document.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from urllib.parse import urlsplit

from pyramid.request import Request
from pyramid.response import Response
from pyramid.view import view_config

from pypicloud_lite.access.base import TOKEN_USERNAME
from pypicloud_lite.errors import TooManyAttempts
from pypicloud_lite.publishing.exchange import MintRefused
from pypicloud_lite.web.audit_trail import audit, client_address
from pypicloud_lite.web.errors import status_reason
from pypicloud_lite.web.services import AppServices, services

logger = logging.getLogger(__name__)

# The upload paths (below the public URL's prefix) that PEP 807's discovery answers for.
UPLOAD_PATHS = ("/legacy/", "/legacy", "/simple/", "/simple", "/")


def audience(app: AppServices, request: Request) -> str:
    """The configured audience, else the public URL's host[:port] (PublicAddress set request.host from it)."""
    configured = app.settings.publishing.audience
    if configured:
        return configured
    public = app.settings.web.public_url
    return urlsplit(public).netloc if public else request.host.lower()


def _json(body: Mapping[str, object], status: int = 200, content_type: str = "application/json") -> Response:
    response = Response(body=json.dumps(body).encode(), status=status, content_type=content_type, charset=None)
    response.cache_control.no_store = True
    return response


def _refused(refusal: MintRefused) -> Response:
    # PyPI's shape: both clients print each error's code and description.
    body = {"message": "Token request failed", "errors": [{"code": refusal.code, "description": refusal.description}]}
    response = _json(body, refusal.status)
    response.status = f"{refusal.status} {status_reason(refusal.description)}"
    return response


def _disabled() -> Response:
    # 403: the action reports "trusted publishing disabled" for it (404 would say "not supported").
    return _refused(MintRefused("not-enabled", "Trusted publishing is not enabled on this index.", 403))


def _token_field(request: Request) -> object:
    """The body's `token`, or None. Older uv sends the JSON without a Content-Type: read it whatever it says."""
    try:
        body = json.loads(request.body or b"null")
    except ValueError:
        return None
    return body.get("token") if isinstance(body, dict) else None


@view_config(route_name="oidc.audience", request_method="GET")
def get_audience(request: Request) -> Response:
    app = services(request)
    if not app.publishing.enabled:
        return _disabled()
    return _json({"audience": audience(app, request)})


@view_config(route_name="oidc.mint_token", request_method="POST")
@view_config(route_name="oidc.github_mint_token", request_method="POST")
def mint_token(request: Request) -> Response:
    app = services(request)
    raw = _token_field(request)
    try:
        minted = app.publishing.mint(raw, audience(app, request), client_address(request.environ))
    except MintRefused as refusal:
        logger.info("trusted publishing: refused (%s): %s", refusal.code, refusal.description)
        return _refused(refusal)
    expires = int(minted.expires.timestamp())
    return _json({"success": True, "token": minted.token, "expires": expires})


@view_config(route_name="oidc.burn_token", request_method="POST")
def burn_token(request: Request) -> Response:
    """Revoke a token minted by trusted publishing (given in the body); 202 whatever it was, as on PyPI."""
    app = services(request)
    raw = _token_field(request)
    if isinstance(raw, str):
        try:
            identity = app.access.authenticate(TOKEN_USERNAME, raw, request.remote_addr)
        except TooManyAttempts:
            identity = None
        if identity is not None and identity.token is not None and identity.token.publisher is not None:
            app.access.revoke_token(identity.token.token_id)
            detail = f"by its holder, minted by trusted publisher {identity.token.publisher}"
            audit(request, "token.revoke", target=identity.token.token_id, detail=detail, identity=identity)
    return _json({"success": True}, 202)


@view_config(route_name="oidc.discovery", request_method="GET")
def discovery(request: Request) -> Response:
    """PEP 807 (draft): where the audience and mint endpoints of the upload URL with this path are."""
    app = services(request)
    # The public URL's path prefix: this request, at the host's root, need not have come through it.
    public = app.settings.web.public_url
    prefix = urlsplit(public).path if public else request.script_name
    wanted = request.GET.get("discover", "")
    if not app.publishing.enabled or wanted not in {prefix + path for path in UPLOAD_PATHS}:
        detail = f"{wanted!r} is not an upload URL's path of this index, or trusted publishing is off."
        problem = {"type": "about:blank", "title": "Not Found", "status": 404, "detail": detail}
        return _json(problem, 404, "application/problem+json")
    root = request.host_url
    return _json({"audience-endpoint": f"{root}/_/oidc/audience", "token-mint-endpoint": f"{root}/_/oidc/mint-token"})
