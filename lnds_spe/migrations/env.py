"""Alembic environment: runs on the connection handed over by lnds_spe.db.migrate."""

from alembic import context

from lnds_spe.db import Base

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata)
with context.begin_transaction():
    context.run_migrations()
