"""The landing page at /: where the index is and how to point clients at it."""

from __future__ import annotations

from html import escape

from pyramid.request import Request
from pyramid.response import Response
from pyramid.view import view_config


@view_config(route_name="root", request_method="GET")
def root(request: Request) -> Response:
    simple = escape(request.route_url("simple.index"))
    upload = escape(request.route_url("upload.legacy"))
    ui = escape(request.route_url("ui.projects"))
    body = f"""<!DOCTYPE html>
<html lang="en">
  <head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
  <title>pypicloud_lite</title></head>
  <body>
    <h1>pypicloud_lite</h1>
    <p>A private Python package index. Simple API: <a href="{simple}">{simple}</a></p>
    <p>Browse, upload and manage packages in the <a href="{ui}">web UI</a>.</p>
    <pre>pip install --index-url {simple} PROJECT
uv pip install --index-url {simple} PROJECT
twine upload --repository-url {upload} dist/*</pre>
  </body>
</html>
"""
    return Response(body, content_type="text/html", charset="utf-8")
