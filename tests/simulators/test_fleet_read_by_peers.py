"""``hes sim fleet`` as a real process, read by both independent clients from its manifest alone.

This is the issue's "done when": a field started from the command line that gurux-dlms and
dlms-cosem can read, the values equal to the deterministic functions. Field time is frozen
(``--time-scale 0``) so every value has one right answer. The manifest is the head-end's registry
format (``hes-registry/1``); seed and field epoch come from its ``x-simulation`` extension.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from gurux_dlms.enums import Authentication, InterfaceType, Security
from gurux_dlms.objects import GXDLMSClock, GXDLMSRegister
from gurux_dlms.secure import GXDLMSSecureClient

from protocols.cosem_datetime import CosemDateTime
from simulators.energy import FIELD_EPOCH, INTERVAL, profile_intervals, registers_at
from tests.fieldtime import EPOCH, format_epoch, interval_floor
from tests.peers.gurux_peer import decode_data as gurux_decode_data
from tests.simulators.test_peers_read import (
    CLOCK_LN,
    REGISTERS,
    GuruxSession,
    gurux_time,
    profile_rows,
    recording_io,
)

SEED = "fleet-peers-2"  # its p2p meters include none and HLS-GMAC on both interfaces
#: A make-B meter the other tests do not pick (HLS-GMAC over HDLC, after P2P000000003).
MAKE_B_SERIAL = "P2P000000005"
CLIENT_TITLE = bytes.fromhex("4845530000000002")


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    manifest = tmp_path_factory.mktemp("fleet") / "fleet.json"
    process = subprocess.Popen(
        [sys.executable, "-m", "cli", "sim", "fleet", "--concentrators", "1", "--meters-per-dc", "2",
         "--p2p", "8", "--seed", SEED, "--time-scale", "0", "--epoch", format_epoch(EPOCH),
         "--manifest", str(manifest), "--make-b", MAKE_B_SERIAL],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    try:
        deadline = time.monotonic() + 60
        while not manifest.exists() and time.monotonic() < deadline:
            if process.poll() is not None:
                raise AssertionError(f"hes sim fleet exited: {process.stderr.read() if process.stderr else ''}")
            time.sleep(0.1)
        assert manifest.exists(), "no manifest within 60 s"
        time.sleep(0.2)  # the manifest is written once the servers listen; let the write finish
        yield json.loads(manifest.read_text())
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            assert process.wait(timeout=20) == 0
        finally:
            if process.poll() is None:
                process.kill()


def _p2p_meters(fleet: dict[str, Any]) -> list[dict[str, Any]]:
    return [entry for entry in fleet["meters"] if entry["concentrator"] is None]


def _meter(fleet: dict[str, Any], policy: str, interface: str) -> dict[str, Any]:
    for entry in _p2p_meters(fleet):
        if entry["security"]["policy"] == policy and entry["interface"] == interface:
            return entry
    pytest.fail(f"the seeded fleet has no {policy} meter on {interface}: choose another seed")


def _expected(fleet: dict[str, Any], serial: str) -> tuple[datetime, dict[str, int], list[Any], datetime]:
    simulation = fleet["x-simulation"]
    now = datetime.fromisoformat(simulation["field_epoch"])
    registers = registers_at(simulation["seed"], serial, now)
    day = interval_floor(now) - timedelta(days=1)
    first = (day - FIELD_EPOCH) // INTERVAL
    rows = [(FIELD_EPOCH + (r.interval + 1) * INTERVAL, r.status, r.a_plus, r.a_minus)
            for r in profile_intervals(simulation["seed"], serial, first, first + 95)]
    return now, {ln: getattr(registers, name) for ln, name in REGISTERS.items()}, rows, day


def _gurux_client(entry: dict[str, Any]) -> GXDLMSSecureClient:
    """A gurux client for a point-to-point meter, set up from its manifest entry alone."""
    security = entry["security"]
    hls = security["policy"] == "hls-gmac"
    client = GXDLMSSecureClient(
        True, entry["client_sap"], entry["server_sap"],
        Authentication.HIGH_GMAC if hls else Authentication.NONE, None,
        InterfaceType.WRAPPER if entry["interface"] == "wrapper" else InterfaceType.HDLC,
    )
    if entry["interface"] == "hdlc":
        client.serverAddress = GXDLMSSecureClient.getServerAddress(entry["server_sap"], entry["hdlc_address"], 4)
        client.serverAddressSize = 4
    if hls:
        client.ciphering.security = Security.AUTHENTICATION_ENCRYPTION
        client.ciphering.systemTitle = CLIENT_TITLE
        client.ciphering.blockCipherKey = bytes.fromhex(security["ek"])
        client.ciphering.authenticationKey = bytes.fromhex(security["ak"])
        client.ciphering.invocationCounter = 1
    return client


@pytest.mark.parametrize("interface", ["wrapper", "hdlc"])
@pytest.mark.parametrize("policy", ["none", "hls-gmac"])
def test_gurux_reads_a_fleet_meter_from_the_manifest(fleet: dict[str, Any], policy: str, interface: str) -> None:
    entry = _meter(fleet, policy, interface)
    assert entry["device_type"] == "hes-sim-a" and entry["serial"] != MAKE_B_SERIAL
    client = _gurux_client(entry)
    now, registers, rows, day = _expected(fleet, entry["serial"])
    session = GuruxSession(entry["port"], client)
    try:
        session.open()
        clock = session.read(GXDLMSClock(CLOCK_LN), 2)
        read = {ln: session.read(GXDLMSRegister(ln), 2) for ln in REGISTERS}
        profile = session.read_range(day + INTERVAL, day + timedelta(days=1))
        session.release()
    finally:
        session.close()
    assert gurux_time(clock) == now
    assert read == registers
    assert profile_rows([[gurux_decode_data(b"\x09\x0c" + bytes(r[0])), *r[1:]] for r in profile]) == rows


@pytest.mark.parametrize("policy", ["none", "hls-gmac"])
def test_dlms_cosem_reads_a_fleet_meter_from_the_manifest(
        fleet: dict[str, Any], policy: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import dlms_cosem.security
    from dlms_cosem import cosem, enumerations
    from dlms_cosem.client import DlmsClient
    from dlms_cosem.io import TcpTransport
    from dlms_cosem.security import HighLevelSecurityGmacAuthentication, NoSecurityAuthentication

    from tests.peers.dlms_cosem_peer import decode_data

    entry = _meter(fleet, policy, "wrapper")
    security = entry["security"]
    monkeypatch.setattr(dlms_cosem.security, "make_client_to_server_challenge", lambda length=8: bytes(range(length)))
    io = recording_io(entry["port"], 5)
    transport = TcpTransport(client_logical_address=entry["client_sap"],
                             server_logical_address=entry["server_sap"], io=io, timeout=5)
    if policy == "none":
        client = DlmsClient(transport=transport, authentication=NoSecurityAuthentication(), timeout=5)
    else:
        client = DlmsClient(
            transport=transport, authentication=HighLevelSecurityGmacAuthentication(challenge_length=16),
            encryption_key=bytes.fromhex(security["ek"]), authentication_key=bytes.fromhex(security["ak"]),
            # gurux may already have used this meter's client SAP with low counters; the meter keeps the
            # last one it accepted and refuses anything not above it, so continue well above.
            security_suite=0, client_system_title=CLIENT_TITLE, client_initial_invocation_counter=1000, timeout=5,
        )

    def attribute(interface_class: int, ln: str, index: int) -> Any:
        return cosem.CosemAttribute(interface=enumerations.CosemInterface(interface_class),
                                    instance=cosem.Obis.from_string(ln), attribute=index)

    now, registers, _rows, _day = _expected(fleet, entry["serial"])
    try:
        client.connect()
        client.associate()
        clock = decode_data(client.get(attribute(8, CLOCK_LN, 2)))
        read = {ln: decode_data(client.get(attribute(3, ln, 2))) for ln in REGISTERS}
        client.release_association()
    finally:
        io.disconnect()
    assert CosemDateTime.decode(clock).to_datetime() == now
    assert read == registers


def test_gurux_reads_a_make_b_meters_profile_from_the_manifest(fleet: dict[str, Any]) -> None:
    """The manifest says which meter is make B; gurux reads its own load profile, 1.0.99.2.0.255."""
    (entry,) = [m for m in _p2p_meters(fleet) if m["device_type"] == "hes-sim-b"]
    assert (entry["serial"], entry["model"], entry["firmware"]) == (MAKE_B_SERIAL, "SIM-B", "2.1")
    _now, registers, rows, day = _expected(fleet, entry["serial"])
    session = GuruxSession(entry["port"], _gurux_client(entry))
    try:
        session.open()
        a_plus = session.read(GXDLMSRegister("1.0.1.8.0.255"), 2)
        profile = session.read_range(day + INTERVAL, day + timedelta(days=1), "1.0.99.2.0.255")
        session.release()
    finally:
        session.close()
    assert a_plus == registers["1.0.1.8.0.255"]
    # Make B's columns: clock, A-, A+, status word; the same seeded values as make A's.
    got = [(CosemDateTime.decode(bytes(r[0])).to_datetime(), r[1], r[2], r[3]) for r in profile]
    assert got == [(at, a_minus, a_plus, status) for at, status, a_plus, a_minus in rows]
