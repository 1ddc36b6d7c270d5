"""`--per-dc N` is the DC's session budget, the only one: N sessions at once per DC, seen from the DC's side.

Each session with a DC holds one TCP connection to its WAN port; the simulated DC counts the
connections open at once (``peak_connections``). Its answers are slowed (``answer_delay``) so the
sessions of a pass overlap. Before the concentrator model, a second budget of 4 in the session
layer silently capped any ``--per-dc`` above 4.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hes.registry import Registry
from simulators.fleet import FleetOptions
from tests.cli.test_plan import SEED, hes_env, invoke
from tests.fieldtime import quarter_hour_ahead
from tests.hes.conftest import database_url, engine, master_key, registry
from tests.hes.test_commands import FieldThread

__all__ = ["database_url", "engine", "hes_env", "master_key", "registry"]

DCS = ("DC0001", "DC0002")


@pytest.mark.parametrize("per_dc", [8, 2])
def test_per_dc_n_runs_n_sessions_at_once_on_each_dc(hes_env: dict[str, str], registry: Registry, tmp_path: Path,
                                                      per_dc: int) -> None:
    now = quarter_hour_ahead()
    options = FleetOptions(concentrators=2, meters_per_dc=20, p2p=0, seed=SEED, schedule=False, loss=0.0, epoch=now)
    with FieldThread(options, now=now) as running:
        registry.import_manifest(running.write_manifest(tmp_path / "fleet.json"))
        for dc in DCS:
            running.fleet.faults(dc).answer_delay = 0.02
        code, out, err = invoke(["n2pload", "--per-dc", str(per_dc), "--concurrency", "64", "--json"])
        assert code == 0, err
        data = json.loads(out)
        assert data["state"] == "done" and len(data["items"]) == 40
        assert {i["state"] for i in data["items"]} <= {"EXE", "WARN"}, data["items"]
        peaks = {dc: running.fleet.concentrators[dc].peak_connections for dc in DCS}
        assert peaks == {dc: per_dc for dc in DCS}
