"""Database fixtures for the head-end tests: every test that takes ``database_url`` runs on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text

from hes.db import create_engine_for, upgrade
from hes.keys import MasterKey, load_master_key
from hes.registry import Registry
from simulators.clock import FieldClock
from simulators.fleet import Fleet, FleetOptions
from simulators.manifest import Manifest, read_manifest
from tests.fieldtime import EPOCH

__all__ = ["database_url", "engine", "fleet_manifest", "master_key", "registry", "scratch_database"]


@contextlib.contextmanager
def scratch_database(request: pytest.FixtureRequest, sqlite_file: Path, prefix: str) -> Iterator[str]:
    """An empty database for ``request.param``: the SQLite file, or a schema of its own on PostgreSQL.

    Each PostgreSQL user gets a fresh schema (search_path in the URL), dropped afterwards, so tests
    and the other suites sharing the ``test`` database never see each other's tables.
    """
    if request.param == "sqlite":
        yield f"sqlite:///{sqlite_file}"
        return
    base = request.getfixturevalue("postgres_url").replace("postgresql://", "postgresql+psycopg://", 1)
    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base)
    try:
        with admin.begin() as connection:
            connection.execute(text(f"CREATE SCHEMA {schema}"))
        separator = "&" if "?" in base else "?"
        yield f"{base}{separator}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as connection:
            connection.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty HES database: a fresh SQLite file, or a fresh schema of the PostgreSQL test database."""
    with scratch_database(request, tmp_path / "hes.db", "hes_test") as url:
        yield url


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """An engine on the migrated database."""
    created = create_engine_for(database_url)
    upgrade(created)
    yield created
    created.dispose()


@pytest.fixture
def master_key(tmp_path: Path) -> MasterKey:
    return load_master_key(tmp_path / "data" / "master.key")


@pytest.fixture
def registry(engine: Engine, master_key: MasterKey) -> Registry:
    return Registry(engine, master_key)


@pytest.fixture(scope="session")
def fleet_manifest(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Manifest]:
    """A manifest written by a real (small) simulated fleet: 1 DC with 4 meters, 3 point-to-point meters."""
    path = tmp_path_factory.mktemp("fleet") / "fleet.json"
    options = FleetOptions(concentrators=1, meters_per_dc=4, p2p=3, seed=7, schedule=False, epoch=EPOCH)
    fleet = Fleet(options, clock=FieldClock(EPOCH, 0.0))

    async def main() -> None:
        async with asyncio.timeout(10), fleet:
            fleet.write_manifest(path)

    asyncio.run(main())
    return path, read_manifest(path)
