"""`hes probe read ...` and `hes probe keys export ...`: the optical-probe field tool and the key files it needs."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any, cast

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from cli.auth import require
from cli.read import parse_time
from cli.registry import open_registry, run_or_exit, who
from hes.errors import FAILURES
from hes.probe.bundle import write_bundle
from hes.probe.keys import DEFAULT_COUNTER_BLOCK, KeyFileError, export_key_file, open_key_file, parse_validity
from hes.probe.read import WHATS, ProbeRequest, ProbeRequestError, ProbeWhat, probe_read
from hes.probe.read import Progress as Step
from hes.probe.serial_link import OpticalLine, ParityMode
from hes.reads import ReadRequestError
from hes.session import Timeouts

__all__ = ["PASSPHRASE_VARIABLE", "app", "keys_app", "read_passphrase"]

PASSPHRASE_VARIABLE = "HES_PROBE_PASSPHRASE"

app = typer.Typer(
    name="probe",
    help="The optical-probe field tool: read a meter or a concentrator locally, and the key files it needs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
keys_app = typer.Typer(
    name="keys",
    help="Key files for field devices: keys encrypted with a passphrase, expiring.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(keys_app, name="keys")


def read_passphrase(file: Path | None, *, confirm: bool) -> str:
    """From ``--passphrase-file``, else ``$HES_PROBE_PASSPHRASE``, else a prompt on a terminal (never an argument)."""
    if file is not None:
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise KeyFileError(f"cannot read passphrase file {file}: {getattr(exc, 'strerror', None) or exc}") \
                from None
        value = text.rstrip("\r\n")
        if not value:
            raise KeyFileError(f"passphrase file {file} is empty")
        return value
    value = os.environ.get(PASSPHRASE_VARIABLE, "")
    if value:
        return value
    if sys.stdin.isatty():
        return cast(str, typer.prompt("Key file passphrase", hide_input=True, confirmation_prompt=confirm))
    raise KeyFileError(f"no passphrase: give --passphrase-file or set {PASSPHRASE_VARIABLE}")


def _split(values: list[str] | None) -> tuple[str, ...]:
    out: list[str] = []
    for value in values or []:
        out += [part.strip() for part in value.split(",") if part.strip()]
    return tuple(dict.fromkeys(out))


def _whats(text: str) -> tuple[ProbeWhat, ...]:
    whats = _split([text])
    for what in whats:
        if what not in WHATS:
            raise ProbeRequestError(f"--what {what!r}: one or more of {', '.join(WHATS)}, comma-separated")
    if not whats:
        raise ProbeRequestError(f"--what: one or more of {', '.join(WHATS)}, comma-separated")
    return cast(tuple[ProbeWhat, ...], whats)


def _rows(payload: dict[str, Any]) -> tuple[int, int, int]:
    meters = payload["meters"]
    return (sum(len(m["intervals"]) for m in meters), sum(len(m["registers"]) for m in meters),
            sum(len(m["events"]) for m in meters))


@app.command("read")
def read(
    port: Annotated[str, typer.Option("--port", help="The optical head's serial device, e.g. /dev/ttyUSB0.")],
    what: Annotated[str, typer.Option("--what", help="profile, daily, events, registers (comma-separated).")],
    keys: Annotated[Path, typer.Option("--keys", help="The key file (hes probe keys export).")],
    out: Annotated[Path, typer.Option("--out", help="Where to write the bundle (hes import BUNDLE).")],
    meter: Annotated[list[str] | None, typer.Option(
        "--meter", help="The meter at the port; with --concentrator, its meters to read (default: all).")] = None,
    concentrator: Annotated[str | None, typer.Option(
        "--concentrator", help="The port is this concentrator's: read it and its meters through it.")] = None,
    start: Annotated[str | None, typer.Option("--from", help="Range start, ISO 8601 (default: a day before --to).")]
    = None,
    end: Annotated[str | None, typer.Option("--to", help="Range end, ISO 8601 (default: now).")] = None,
    passphrase_file: Annotated[Path | None, typer.Option(
        "--passphrase-file", help=f"File holding the key file's passphrase (else ${PASSPHRASE_VARIABLE}, "
        "else a prompt).")] = None,
    parity: Annotated[str, typer.Option(
        "--parity", help="7E1 during the sign-on: uart, software (a pty) or auto.")] = "auto",
    max_baud: Annotated[int, typer.Option("--max-baud", help="Highest speed to agree for HDLC.")] = 19200,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds to wait for each answer.")] = 5.0,
    retries: Annotated[int, typer.Option("--retries", help="Times a step is tried again after a probe timeout.")]
    = 2,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON (no progress lines).")] = False,
) -> None:
    """Read a meter (or a concentrator and its meters) at the optical port into an authenticated bundle.

    Exit 0: complete bundle; 1: partial bundle, or nothing read; 2: bad arguments or key file.
    """
    def prepare() -> tuple[ProbeRequest, Any, OpticalLine]:
        if parity not in ("auto", "uart", "software"):
            raise ProbeRequestError(f"--parity {parity!r}: auto, uart or software")
        if not 0 < timeout <= 120:
            raise ProbeRequestError(f"--timeout {timeout}: between 0 and 120 seconds")
        if not 0 <= retries <= 10:
            raise ProbeRequestError(f"--retries {retries}: between 0 and 10")
        if out.exists():
            # It may be a bundle not imported yet: field data is never overwritten.
            raise ProbeRequestError(f"--out {out} exists: choose another name (it may hold data not yet imported)")
        if max_baud not in (300, 600, 1200, 2400, 4800, 9600, 19200):
            raise ProbeRequestError(f"--max-baud {max_baud}: one of the IEC 62056-21 rates, 300 to 19200")
        request = ProbeRequest(_whats(what), parse_time("--from", start), parse_time("--to", end), _split(meter),
                               concentrator)
        key_file = open_key_file(keys, read_passphrase(passphrase_file, confirm=False))
        line = OpticalLine(port, parity=cast(ParityMode, parity), max_baud_rate=max_baud, timeout=timeout,
                           retries=retries)
        return request, key_file, line

    request, key_file, line = run_or_exit("probe", prepare)
    timeouts = Timeouts(connect=timeout, read=timeout, release=min(timeout, 3.0), retries=3)
    console = Console()
    interactive = console.is_terminal and not as_json

    def run_read(tell: Any) -> dict[str, Any]:
        # The operator is the laptop's login: the field device has no head-end database to ask.
        return asyncio.run(probe_read(line, key_file, request, retries=retries, timeouts=timeouts, progress=tell))

    def plain(step: Step) -> None:
        if as_json:
            return
        detail = f": {step.detail}" if step.detail else ""
        print(f"[{step.number}/{step.total}] {step.device} {step.step} {step.state}{detail}", flush=True)

    try:
        if interactive:
            with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                          console=console) as bar:
                task = bar.add_task("signing on", total=None)

                def tell(step: Step) -> None:
                    bar.update(task, total=step.total, completed=step.number - (step.state != "done"),
                               description=f"{step.device} {step.step} {step.state}")
                    if step.state in ("retry", "failed"):
                        bar.console.print(f"{step.device} {step.step} {step.state}: {step.detail}", markup=False,
                                          highlight=False)

                payload = run_read(tell)
        else:
            payload = run_read(plain)
    except (ProbeRequestError, ReadRequestError, KeyFileError) as exc:
        print(f"hes probe: {exc}", file=sys.stderr)
        raise typer.Exit(2) from None
    except FAILURES as exc:
        print(f"hes probe: {exc}; no bundle written", file=sys.stderr)
        raise typer.Exit(1) from None

    intervals, registers, events = _rows(payload)
    device = f"{payload['device']['kind']} {payload['device']['id']}"
    if intervals + registers + events == 0 and payload["concentrator"] is None:
        print(f"hes probe: {device}: nothing read: {payload['why']}; no bundle written", file=sys.stderr)
        raise typer.Exit(1)
    sha256 = run_or_exit("probe", lambda: write_bundle(out, payload, key_file.content.bundle_key))
    state = "partial" if payload["partial"] else "complete"
    if as_json:
        print(json.dumps({"bundle": str(out), "bundle_id": payload["bundle_id"], "sha256": sha256,
                          "device": payload["device"], "partial": payload["partial"], "why": payload["why"],
                          "rows": {"intervals": intervals, "registers": registers, "events": events},
                          "meters": [m["serial"] for m in payload["meters"]]}))
    else:
        print(f"bundle {out} ({state}): {device}, {len(payload['meters'])} meters, {intervals} interval values, "
              f"{registers} register readings, {events} events; sha256 {sha256}")
    if payload["partial"]:
        print(f"hes probe: partial bundle {out} written: {payload['why']}", file=sys.stderr)
        raise typer.Exit(1)


@keys_app.command("export")
def export(
    out: Annotated[Path, typer.Option("--out", help="Where to write the key file.")],
    meters: Annotated[list[str] | None, typer.Option(
        "--meters", help="Meters (comma-separated or repeated) whose keys the field device needs.")] = None,
    concentrator: Annotated[str | None, typer.Option(
        "--concentrator", help="A concentrator: its keys and its meters' (or only --meters of them).")] = None,
    expires: Annotated[str, typer.Option("--expires", help="Validity: 7d, 12h, 90m (at most 90 days).")] = "7d",
    counters: Annotated[int, typer.Option(
        "--counters", help="Invocation counters reserved per ciphered device for the field device.")]
    = DEFAULT_COUNTER_BLOCK,
    passphrase_file: Annotated[Path | None, typer.Option(
        "--passphrase-file", help=f"File holding the passphrase (else ${PASSPHRASE_VARIABLE}, else a prompt).")]
    = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the export as JSON.")] = False,
) -> None:
    """Export the keys a field device needs into a passphrase-encrypted key file that expires."""
    def act() -> Any:
        validity = parse_validity(expires)
        serials = _split(meters)
        if not serials and concentrator is None:
            raise KeyFileError("name the meters (--meters) or a concentrator (--concentrator) to export keys for")
        registry = open_registry()
        try:
            require("field-keys", registry.engine, f"probe keys export {','.join(serials) or concentrator}",
                    group="probe keys")
            passphrase = read_passphrase(passphrase_file, confirm=True)
            return export_key_file(registry, out, passphrase, meters=serials, concentrator=concentrator,
                                   validity=validity, counters=counters, who=who())
        finally:
            registry.engine.dispose()

    content = run_or_exit("probe keys", act)
    devices = [f"{d.kind} {d.ident}" for d in content.devices]
    if as_json:
        print(json.dumps({"key_file": str(out), "export_id": content.export_id,
                          "expires_at": content.expires_at.isoformat(), "devices": devices,
                          "counters": {d.counter_key: [d.counters.start, d.counters.limit]
                                       for d in content.devices if d.counters is not None}}))
        return
    until = content.expires_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    print(f"key file {out} (export {content.export_id}), valid until {until}: {', '.join(devices)}")
