"""URL routes. Dotted route names: the view modules attach to them."""

from __future__ import annotations

from pyramid.config import Configurator


def includeme(config: Configurator) -> None:
    config.add_route("root", "/")
    config.add_route("simple.index", "/simple/")
    config.add_route("simple.index.noslash", "/simple")
    config.add_route("upload.legacy", "/legacy/")
    config.add_route("upload.legacy.noslash", "/legacy")
    config.add_route("simple.detail", "/simple/{project}/")
    config.add_route("simple.detail.noslash", "/simple/{project}")
    config.add_route("files.download", "/packages/{project}/{filename}")
    config.add_route("health", "/health")
    config.add_route("admin.reload", "/admin/reload")
    config.add_route("pypi.project", "/pypi/{project}/json")
    config.add_route("pypi.release", "/pypi/{project}/{version}/json")
    config.add_route("api.projects", "/api/projects")
    config.add_route("api.project", "/api/projects/{project}")
    config.add_route("api.project.status", "/api/projects/{project}/status")
    config.add_route("api.file", "/api/projects/{project}/files/{filename}")
    config.add_route("api.version", "/api/projects/{project}/versions/{version}")
    config.add_route("api.version.yank", "/api/projects/{project}/versions/{version}/yank")
    config.add_route("api.grants", "/api/projects/{project}/grants")
    config.add_route("api.grant", "/api/projects/{project}/grants/{kind}/{name}")
    config.add_route("api.users", "/api/users")
    config.add_route("api.user", "/api/users/{name}")
    config.add_route("api.groups", "/api/groups")
    config.add_route("api.group", "/api/groups/{name}")
    config.add_route("api.tokens", "/api/tokens")
    config.add_route("api.token", "/api/tokens/{id}")
