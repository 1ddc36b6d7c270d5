"""Fixtures for the CIM tests: the HES database fixtures, a legacy database on both backends, the XSDs, the outbox."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from lxml import etree  # type: ignore[import-untyped]
from sqlalchemy import Engine

from cim import outbox
from cim.legacy import Schemas, load_schemas
from cim.messages import MESSAGE_NS, NOUNS
from hes.db import create_engine_for
from hes.db.stored import listeners
from tests.hes.conftest import database_url, engine, fleet_manifest, master_key, registry, scratch_database

__all__ = [
    "XSD_DIR", "assert_valid", "database_url", "engine", "fleet_manifest", "installed_outbox", "legacy_engine",
    "legacy_url", "master_key", "registry", "schemas",
]

#: The IEC schemas: ../shared/cim-xsd beside the repository (CI copies shared/ there); never copied into the tree.
XSD_DIR = Path(__file__).resolve().parents[2] / ".." / "shared" / "cim-xsd"


@pytest.fixture(scope="session")
def schemas() -> Schemas:
    if not (XSD_DIR / "Message.xsd").is_file():
        pytest.fail(f"the IEC XSDs are not at {XSD_DIR.resolve()} (../shared/cim-xsd beside the repository)")
    return load_schemas(XSD_DIR)


def assert_valid(xml: bytes, schemas: Schemas) -> None:
    """The envelope against Message.xsd, then the payload against its Noun's schema."""
    root = etree.fromstring(xml)
    assert schemas.envelope.validate(root), schemas.envelope.error_log
    noun = root.findtext(f"{{{MESSAGE_NS}}}Header/{{{MESSAGE_NS}}}Noun")
    (payload,) = root.find(f"{{{MESSAGE_NS}}}Payload")
    schema = schemas.payloads[NOUNS[noun]]
    assert schema.validate(etree.ElementTree(payload)), schema.error_log


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def legacy_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty legacy integration database: a SQLite file, or a schema of its own on PostgreSQL."""
    with scratch_database(request, tmp_path / "legacy.db", "legacy_test") as url:
        yield url


@pytest.fixture
def legacy_engine(legacy_url: str) -> Iterator[Engine]:
    created = create_engine_for(legacy_url)
    yield created
    created.dispose()


@pytest.fixture
def installed_outbox() -> Iterator[None]:
    """The outbox listener with the default tables; afterwards as it was (``cli.main`` installs it at import)."""
    was_installed = outbox.on_stored in listeners()
    outbox.install()
    try:
        yield
    finally:
        if not was_installed:
            outbox.uninstall()
