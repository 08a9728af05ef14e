"""The tables, as the migrations in ``migrations/versions`` make them (SQLAlchemy Core).

These objects are for queries only: the database's shape is changed by a new migration, never by
``metadata.create_all``. Times are UTC.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger, Column, DateTime, Integer, LargeBinary, MetaData, String, Table, Text, UniqueConstraint,
)

metadata = MetaData()

# Integer on SQLite (its rowid alias autoincrements), BIGINT elsewhere.
ID = BigInteger().with_variant(Integer(), "sqlite")

# One row per event, shaped like a DICOM audit message (PS3.15 A.5): append-only (the database
# refuses UPDATE and DELETE, see the first migration).
audit_events = Table(
    "audit_events", metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False),  # EventDateTime, UTC
    Column("event", String(40), nullable=False),  # the app's name of the event (audit.EVENTS)
    Column("event_id", String(16), nullable=False),  # EventID, a DCM code (e.g. 110114 User Authentication)
    Column("event_type", String(64), nullable=False),  # EventTypeCode, "code meaning"
    Column("action", String(1), nullable=False),  # EventActionCode: C R U D E
    Column("outcome", Integer, nullable=False),  # EventOutcomeIndicator: 0 4 8 12
    Column("user_issuer", String(255), nullable=False),  # the identity provider's iss
    Column("user_subject", String(255), nullable=False),  # its sub (never the e-mail alone)
    Column("role", String(32), nullable=False),
    Column("client_address", String(64), nullable=False),  # NetworkAccessPointID
    Column("app_version", String(32), nullable=False),  # AuditSourceIdentification
    Column("case_hash", String(64), nullable=True),  # ParticipantObjectID: the case's content hash
    Column("model_name", String(128), nullable=True),
    Column("model_sha256", String(64), nullable=True),
    Column("detail", Text, nullable=False),  # JSON object of listed keys only (audit.DETAIL_KEYS)
)

# A user's case: one row per (owner, content hash, branch). A save that finds the row changed
# since it was read (``version``) becomes a new branch: both are kept.
cases = Table(
    "cases", metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    Column("owner_issuer", String(255), nullable=False),
    Column("owner_subject", String(255), nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("branch", Integer, nullable=False, default=0),
    Column("name", String(255), nullable=False),  # as uploaded: shown to its owner only, never audited
    Column("version", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("notes", Text, nullable=False, default=""),
    Column("manifest", Text, nullable=False),  # JSON: models, edit histories with times, calls (cases.CaseSnapshot)
    Column("arrays", LargeBinary, nullable=False),  # npz: the masks the manifest names
    Column("pixels", LargeBinary, nullable=True),  # npz of the scan's slices, only where an admin turned it on
    Column("pixels_until", DateTime(timezone=True), nullable=True),  # retention: cleared after this
    UniqueConstraint("owner_issuer", "owner_subject", "content_hash", "branch", name="uq_cases_owner_hash_branch"),
)

# Admin settings kept in the database so every server on it agrees (e.g. pixel storage).
settings = Table(
    "settings", metadata,
    Column("name", String(64), primary_key=True),
    Column("value", Text, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("updated_by", String(600), nullable=False),  # iss + " " + sub
)
