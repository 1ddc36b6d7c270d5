"""Relay orders and events: a read-back that disagrees raises an alarm; disconnect-on-tamper policy; both databases."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

import hes.commands
from hes.commands import Commands, RelayState
from hes.events.push import tamper_policy
from hes.registry import Registry
from hes.session import MeterSession
from protocols.cosem import ControlMode, ControlState
from simulators.events import EventCode
from tests.events.helpers import CIPHERED_P2P, events_of, outbox, push_field, wait_for
from tests.events.test_push import run
from tests.hes.test_commands import DC_METER, FAST, FieldThread, orders_of, small_field


def test_a_relay_that_does_not_move_is_a_warn_with_an_alarm(registry: Registry, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    async def stuck(session: MeterSession, *_relay: object) -> RelayState:
        # A welded relay: the meter accepted the order, but the supply is still on.
        return RelayState(True, ControlState.CONNECTED, ControlMode.MODE_2)

    with FieldThread(small_field()) as field:
        registry.import_manifest(field.write_manifest(tmp_path / "fleet.json"))
        commands = Commands(registry, who="tess", timeouts=FAST)
        ok = asyncio.run(commands.disconnect(CIPHERED_P2P))
        assert ok.state == "EXE"
        assert [m.kind for m in outbox(registry)] == ["command"]
        monkeypatch.setattr(hes.commands, "_read_relay", stuck)
        result = asyncio.run(commands.disconnect(DC_METER))
    assert result.state == "WARN" and result.observations is not None
    assert result.observations.startswith("relay not disconnected after disconnect: control state connected")
    messages = [(m.topic, m.kind, json.loads(m.payload)) for m in outbox(registry)]
    assert [(t, k) for t, k, _ in messages] == [
        (f"hes/p2p/{CIPHERED_P2P}/command", "command"),
        (f"hes/DC0001/{DC_METER}/command", "command"),
        (f"hes/DC0001/{DC_METER}/alarm", "alarm"),
    ]
    alarm = messages[2][2]
    assert alarm["name"] == "relay state disagrees with the order" and alarm["criticality"] == "alarm"
    assert alarm["order"] == result.order_number and alarm["user"] == "tess"
    assert messages[1][2]["result"] == "WARN"
    assert orders_of(registry, DC_METER)[0].state == "WARN"


def test_disconnect_on_tamper_policy(registry: Registry, tmp_path: Path) -> None:
    async def body() -> None:
        async with push_field(registry, tmp_path) as f:
            f.listener.on_outcome = tamper_policy(registry)
            relay = f.fleet.meter(CIPHERED_P2P).relay
            await f.sender.tamper(CIPHERED_P2P, EventCode.POWER_DOWN)  # not tamper: nothing ordered
            await wait_for(lambda: f.listener.accepted == 1, "the power push was taken")
            await f.sender.tamper(CIPHERED_P2P, EventCode.METER_COVER_REMOVED)
            await wait_for(lambda: relay.control_state is ControlState.DISCONNECTED, "the policy disconnected",
                           limit=30)
            await wait_for(lambda: bool(orders_of(registry, CIPHERED_P2P))
                           and orders_of(registry, CIPHERED_P2P)[0].state != "PENDING", "the order finished")
            (order,) = orders_of(registry, CIPHERED_P2P)
            assert order.command == "disconnect" and order.requested_by == "policy:disconnect-on-tamper"
            assert order.state == "EXE"
            # The meter logs the remote disconnection and pushes it too: stored with the rest.
            await wait_for(lambda: 62 in [e.event_code for e in events_of(registry, CIPHERED_P2P)],
                           "the relay event was pushed")
            assert sorted((e.event_code, e.name) for e in events_of(registry, CIPHERED_P2P)) == [
                (1, "power down"), (44, "meter cover removed"), (62, "remote disconnection")]

    run(body)
