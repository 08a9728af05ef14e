"""The audit trail (append-only), users' cases and admin settings.

Revision ID: 0001
Revises:
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
UTC = sa.DateTime(timezone=True)

APPEND_ONLY = "audit_events is append-only: rows cannot be changed or deleted"

SQLITE_TRIGGERS = [
    f"CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY}'); END",
    f"CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY}'); END",
]

# PostgreSQL: the trigger holds for every role, the table's owner and superusers included; the
# revoked privileges make UPDATE/DELETE/TRUNCATE fail before it for any role that is not a superuser.
POSTGRES_GUARD = [
    f"""CREATE FUNCTION audit_events_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION '{APPEND_ONLY}' USING ERRCODE = 'insufficient_privilege'; END $$""",
    "CREATE TRIGGER audit_events_no_change BEFORE UPDATE OR DELETE ON audit_events "
    "FOR EACH ROW EXECUTE FUNCTION audit_events_refuse()",
    "CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events "
    "FOR EACH STATEMENT EXECUTE FUNCTION audit_events_refuse()",
    "REVOKE UPDATE, DELETE, TRUNCATE ON audit_events FROM PUBLIC",
    "REVOKE UPDATE, DELETE, TRUNCATE ON audit_events FROM CURRENT_USER",
]


def upgrade() -> None:
    _audit_events()
    _cases()
    op.create_table(
        "settings",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
        sa.Column("updated_at", UTC, nullable=False),
        sa.Column("updated_by", sa.String(600), nullable=False),
    )
    dialect = op.get_bind().dialect.name
    for statement in SQLITE_TRIGGERS if dialect == "sqlite" else POSTGRES_GUARD if dialect == "postgresql" else []:
        op.execute(statement)


def _audit_events() -> None:
    op.create_table(
        "audit_events",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("at", UTC, nullable=False),
        sa.Column("event", sa.String(40), nullable=False),
        sa.Column("event_id", sa.String(16), nullable=False),
        sa.Column("event_type", sa.String(64), nullable=False),
        sa.Column("action", sa.String(1), nullable=False),
        sa.Column("outcome", sa.Integer, nullable=False),
        sa.Column("user_issuer", sa.String(255), nullable=False),
        sa.Column("user_subject", sa.String(255), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("client_address", sa.String(64), nullable=False),
        sa.Column("app_version", sa.String(32), nullable=False),
        sa.Column("case_hash", sa.String(64)),
        sa.Column("model_name", sa.String(128)),
        sa.Column("model_sha256", sa.String(64)),
        sa.Column("detail", sa.Text, nullable=False),
        sa.CheckConstraint("action IN ('C', 'R', 'U', 'D', 'E')", name="ck_audit_action"),
        sa.CheckConstraint("outcome IN (0, 4, 8, 12)", name="ck_audit_outcome"),
    )
    op.create_index("ix_audit_events_at", "audit_events", ["at"])
    op.create_index("ix_audit_events_user", "audit_events", ["user_issuer", "user_subject"])


def _cases() -> None:
    op.create_table(
        "cases",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("owner_issuer", sa.String(255), nullable=False),
        sa.Column("owner_subject", sa.String(255), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("branch", sa.Integer, nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("updated_at", UTC, nullable=False),
        sa.Column("notes", sa.Text, nullable=False),
        sa.Column("manifest", sa.Text, nullable=False),
        sa.Column("arrays", sa.LargeBinary, nullable=False),
        sa.Column("pixels", sa.LargeBinary),
        sa.Column("pixels_until", UTC),
        sa.UniqueConstraint("owner_issuer", "owner_subject", "content_hash", "branch", name="uq_cases_owner_hash_branch"),
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TABLE audit_events")  # the trigger refuses TRUNCATE, not DROP: only a downgrade drops it
        op.execute("DROP FUNCTION audit_events_refuse()")
    else:
        op.drop_table("audit_events")
    op.drop_table("settings")
    op.drop_table("cases")
