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
    loss: Annotated[float | None, typer.Option("--loss", help="Chance one transmission of an APDU is lost on the "
                                                              "PLC/RF hop (0..1; default 0.02 PLC, 0.01 RF).")] = None,
    link_retries: Annotated[int | None, typer.Option(
        "--link-retries",
        help="Times the link layer sends a lost APDU again before it is lost for the head-end (0..15; default 3).")
    ] = None,
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
    push_to: Annotated[
        str | None,
        typer.Option("--push-to", help="HOST:PORT of the head-end's push listener: meters push tamper, power and "
                                       "relay events there as they log them (hes run listens on 127.0.0.1:4059)."),
    ] = None,
    tamper_every: Annotated[
        float | None,
        typer.Option("--tamper-every", help="Every this many wall seconds, the next meter in serial order logs a "
                                            "meter cover opening (pushed with --push-to)."),
    ] = None,
    dc_clock_drift: Annotated[
        float, typer.Option("--dc-clock-drift", help="Largest DC clock drift, s per field day (each DC draws its "
                                                      "own in [-x, x] from the seed).")
    ] = 0.0,
    dc_clock_offset: Annotated[
        float, typer.Option("--dc-clock-offset", help="Every DC clock's offset from field time at start, s.")
    ] = 0.0,
    table_churn: Annotated[
        float, typer.Option("--table-churn", help="Meters per DC per field day that leave its table, and as many "
                                                   "new ones that join (seeded).")
    ] = 0.0,
    make_b_share: Annotated[
        float, typer.Option("--make-b-share", help="Share of meters (drawn per meter from the seed) of make B.")
    ] = 0.0,
    make_b: Annotated[
        list[str] | None, typer.Option("--make-b", help="Serial of a meter that is make B (repeatable).")
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
        link_retries=link_retries,
        unreachable_share=unreachable_share,
        dc_outages=tuple(dc_outage or ()),
        counters=counters,
        dc_clock_drift=dc_clock_drift,
        dc_clock_offset=dc_clock_offset,
        table_churn=table_churn,
        make_b_share=make_b_share,
        make_b=tuple(make_b or ()),
    )
    destination = None if push_to is None else _parse_host_port(push_to)
    if tamper_every is not None and not tamper_every > 0:
        raise _fail(f"--tamper-every {tamper_every} must be a positive number of seconds", 2)
    try:
        field = Fleet(options)
    except (FleetError, CounterError) as exc:
        raise _fail(str(exc), 2) from None
    try:
        asyncio.run(_serve(field, manifest, destination, tamper_every))
    except (FleetError, ManifestError, CounterError) as exc:
        raise _fail(str(exc), 1) from None


def _parse_host_port(text: str) -> tuple[str, int]:
    host, _, port = text.strip().rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise _fail(f"--push-to {text!r} is not HOST:PORT (e.g. 127.0.0.1:4059)", 2)
    return host, int(port)


async def _tamper_loop(field: Fleet, period: float) -> None:
    """Round-robin over the meters: each period one of them logs a meter cover opening (its hook pushes it)."""
    from simulators.events import EventCode

    serials = sorted(field.meters())
    turn = 0
    while serials:
        await asyncio.sleep(period)
        serial = serials[turn % len(serials)]
        turn += 1
        field.meter(serial).record_event(EventCode.METER_COVER_REMOVED)
        print(f"hes sim: meter {serial} logged a meter cover opening", flush=True)


async def _serve(field: Fleet, manifest: Path, push_to: tuple[str, int] | None = None,
                 tamper_every: float | None = None) -> None:
    from simulators.push import PushSender

    await field.start()
    if push_to is not None:
        PushSender(field, *push_to).attach()
    tamper = None if tamper_every is None else asyncio.create_task(_tamper_loop(field, tamper_every))
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
    try:
        await field.run_until_signal(ready=lambda: print(announcement, flush=True))
    finally:
        if tamper is not None:
            tamper.cancel()
    print("hes sim: stopped", flush=True)
