"""`hes db ...`: the HES database schema (Alembic migrations, run from Python)."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from hes.config import load_settings, redact_url
from hes.db.engine import StorageError, create_engine_for
from hes.db.migrate import current_revision, head_revision, upgrade
from hes.errors import FAILURES

__all__ = ["app", "current", "upgrade_command"]

app = typer.Typer(
    name="db",
    help="The HES database: schema migrations.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _fail(exc: Exception) -> typer.Exit:
    print(f"hes db: {exc}", file=sys.stderr)
    return typer.Exit(1 if isinstance(exc, StorageError) else 2)


@app.command("upgrade")
def upgrade_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Create or migrate the schema to the latest revision (HES_DATABASE_URL, default sqlite:///hes.db)."""
    try:
        settings = load_settings()
        engine = create_engine_for(settings.database_url)
        before = current_revision(engine)
        reached = upgrade(engine)
    except FAILURES as exc:
        raise _fail(exc) from None
    where = redact_url(settings.database_url)
    if as_json:
        print(json.dumps({"database": where, "from": before, "to": reached}))
    elif before == reached:
        print(f"database {where} is up to date (revision {reached})")
    else:
        print(f"database {where} migrated from {before or 'empty'} to revision {reached}")


@app.command("current")
def current() -> None:
    """Print the schema revision of the database and the latest one this version knows."""
    try:
        settings = load_settings()
        revision = current_revision(create_engine_for(settings.database_url))
    except FAILURES as exc:
        raise _fail(exc) from None
    print(f"database {redact_url(settings.database_url)}: revision {revision or 'none'} (latest {head_revision()})")
