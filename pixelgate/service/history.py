"""A tenant's history: its jobs and stored files, newest first, in cursor pages (as OpenAI's
list endpoints page: `after` and `before` ids), filtered and searched; and the deletion of a
finished job or of a file.

Pages are ordered by (created_at, id), which an index of each table ends with, so a page is
read in index order from its cursor on: no sort, and no cost that grows with the history
before the cursor. The prompt search (`q`) reads the tenant's rows in that order until the
page is full, so it scans within one tenant's rows (never another's, never a sort)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from sqlalchemy import ColumnElement, Select, SQLColumnExpression, or_, select, tuple_
from sqlalchemy.orm import InstrumentedAttribute

from pixelgate.catalog import Catalog
from pixelgate.clock import Clock
from pixelgate.db import Database
from pixelgate.db.tables import Batch, Job, StoredFile
from pixelgate.errors import Conflict, NotFound, ValidationError
from pixelgate.service.files import FileService
from pixelgate.service.job_store import JobStatus
from pixelgate.service.retention import delete_selected_jobs

T = TypeVar("T")
Item = TypeVar("Item", Job, StoredFile, Batch)
Q = TypeVar("Q", bound=Select[*tuple[Any, ...]])


@dataclass(frozen=True)
class Filters:
    """What a page lists. `after`: items older than that item's (the next page, newest
    first); `before`: newer ones (the previous page). `created_after` is inclusive,
    `created_before` exclusive. `status` applies to jobs only, `job_id` to files only."""

    limit: int = 20
    after: str | None = None
    before: str | None = None
    status: JobStatus | None = None
    model: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    q: str | None = None
    job_id: str | None = None


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    has_more: bool
    """More items follow in the direction read: older ones after `after` (or with no cursor),
    newer ones before `before`."""


@dataclass(frozen=True)
class FileEntry:
    """A stored file with what made it: its job's model and prompt (None without a job)."""

    record: StoredFile
    model: str | None
    prompt: str | None


def parse_instant(value: str | None, *, param: str) -> datetime | None:
    """A time given as unix seconds (`1796000000`, `1796000000.5`) or ISO 8601
    (`2026-12-07T09:00:00Z`; one without an offset is UTC)."""
    if value is None or value == "":
        return None
    try:
        return datetime.fromtimestamp(float(value), UTC)
    except (ValueError, OverflowError, OSError):
        pass
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValidationError(
            f"{param} must be an ISO 8601 time or unix seconds, not {value!r}", param=param
        ) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


class History:
    def __init__(self, db: Database, files: FileService, catalog: Catalog, clock: Clock) -> None:
        self._db = db
        self._files = files
        self._catalog = catalog
        self._clock = clock

    # -- listing --------------------------------------------------------------------------

    def jobs(self, tenant_id: str, filters: Filters) -> Page[Job]:
        """A page of the tenant's jobs, newest first."""
        query = select(Job).where(Job.tenant_id == tenant_id)
        if filters.status is not None:
            query = query.where(Job.status == str(filters.status))
        query = self._common(query, Job, filters, model=Job.model, prompt=Job.prompt)
        cursor = self._cursor(Job, tenant_id, filters)
        with self._db.session() as session:
            rows = list(session.scalars(_paged(query, Job, cursor, filters)))
        return _page(rows, filters)

    def files(self, tenant_id: str, filters: Filters) -> Page[FileEntry]:
        """A page of the tenant's live files, newest first, each with its job's model and
        prompt. These are read, and filtered on, by a subquery per file that probes the job's
        primary key: a join would let PostgreSQL's planner read every job matching a search
        first, whatever the tenant, where the files are read in their order until the page
        is full."""
        now = self._clock.now()
        model = select(Job.model).where(Job.id == StoredFile.job_id).scalar_subquery()
        prompt = select(Job.prompt).where(Job.id == StoredFile.job_id).scalar_subquery()
        query = select(StoredFile, model, prompt).where(
            StoredFile.tenant_id == tenant_id,
            or_(StoredFile.expires_at.is_(None), StoredFile.expires_at > now),
        )
        if filters.job_id is not None:
            query = query.where(StoredFile.job_id == filters.job_id)
        query = self._common(query, StoredFile, filters, model=model, prompt=prompt)
        cursor = self._cursor(StoredFile, tenant_id, filters)
        with self._db.session() as session:
            rows = session.execute(_paged(query, StoredFile, cursor, filters)).all()
        entries = [FileEntry(row[0], row[1], row[2]) for row in rows]
        return _page(entries, filters)

    def batches(self, tenant_id: str, filters: Filters) -> Page[Batch]:
        """A page of the tenant's batches, newest first (paging and creation range only)."""
        query = select(Batch).where(Batch.tenant_id == tenant_id)
        if filters.created_after is not None:
            query = query.where(Batch.created_at >= filters.created_after)
        if filters.created_before is not None:
            query = query.where(Batch.created_at < filters.created_before)
        cursor = self._cursor(Batch, tenant_id, filters)
        with self._db.session() as session:
            rows = list(session.scalars(_paged(query, Batch, cursor, filters)))
        return _page(rows, filters)

    def file(self, tenant_id: str, file_id: str) -> FileEntry:
        """One of the tenant's live files, as `files` lists it."""
        record = self._files.get(tenant_id, file_id)
        job = None
        if record.job_id is not None:
            with self._db.session() as session:
                job = session.get(Job, record.job_id)
        return FileEntry(record, job.model if job else None, job.prompt if job else None)

    def _common(
        self,
        query: Q,
        kind: type[Item],
        filters: Filters,
        *,
        model: SQLColumnExpression[str],
        prompt: SQLColumnExpression[str | None],
    ) -> Q:
        """The filters jobs and files share: model, creation range, prompt search."""
        if filters.model is not None:
            query = query.where(model == self._model_id(filters.model))
        created: InstrumentedAttribute[datetime] = kind.created_at
        if filters.created_after is not None:
            query = query.where(created >= filters.created_after)
        if filters.created_before is not None:
            query = query.where(created < filters.created_before)
        if filters.q:
            # a scan of the tenant's rows in page order, stopped once the page is full
            query = query.where(prompt.icontains(filters.q, autoescape=True))
        return query

    def _model_id(self, name: str) -> str:
        """An alias as its model's id; a name the catalog no longer knows as it is (jobs of a
        model since removed are still listed)."""
        try:
            return self._catalog.resolve(name).id
        except ValidationError:
            return name

    def _cursor(
        self, kind: type[Item], tenant_id: str, filters: Filters
    ) -> tuple[datetime, str] | None:
        """(created_at, id) of the item `after` or `before` names; an id that is not one of
        the tenant's is a validation error on that parameter."""
        if filters.after is not None and filters.before is not None:
            raise ValidationError("Give either after or before, not both", param="before")
        param, item_id = ("after", filters.after) if filters.after else ("before", filters.before)
        if item_id is None:
            return None
        with self._db.session() as session:
            item = session.get(kind, item_id)
        if item is None or item.tenant_id != tenant_id:
            raise ValidationError(f"{param}: no such item {item_id!r} in this list", param=param)
        return item.created_at, item.id

    # -- deleting -------------------------------------------------------------------------

    def delete_file(self, tenant_id: str, file_id: str) -> None:
        self._files.delete(tenant_id, file_id)

    def delete_job(self, tenant_id: str, job_id: str) -> None:
        """Delete a finished job of the tenant, as retention does (`retention.delete_jobs`):
        with its events, files, input references and idempotency keys (a request sent again
        with the key is a new request), then the blobs nothing else uses. Its ledger entries
        stay: money records are never deleted here. A queued or running job is a conflict:
        cancel it first."""
        with self._db.session() as session:
            job = session.get(Job, job_id)
            if job is None or job.tenant_id != tenant_id:
                raise NotFound(f"No job {job_id!r}", param="job_id")
        if not JobStatus(job.status).is_terminal:  # and so never again active
            raise Conflict(
                f"Job {job_id} is {job.status}; cancel it first (POST /v1/jobs/{job_id}/cancel), "
                "then delete it",
                param="job_id",
            )
        delete_selected_jobs(self._db, self._files, select(Job.id).where(Job.id == job_id))


def _paged(
    query: Q,
    kind: type[Item],
    cursor: tuple[datetime, str] | None,
    filters: Filters,
) -> Q:
    """The page's rows, one more than `limit` (whether more follow), in the direction read:
    newest first, or oldest first from a `before` cursor (`_page` turns them around)."""
    order: Sequence[ColumnElement[Any]]
    key = tuple_(kind.created_at, kind.id)
    if filters.before is not None and cursor is not None:
        query = query.where(key > tuple_(*cursor))
        order = (kind.created_at.asc(), kind.id.asc())
    else:
        if cursor is not None:
            query = query.where(key < tuple_(*cursor))
        order = (kind.created_at.desc(), kind.id.desc())
    return query.order_by(*order).limit(filters.limit + 1)


def _page(rows: list[T], filters: Filters) -> Page[T]:
    has_more = len(rows) > filters.limit
    items = rows[: filters.limit]
    if filters.before is not None:
        items.reverse()
    return Page(items, has_more)
