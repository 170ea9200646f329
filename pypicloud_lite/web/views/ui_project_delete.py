"""The web UI's deletion of a whole project (owners and admins), confirmed by typing its name."""

from __future__ import annotations

from pyramid.request import Request
from pyramid.response import Response
from pyramid.view import view_config

from pypicloud_lite.errors import InvalidInput
from pypicloud_lite.naming import normalize
from pypicloud_lite.web.forms import form_text
from pypicloud_lite.web.permissions import check_may_delete_project, delete_project_for
from pypicloud_lite.web.ui_support import back_to, checked_post


@view_config(route_name="ui.project.delete", request_method="POST")
def delete_project(request: Request) -> Response:
    checked_post(request)
    name = check_may_delete_project(request, request.matchdict["project"])
    typed = form_text(request, "confirm_name")
    if not typed or normalize(typed) != name:
        raise InvalidInput(f"Type the project's name, {name}, to confirm deleting it.")
    display_name, deleted = delete_project_for(request, name)
    return back_to(
        request,
        "ui.projects",
        f"Deleted the project {display_name} ({len(deleted)} file{'' if len(deleted) == 1 else 's'}).",
    )
