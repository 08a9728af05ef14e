"""The database: users' cases and the append-only audit trail (SQLAlchemy 2 + Alembic).

Where it is: ``$MRI_INSIGHT_DB_URL``, else ``[database] url`` of ``.streamlit/secrets.toml`` (the
page passes that section in), else a SQLite file ``data/mri_insight.db`` beside the project,
made on first use. PostgreSQL: ``postgresql+psycopg://user:password@host/db``.

Every method migrates the database first if this process has not yet done so, and turns a
database that cannot be reached, is read-only or has a full disk into ``StoreUnavailable``: the
page keeps the work in the session and tries again on its next run.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import and_, func, insert, select, update
from sqlalchemy import exc as sa_exc

from mri_core.access import Identity
from mri_core.store import schema
from mri_core.store.audit import AuditEvent
from mri_core.store.cases import CaseSnapshot
from mri_core.store.engine import StoreUnavailable, classify, make_engine, migrate

URL_ENV = "MRI_INSIGHT_DB_URL"
DEFAULT_PATH = Path(__file__).resolve().parents[2] / "data" / "mri_insight.db"

__all__ = ["Store", "StoreUnavailable", "database_url", "PixelPolicy", "StoredCase", "SaveResult", "CaseSummary"]


def database_url(section: dict | None = None) -> str:
    """The database's URL: the environment's, the config's ``[database] url``, or the default SQLite file."""
    return os.environ.get(URL_ENV) or (section or {}).get("url") or f"sqlite:///{DEFAULT_PATH}"


def _utc(value: datetime | None) -> datetime | None:
    """SQLite gives back naive datetimes; every time stored here is UTC."""
    if value is None:
        return None
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def _now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class PixelPolicy:
    """Whether a case keeps its scan's pixels (for reopening without the file) and for how long."""

    store: bool = False
    retention_days: int = 30


@dataclass(frozen=True)
class SaveResult:
    case_id: int
    branch: int
    version: int
    conflict: bool  # the saved copy had changed since it was read: this save became a new branch


@dataclass(frozen=True)
class CaseSummary:
    case_id: int
    content_hash: str
    branch: int
    name: str
    version: int
    created_at: datetime
    updated_at: datetime
    notes: str
    has_pixels: bool
    pixels_until: datetime | None


@dataclass(frozen=True)
class StoredCase:
    summary: CaseSummary
    snapshot: CaseSnapshot
    pixels: bytes | None


def _summary(row) -> CaseSummary:
    return CaseSummary(row.id, row.content_hash, row.branch, row.name, row.version, _utc(row.created_at),
                       _utc(row.updated_at), row.notes, row.has_pixels, _utc(row.pixels_until))


def _owned(identity: Identity):
    c = schema.cases.c
    return and_(c.owner_issuer == identity.issuer, c.owner_subject == identity.subject)


SUMMARY_COLUMNS = [*(getattr(schema.cases.c, n) for n in ("id", "content_hash", "branch", "name", "version", "created_at",
                                                          "updated_at", "notes", "pixels_until")),
                   (schema.cases.c.pixels.is_not(None)).label("has_pixels")]


class Store:
    def __init__(self, url: str):
        self.url = url
        self.engine = make_engine(url)
        self.revision: str | None = None

    def ready(self) -> None:
        """Migrate (once per process, idempotent) and drop pixels past their retention."""
        if self.revision is None:
            self.revision = migrate(self.engine)
            self.purge_expired_pixels()

    def _begin(self):
        return _Transaction(self)

    # ------------------------------------------------------------------ audit trail

    def audit(self, *events: AuditEvent) -> None:
        """Append events (one transaction: all or none)."""
        if events:
            with self._begin() as conn:
                conn.execute(insert(schema.audit_events), [e.row() for e in events])

    def audit_rows(self, since: datetime | None = None, until: datetime | None = None, events: list[str] | None = None,
                   user: tuple[str, str] | None = None, limit: int = 100_000) -> list[dict]:
        """Rows oldest first, filtered by time (``since`` included, ``until`` excluded), event names and (iss, sub)."""
        t = schema.audit_events.c
        query = select(schema.audit_events).order_by(t.id).limit(limit)
        if since is not None:
            query = query.where(t.at >= since)
        if until is not None:
            query = query.where(t.at < until)
        if events:
            query = query.where(t.event.in_(events))
        if user is not None:
            query = query.where(t.user_issuer == user[0], t.user_subject == user[1])
        with self._begin() as conn:
            return [{**row._mapping, "at": _utc(row.at)} for row in conn.execute(query)]

    def audit_users(self) -> list[tuple[str, str]]:
        t = schema.audit_events.c
        with self._begin() as conn:
            return [tuple(r) for r in conn.execute(select(t.user_issuer, t.user_subject).distinct()
                                                   .order_by(t.user_issuer, t.user_subject))]

    # ------------------------------------------------------------------ cases

    def list_cases(self, identity: Identity) -> list[CaseSummary]:
        """The user's own cases, the last saved first (pixels past their retention dropped first)."""
        self.purge_expired_pixels()
        query = select(*SUMMARY_COLUMNS).where(_owned(identity)).order_by(schema.cases.c.updated_at.desc())
        with self._begin() as conn:
            return [_summary(r) for r in conn.execute(query)]

    def latest_case(self, identity: Identity, content_hash: str) -> StoredCase | None:
        """The user's last saved case of this scan (of any branch), or None."""
        c = schema.cases.c
        query = (select(schema.cases, (c.pixels.is_not(None)).label("has_pixels"))
                 .where(_owned(identity), c.content_hash == content_hash).order_by(c.updated_at.desc(), c.branch.desc())
                 .limit(1))
        return self._stored(query)

    def load_case(self, identity: Identity, case_id: int) -> StoredCase | None:
        """One of the user's cases by id (None for someone else's)."""
        query = select(schema.cases, (schema.cases.c.pixels.is_not(None)).label("has_pixels")).where(
            _owned(identity), schema.cases.c.id == case_id)
        return self._stored(query)

    def _stored(self, query) -> StoredCase | None:
        with self._begin() as conn:
            row = conn.execute(query).first()
        if row is None:
            return None
        return StoredCase(_summary(row), CaseSnapshot.decode(row.manifest, row.arrays), row.pixels)

    def save_case(self, identity: Identity, content_hash: str, name: str, snapshot: CaseSnapshot, notes: str,
                  expected: tuple[int, int] | None, pixels: bytes | None = None) -> SaveResult:
        """Save the case. ``expected`` is (case id, version) as this session last read or saved it,
        or None for a case not yet saved from it. Where the stored copy changed since (another
        session saved it) or already exists, this save becomes a new branch: both are kept."""
        manifest, arrays = snapshot.encode()
        now = _now()
        values = {"name": name[:255], "notes": notes, "manifest": manifest, "arrays": arrays, "updated_at": now}
        if pixels is not None:
            values |= {"pixels": pixels, "pixels_until": now + timedelta(days=self.pixel_policy().retention_days)}
        with self._begin() as conn:
            if expected is not None:
                c = schema.cases.c
                done = conn.execute(update(schema.cases).where(c.id == expected[0], c.version == expected[1], _owned(identity))
                                    .values(version=expected[1] + 1, **values).returning(c.branch)).first()
                if done is not None:
                    return SaveResult(expected[0], done.branch, expected[1] + 1, conflict=False)
            return self._insert_branch(conn, identity, content_hash, values, now)

    def _insert_branch(self, conn, identity: Identity, content_hash: str, values: dict, now: datetime) -> SaveResult:
        c = schema.cases.c
        for _ in range(5):  # another server may take the same branch number between the read and the insert
            last = conn.execute(select(func.max(c.branch)).where(_owned(identity), c.content_hash == content_hash)).scalar()
            branch = 0 if last is None else last + 1
            try:
                with conn.begin_nested():
                    case_id = conn.execute(insert(schema.cases).values(
                        owner_issuer=identity.issuer, owner_subject=identity.subject, content_hash=content_hash,
                        branch=branch, version=1, created_at=now, **values).returning(c.id)).scalar_one()
                return SaveResult(case_id, branch, 1, conflict=branch > 0)
            except sa_exc.IntegrityError:
                continue
        raise StoreUnavailable("error")

    # ------------------------------------------------------------------ settings

    def pixel_policy(self) -> PixelPolicy:
        s = schema.settings.c
        with self._begin() as conn:
            rows = dict(conn.execute(select(s.name, s.value).where(s.name.in_(["store_pixels", "pixel_retention_days"]))).all())
        default = PixelPolicy()
        return PixelPolicy(rows.get("store_pixels", str(default.store)) == "True",
                           int(rows.get("pixel_retention_days", default.retention_days)))

    def set_pixel_policy(self, admin: Identity, policy: PixelPolicy) -> None:
        if not admin.is_admin:
            raise PermissionError("only an admin changes where pixels are kept")
        if not 1 <= policy.retention_days <= 3650:
            raise ValueError("the retention period is 1 to 3650 days")
        values = {"store_pixels": str(policy.store), "pixel_retention_days": str(policy.retention_days)}
        s = schema.settings.c
        with self._begin() as conn:
            for name, value in values.items():
                row = {"value": value, "updated_at": _now(), "updated_by": f"{admin.issuer} {admin.subject}"}
                if conn.execute(update(schema.settings).where(s.name == name).values(**row)).rowcount == 0:
                    conn.execute(insert(schema.settings).values(name=name, **row))
            if not policy.store:
                conn.execute(update(schema.cases).values(pixels=None, pixels_until=None))
        self.purge_expired_pixels()

    def purge_expired_pixels(self, now: datetime | None = None) -> int:
        """Drop the pixels of cases past their retention; returns how many cases lost them."""
        c = schema.cases.c
        with self._begin() as conn:
            return conn.execute(update(schema.cases).where(c.pixels_until < (now or _now()))
                                .values(pixels=None, pixels_until=None)).rowcount


class _Transaction:
    """``engine.begin()`` after ``ready()``, with database errors turned into ``StoreUnavailable``."""

    def __init__(self, store: Store):
        self.store = store

    def __enter__(self):
        try:
            if self.store.revision is None:
                self.store.ready()
            self._context = self.store.engine.begin()
            return self._context.__enter__()
        except (sa_exc.DBAPIError, OSError) as error:
            raise classify(error) from error

    def __exit__(self, exc_type, error, traceback):
        try:
            self._context.__exit__(exc_type, error, traceback)
        except (sa_exc.DBAPIError, OSError) as failure:  # the commit failed, or the block's own error came back
            raise classify(failure) from failure
        if isinstance(error, (sa_exc.DBAPIError, OSError)):
            raise classify(error) from error
        return False
