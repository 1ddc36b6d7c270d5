"""Alembic migrations of the HES database; run them with ``hes db upgrade`` (``hes.db.migrate.upgrade``)."""

__all__: list[str] = []
