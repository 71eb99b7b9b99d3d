"""Alembic environment: runs on the connection handed over by `store.engine.upgrade`."""

from alembic import context

from store.tables import Base

config = context.config
connection = config.attributes["connection"]

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)

with context.begin_transaction():
    if connection.dialect.name == "postgresql":
        # Serialise concurrent upgrades of one database (two workers opening a fresh store at once).
        connection.exec_driver_sql("SELECT pg_advisory_xact_lock(7210452)")
    context.run_migrations()
