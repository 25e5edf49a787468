"""Alembic environment: the connection is handed in by `certdesk.store.migrate`."""

from alembic import context

from certdesk.store.tables import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
