"""Connecting to the database, migrating it, and naming what went wrong in words a user can act on.

SQLite (the default, a file in ``data/``) runs in WAL mode with a busy timeout, so two servers on
one file and a reader beside a writer wait for each other instead of failing. PostgreSQL is
reached through psycopg 3 (``postgresql+psycopg://``).

``migrate`` runs Alembic's ``upgrade head`` on start: at head it changes nothing (a second run, a
second server); two servers starting together on a fresh database take a lock first (PostgreSQL:
a transaction-scoped advisory lock; SQLite: a lock file beside the database), so one migrates and
the other then finds the database at head.
"""

from __future__ import annotations

import fcntl
import logging
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, event, exc, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.pool import NullPool

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
MIGRATION_LOCK = 727_271_028  # PostgreSQL advisory lock key of this app's migrations
BUSY_TIMEOUT_MS = 10_000

log = logging.getLogger(__name__)


class StoreUnavailable(RuntimeError):
    """The database cannot be read or written now. ``kind`` says why (``KINDS``); the message says
    it for the user, naming no server path or URL."""

    KINDS = {
        "unreachable": "The case database cannot be reached.",
        "read-only": "The case database is read-only just now.",
        "full": "The case database's disk is full.",
        "outdated": "The case database was made by a newer version of MRI Insight.",
        "error": "The case database refused the request.",
    }

    def __init__(self, kind: str):
        self.kind = kind if kind in self.KINDS else "error"
        super().__init__(self.KINDS[self.kind])


def classify(error: BaseException) -> StoreUnavailable:
    """The ``StoreUnavailable`` a driver or OS error stands for (logged by kind and class only:
    a driver's message can hold the database's path or address)."""
    original = getattr(error, "orig", None) or error
    message = str(original).lower()
    sqlstate = getattr(original, "sqlstate", None) or ""
    if sqlstate == "25006" or "readonly database" in message or "read-only" in message:
        kind = "read-only"
    elif sqlstate == "53100" or "disk is full" in message or "no space left" in message:
        kind = "full"
    elif sqlstate.startswith("08") or isinstance(error, exc.OperationalError) or isinstance(original, OSError):
        kind = "unreachable"  # refused, dropped, timed out, file gone, locked past the busy timeout
    else:
        kind = "error"
    log.warning("case database unavailable: %s (%s)", kind, type(original).__name__)
    return StoreUnavailable(kind)


def make_engine(url: str) -> Engine:
    """An engine for ``url``. SQLite: the folder is made, WAL on, and no pooled connection (each
    use opens the file, so a database moved away and back is seen as such)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5,
                             connect_args={"connect_timeout": 5} if parsed.get_backend_name() == "postgresql" else {})
    if parsed.database and parsed.database != ":memory:" and not parsed.database.startswith("file:"):  # not a URI
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, poolclass=NullPool, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000})

    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_connection, _record):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cursor.close()

    return engine


@contextmanager
def _sqlite_file_lock(engine: Engine):
    """A lock file beside the database, for the migration. Best effort: where it cannot be made (a
    read-only folder) the database cannot be migrated either, and one at head needs no lock."""
    database = engine.url.database or ":memory:"
    if database.startswith("file:"):  # a URI (e.g. ?mode=ro): its path
        database = database[len("file:"):].split("?")[0]
    try:
        handle = open(f"{database}.migrate-lock", "a") if database != ":memory:" else None
    except OSError:
        handle = None
    try:
        if handle is not None:
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield
    finally:
        if handle is not None:
            handle.close()  # closing releases the lock


def migrate(engine: Engine) -> str:
    """``alembic upgrade head`` on ``engine``, under the lock; returns the revision now current."""
    from alembic import command
    from alembic.config import Config
    from alembic.runtime.migration import MigrationContext
    from alembic.util import CommandError

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    lock = _sqlite_file_lock(engine) if engine.dialect.name == "sqlite" else _nothing()
    try:
        with lock, engine.begin() as connection:
            if engine.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
            return MigrationContext.configure(connection).get_current_revision()
    except CommandError as error:  # a revision this code does not know: a newer app migrated it
        log.warning("case database migration refused: %s", type(error).__name__)
        raise StoreUnavailable("outdated") from error
    except (exc.DBAPIError, OSError) as error:
        raise classify(error) from error


@contextmanager
def _nothing():
    yield
