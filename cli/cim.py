"""`hes cim ...`: deliver the CIM outbox into the legacy integration database, its status, re-injection by hand."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from cim.delivery import Delivery, outbox_status, retry
from cli.auth import require
from cli.registry import open_registry, run_or_exit
from hes.config import load_settings, redact_url

__all__ = ["app", "deliver", "retry_command", "status"]

app = typer.Typer(
    name="cim",
    help="CIM (IEC 61968-9) messages: the outbox and its delivery into the legacy integration database.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.command("deliver")
def deliver(
    as_json: Annotated[bool, typer.Option("--json", help="Print the counts (and reasons) as JSON.")] = False,
) -> None:
    """Deliver every message due now (pending, or failed and past its re-injection time) once; exit 1 if any failed."""
    settings = run_or_exit("cim", load_settings)
    registry = run_or_exit("cim", open_registry)
    run_or_exit("cim", lambda: require("cim", registry.engine, "cim deliver"))
    delivery = run_or_exit("cim", lambda: Delivery(registry.engine, settings))
    try:
        report = run_or_exit("cim", delivery.deliver_due)
    finally:
        delivery.close()
    if as_json:
        print(json.dumps(report.to_json()))
    else:
        print(f"delivered {report.delivered}, failed {report.failed}, discarded {report.discarded} "
              f"(legacy database {redact_url(settings.legacy_database_url)})")
        for reason in report.reasons:
            print(f"  {reason}")
    if report.failed:
        first = report.reasons[0] if report.reasons else "see the reasons above"
        print(f"hes cim: {report.failed} message(s) failed, re-injected after {settings.cim_reinject_after_s:g} s: "
              f"{first}", file=sys.stderr)
        raise typer.Exit(1)


@app.command("status")
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Print the counts as JSON.")] = False,
) -> None:
    """Messages by state (pending, delivered, failed, discarded), the oldest waiting, the next re-injection."""
    registry = run_or_exit("cim", open_registry)
    run_or_exit("cim", lambda: require("list", registry.engine, "cim status", group="cim"))
    state = run_or_exit("cim", lambda: outbox_status(registry.engine))
    data = state.to_json()
    if as_json:
        print(json.dumps(data))
        return
    print(f"pending {data['pending']}, delivered {data['delivered']}, failed {data['failed']}, "
          f"discarded {data['discarded']}")
    if data["oldest_pending"]:
        print(f"oldest not yet delivered: {data['oldest_pending']}")
    if data["next_reinjection"]:
        print(f"next re-injection: {data['next_reinjection']}")
    if data["last_failure"]:
        print(f"last failure: {data['last_failure']}")


@app.command("retry")
def retry_command(
    message_ids: Annotated[
        list[str] | None, typer.Argument(help="MessageIDs to deliver again (failed or discarded); none: all failed.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the count as JSON.")] = False,
) -> None:
    """Make failed messages due now (re-injection without waiting), or named discarded ones pending again."""
    registry = run_or_exit("cim", open_registry)
    run_or_exit("cim", lambda: require("cim", registry.engine, "cim retry " + " ".join(message_ids or ["all"])))
    changed = run_or_exit("cim", lambda: retry(registry.engine, message_ids or None))
    if as_json:
        print(json.dumps({"requeued": changed}))
    else:
        print(f"{changed} message(s) due now; `hes cim deliver` or `hes run` delivers them")
    if message_ids and changed < len(message_ids):
        print(f"hes cim: {len(message_ids) - changed} of the MessageIDs are not failed or discarded messages",
              file=sys.stderr)
        raise typer.Exit(2)
