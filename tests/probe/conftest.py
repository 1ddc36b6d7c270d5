"""Fixtures of the field-tool tests: the head-end database fixtures, on SQLite and PostgreSQL."""

from tests.hes.conftest import database_url, engine, fleet_manifest, master_key, registry  # noqa: F401
