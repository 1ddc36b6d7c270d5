"""Crash safety: a command or a read killed (SIGKILL) after the exchange and before storage reuses no counter.

The command runs in a subprocess (``hes disconnect``) with ``HES_CRASH_AT=command-before-store``,
the hook in ``hes.commands.crash_point``: the process kills itself once the meter has executed the
order and before the result and the received counter are stored. The simulated field keeps its
invocation counters in a file (``FileCounterStore``) and is restarted from it, so its replay check
survives like a real meter's. The same command then runs again and is accepted: the head-end skipped
every counter the dead process may have sent (a reused one is refused, as the control shows).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from hes.commands import COUNTERS_PER_COMMAND
from hes.crash import CRASH_ENV
from hes.db.counters import counter_state
from hes.db.models import AuditEntry, Order
from hes.model import CounterReservation
from hes.registry import Registry
from hes.session import Timeouts, open_session
from protocols.cosem import ControlState
from protocols.errors import SecurityError
from tests.hes.test_commands import DC_METER, PINNED_FIELD_ENV, FieldThread, orders_of, small_field

REPO = Path(__file__).resolve().parents[2]


def hes(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cli", *args], capture_output=True, text=True, timeout=60,
                          env=env, cwd=REPO)


def test_a_command_killed_before_storage_reuses_no_counter(
    registry: Registry, database_url: str, tmp_path: Path
) -> None:
    counters_file = tmp_path / "meter-counters.json"
    options = small_field(counters=counters_file)
    manifest = tmp_path / "fleet.json"
    env = {**os.environ, "HES_DATABASE_URL": database_url, "HES_DATA_DIR": str(tmp_path / "data"),
           "HES_MASTER_KEY_FILE": str(tmp_path / "data" / "master.key"), **PINNED_FIELD_ENV}
    # the registry fixture's master key is that file: the subprocess decrypts the same keys
    assert (tmp_path / "data" / "master.key").exists()

    with FieldThread(options) as field:
        assert field.fleet.security(DC_METER).policy == "hls-gmac"  # counters and replay check in play
        registry.import_manifest(field.write_manifest(manifest))
        killed = hes(["disconnect", DC_METER, "--timeout", "5"], {**env, CRASH_ENV: "command-before-store"})
        assert killed.returncode == -signal.SIGKILL, killed.stderr
        # The meter executed the order before the process died...
        assert field.fleet.meter(DC_METER).relay.control_state is ControlState.DISCONNECTED
        accepted = field.fleet.counter_store.get(DC_METER, 1).client_last
        assert accepted is not None
    # ...and the field stopped, flushing its counters to the file, as a meter keeps them across power cuts.

    stored = counter_state(registry.engine, DC_METER, 1)
    assert stored is not None
    next_counter, last_received = stored
    assert last_received is None  # the result (and the meter's last counter) never got stored
    dead_start = next_counter - COUNTERS_PER_COMMAND
    assert dead_start <= accepted < next_counter  # the dead process used counters of its reservation
    [pending] = orders_of(registry, DC_METER)
    assert pending.state == "PENDING" and pending.finished_at is None
    with Session(registry.engine) as db:
        assert db.scalars(select(AuditEntry).where(AuditEntry.what.startswith("disconnect"))).all() == []

    with FieldThread(options) as field:  # the restarted field reads its counters back from the file
        assert field.fleet.counter_store.get(DC_METER, 1).client_last == accepted
        registry.import_manifest(field.write_manifest(manifest))  # new ports; idempotent for the rest

        async def reuse() -> None:
            # The control: the dead process's counters again. The meter's replay check refuses them.
            reused = CounterReservation(start=dead_start, limit=next_counter)
            async with asyncio.timeout(20), open_session(registry.target_for(DC_METER), reused,
                                                         timeouts=Timeouts(connect=2, read=2, release=1)):
                pass

        with pytest.raises(SecurityError):
            asyncio.run(reuse())

        again = hes(["disconnect", DC_METER, "--json", "--timeout", "5"], env)
        assert again.returncode == 0, again.stderr
        assert '"result": "EXE"' in again.stdout
        assert field.fleet.meter(DC_METER).relay.control_state is ControlState.DISCONNECTED
        last = field.fleet.counter_store.get(DC_METER, 1).client_last
        assert last is not None and last >= next_counter

    orders = orders_of(registry, DC_METER)
    assert [o.state for o in orders] == ["PENDING", "EXE"]
    with Session(registry.engine) as db:
        lines = db.scalars(select(AuditEntry).where(AuditEntry.what.startswith(f"disconnect {DC_METER}"))).all()
        assert len(lines) == 1 and orders[1].order_number in lines[0].what
        assert db.scalars(select(Order).where(Order.state == "EXE")).all()[0].order_number == orders[1].order_number
    final = counter_state(registry.engine, DC_METER, 1)
    assert final is not None and final[0] > next_counter and final[1] is not None


def test_a_read_killed_before_storage_reuses_no_counter_and_stores_once(
    registry: Registry, database_url: str, tmp_path: Path
) -> None:
    counters_file = tmp_path / "meter-counters.json"
    options = small_field(counters=counters_file)
    manifest = tmp_path / "fleet.json"
    env = {**os.environ, "HES_DATABASE_URL": database_url, "HES_DATA_DIR": str(tmp_path / "data"),
           "HES_MASTER_KEY_FILE": str(tmp_path / "data" / "master.key"), **PINNED_FIELD_ENV}
    read = ["read", DC_METER, "--what", "registers", "--json", "--timeout", "5", "--clock-tolerance", "1000000000"]

    with FieldThread(options) as field:
        assert field.fleet.security(DC_METER).policy == "hls-gmac"
        registry.import_manifest(field.write_manifest(manifest))
        killed = hes(read, {**env, CRASH_ENV: "read-before-store"})
        assert killed.returncode == -signal.SIGKILL, killed.stderr
        accepted = field.fleet.counter_store.get(DC_METER, 1).client_last
        assert accepted is not None  # the meter answered the dead process's requests

    stored = counter_state(registry.engine, DC_METER, 1)
    assert stored is not None and stored[1] is None  # the last received counter was never stored
    assert accepted < stored[0]  # what the meter accepted lies inside the reservation already persisted
    with Session(registry.engine) as db:
        assert db.scalars(select(Order).where(Order.state == "PENDING")).all()  # the dead order stays open

    with FieldThread(options) as field:  # restarted: the meter's replay check still knows `accepted`
        registry.import_manifest(field.write_manifest(manifest))
        first = hes(read, env)
        assert first.returncode == 0, first.stderr
        assert '"state": "EXE"' in first.stdout or '"state": "WARN"' in first.stdout, first.stdout
        again = hes(read, env)
        assert again.returncode == 0, again.stderr

    with Session(registry.engine) as db:
        from hes.db.models import RegisterReading

        rows = db.scalars(select(RegisterReading)).all()
    # one read's registers (5 of them), stored once although the meter was read twice at the same instant
    assert len(rows) == 5
