"""DynamoDB items to domain models and back, and pynamodb errors at the cache's boundary."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, ParamSpec, TypeVar

from botocore.exceptions import BotoCoreError, ClientError
from pynamodb.exceptions import PynamoDBException, TransactWriteError
from pynamodb.models import Model

from pypicloud_lite.aws_errors import credentials_error
from pypicloud_lite.aws_errors import error_code as aws_error_code
from pypicloud_lite.cache.dynamo.tables import PROJECT_PARTITION, DynamoTables
from pypicloud_lite.errors import BackendUnavailable
from pypicloud_lite.models import CdnChange, CoreMetadata, PackageFile, Project

logger = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")
CONDITION_FAILED = "ConditionalCheckFailedException"
# What a reload fills in once it has read an object.
DETAIL_FIELDS = ("sha256", "requires_python", "summary", "metadata_sha256", "core_metadata", "storage_etag", "size")
THROTTLED = frozenset({"ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded"})


def translated(method: Callable[P, R]) -> Callable[P, R]:
    """pynamodb errors become BackendUnavailable at this boundary (503 with Retry-After)."""

    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(*args, **kwargs)
        except (PynamoDBException, BotoCoreError, ClientError) as exc:
            # botocore's errors too: pynamodb lets some through (describing a table, which creating tables does).
            refused = credentials_error(exc, "DynamoDB", f"the package cache's {method.__name__}")
            if refused is not None:
                raise refused from exc
            code = getattr(exc, "cause_response_code", None) or aws_error_code(exc)
            logger.warning("DynamoDB cache error in %s: %s", method.__name__, code)
            if code in THROTTLED:
                raise BackendUnavailable("The package cache (DynamoDB) is throttling requests.", 2) from exc
            raise BackendUnavailable(f"The package cache (DynamoDB) is unavailable ({code}).") from exc

    return wrapper


def cancellation_codes(exc: TransactWriteError) -> set[str]:
    """Why DynamoDB cancelled a transaction: the codes of its items' reasons ("ConditionalCheckFailed", ...)."""
    return {r.code for r in exc.cancellation_reasons or [] if r is not None}


def condition_failed(exc: PynamoDBException) -> bool:
    if isinstance(exc, TransactWriteError):
        return "ConditionalCheckFailed" in cancellation_codes(exc)
    return getattr(exc, "cause_response_code", None) == CONDITION_FAILED


def to_file(item: Any) -> PackageFile:
    # The release comes from `version` (PackageFile.canonical_version), so items written before
    # `canonical_version` was stored read the same as new ones.
    return PackageFile(
        project=item.project,
        filename=item.filename,
        version=item.version,
        packagetype=item.packagetype,
        python_version=item.python_version,
        size=int(item.size),
        sha256=item.sha256,
        upload_time=item.upload_time,
        md5=item.md5,
        blake2_256=item.blake2_256,
        requires_python=item.requires_python,
        summary=item.summary,
        metadata_sha256=item.metadata_sha256,
        yanked=bool(item.yanked),
        yanked_reason=item.yanked_reason,
        uploader=item.uploader,
        core_metadata=CoreMetadata.from_dict(item.core_metadata) if item.core_metadata else None,
        storage_etag=item.storage_etag,
        key=item.object_key,
    )


def file_item(tables: DynamoTables, file: PackageFile) -> Model:
    item: Model = tables.file(
        file.project,
        file.filename,
        version=file.version,
        canonical_version=file.canonical_version,
        packagetype=file.packagetype,
        python_version=file.python_version,
        size=file.size,
        sha256=file.sha256,
        md5=file.md5,
        blake2_256=file.blake2_256,
        upload_time=file.upload_time.astimezone(UTC),
        requires_python=file.requires_python,
        summary=file.summary,
        metadata_sha256=file.metadata_sha256,
        yanked=file.yanked,
        yanked_reason=file.yanked_reason,
        uploader=file.uploader,
        core_metadata=file.core_metadata.to_dict() if file.core_metadata else None,
        storage_etag=file.storage_etag,
        object_key=file.key,
    )
    return item


def to_project(item: Any) -> Project:
    return Project(
        name=item.name,
        display_name=item.display_name or item.name,
        serial=int(item.serial),
        status=item.status,
        status_reason=item.status_reason,
    )


def same_row_condition(t: DynamoTables, seen: PackageFile) -> Any:
    """A write condition that holds while the stored item is still the row `seen` (models.same_row)."""
    f = t.file

    def equal(attribute: Any, value: Any) -> Any:
        return attribute.does_not_exist() if value is None else attribute == value

    return (
        (f.upload_time == seen.upload_time.astimezone(UTC))
        & (f.size == seen.size)
        & (f.yanked == seen.yanked)
        & equal(f.sha256, seen.sha256)
        & equal(f.yanked_reason, seen.yanked_reason)
        & equal(f.storage_etag, seen.storage_etag)
    )


def detail_actions(t: DynamoTables, file: PackageFile, stored: Any) -> list[Any]:
    """Set what a reload fills in (removing what it found missing), where the stored item differs from it.

    A hash that replaces another drops the row's other digests, of bytes that are gone (as the SQL cache does).
    """
    f = t.file
    item = file_item(t, file)
    actions = [
        getattr(f, name).set(getattr(item, name)) if getattr(item, name) is not None else getattr(f, name).remove()
        for name in DETAIL_FIELDS
        if getattr(item, name) != getattr(stored, name)
    ]
    if stored.sha256 is not None and stored.sha256 != file.sha256:
        actions += [f.md5.remove(), f.blake2_256.remove()]
    return actions


def fill_purge(file: PackageFile, current_sha256: str | None) -> CdnChange:
    """What filling in a row (of that hash) with `file` purges: its release's pages, and its URL when its bytes
    changed."""
    replaced = current_sha256 is not None and current_sha256 != file.sha256
    return CdnChange(file.project, file.version, file.filename if replaced else None)


def update_quietly(model: Any, keys: tuple[str, str], actions: list[Any], condition: Any) -> None:
    """UpdateItem that asks for nothing back (Model.update asks for the whole new item, core metadata and all)."""
    hash_key, range_key = keys
    model._get_connection().update_item(hash_key, range_key=range_key, actions=actions, condition=condition)


def stamp_actions(t: DynamoTables, serial: int, display_name: str | None) -> list[Any]:
    """Move the project row to this serial, creating it when it is new (names and dates are kept).

    The first change that knows the project's name names it; until then the row has none and reads as its
    normalized name (a reload lists a new project's files before it reads its name from one of them).
    """
    p = t.project
    named = [p.display_name.set(p.display_name | display_name)] if display_name else []
    return [
        p.serial.set(serial),
        *named,
        p.created.set(p.created | datetime.now(UTC)),
        p.status.set(p.status | "active"),
    ]


def name_if_unnamed(t: DynamoTables, project: str, display_name: str | None) -> None:
    """Give an existing project row this name if no change has named it yet."""
    if not display_name:
        return
    p = t.project
    try:
        update_quietly(
            p,
            (PROJECT_PARTITION, project),
            [p.display_name.set(display_name)],
            p.name.exists() & p.display_name.does_not_exist(),
        )
    except PynamoDBException as exc:
        if not condition_failed(exc):
            raise
