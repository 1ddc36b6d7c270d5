"""Schema migrations run from Python (``hes db upgrade``): Alembic with the scripts shipped in ``hes.migrations``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from hes.db.engine import StorageError, storage_errors

__all__ = ["MIGRATIONS", "alembic_config", "current_revision", "downgrade", "head_revision", "upgrade"]

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:  # only if the package was shipped without its migration scripts
        raise RuntimeError(f"no migration scripts in {MIGRATIONS}")
    return head


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, None when it has never been migrated."""
    with storage_errors(engine), engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> str:
    """Migrate the database to ``revision`` (idempotent) in one transaction; returns the revision reached."""
    return _migrate(engine, command.upgrade, revision)


def downgrade(engine: Engine, revision: str) -> str:
    """Migrate the database back to ``revision`` in one transaction (tests, and an operator undoing a release)."""
    return _migrate(engine, command.downgrade, revision)


def _migrate(engine: Engine, step: Callable[[Config, str], None], revision: str) -> str:
    """Run ``step`` (Alembic's upgrade or downgrade) in one transaction.

    On SQLite, foreign keys are off while it runs: a migration that changes a table other tables
    refer to (a check constraint of ``meters``) rebuilds it, and dropping the old copy would fail
    on their rows. They are checked once it is done, before the transaction commits.
    """
    config = alembic_config()
    sqlite = engine.dialect.name == "sqlite"
    with storage_errors(engine), engine.connect() as connection:
        if sqlite:
            # Outside any transaction, or SQLite ignores it.
            connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
            connection.commit()
        try:
            with connection.begin():
                config.attributes["connection"] = connection
                step(config, revision)
                if sqlite:
                    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                    if broken:
                        raise StorageError(f"the migration to {revision} left {len(broken)} rows whose references "
                                           f"do not hold (first: {tuple(broken[0])}); nothing was changed")
        finally:
            if sqlite:
                connection.exec_driver_sql("PRAGMA foreign_keys=ON")
                connection.commit()
    reached = current_revision(engine)
    return reached or ""
