"""The store of record: cases, findings, decisions, comments, users and the audit trail.

An SQLite file under ``DATA_DIR`` by default, PostgreSQL when ``TRADEWATCH_DATABASE_URL`` says so;
one set of SQLAlchemy models (``models``), Alembic migrations shipped in the package (``migrate``),
the engine and its transactions (``engine``), the hash-chained audit trail (``audit``). What people
do with cases (the workflow, the roles) is ``services.casework``, above this layer.
"""

from services.store.engine import Store, StoreUnavailable, unavailable

__all__ = ["Store", "StoreUnavailable", "unavailable"]
