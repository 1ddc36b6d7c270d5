"""Database fixtures for the scheduler tests (SQLite and PostgreSQL), shared with the head-end tests."""

from tests.hes.conftest import database_url, engine, fleet_manifest, master_key, registry  # noqa: F401
