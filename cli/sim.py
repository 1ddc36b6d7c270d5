"""`hes sim ...`: run the simulated field (concentrators, their meters, point-to-point meters) on loopback."""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from simulators.counters import CounterError
from simulators.fleet import DEFAULT_EPOCH, Fleet, FleetError, FleetOptions
from simulators.manifest import ManifestError

__all__ = ["app", "fleet"]

app = typer.Typer(
    name="sim",
    help="The simulated field: data concentrators, PLC/RF meters and point-to-point meters on 127.0.0.1.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _fail(message: str, code: int) -> typer.Exit:
    print(f"hes sim: {message}", file=sys.stderr)
    return typer.Exit(code)


def _parse_epoch(text: str) -> datetime:
    if text.strip().lower() == "now":
        return datetime.now(UTC).replace(microsecond=0)
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise _fail(f"--epoch {text!r} is not 'now' nor an ISO 8601 instant", 2) from None
    if moment.tzinfo is None:
        raise _fail(f"--epoch {text!r} needs a time zone (e.g. 2026-11-22T00:00Z)", 2)
    return moment.astimezone(UTC)


@app.command("fleet")
def fleet(
    manifest: Annotated[Path, typer.Option("--manifest", help="Where to write the JSON manifest.")],
    concentrators: Annotated[int, typer.Option("--concentrators", help="Number of data concentrators.")] = 1,
    meters_per_dc: Annotated[int, typer.Option("--meters-per-dc", help="Meters behind each concentrator.")] = 10,
    p2p: Annotated[int, typer.Option("--p2p", help="Point-to-point meters (own TCP port each).")] = 0,
    seed: Annotated[str, typer.Option("--seed", help="Seed of everything (serial data, keys, faults).")] = "0",
    time_scale: Annotated[float, typer.Option("--time-scale", help="Field seconds per wall second.")] = 1.0,
    base_port: Annotated[
        int | None, typer.Option("--base-port", help="First TCP port (DCs, then p2p meters); default: free ports.")
    ] = None,
    plc_latency: Annotated[
        float | None, typer.Option("--plc-latency", help="PLC latency per APDU, field seconds (preset: 2).")
    ] = None,
    loss: Annotated[float | None, typer.Option("--loss", help="Chance an APDU is lost on PLC (0..1).")] = None,
    unreachable_share: Annotated[
        float, typer.Option("--unreachable-share", help="Share of DC meters unreachable for the first field day.")
    ] = 0.0,
    dc_outage: Annotated[
        list[str] | None, typer.Option("--dc-outage", help="DC id whose WAN is down (repeatable).")
    ] = None,
    counters: Annotated[
        Path | None, typer.Option("--counters", help="JSON file keeping invocation counters across runs.")
    ] = None,
    epoch: Annotated[
        str | None,
        typer.Option("--epoch", help="Field time at start: 'now' or an ISO 8601 instant (default 2024-03-01T00:00Z)."),
    ] = None,
) -> None:
    """Run a fleet until Ctrl-C or SIGTERM; the manifest says how to reach every device."""
    options = FleetOptions(
        epoch=DEFAULT_EPOCH if epoch is None else _parse_epoch(epoch),
        concentrators=concentrators,
        meters_per_dc=meters_per_dc,
        p2p=p2p,
        seed=int(seed) if seed.lstrip("-").isdigit() else seed,
        base_port=base_port,
        time_scale=time_scale,
        plc_latency=plc_latency,
        loss=loss,
        unreachable_share=unreachable_share,
        dc_outages=tuple(dc_outage or ()),
        counters=counters,
    )
    try:
        field = Fleet(options)
    except (FleetError, CounterError) as exc:
        raise _fail(str(exc), 2) from None
    try:
        asyncio.run(_serve(field, manifest))
    except (FleetError, ManifestError, CounterError) as exc:
        raise _fail(str(exc), 1) from None


async def _serve(field: Fleet, manifest: Path) -> None:
    await field.start()
    try:
        field.write_manifest(manifest)
    except ManifestError:
        await field.stop()
        raise
    written = field.manifest()
    ports = sorted([dc.port for dc in written.concentrators] + [p.port for p in written.p2p])
    if not ports:
        span = "no ports"
    elif ports == list(range(ports[0], ports[0] + len(ports))):
        span = f"ports {ports[0]}-{ports[-1]}" if len(ports) > 1 else f"port {ports[0]}"
    else:
        span = f"{len(ports)} free ports"
    meters = sum(len(dc.meters) for dc in written.concentrators)
    announcement = (
        f"hes sim: {len(written.concentrators)} concentrator(s) ({meters} meters) and {len(written.p2p)} "
        f"point-to-point meters listening on {field.options.host}, {span}; manifest {manifest}; Ctrl-C stops"
    )
    await field.run_until_signal(ready=lambda: print(announcement, flush=True))
    print("hes sim: stopped", flush=True)
