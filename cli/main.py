"""The ``hes`` command: one typer app, one module per command group."""

from __future__ import annotations

import os
import sys

import typer

from hes.errors import FAILURES

__all__ = ["app", "main"]

app = typer.Typer(
    name="hes",
    help="Head-end system for DLMS/COSEM electricity meters.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _register() -> None:
    from cim.outbox import install_from_environment as install_cim_outbox
    from cli.cim import app as cim_app
    from cli.concentrator import app as concentrator_app
    from cli.control import clock_app, disconnect, reconnect
    from cli.db import app as db_app
    from cli.demo import demo
    from cli.devicetype import app as devicetype_app
    from cli.dlms import app as dlms_app
    from cli.events import app as events_app
    from cli.export import app as export_app
    from cli.import_ import import_command
    from cli.meter import app as meter_app
    from cli.n2pload import n2pload
    from cli.plan import app as plan_app
    from cli.probe import app as probe_app
    from cli.read import read
    from cli.registry import app as registry_app
    from cli.report import app as report_app
    from cli.run import run
    from cli.silent import silent_command
    from cli.sim import app as sim_app
    from cli.user import app as user_app
    from hes.events.outbox import install as install_mqtt_outbox

    app.add_typer(dlms_app, name="dlms")
    app.add_typer(sim_app, name="sim")
    app.add_typer(db_app, name="db")
    app.add_typer(registry_app, name="registry")
    app.add_typer(meter_app, name="meter")
    app.add_typer(concentrator_app, name="concentrator")
    app.add_typer(devicetype_app, name="devicetype")
    app.command("demo")(demo)
    app.command("read")(read)
    app.command("disconnect")(disconnect)
    app.command("reconnect")(reconnect)
    app.add_typer(clock_app, name="clock")
    app.command("run")(run)
    app.add_typer(plan_app, name="plan")
    app.command("n2pload")(n2pload)
    app.add_typer(probe_app, name="probe")
    app.command("import")(import_command)
    app.add_typer(user_app, name="user")
    app.add_typer(events_app, name="events")
    app.add_typer(report_app, name="report")
    app.command("silent")(silent_command)
    # Events stored by any command (reads, plans, pushes) queue their MQTT messages in the same transaction.
    install_mqtt_outbox()
    app.add_typer(cim_app, name="cim")
    app.add_typer(export_app, name="export")
    # Readings and events stored by any command get their CIM messages in the same transaction (the outbox).
    install_cim_outbox()


_register()


def main() -> None:
    """Entry point: typer, with every error turned into one line on stderr and a non-zero exit."""
    try:
        app()
    except FAILURES as exc:
        print(f"hes: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("hes: interrupted", file=sys.stderr)
        sys.exit(130)
    except Exception as exc:  # the last line of defence: a bug, still one line, no traceback
        if os.environ.get("HES_DEBUG"):
            raise
        print(f"hes: internal error: {type(exc).__name__}: {exc} (HES_DEBUG=1 shows the traceback)",
              file=sys.stderr)
        sys.exit(70)
