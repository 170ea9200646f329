"""Reading and checking what callers send: JSON bodies (the API), form posts (the UI), and the parsers both share."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any

from pyramid.events import NewRequest, subscriber
from pyramid.request import Request

from pypicloud_lite.access.base import Identity
from pypicloud_lite.config_values import parse_instant
from pypicloud_lite.errors import InvalidInput, UploadTooLarge
from pypicloud_lite.namespaces import parse_owner
from pypicloud_lite.spool import too_large
from pypicloud_lite.web.services import services

EXPIRY_ERROR = "'expires' must be a date (2027-01-31) or an ISO 8601 date and time (2027-01-31T12:00:00Z)."


def check_body_size(request: Request) -> None:
    """413 before the body is parsed, when it cannot hold a file the index would take."""
    upload = services(request).settings.upload
    if request.content_length is not None and request.content_length > upload.max_body:
        raise too_large(upload.max_size)


@subscriber(NewRequest)
def refuse_oversized_body(event: NewRequest) -> None:
    """413 for any request whose body is too big, or of unannounced size, before anyone is authenticated.

    An anonymous client must not make the server hash passwords for, or parse, a body no view would take.
    waitress's own max_request_body_size (the inis set it to the same limit) is what spares the disk:
    it answers before buffering, while this check only runs once the body has arrived.
    """
    request = event.request
    # waitress decodes a chunked body and keeps the header; clients of this index
    # (twine, uv, pip, browsers) always send a Content-Length.
    if "chunked" in request.headers.get("Transfer-Encoding", "").lower():
        raise UploadTooLarge(
            "Chunked request bodies are not accepted: send the body with a Content-Length "
            f"(at most {services(request).settings.upload.max_body} bytes)."
        )
    check_body_size(request)


# -- rules both doors share ------------------------------------------------------------------


def parse_expiry(value: object) -> datetime | None:
    """A token's expiry: None (never) when missing or blank; an aware UTC datetime otherwise.

    A bare date means the end of that day in UTC (what a date picker means by "expires on");
    a date and time without a zone is taken as UTC.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str):
        raise InvalidInput(EXPIRY_ERROR)
    text = value.strip()
    try:
        return datetime.combine(date.fromisoformat(text), time.max, UTC)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise InvalidInput(EXPIRY_ERROR) from exc
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def exception_request(reason: object, until: object) -> tuple[str, datetime | None]:
    """A cooldown exception's reason and optional expiry (an ISO 8601 date or time, UTC without an offset)."""
    if not isinstance(reason, str) or not isinstance(until, (str, type(None))):
        raise InvalidInput('Give {"reason": "...", "until": "<ISO 8601 date or time>"} (until is optional).')
    try:
        return reason, parse_instant(until or "")
    except ValueError as exc:
        raise InvalidInput(str(exc)) from exc


@dataclass(frozen=True)
class StatusChange:
    """A project status change (PEP 792); the service checks the status is a known one."""

    status: str
    reason: str | None


def status_change(status: object, reason: object) -> StatusChange:
    if not isinstance(status, str) or not (reason is None or isinstance(reason, str)):
        raise InvalidInput("'status' must be a string and 'reason' a string or null.")
    # A blank reason is no reason: the pages show none rather than an empty one.
    return StatusChange(status, (reason or "").strip() or None)


def yank_reason(value: object) -> str | None:
    if value is not None and not isinstance(value, str):
        raise InvalidInput("'reason' must be a string.")
    return (value or "").strip() or None


@dataclass(frozen=True)
class TokenRequest:
    """What a new API token is for; who may ask for it is permissions.check_may_create_token."""

    owner: str
    description: str
    projects: tuple[str, ...] | None
    read_only: bool
    expires: datetime | None


def token_projects(value: object) -> tuple[str, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not value or not all(isinstance(p, str) and p for p in value):
        # An empty list must not silently mean "every project".
        raise InvalidInput("'projects' must be a non-empty list of project names, or null for all projects.")
    return tuple(value)


# -- JSON bodies (the API) ---------------------------------------------------------------------


def json_body(request: Request) -> dict[str, Any]:
    if not request.body:
        return {}
    try:
        body = request.json_body
    except ValueError as exc:
        raise InvalidInput("The request body is not valid JSON.") from exc
    if not isinstance(body, dict):
        raise InvalidInput("The request body must be a JSON object.")
    return body


def int_param(request: Request, name: str, default: int, maximum: int) -> int:
    try:
        value = int(request.GET.get(name, default))
    except ValueError as exc:
        raise InvalidInput(f"Query parameter {name!r} must be a whole number.") from exc
    if not 1 <= value <= maximum:
        raise InvalidInput(f"Query parameter {name!r} must be between 1 and {maximum}.")
    return value


def json_bool(body: dict[str, Any], name: str, default: bool | None) -> bool | None:
    """`name` as a JSON boolean; null is accepted only where the default is None ("leave it as it is")."""
    value = body.get(name, default)
    if value is None and default is None:
        return None
    if not isinstance(value, bool):
        raise InvalidInput(f"'{name}' must be true or false.")
    return value


def json_reason(body: dict[str, Any]) -> str | None:
    return yank_reason(body.get("reason"))


def json_status_change(request: Request) -> StatusChange:
    body = json_body(request)
    return status_change(body.get("status"), body.get("reason"))


def json_token_request(request: Request, identity: Identity) -> TokenRequest:
    body = json_body(request)
    projects = token_projects(body.get("projects"))
    read_only = json_bool(body, "read_only", False)
    return TokenRequest(
        owner=str(body.get("user", identity.username)),
        description=str(body.get("description", "")),
        projects=projects,
        read_only=bool(read_only),
        expires=parse_expiry(body.get("expires")),
    )


def json_new_user(request: Request) -> tuple[str, str, bool]:
    """(name, password, admin) of a user to create."""
    body = json_body(request)
    name, password = body.get("name"), body.get("password")
    if not isinstance(name, str) or not isinstance(password, str):
        raise InvalidInput("'name' and 'password' are required strings.")
    return name, password, bool(json_bool(body, "admin", False))


def json_user_change(body: dict[str, Any]) -> tuple[str | None, bool | None]:
    """(password, admin) to change; None leaves that one as it is."""
    password = body.get("password")
    if password is not None and not isinstance(password, str):
        raise InvalidInput("'password' must be a string.")
    return password or None, json_bool(body, "admin", None)


def json_members(request: Request) -> list[str]:
    members = json_body(request).get("members", [])
    if not isinstance(members, list) or not all(isinstance(m, str) for m in members):
        raise InvalidInput("'members' must be a list of user names.")
    return members


def json_namespace(request: Request) -> tuple[str, str, str]:
    """(name, kind, owner) of a namespace to reserve: `{"name": "corp", "owner": "group:platform"}`."""
    body = json_body(request)
    name, owner = body.get("name"), body.get("owner")
    if not isinstance(name, str) or not isinstance(owner, str):
        raise InvalidInput("'name' and 'owner' (user:<name> or group:<name>) are required strings.")
    return (name, *parse_owner(owner))


def json_perms(request: Request) -> str:
    perms = json_body(request).get("perms")
    if not isinstance(perms, str):
        raise InvalidInput("'perms' must be a string of letters from 'rwdo'.")
    return perms


# -- form posts (the UI) -----------------------------------------------------------------------


def form_text(request: Request, name: str) -> str:
    value = request.POST.get(name, "")
    return value.strip() if isinstance(value, str) else ""


def form_flag(request: Request, name: str) -> bool:
    """A checkbox: ticked boxes send their value ("yes"), unticked ones send nothing."""
    return bool(request.POST.get(name) == "yes")


def form_password(request: Request, name: str = "password") -> str:
    # Not stripped: spaces are part of a password.
    value = request.POST.get(name, "")
    return value if isinstance(value, str) else ""


def form_names(request: Request, name: str) -> list[str]:
    """A text field of names separated by commas or spaces."""
    return form_text(request, name).replace(",", " ").split()


def require_confirmed(request: Request) -> None:
    # The confirmation box is `required` in the page; a post without it (scripted, or a
    # browser ignoring `required`) must not delete anything either.
    if request.POST.get("confirm") != "yes":
        raise InvalidInput("Tick the confirmation box to delete.")


def form_namespace(request: Request) -> tuple[str, str, str]:
    """(name, kind, owner) from the admin page's namespace form."""
    return (form_text(request, "name"), *parse_owner(form_text(request, "owner")))


def form_status_change(request: Request) -> StatusChange:
    return status_change(request.POST.get("status"), request.POST.get("reason"))


def form_token_request(request: Request, identity: Identity) -> TokenRequest:
    """The UI makes tokens for the logged-in user only; blank fields mean "all projects" and "never"."""
    return TokenRequest(
        owner=identity.username,
        description=form_text(request, "description"),
        projects=token_projects(form_names(request, "projects") or None),
        read_only=form_flag(request, "read_only"),
        expires=parse_expiry(request.POST.get("expires")),
    )
