"""Pushes from the simulated field into the push listener: stored once, queued for MQTT, bad ones dropped."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
from pathlib import Path

import pytest

from hes.events.alarm_register import ALARM_REGISTER
from hes.events.catalog import Criticality
from hes.events.push import PushRejected
from hes.events.query import list_events
from hes.registry import Registry
from protocols.security import GeneralGloCiphering, SecurityControlField, cipher
from simulators.events import EventCode, EventLog, MeterEvent
from simulators.push import alarm_notification, event_notification
from tests.events.helpers import CIPHERED_P2P, DC_METER, events_of, outbox, push_field, run, wait_for


def test_a_cover_open_reaches_the_events_table_and_the_outbox_once(registry: Registry, tmp_path: Path) -> None:
    async def body() -> None:
        async with push_field(registry, tmp_path) as f:
            event = await f.sender.tamper(CIPHERED_P2P, EventCode.METER_COVER_REMOVED)
            await wait_for(lambda: f.listener.accepted == 1, "the push was taken")
            stored = events_of(registry, CIPHERED_P2P)
            assert [(e.log_obis, e.event_code, e.name) for e in stored] == [
                (str(EventLog.FRAUD.obis), 44, "meter cover removed")]
            assert stored[0].event_time == event.when
            # The same push again (a DC retrying): stored once, queued once.
            await f.sender.push_event(CIPHERED_P2P, event)
            await wait_for(lambda: f.listener.accepted == 2, "the repeated push was taken")
            assert len(events_of(registry, CIPHERED_P2P)) == 1
            messages = outbox(registry)
            assert [(m.topic, m.kind) for m in messages] == [(f"hes/p2p/{CIPHERED_P2P}/alarm", "alarm")]
            payload = json.loads(messages[0].payload)
            assert payload["name"] == "meter cover removed" and payload["criticality"] == "critical"
            assert payload["message_id"] == messages[0].message_id and payload["meter"] == CIPHERED_P2P
            assert f.sender.sent == 2 and f.listener.rejected == 0
            (listed,) = list_events(registry.engine, serial=CIPHERED_P2P, min_criticality=Criticality.CRITICAL)
            assert (listed.device, listed.name, listed.log, listed.time) == (
                CIPHERED_P2P, "meter cover removed", "fraud", event.when)

    run(body)


def test_a_dc_forwards_its_meters_push_and_an_alarm_register_push_is_decoded(registry: Registry,
                                                                              tmp_path: Path) -> None:
    async def body() -> None:
        async with push_field(registry, tmp_path) as f:
            await f.sender.tamper(DC_METER, EventCode.TERMINAL_COVER_REMOVED)
            await wait_for(lambda: f.listener.accepted == 1, "the forwarded push was taken")
            # Clock invalid (bit 0) and fraud attempt (bit 13).
            await f.sender.push_alarm(DC_METER, (1 << 0) | (1 << 13))
            await wait_for(lambda: f.listener.accepted == 2, "the alarm push was taken")
            stored = {(e.log_obis, e.event_code, e.name) for e in events_of(registry, DC_METER)}
            assert stored == {(str(EventLog.FRAUD.obis), 40, "terminal cover removed"),
                              (str(ALARM_REGISTER), 0, "clock invalid"), (str(ALARM_REGISTER), 13, "fraud attempt")}
            topics = sorted((m.topic, json.loads(m.payload)["name"]) for m in outbox(registry))
            assert topics == [("hes/DC0001/SIM000100001/alarm", "fraud attempt"),
                              ("hes/DC0001/SIM000100001/alarm", "terminal cover removed"),
                              ("hes/DC0001/SIM000100001/event", "clock invalid")]

    run(body)


def test_power_events_below_the_threshold_are_stored_not_published(registry: Registry, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HES_MQTT_MIN_CRITICALITY", "alarm")

    async def body() -> None:
        async with push_field(registry, tmp_path) as f:
            await f.sender.tamper(CIPHERED_P2P, EventCode.POWER_DOWN)
            await f.sender.tamper(CIPHERED_P2P, EventCode.POWER_UP)
            await wait_for(lambda: f.listener.accepted == 2, "both pushes were taken")
            assert sorted(str(e.name) for e in events_of(registry, CIPHERED_P2P)) == ["power down", "power up"]
            assert outbox(registry) == []

    run(body)


def test_malformed_unknown_and_forged_pushes_are_dropped_and_the_listener_goes_on(
        registry: Registry, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="hes.events.push")

    async def body() -> None:
        async with push_field(registry, tmp_path) as f:
            meter = f.fleet.meter(CIPHERED_P2P)
            config = meter.config
            assert config.system_title is not None and config.ek is not None and config.ak is not None
            now = f.fleet.clock.now()
            plain = event_notification(MeterEvent(now, EventCode.METER_COVER_REMOVED))
            bad = [
                (random.Random(1).randbytes(300), False),  # not a wrapper stream at all
                (os.urandom(40), True),  # random APDU in a good wrapper PDU
                (b"", True),  # empty APDU
                (GeneralGloCiphering(b"XXX\x00\x00\x00\x00\x01", cipher(
                    plain, security_control=SecurityControlField(authenticated=True, encrypted=True),
                    system_title=b"XXX\x00\x00\x00\x00\x01", invocation_counter=5, encryption_key=config.ek,
                    authentication_key=config.ak)).encode(), True),  # unknown system title
                (GeneralGloCiphering(config.system_title, cipher(
                    plain, security_control=SecurityControlField(authenticated=True, encrypted=True),
                    system_title=config.system_title, invocation_counter=10**6, encryption_key=bytes(16),
                    authentication_key=bytes(16))).encode(), True),  # wrong keys
                (alarm_notification(CIPHERED_P2P, 1 << 13, now), True),  # plain from a meter that ciphers
                (plain, True),  # plain, naming no meter, from an address several meters share
            ]
            for data, wrapped in bad:
                await f.sender.send_raw(data, wrapped=wrapped)
            await wait_for(lambda: f.listener.rejected == len(bad), "every bad push was dropped", limit=20)
            assert events_of(registry, CIPHERED_P2P) == []
            # A good push afterwards is served.
            await f.sender.tamper(CIPHERED_P2P, EventCode.TERMINAL_COVER_REMOVED)
            await wait_for(lambda: f.listener.accepted == 1, "the good push was taken")
            assert [e.event_code for e in events_of(registry, CIPHERED_P2P)] == [40]

    run(body)
    dropped = [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()]
    assert len(dropped) == 7
    assert all(message.startswith("push from 127.0.0.1:") for message in dropped)
    assert any("unknown sender: no meter with system title 5858580000000001" in m for m in dropped)
    assert any("push fails authentication" in m for m in dropped)
    assert any("ciphers its traffic (HLS-GMAC) but this push is plain" in m for m in dropped)
    assert any("not a wrapper stream" in m for m in dropped)
    assert any("ambiguous sender: several meters with address 127.0.0.1" in m for m in dropped)


def test_a_replayed_push_is_refused(registry: Registry, tmp_path: Path) -> None:
    async def body() -> None:
        async with push_field(registry, tmp_path) as f:
            apdu = await f.sender.push_alarm(CIPHERED_P2P, 1 << 13)
            await wait_for(lambda: f.listener.accepted == 1, "the first push was taken")
            await f.sender.send_raw(apdu)
            await wait_for(lambda: f.listener.rejected == 1, "the replay was refused")
            assert len(events_of(registry, CIPHERED_P2P)) == 1

    run(body)


def test_pushes_taken_out_of_order_pass_once_within_the_window(registry: Registry, tmp_path: Path) -> None:
    async def body() -> None:
        async with push_field(registry, tmp_path) as f:
            meter = f.fleet.meter(CIPHERED_P2P)
            config = meter.config
            assert config.system_title is not None and config.ek is not None and config.ak is not None
            title, ek, ak = config.system_title, config.ek, config.ak

            def apdu(counter: int, bits: int) -> bytes:
                plain = alarm_notification(CIPHERED_P2P, bits, f.fleet.clock.now())
                return GeneralGloCiphering(title, cipher(
                    plain, security_control=SecurityControlField(authenticated=True, encrypted=True),
                    system_title=title, invocation_counter=counter, encryption_key=ek,
                    authentication_key=ak)).encode()

            handle = f.listener.handler.handle
            accepted = []
            for counter, bits in ((100, 1 << 0), (102, 1 << 1), (101, 1 << 8), (101, 1 << 9), (30, 1 << 10)):
                try:
                    outcome = await asyncio.to_thread(handle, apdu(counter, bits), "127.0.0.1", 1)
                except PushRejected as exc:
                    assert "replayed push" in str(exc)
                    continue
                accepted.append((counter, [d.code for _, d in outcome.events]))
            assert accepted == [(100, [0]), (102, [1]), (101, [8])]

    run(body)
