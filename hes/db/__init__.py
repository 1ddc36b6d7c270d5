"""The HES database: engine and sessions, schema, migrations, idempotent readings, counters, orders."""

from hes.db.engine import StorageError, create_engine_for, session_factory, storage_errors
from hes.db.migrate import current_revision, head_revision, upgrade

__all__ = [
    "StorageError",
    "create_engine_for",
    "current_revision",
    "head_revision",
    "session_factory",
    "storage_errors",
    "upgrade",
]
