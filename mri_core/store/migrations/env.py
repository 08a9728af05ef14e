"""Alembic's environment: run on the connection ``store.engine.migrate`` passes in (never from a
URL in an ini file), inside that connection's transaction."""

from alembic import context

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=None, transaction_per_migration=False)
with context.begin_transaction():
    context.run_migrations()
