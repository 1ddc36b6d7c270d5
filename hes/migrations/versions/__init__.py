"""The migration scripts, oldest first (Alembic loads them by revision id, not by import)."""

__all__: list[str] = []
