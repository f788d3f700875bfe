"""Alembic's environment for the store of record: run on the connection the caller gives.

Migrations are run by :func:`services.store.migrate.upgrade` (``tradewatch db upgrade``, and by
itself at the start of the records stage in the embedded default), which hands over a connection
inside its own transaction; there is no alembic.ini.
"""

from __future__ import annotations

from alembic import context

from services.store.models import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run the store's migrations with `tradewatch db upgrade`")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
