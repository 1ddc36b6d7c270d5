"""`hes read` against a meter no one here wrote: gurux-dlms's own meter server, over the wrapper and HDLC.

Every --what (clock, registers, profile, daily, events) with each security setting gurux's Python server
can serve, each value compared with what the server holds (``tests.peers.gurux_server``). Stored on
SQLite and PostgreSQL (the ``registry`` fixture).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from hes.model import MeterSecurity
from hes.reads import ReadResult, read_meter
from hes.registry import Registry
from hes.session import Timeouts
from tests.fieldtime import EPOCH
from tests.peers.gurux_server import (
    AK,
    EK,
    LLS_PASSWORD,
    REGISTERS,
    SERIAL,
    SYSTEM_TITLE,
    GuruxMeter,
    daily_rows,
    event_rows,
    profile_rows,
)

ROOT = Path(__file__).resolve().parents[2]
TIMEOUTS = Timeouts(connect=2.0, read=2.0, release=1.0, retries=1)
WHATS = ("clock", "registers", "profile", "daily", "events")
#: (interface, authentication): what gurux 1.0.203's Python server can serve (see docs/INTEROP.md).
SETTINGS = [("wrapper", "none"), ("hdlc", "none"), ("wrapper", "lls"), ("hdlc", "lls")]


def _security(authentication: str) -> tuple[int, MeterSecurity]:
    if authentication == "lls":
        return 17, MeterSecurity(policy="lls", password=LLS_PASSWORD)
    return 16, MeterSecurity()


def _read(registry: Registry, what: str, epoch: datetime) -> ReadResult:
    span: dict[str, Any] = {} if what in ("clock", "registers") else {"start": epoch - timedelta(days=1), "end": epoch}
    return asyncio.run(read_meter(registry, SERIAL, what, requested_by="tester", clock=lambda: epoch,
                                  timeouts=TIMEOUTS, **span))


def _expected(what: str, epoch: datetime) -> set[tuple[Any, ...]]:
    """What a read of ``what`` over the day before ``epoch`` must give, from the server's own functions."""
    start = epoch - timedelta(days=1)
    if what == "clock":
        return {("clock", epoch, "0.0.1.0.0.255", Decimal(0))}
    if what == "registers":
        return {("register", epoch, obis, Decimal(value).scaleb(scaler) if scaler else value)
                for obis, scaler, _, value in REGISTERS}
    if what == "profile":
        # An interval is named by its end: the one ending at the range's start belongs to the day before.
        return {("interval", t, obis, value) for t, _, a_plus, a_minus in profile_rows(epoch) if start < t <= epoch
                for obis, value in (("1.0.1.8.0.255", a_plus), ("1.0.2.8.0.255", a_minus))}
    if what == "daily":
        return {("daily", t, obis, value) for t, *values in daily_rows(epoch) if start <= t <= epoch
                for obis, value in zip(("1.0.1.8.0.255", "1.0.1.8.1.255", "1.0.1.8.2.255", "1.0.2.8.0.255"), values)}
    return {("event", t, log, code) for log, rows in event_rows(epoch).items() for t, code in rows
            if start <= t <= epoch}


@pytest.mark.parametrize(("interface", "authentication"), SETTINGS)
def test_every_what_from_the_gurux_meter(registry: Registry, interface: str, authentication: str) -> None:
    with GuruxMeter(EPOCH, interface=interface, authentication=authentication) as meter:  # type: ignore[arg-type]
        client_sap, security = _security(authentication)
        registry.add_meter(SERIAL, host="127.0.0.1", port=meter.port, interface=interface,  # type: ignore[arg-type]
                           client_sap=client_sap, security=security)
        for what in WHATS:
            result = _read(registry, what, EPOCH)
            trace = "\n".join(f"> {a.hex(' ')}\n< {b.hex(' ')}" for a, b in meter.trace[-6:])
            assert result.state == "EXE", f"{what}: {result.reason} {result.observations}\n{trace}"
            got = {(v.kind, v.time, v.obis, v.value) for v in result.values}
            assert got == _expected(what, EPOCH), what
            assert len(result.values) == len(got)  # nothing twice
        assert meter.errors == []


def test_a_wrong_lls_password_is_refused_by_the_gurux_meter(registry: Registry) -> None:
    with GuruxMeter(EPOCH, interface="wrapper", authentication="lls") as meter:
        registry.add_meter(SERIAL, host="127.0.0.1", port=meter.port, interface="wrapper", client_sap=17,
                           security=MeterSecurity(policy="lls", password=b"wrong-pw"))
        result = _read(registry, "clock", EPOCH)
        assert result.state == "FAIL" and "authentication" in (result.reason or ""), result.reason


def test_hes_read_as_a_subprocess_reads_the_gurux_meter_over_hdlc(
        registry: Registry, database_url: str, tmp_path: Path) -> None:
    """The real command, with the wall clock: the meter's clock is set to now, its values derive from it."""
    now = datetime.now(UTC).replace(microsecond=0)
    with GuruxMeter(now, interface="hdlc") as meter:
        registry.add_meter(SERIAL, host="127.0.0.1", port=meter.port, interface="hdlc", client_sap=16)
        env = {**os.environ, "HES_DATABASE_URL": database_url, "HES_DATA_DIR": str(tmp_path / "data"),
               "HES_MASTER_KEY_FILE": str(tmp_path / "data" / "master.key"), "PYTHONPATH": str(ROOT)}
        done = subprocess.run([sys.executable, "-m", "cli", "read", SERIAL, "--what", "registers", "--json", "-v"],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        data = json.loads(done.stdout)
        assert data["state"] in ("EXE", "WARN"), data  # WARN only if the clocks drifted apart meanwhile
        got = {v["obis"]: v["value"] for v in data["values"]}
        assert got == {obis: (str(Decimal(value).scaleb(scaler)) if scaler else value)
                       for obis, scaler, _, value in REGISTERS}
        # gurux's UA is odd (group length 0, then 18 bytes): the trace says so, once.
        assert done.stderr.count("HDLC parameters read leniently") == 1, done.stderr


def test_gurux_defect_its_python_server_cannot_answer_an_hls_gmac_association(registry: Registry) -> None:
    """gurux 1.0.203's Python server cannot write an HLS-GMAC AARE: ``_GXAPDU.generateAARE`` calls
    ``data.setUInt8()`` without a value where it adds the responding system title (a TypeError), and its error
    answer then fails ciphering too ("Invalid GLO command"). Pinned, so a gurux that serves HLS-GMAC shows up."""
    with GuruxMeter(EPOCH, interface="wrapper", authentication="hls-gmac") as meter:
        registry.add_meter(SERIAL, host="127.0.0.1", port=meter.port, interface="wrapper", client_sap=1,
                           security=MeterSecurity(policy="hls-gmac", system_title=SYSTEM_TITLE, ek=EK, ak=AK))
        result = _read(registry, "clock", EPOCH)
        assert result.state == "FAIL"
        assert any("Invalid GLO command" in error for error in meter.errors), meter.errors
