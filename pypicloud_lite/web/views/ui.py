"""The web UI's pages for everyone: projects, a project, uploads and releases, login, and my tokens.

Pages are server-rendered and readable with JavaScript off; every change is a
CSRF-protected form POST that reads its input with forms.py, checks it with the
same permissions.py rule and calls the same service or access function as the
JSON API, then redirects back (303) with a flash message.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from pyramid.csrf import get_csrf_token
from pyramid.events import BeforeRender, subscriber
from pyramid.httpexceptions import HTTPSeeOther
from pyramid.renderers import render_to_response
from pyramid.request import Request
from pyramid.response import Response
from pyramid.security import forget, remember
from pyramid.view import exception_view_config, view_config

from pypicloud_lite.access.base import TOKEN_USERNAME, Identity, Permission
from pypicloud_lite.errors import AuthenticationRequired, InvalidUpload, PermissionDenied, PypicloudLiteError
from pypicloud_lite.models import CLOSED_STATUSES, PROJECT_STATUSES, CoreMetadata, Project
from pypicloud_lite.naming import normalize, parse_filename
from pypicloud_lite.service import UploadForm
from pypicloud_lite.web import forms
from pypicloud_lite.web.audit_trail import audit, audit_upload, status_detail, token_detail
from pypicloud_lite.web.csrf import origin_of, require_csrf_token
from pypicloud_lite.web.errors import domain_error
from pypicloud_lite.web.listing import release_metadata, releases_newest_first, requirement_links, search_visible
from pypicloud_lite.web.observe import count_upload, counts_rejections
from pypicloud_lite.web.permissions import (
    NewProject,
    check_may_upload,
    create_token_for,
    may_manage_grants,
    may_set_status,
    record_first_owner,
    require,
    require_password_login,
    require_read,
    require_status_change,
    token_to_revoke,
    tokens_owner_filter,
)
from pypicloud_lite.web.project_origin import origin_panel
from pypicloud_lite.web.readme import render_description
from pypicloud_lite.web.services import AppServices, services
from pypicloud_lite.web.session import has_session_cookie
from pypicloud_lite.web.ui_support import back_to, checked_post, flash, wants_json

logger = logging.getLogger(__name__)

PER_PAGE = 50
UI_PATHS = r"^/ui/"


# -- what every page gets ---------------------------------------------------------


@subscriber(BeforeRender)
def page_globals(event: BeforeRender) -> None:
    if not str(event.get("renderer_name", "")).endswith(".jinja2"):
        return
    request: Request = event["request"]
    try:
        # Wrong Basic credentials (401 elsewhere) just show the page anonymously here.
        event["identity"] = request.identity
    except PypicloudLiteError:
        # Throttled or a backend down: the error page that says so must still render.
        event["identity"] = None
    # Called by the templates only where a form needs it: browsing anonymously sets no cookie.
    event["csrf_token"] = lambda: get_csrf_token(request)
    # The static backend keeps no tokens: no "My tokens" to offer.
    event["access_read_only"] = services(request).access.read_only
    event["flashes"] = request.session.pop_flash() if has_session_cookie(request) else []
    event["filesize"] = filesize
    event["when"] = when


def filesize(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{size} B"  # pragma: no cover - the loop always returns


def when(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if value else ""


# -- errors on UI pages are pages, not JSON ------------------------------------------


@exception_view_config(PypicloudLiteError, path_info=UI_PATHS)
def ui_error(exc: PypicloudLiteError, request: Request) -> Response:
    if isinstance(exc, AuthenticationRequired) and request.authorization is None:
        if request.method == "GET":
            return HTTPSeeOther(location=request.route_url("ui.login", _query={"next": request.path_qs}))
        flash(request, f"Error: {exc.message}")
        return HTTPSeeOther(location=request.route_url("ui.login"))
    if wants_json(request):
        return domain_error(exc, request)
    if request.method == "POST" and not isinstance(exc, PermissionDenied):
        # A form that could not be applied: back to the page it came from, with the reason.
        # Refusals (cross-site posts, stale CSRF tokens, missing permissions) are shown as a 403 page.
        flash(request, f"Error: {exc.message}")
        return HTTPSeeOther(location=_same_site_referer(request) or request.route_url("ui.projects"))
    as_json = domain_error(exc, request)
    response = render_to_response("error.jinja2", {"status": as_json.status_int, "message": exc.message}, request)
    response.status_int = as_json.status_int
    # WWW-Authenticate and Retry-After mean the same on a page as on the API.
    for header in ("WWW-Authenticate", "Retry-After"):
        if header in as_json.headers:
            response.headers[header] = as_json.headers[header]
    response.cache_control.no_store = True
    return response


def _same_site_referer(request: Request) -> str | None:
    referer: str | None = request.referer
    ui = request.script_name + "/ui/"  # under web.public_url's path prefix, if any
    if referer and origin_of(referer) == origin_of(request.host_url) and urlsplit(referer).path.startswith(ui):
        return referer
    return None


# -- projects --------------------------------------------------------------------------


def _page_number(request: Request) -> int:
    try:
        return max(1, min(int(request.GET.get("page", "1")), 1_000_000))
    except ValueError:
        return 1


@view_config(route_name="ui.projects", request_method="GET")
def project_list(request: Request) -> Response:
    identity = request.identity
    query = request.GET.get("q", "").strip()
    page = _page_number(request)
    summaries, total = search_visible(services(request), identity, query, page, PER_PAGE)
    pages = max(1, -(-total // PER_PAGE))
    values = {"projects": summaries, "total": total, "q": query, "page": page, "pages": pages}
    # Search-as-you-type swaps in just the results; the full page answers the same URL without JS.
    template = "_results.jinja2" if request.GET.get("fragment") == "1" else "projects.jinja2"
    return render_to_response(template, values, request)


@view_config(route_name="ui.project", request_method="GET", renderer="project.jinja2")
def project_page(request: Request) -> dict[str, Any]:
    name = normalize(request.matchdict["project"])
    app = services(request)
    identity = request.identity
    require_read(request, name)
    # A name never held here has a page while an upstream offers it (web/project_origin.py).
    project = app.index.find_project(name)
    origin = origin_panel(app, identity, name, project)
    releases = releases_newest_first(app.index.project_files(project)) if project is not None else []
    summary = next((f.summary for _version, files in releases for f in files if f.summary), None)
    meta = release_metadata(releases[0][1]) if releases else None
    held = project is not None
    display_name = project.display_name if project is not None else (origin.report and origin.report.display_name)
    return {
        "project": project,
        "name": name,
        "display_name": display_name or name,
        "origin": origin,
        "releases": releases,
        "summary": summary,
        "index_url": request.route_url("simple.index"),
        # An archived or quarantined project takes no upload: no form that cannot work.
        "may_upload": project is not None
        and project.status not in CLOSED_STATUSES
        and identity is not None
        and app.access.can_write(identity, name),
        "may_delete_project": held and may_manage_grants(app.access, identity, name),
        "may_delete": held and identity is not None and app.access.can_delete(identity, name),
        "may_set_status": held and may_set_status(identity),
        "grants": app.access.grants_for(name) if held and may_manage_grants(app.access, identity, name) else None,
        "grants_read_only": app.access.read_only,
        "statuses": PROJECT_STATUSES,
        "downloads": app.downloads.counts(name) if held else {},
        **_about(app, meta),
    }


def _about(app: AppServices, meta: CoreMetadata | None) -> dict[str, Any]:
    """What the latest release's metadata tells about the project: README, links, requirements, author."""
    if meta is None:
        return {"meta": None, "description": None, "links": [], "requirements": []}
    links = [("Homepage", meta.home_page)] if meta.home_page else []
    links += [pair for pair in meta.project_urls if pair[1] != meta.home_page]
    # Old setuptools wrote UNKNOWN for a missing Home-page: nothing to show.
    links = [(label, url) for label, url in links if url.strip() and url != "UNKNOWN"]
    return {
        "meta": meta,
        "description": render_description(meta.description, meta.description_content_type),
        # Only web links are links: a javascript: or data: URL in metadata is shown as text.
        "links": [(label, url, urlsplit(url).scheme.lower() in ("http", "https")) for label, url in links],
        "requirements": requirement_links(meta.requires_dist, lambda name: app.index.find_project(name) is not None),
    }


@view_config(route_name="ui.upload", request_method="POST")
@counts_rejections
def upload(request: Request) -> Response:
    identity = checked_post(request)
    content = request.POST.get("content")
    if content is None or isinstance(content, str) or not getattr(content, "filename", None):
        raise InvalidUpload("Choose a wheel or sdist file to upload.")
    app = services(request)
    # Some browsers send the whole client-side path: only its last part names the file.
    filename = content.filename.replace("\\", "/").rsplit("/", 1)[-1]
    creating: NewProject | None = None

    def authorize(project: Project | None) -> None:
        nonlocal creating
        creating = check_may_upload(app, identity, project.display_name if project else dist.project, project)

    try:
        dist = parse_filename(filename)
        # A browser form sends no digest: this one proves only that the bytes arrived whole.
        sha256 = hashlib.file_digest(content.file, "sha256").hexdigest()
        content.file.seek(0)
        # No name: as the browser sent none, the file's metadata names a new project.
        form = UploadForm(name=None, version=str(dist.version), sha256_digest=sha256)
        result = app.index.upload(form, filename, content.file, identity.username, authorize)
    finally:
        content.file.close()
    record_first_owner(app, identity, result.file.project, creating)
    audit_upload(request, identity, result)
    count_upload(result)
    message = "Uploaded" if result.created else "Already in the index (identical file)"
    return back_to(request, "ui.project", f"{message}: {result.file.filename}", project=result.file.project)


def _release_action(request: Request, action: str) -> tuple[str, str]:
    """(project, version) of a release form post, after the same checks the API makes."""
    checked_post(request)
    name = normalize(request.matchdict["project"])
    require_read(request, name)
    require(request, name, Permission.DELETE, action)
    return name, request.matchdict.get("version", "")


@view_config(route_name="ui.version.yank", request_method="POST")
def yank(request: Request) -> Response:
    index = services(request).index
    if request.POST.get("action") == "unyank":
        name, version = _release_action(request, "Unyanking releases")
        count = index.unyank(name, version)
        audit(request, "version.unyank", name, version)
        message = f"Unyanked {name} {version} ({count} file(s))."
    else:
        name, version = _release_action(request, "Yanking releases")
        reason = forms.yank_reason(request.POST.get("reason"))
        count = index.yank(name, version, reason)
        audit(request, "version.yank", name, version, reason or None)
        message = f"Yanked {name} {version} ({count} file(s))."
    return back_to(request, "ui.project", message, project=name)


@view_config(route_name="ui.version.delete", request_method="POST")
def delete_version(request: Request) -> Response:
    name, version = _release_action(request, "Deleting releases")
    forms.require_confirmed(request)
    deleted = services(request).index.delete_version(name, version)
    audit(request, "version.delete", name, version, ", ".join(deleted))
    return _after_delete(request, name, f"Deleted {name} {version}: {', '.join(deleted)}.")


@view_config(route_name="ui.file.delete", request_method="POST")
def delete_file(request: Request) -> Response:
    name, _version = _release_action(request, "Deleting files")
    forms.require_confirmed(request)
    filename = request.matchdict["filename"]
    services(request).index.delete_file(name, filename)
    audit(request, "file.delete", name, filename)
    return _after_delete(request, name, f"Deleted {filename}.")


def _after_delete(request: Request, name: str, message: str) -> Response:
    index = services(request).index
    project = index.find_project(name)
    # The project's last file gone: nothing left to show on its page, so land on the list.
    if project is None or not index.project_files(project):
        return back_to(request, "ui.projects", message)
    return back_to(request, "ui.project", message, project=name)


@view_config(route_name="ui.project.status", request_method="POST")
def set_status(request: Request) -> Response:
    checked_post(request)
    require_status_change(request)
    change = forms.form_status_change(request)
    project = services(request).index.set_status(request.matchdict["project"], change.status, change.reason)
    audit(request, "project.status", project.name, detail=status_detail(project.status, project.status_reason))
    message = f"Status of {project.display_name} is now {project.status}."
    if services(request).index.find_project(project.name) is None:
        return back_to(request, "ui.projects", f"{message} It has no files, so it left the index.")
    return back_to(request, "ui.project", message, project=project.name)


# -- login and logout ----------------------------------------------------------------------


def _local_path(target: str | None) -> str | None:
    """Only a path on this site: a login must not bounce to another one (open redirect)."""
    # No control characters or spaces: CR/LF would split the Location header, and browsers drop tabs
    # and newlines from a URL, so "/\t/host" would leave as "//host".
    if (
        target
        and target.startswith("/")
        and not target.startswith("//")
        and "\\" not in target
        and target.isascii()
        and target.isprintable()
        and not any(char.isspace() for char in target)
    ):
        return target
    return None


@view_config(route_name="ui.login", request_method="GET", renderer="login.jinja2")
def login_form(request: Request) -> dict[str, Any]:
    return {"next": _local_path(request.GET.get("next")) or "", "username": "", "error": None}


@view_config(route_name="ui.login", request_method="POST")
def login(request: Request) -> Response:
    require_csrf_token(request)
    username, password = forms.form_text(request, "username"), request.POST.get("password", "")
    target = _local_path(request.POST.get("next")) or request.route_url("ui.projects")
    access = services(request).access
    identity = None
    if username and username != TOKEN_USERNAME and isinstance(password, str):
        identity = access.authenticate(username, password, request.remote_addr)
    if identity is None:
        values = {"next": _local_path(request.POST.get("next")) or "", "username": username}
        response = render_to_response("login.jinja2", {**values, "error": "Wrong user name or password."}, request)
        response.status_int = 400
        return response
    audit(request, "login.success", target=identity.username, detail="web UI", identity=identity)
    response = HTTPSeeOther(location=target)
    response.headerlist.extend(remember(request, identity.username))
    return response


@view_config(route_name="ui.logout", request_method="POST")
def logout(request: Request) -> Response:
    require_csrf_token(request)
    response = HTTPSeeOther(location=request.route_url("ui.projects"))
    response.headerlist.extend(forget(request))
    return response


# -- my tokens ----------------------------------------------------------------------------


def _tokens_page(request: Request, identity: Identity, created: str | None = None) -> Response:
    access = services(request).access
    # Admins list anyone's (?user=NAME) or everyone's (?user=*), as GET /api/tokens?user=NAME / ?all=1.
    wanted = str(request.GET.get("user", "")).strip() if request.method == "GET" else ""
    owner = tokens_owner_filter(identity, wanted if wanted != "*" else None, wanted == "*")
    tokens = sorted(access.list_tokens(owner), key=lambda t: t.created, reverse=True)
    users = [user.name for user in access.list_users()] if identity.is_admin else []
    values = {"tokens": tokens, "created": created, "read_only": access.read_only, "owner": owner, "users": users}
    response = render_to_response("tokens.jinja2", values, request)
    # The new token's secret is in this page: no cache may keep it.
    response.cache_control.no_store = True
    return response


@view_config(route_name="ui.tokens", request_method="GET")
def tokens(request: Request) -> Response:
    return _tokens_page(request, require_password_login(request, "Listing tokens"))


@view_config(route_name="ui.tokens", request_method="POST")
def create_token(request: Request) -> Response:
    checked_post(request)
    identity = require_password_login(request, "Creating tokens")
    wanted = forms.form_token_request(request, identity)
    created = create_token_for(services(request).access, identity, wanted)
    audit(request, "token.create", target=created.token.id, detail=token_detail(created.token), identity=identity)
    # Shown in this response only, never stored in the session or a flash: it is stored hashed.
    return _tokens_page(request, identity, created=created.secret)


@view_config(route_name="ui.token.revoke", request_method="POST")
def revoke_token(request: Request) -> Response:
    checked_post(request)
    identity = require_password_login(request, "Revoking tokens")
    access = services(request).access
    token = token_to_revoke(access, identity, request.matchdict["id"])
    access.revoke_token(token.id)
    audit(request, "token.revoke", target=token.id, detail=f"of {token.username}", identity=identity)
    flash(request, f"Revoked token {token.id} of {token.username}.")
    # Back to the listing the admin revoked from (its filter), or one's own.
    shown = forms.form_text(request, "shown_user") if identity.is_admin else ""
    return HTTPSeeOther(location=request.route_url("ui.tokens", _query={"user": shown} if shown else {}))
