"""`hes registry ...`: import the field (a fleet manifest) into the registry; helpers the asset commands share."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer

from hes.config import ConfigError, load_settings
from hes.db.engine import StorageError
from hes.errors import FAILURES
from hes.registry import ImportSummary, Registry
from hes.session import Timeouts

__all__ = ["TIMEOUT_HELP", "app", "import_command", "open_registry", "run_or_exit", "timeouts", "who"]

#: The help of every command's ``--timeout``: the per-link deadlines are the default.
TIMEOUT_HELP = ("Seconds to wait for each answer (default: by the link crossed, HES_DEADLINE_PLC / _RF / _IP, "
                "90 / 30 / 20 s).")

T = TypeVar("T")

app = typer.Typer(
    name="registry",
    help="The registry of concentrators and meters: import the field.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def who() -> str:
    """The head-end user named in the audit trail (``cli.auth``: token, mapped OS user, or the bootstrap admin).

    ``AuthError`` (a ``DlmsError``) when the command line cannot say who its user is.
    """
    from cli.auth import current_identity

    return current_identity().audit_name


def open_registry() -> Registry:
    """The configured registry, schema migrated (a fresh clone needs no separate `hes db upgrade`)."""
    return Registry.open(load_settings())


def timeouts(timeout: float | None) -> Timeouts | None:
    """A command line's ``--timeout`` as the session deadlines (None: the per-link deadlines decide)."""
    if timeout is None:
        return None
    if not 0 < timeout <= 600:
        raise ConfigError(f"--timeout {timeout}: between 0 and 600 seconds")
    return Timeouts(connect=min(timeout, 10.0), read=timeout, release=min(timeout, 3.0))


def run_or_exit(group: str, action: Callable[[], T]) -> T:
    """Run ``action``; a typed error becomes one line on stderr and exit 2 (1 when the database is down)."""
    try:
        return action()
    except FAILURES as exc:
        print(f"hes {group}: {exc}", file=sys.stderr)
        raise typer.Exit(1 if isinstance(exc, StorageError) else 2) from None


@app.command("import")
def import_command(
    manifest: Annotated[Path, typer.Argument(help="The fleet manifest (hes sim fleet --manifest).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the counts as JSON.")] = False,
) -> None:
    """Register the manifest's concentrators, their meters and the p2p meters, keys encrypted (idempotent)."""
    def act() -> ImportSummary:
        from cli.auth import require

        registry = open_registry()
        require("registry", registry.engine, f"registry import {manifest}")
        return registry.import_manifest(manifest, who=who())

    summary = run_or_exit("registry", act)
    if as_json:
        print(json.dumps(summary.to_json()))
        return
    print(
        f"imported {manifest}: concentrators {summary.concentrators_added} new, {summary.concentrators_updated} "
        f"updated; meters {summary.meters_added} new, {summary.meters_updated} updated"
    )
