"""pynamodb models of the DynamoDB cache, built per settings (table names carry a configurable prefix).

Layout (and why):
- `<prefix>projects`: partition key `pk` (always "project"), sort key `name`. Listing every
  project is one Query on one partition, in name order; a project is one GetItem. Download counts share the
  table in partitions of their own, "downloads#<project>", one item per file (sort key: the filename) that
  an UpdateItem ADDs to: a project's counts are one Query, and the project listing never sees them.
- `<prefix>files`: partition key `project`, sort key `filename`. A project's files are one
  Query; a file is one GetItem, its project being derived from its filename.
- `<prefix>meta`: partition key `name`: the change-serial counter ("serial") and leases
  ("lock#reload"), each a single item updated with conditions.
- `<prefix>cdn`: the CDN outbox, partition key `pk`, sort key `sk`: "pending" changes (written
  in the change's own transaction), the "open" batch (claimed, not yet sent: the ids of its
  changes) and the "sent" history, sorted by time for ppc-cdn-report.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pynamodb.attributes import (
    BooleanAttribute,
    JSONAttribute,
    ListAttribute,
    NumberAttribute,
    UnicodeAttribute,
    UTCDateTimeAttribute,
)
from pynamodb.models import Model

from pypicloud_lite.config import DynamoSettings

PROJECT_PARTITION = "project"


@dataclass(frozen=True)
class DynamoTables:
    # Model classes built at run time (their table names come from settings): typed Any,
    # since their attributes are only known once built.
    project: Any
    file: Any
    meta: Any
    cdn: Any
    # Items of the projects table (see the layout above): no table of its own to create.
    downloads: Any

    def all(self) -> tuple[type[Model], ...]:
        return (self.project, self.file, self.meta, self.cdn)


def _meta(settings: DynamoSettings, name: str) -> Any:
    attrs: dict[str, object] = {
        "table_name": f"{settings.table_prefix}{name}",
        "max_retry_attempts": 3,
        "max_pool_connections": settings.max_pool_connections,
    }
    if settings.region:
        attrs["region"] = settings.region
    if settings.endpoint_url:
        attrs["host"] = settings.endpoint_url
    if settings.read_capacity and settings.write_capacity:
        attrs["read_capacity_units"] = settings.read_capacity
        attrs["write_capacity_units"] = settings.write_capacity
    else:
        attrs["billing_mode"] = "PAY_PER_REQUEST"
    return type("Meta", (), attrs)


def build_tables(settings: DynamoSettings) -> DynamoTables:
    class ProjectItem(Model):
        Meta = _meta(settings, "projects")
        pk = UnicodeAttribute(hash_key=True, default=PROJECT_PARTITION)
        name = UnicodeAttribute(range_key=True)
        # Absent until a change names the project (a reload lists files before reading a name): shown as `name`.
        display_name = UnicodeAttribute(null=True)
        serial = NumberAttribute(default=0)
        created = UTCDateTimeAttribute()
        status = UnicodeAttribute(default="active")
        status_reason = UnicodeAttribute(null=True)

    class FileItem(Model):
        Meta = _meta(settings, "files")
        project = UnicodeAttribute(hash_key=True)
        filename = UnicodeAttribute(range_key=True)
        version = UnicodeAttribute()
        # The release (models.canonical_version); items written before it was stored lack it.
        canonical_version = UnicodeAttribute(null=True)
        packagetype = UnicodeAttribute()
        python_version = UnicodeAttribute()
        size = NumberAttribute()
        sha256 = UnicodeAttribute(null=True)
        md5 = UnicodeAttribute(null=True)
        blake2_256 = UnicodeAttribute(null=True)
        upload_time = UTCDateTimeAttribute()
        requires_python = UnicodeAttribute(null=True)
        summary = UnicodeAttribute(null=True)
        metadata_sha256 = UnicodeAttribute(null=True)
        yanked = BooleanAttribute(default=False)
        yanked_reason = UnicodeAttribute(null=True)
        uploader = UnicodeAttribute(null=True)
        core_metadata = JSONAttribute(null=True)
        storage_etag = UnicodeAttribute(null=True)
        object_key = UnicodeAttribute(null=True)

    class MetaItem(Model):
        Meta = _meta(settings, "meta")
        name = UnicodeAttribute(hash_key=True)
        value = NumberAttribute(default=0)
        holder = UnicodeAttribute(null=True)
        expires = NumberAttribute(null=True)
        progress = JSONAttribute(null=True)

    class CdnItem(Model):
        Meta = _meta(settings, "cdn")
        pk = UnicodeAttribute(hash_key=True)
        sk = UnicodeAttribute(range_key=True)
        project = UnicodeAttribute(null=True)
        version = UnicodeAttribute(null=True)
        filename = UnicodeAttribute(null=True)
        created = UTCDateTimeAttribute(null=True)
        change_ids = ListAttribute(of=UnicodeAttribute, null=True)
        record = JSONAttribute(null=True)

    class DownloadItem(Model):
        Meta = _meta(settings, "projects")
        pk = UnicodeAttribute(hash_key=True)
        name = UnicodeAttribute(range_key=True)
        downloads = NumberAttribute(default=0)

    return DynamoTables(project=ProjectItem, file=FileItem, meta=MetaItem, cdn=CdnItem, downloads=DownloadItem)


def create_tables(tables: DynamoTables) -> list[str]:
    """Create the tables that do not exist yet (waiting until they are active); returns their names."""
    created = []
    for model in tables.all():
        if not model.exists():
            model.create_table(wait=True)
            created.append(model.Meta.table_name)
    return created
