"""`hes meter ...`: add a point-to-point meter, list, show and decommission meters (keys are never shown)."""

from __future__ import annotations

import json
from datetime import date
from typing import Annotated, cast

import typer

from cli.auth import require
from cli.registry import open_registry, run_or_exit, who
from hes.db.models import METER_STATES
from hes.model import Interface, MeterSecurity, Policy
from hes.registry import MeterInfo, RegistryError

__all__ = ["add", "app", "commission", "decommission", "list_command", "show"]

app = typer.Typer(
    name="meter",
    help="Meters in the registry.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _hex(name: str, value: str | None, length: int | None) -> bytes | None:
    if value is None:
        return None
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raise RegistryError(f"{name} is not hex") from None
    if length is not None and len(raw) != length:
        raise RegistryError(f"{name} must be {length} bytes ({2 * length} hex digits), not {len(raw)}")
    return raw


def _security(security: str, password: str | None, system_title: str | None, ek: str | None,
              ak: str | None) -> MeterSecurity:
    if security not in ("none", "lls", "hls-gmac"):
        raise RegistryError(f"--security must be none, lls or hls-gmac, not {security!r}")
    if security == "none" and (password or system_title or ek or ak):
        raise RegistryError("--security none takes no password or keys")
    if security == "lls" and not password:
        raise RegistryError("--security lls needs --password")
    if security == "hls-gmac" and not (system_title and ek and ak):
        raise RegistryError("--security hls-gmac needs --system-title, --ek and --ak")
    return MeterSecurity(
        policy=cast(Policy, security),
        password=None if password is None else password.encode("utf-8"),
        system_title=_hex("--system-title", system_title, 8),
        ek=_hex("--ek", ek, 16),
        ak=_hex("--ak", ak, 16),
    )


@app.command("add")
def add(
    serial: Annotated[str, typer.Argument(help="The meter's serial number.")],
    host: Annotated[str, typer.Option("--host", help="Its modem/router address.")],
    port: Annotated[int, typer.Option("--port", help="Its TCP port.")],
    interface: Annotated[str, typer.Option("--interface", help="wrapper or hdlc (HDLC over TCP).")] = "wrapper",
    client_sap: Annotated[int, typer.Option("--client-sap", help="Our client SAP.")] = 1,
    server_sap: Annotated[int, typer.Option("--server-sap", help="The meter's SAP (logical device).")] = 1,
    physical_address: Annotated[
        int | None, typer.Option("--physical-address", help="HDLC lower (physical) address.")
    ] = None,
    security: Annotated[str, typer.Option("--security", help="none, lls or hls-gmac.")] = "none",
    password: Annotated[str | None, typer.Option("--password", help="LLS password.")] = None,
    system_title: Annotated[str | None, typer.Option("--system-title", help="Meter system title, hex.")] = None,
    ek: Annotated[str | None, typer.Option("--ek", help="Global unicast encryption key, hex.")] = None,
    ak: Annotated[str | None, typer.Option("--ak", help="Authentication key, hex.")] = None,
    make: Annotated[str | None, typer.Option("--make", help="Manufacturer.")] = None,
    model: Annotated[str | None, typer.Option("--model", help="Model.")] = None,
    service_life: Annotated[int | None, typer.Option("--service-life", help="Service life, years.")] = None,
    warranty_until: Annotated[str | None, typer.Option("--warranty-until", help="YYYY-MM-DD.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Register a point-to-point meter (its keys are stored encrypted and never printed)."""

    def act() -> MeterInfo:
        if interface not in ("wrapper", "hdlc"):
            raise RegistryError(f"--interface must be wrapper or hdlc, not {interface!r}")
        warranty = None
        if warranty_until is not None:
            try:
                warranty = date.fromisoformat(warranty_until)
            except ValueError:
                raise RegistryError(f"--warranty-until {warranty_until!r} is not YYYY-MM-DD") from None
        sec = _security(security, password, system_title, ek, ak)
        registry = open_registry()
        require("registry", registry.engine, f"meter add {serial}", group="meter")
        return registry.add_meter(
            serial, host=host, port=port, interface=cast(Interface, interface), client_sap=client_sap,
            server_sap=server_sap, physical_address=physical_address, security=sec, make=make, model=model,
            service_life_years=service_life, warranty_until=warranty, who=who(),
        )

    info = run_or_exit("meter", act)
    if as_json:
        print(json.dumps(info.to_json()))
    else:
        print(f"meter {info.serial} added: {info.link}, security {info.security_policy}")


@app.command("list")
def list_command(
    concentrator: Annotated[str | None, typer.Option("--concentrator", help="Only this DC's meters.")] = None,
    state: Annotated[str | None, typer.Option(
        "--state", help="installed, discovered (found in a DC's table), commissioned or decommissioned.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List meters with their state, link and security."""

    def act() -> list[MeterInfo]:
        if state is not None and state not in METER_STATES:
            raise RegistryError(f"--state {state!r} is not one of {', '.join(METER_STATES)}")
        return open_registry().list_meters(concentrator=concentrator, state=state)

    items = run_or_exit("meter", act)
    if as_json:
        print(json.dumps([m.to_json() for m in items]))
        return
    if not items:
        print("no meters registered")
        return
    print(f"{'serial':<16} {'state':<15} {'security':<9} link")
    for m in items:
        print(f"{m.serial:<16} {m.state:<15} {m.security_policy:<9} {m.link}")


@app.command("show")
def show(
    serial: Annotated[str, typer.Argument(help="The meter's serial number.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show one meter's master data, link and security (keys are only said to be set)."""
    info = run_or_exit("meter", lambda: open_registry().show_meter(serial))
    if as_json:
        print(json.dumps(info.to_json()))
        return
    for name, value in info.to_json().items():
        print(f"{name:<21} {'-' if value is None else value}")


@app.command("decommission")
def decommission(
    serial: Annotated[str, typer.Argument(help="The meter's serial number.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Take a meter out of service: no more reads or commands; its data and history stay."""
    def act() -> MeterInfo:
        registry = open_registry()
        require("registry", registry.engine, f"meter decommission {serial}", group="meter")
        return registry.decommission(serial, who=who())

    info = run_or_exit("meter", act)
    if as_json:
        print(json.dumps(info.to_json()))
    else:
        print(f"meter {info.serial} decommissioned on {info.decommissioning_date}")



@app.command("commission")
def commission(
    serial: Annotated[str, typer.Argument(help="The meter's serial (discovered in a DC's table, or installed).")],
    security: Annotated[str | None, typer.Option(
        "--security", help="none, lls or hls-gmac (default: its device type's policy, else none).")] = None,
    password: Annotated[str | None, typer.Option("--password", help="LLS password.")] = None,
    system_title: Annotated[str | None, typer.Option("--system-title", help="Meter system title, hex.")] = None,
    ek: Annotated[str | None, typer.Option("--ek", help="Global unicast encryption key, hex.")] = None,
    ak: Annotated[str | None, typer.Option("--ak", help="Authentication key, hex.")] = None,
    client_sap: Annotated[int | None, typer.Option(
        "--client-sap", help="Our client SAP (default: its device type's, else kept).")] = None,
    device_type: Annotated[str | None, typer.Option(
        "--device-type", help="Its device type (default: found by make, model and firmware).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Put a discovered meter in service with its keys (stored encrypted, never printed): it is read from now on."""

    def act() -> MeterInfo:
        registry = open_registry()
        require("registry", registry.engine, f"meter commission {serial}", group="meter")
        policy = security or registry.default_policy(serial, device_type) or "none"
        sec = _security(policy, password, system_title, ek, ak)
        return registry.commission(serial, sec, client_sap=client_sap, device_type=device_type, who=who())

    info = run_or_exit("meter", act)
    if as_json:
        print(json.dumps(info.to_json()))
    else:
        print(f"meter {info.serial} commissioned: {info.link}, security {info.security_policy}")
