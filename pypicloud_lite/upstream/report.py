"""What a project page says of a name's origin: where its files come from, and what the cooldown holds back."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime

from pypicloud_lite.errors import NotFound, UpstreamUnavailable
from pypicloud_lite.models import PackageFile
from pypicloud_lite.upstream.cooldown import Hold
from pypicloud_lite.upstream.exemptions import Exemption
from pypicloud_lite.upstream.parse import UpstreamFile
from pypicloud_lite.upstream.proxy import Listing, UpstreamProxy, read_origin, upstream_of


@dataclass(frozen=True)
class HeldFile:
    """A file the cooldown keeps from pages and file URLs now, with its upstream upload time."""

    filename: str
    upload_time: datetime | None
    hold: Hold


@dataclass(frozen=True)
class OriginReport:
    # read_origin: "local" (held or ever held here, or blocked upstream by an admin), "upstream" (cached from
    # an upstream), "none" (never held here).
    origin: str
    # Whether /simple/<name>/ is the upstream's listing now, and whether a namespace keeps the name from it.
    proxied: bool
    reserved: bool
    # The upstream whose listing is shown, its mode ("cache" or "redirect"), and whether that listing is a held copy.
    upstream: str | None = None
    mode: str | None = None
    stale: bool = False
    display_name: str | None = None
    # Why no listing could be shown (the upstream down, or gone); None when it was or none was asked for.
    problem: str | None = None
    # The upstream's files the pages offer, and those the cooldown holds back.
    offered: list[UpstreamFile] = field(default_factory=list)
    held: list[HeldFile] = field(default_factory=list)
    # The stored files cached from upstream: filename -> the upstream's name.
    cached_from: dict[str, str] = field(default_factory=dict)
    # The break-glass exception stored for the project (expired or not) and whether it covers it now.
    exemption: Exemption | None = None
    exempt: bool = False
    min_age: str | None = None
    freeze_at: datetime | None = None


def describe(proxy: UpstreamProxy, name: str, stored: list[PackageFile]) -> OriginReport:
    """The report of `name` (normalized), whose stored files are `stored`.

    NotFound when the name is neither held here nor offered by an upstream; UpstreamUnavailable when it is not
    held here and no upstream can be asked.
    """
    origin = read_origin(proxy.index, name)
    proxied = proxy.proxied(name)
    cached_from = {file.filename: found for file in stored if (found := upstream_of(file)) is not None}
    cooldown = proxy.cooldown_for(name)
    exemption = proxy.exemptions.show(name) if proxy.cooldown.active else None
    report = OriginReport(
        origin=origin,
        proxied=proxied,
        reserved=proxy.is_reserved(name),
        cached_from=cached_from,
        exemption=exemption,
        exempt=exemption is not None and exemption.covers(cooldown.clock()),
        min_age=proxy.cooldown.min_age_text if proxy.cooldown.min_age else None,
        freeze_at=proxy.cooldown.freeze_at,
    )
    listing: Listing | None = None
    if proxied:
        try:
            listing = proxy.listing(name)
        except (UpstreamUnavailable, NotFound) as exc:
            if origin == "none":
                raise
            report = replace(report, problem=exc.message)
    if not proxied:
        # This index's own page: the cooldown judges nothing on it.
        return report
    if listing is None:
        # The files cached here are what is offered: those the cooldown holds back are said so.
        held = [
            HeldFile(file.filename, file.upload_time, hold)
            for file in stored
            if file.filename in cached_from and (hold := cooldown.hold(file.upload_time)) is not None
        ]
        return replace(report, held=held)
    held = [
        HeldFile(file.filename, file.upload_time, hold)
        for file in listing.page.files
        if (hold := cooldown.hold(file.upload_time)) is not None
    ]
    return replace(
        report,
        upstream=listing.index.name,
        mode=listing.index.mode,
        stale=listing.stale,
        display_name=listing.page.name,
        offered=proxy.visible_files(listing),
        held=held,
    )
