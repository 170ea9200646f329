"""The legacy upload API (what twine and `uv publish` speak): POST /, /simple/ and /legacy/."""

from __future__ import annotations

import logging

from pyramid.request import Request
from pyramid.response import Response
from pyramid.view import view_config

from pypicloud_lite.errors import InvalidUpload
from pypicloud_lite.models import Project
from pypicloud_lite.service import UploadForm
from pypicloud_lite.web.audit_trail import audit_upload
from pypicloud_lite.web.forms import check_body_size
from pypicloud_lite.web.observe import count_upload, counts_rejections
from pypicloud_lite.web.permissions import NewProject, check_may_upload, record_first_owner
from pypicloud_lite.web.security import require_identity
from pypicloud_lite.web.services import services
from pypicloud_lite.web.upload_form import read_upload

logger = logging.getLogger(__name__)


@view_config(route_name="root", request_method="POST")
@view_config(route_name="simple.index", request_method="POST")
@view_config(route_name="simple.index.noslash", request_method="POST")
@view_config(route_name="upload.legacy", request_method="POST")
@view_config(route_name="upload.legacy.noslash", request_method="POST")
@counts_rejections
def upload(request: Request) -> Response:
    app = services(request)
    identity = require_identity(request, "Uploading")
    check_body_size(request)
    if not request.content_type.startswith("multipart/form-data"):
        raise InvalidUpload("Uploads must be multipart/form-data (the legacy upload API).")

    # The body is read once: the file goes to the spool as it arrives (removed at the end unless stored).
    with app.index.receiving() as writer:
        body = read_upload(request, writer)
        action = body.get(":action") or request.GET.get(":action")
        if action != "file_upload":
            raise InvalidUpload(f"Unsupported :action {action!r}: only file_upload is supported.")
        protocol = body.get("protocol_version")
        if protocol not in (None, "1"):
            raise InvalidUpload(f"Unknown protocol_version {protocol!r}: only 1 is supported.")
        if body.filename is None:
            raise InvalidUpload("Upload payload does not have a file (the 'content' field).")

        name = body.get("name") or ""
        creating: NewProject | None = None

        def authorize(project: Project | None) -> None:
            nonlocal creating
            creating = check_may_upload(app, identity, name, project)

        form = UploadForm(
            name=name,
            version=body.get("version") or "",
            filetype=body.get("filetype"),
            summary=body.get("summary"),
            requires_python=body.get("requires_python"),
            md5_digest=body.get("md5_digest"),
            sha256_digest=body.get("sha256_digest"),
            blake2_256_digest=body.get("blake2_256_digest"),
        )
        result = app.index.upload(form, body.filename, writer.finish(), identity.username, authorize)
    record_first_owner(app, identity, name, creating)
    audit_upload(request, identity, result)
    count_upload(result)
    message = "OK" if result.created else "OK: identical file already in the index"
    return Response(
        json_body={"message": message, "filename": result.file.filename, "sha256": result.file.sha256},
        status=200,
    )
