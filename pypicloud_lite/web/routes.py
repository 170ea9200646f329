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
