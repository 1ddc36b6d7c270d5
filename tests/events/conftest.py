"""Fixtures of the events tests: the head-end database fixtures (SQLite and PostgreSQL), a field with pushes."""

from __future__ import annotations

from tests.hes.conftest import database_url, engine, fleet_manifest, master_key, registry

__all__ = ["database_url", "engine", "fleet_manifest", "master_key", "registry"]
