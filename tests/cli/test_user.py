"""`hes user` and the roles the CLI enforces: bootstrap, a viewer refused a disconnect, a technician's executed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from cli.auth import login_name
from cli.main import app
from hes.db.models import AuditEntry
from hes.events.models import MqttMessage
from hes.registry import Registry
from protocols.cosem import ControlState
from tests.hes.conftest import database_url, engine, master_key, registry
from tests.hes.test_commands import DC_METER, P2P_WRAPPER, PINNED_FIELD_ENV, FieldThread, orders_of, small_field

__all__ = ["database_url", "engine", "master_key", "registry"]  # fixtures shared with tests/hes

runner = CliRunner()


@pytest.fixture
def env(database_url: str, tmp_path: Path) -> dict[str, str | None]:
    return {"HES_DATABASE_URL": database_url, "HES_DATA_DIR": str(tmp_path / "data"),
            "HES_MASTER_KEY_FILE": str(tmp_path / "data" / "master.key"), "HES_TOKEN": None, **PINNED_FIELD_ENV}


@pytest.fixture
def field(tmp_path: Path, registry: Registry) -> Iterator[FieldThread]:
    with FieldThread(small_field()) as running:
        registry.import_manifest(running.write_manifest(tmp_path / "fleet.json"))
        yield running


def audits(registry: Registry) -> list[AuditEntry]:
    with Session(registry.engine) as db:
        return list(db.scalars(select(AuditEntry).order_by(AuditEntry.id)))


def users_with_tokens(env: dict[str, str | None]) -> dict[str, str]:
    """An admin mapped to this OS login, then a viewer, an operator and a technician with tokens."""
    made = runner.invoke(app, ["user", "add", "boss", "--role", "admin", "--os-user", login_name()], env=env)
    assert made.exit_code == 0, made.output
    tokens = {}
    for name, role in (("vic", "viewer"), ("olga", "operator"), ("tess", "technician")):
        added = runner.invoke(app, ["user", "add", name, "--role", role, "--no-os-user"], env=env)
        assert added.exit_code == 0, added.output
        issued = runner.invoke(app, ["user", "token", name], env=env)
        assert issued.exit_code == 0, issued.output
        tokens[name] = issued.stdout.strip()
    return tokens


def test_bootstrap_then_the_first_user_must_be_an_admin(env: dict[str, str | None], registry: Registry) -> None:
    empty = runner.invoke(app, ["user", "list"], env=env)
    assert empty.exit_code == 0 and "no users: the OS user acts as admin" in empty.stdout
    viewer_first = runner.invoke(app, ["user", "add", "vic", "--role", "viewer"], env=env)
    assert viewer_first.exit_code == 2
    assert viewer_first.stderr.strip() == \
        "hes user: the first user must be an admin (asked: viewer); add an admin first"
    bad_role = runner.invoke(app, ["user", "add", "x", "--role", "god"], env=env)
    assert bad_role.exit_code == 2 and "unknown role 'god'" in bad_role.stderr

    admin = runner.invoke(app, ["user", "add", "boss", "--role", "admin", "--os-user", login_name(), "--json"],
                          env=env)
    assert admin.exit_code == 0, admin.output
    assert json.loads(admin.stdout)["created_by"] == f"{login_name()} (bootstrap admin)"
    twice = runner.invoke(app, ["user", "add", "boss", "--role", "viewer"], env=env)
    assert twice.exit_code == 2 and "user 'boss' already exists" in twice.stderr
    listed = json.loads(runner.invoke(app, ["user", "list", "--json"], env=env).stdout)
    assert [(u["name"], u["role"], u["os_user"], u["has_token"]) for u in listed] == [
        ("boss", "admin", login_name(), False)]
    assert [a.what for a in audits(registry)][-1] == f"user add boss --role admin --os-user {login_name()}"


def test_a_viewer_is_refused_a_disconnect_and_a_technician_is_not(field: FieldThread, env: dict[str, str | None],
                                                                   registry: Registry) -> None:
    tokens = users_with_tokens(env)
    def relay_state() -> ControlState:  # a call, so checks before and after the order stay independent
        return field.fleet.meter(DC_METER).relay.control_state

    refused = runner.invoke(app, ["disconnect", DC_METER], env={**env, "HES_TOKEN": tokens["vic"]})
    assert refused.exit_code == 4
    assert refused.stderr.splitlines() == [
        "hes disconnect: refused: user vic (viewer) may not disconnect; technician or above is needed"]
    assert relay_state() is ControlState.CONNECTED and orders_of(registry, DC_METER) == []
    last = audits(registry)[-1]
    assert (last.who, last.what) == ("vic", f"disconnect {DC_METER}") and last.result.startswith("REFUSED: ")

    operator = runner.invoke(app, ["reconnect", DC_METER], env={**env, "HES_TOKEN": tokens["olga"]})
    assert operator.exit_code == 4 and "user olga (operator) may not reconnect" in operator.stderr

    done = runner.invoke(app, ["disconnect", DC_METER, "--json", "--timeout", "5"],
                         env={**env, "HES_TOKEN": tokens["tess"]})
    assert done.exit_code == 0, done.output
    body = json.loads(done.stdout)
    assert body["result"] == "EXE" and body["values"]["control_state"] == "disconnected"
    assert body["values"]["output_state"] is False  # read back from the meter
    assert relay_state() is ControlState.DISCONNECTED
    (order,) = orders_of(registry, DC_METER)
    assert order.requested_by == "tess" and order.state == "EXE"
    last = audits(registry)[-1]
    assert last.who == "tess" and last.what.startswith(f"disconnect {DC_METER} (order {order.order_number})")
    with Session(registry.engine) as db:
        (message,) = db.scalars(select(MqttMessage).where(MqttMessage.kind == "command"))
    assert message.topic == f"hes/DC0001/{DC_METER}/command"
    assert json.loads(message.payload)["user"] == "tess" and json.loads(message.payload)["result"] == "EXE"

    # Reads are open to viewers; clock sync needs an operator.
    read = runner.invoke(app, ["read", P2P_WRAPPER, "--what", "clock", "--json"],
                         env={**env, "HES_TOKEN": tokens["vic"]})
    assert read.exit_code == 0, read.output
    sync = runner.invoke(app, ["clock", "sync", P2P_WRAPPER], env={**env, "HES_TOKEN": tokens["vic"]})
    assert sync.exit_code == 4 and "may not clock-sync; operator or above is needed" in sync.stderr


def test_unknown_users_are_refused_with_one_line(env: dict[str, str | None], registry: Registry) -> None:
    users_with_tokens(env)
    forged = runner.invoke(app, ["disconnect", DC_METER], env={**env, "HES_TOKEN": "not-a-token"})
    assert forged.exit_code == 4
    assert forged.stderr.splitlines() == [
        "hes disconnect: refused: HES_TOKEN is not a valid head-end token (hes user token NAME issues one)"]
    forged_admin = runner.invoke(app, ["user", "add", "eve", "--role", "admin"],
                                 env={**env, "HES_TOKEN": "another-bad-token"})
    assert forged_admin.exit_code == 4
    assert audits(registry)[-1].result.startswith("REFUSED: HES_TOKEN is not a valid")


def test_as_a_real_subprocess(env: dict[str, str | None], registry: Registry) -> None:
    tokens = users_with_tokens(env)
    hes = str(Path(sys.executable).with_name("hes"))
    base = {k: v for k, v in os.environ.items() if k != "HES_TOKEN"}
    base.update({k: v for k, v in env.items() if v is not None})
    listed = subprocess.run([hes, "user", "list", "--json"], env=base, capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0, listed.stderr
    assert sorted(u["name"] for u in json.loads(listed.stdout)) == ["boss", "olga", "tess", "vic"]
    refused = subprocess.run([hes, "disconnect", DC_METER], env={**base, "HES_TOKEN": tokens["vic"]},
                             capture_output=True, text=True, timeout=60)
    assert refused.returncode == 4
    assert refused.stderr == "hes disconnect: refused: user vic (viewer) may not disconnect; technician or above " \
                             "is needed\n"


def test_a_bulk_disconnect_needs_an_explicit_confirmation(registry: Registry,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    import typer

    from cli.auth import EXIT_REFUSED, Identity, require_bulk_disconnect_confirmation

    technician = Identity("tess", "technician", "token")
    require_bulk_disconnect_confirmation(technician, registry.engine, 1, False)  # one meter is not bulk
    require_bulk_disconnect_confirmation(technician, registry.engine, 500, True)
    for who, count in ((technician, 500), (Identity("olga", "operator", "token"), 2)):
        with pytest.raises(typer.Exit) as refused:
            require_bulk_disconnect_confirmation(who, registry.engine, count, False, target="plan cut-offs")
        assert refused.value.exit_code == EXIT_REFUSED
    lines = capsys.readouterr().err.splitlines()
    assert lines == ["hes plan: refused: this disconnects 500 meters: confirm with --confirm-disconnect",
                     "hes plan: refused: user olga (operator) may not disconnect meters in bulk; technician or "
                     "above is needed"]
    assert [(a.who, a.what) for a in audits(registry)] == [("tess", "bulk-disconnect 500 meters plan cut-offs"),
                                                           ("olga", "bulk-disconnect 2 meters plan cut-offs")]


@pytest.mark.parametrize(
    ("user", "args", "action"),
    [
        ("vic", ["plan", "create", "p1", "--all", "--commands", "registers"], "plan"),
        ("vic", ["n2pload"], "plan"),
        ("vic", ["cim", "deliver"], "cim"),
        ("vic", ["cim", "retry"], "cim"),
        ("vic", ["export", "cim", "--from", "2026-11-01T00:00Z", "--to", "2026-11-02T00:00Z", "--out", "OUT"],
         "export"),
        ("vic", ["import", "BUNDLE"], "import"),
        ("olga", ["registry", "import", "MANIFEST"], "registry"),
        ("olga", ["meter", "decommission", "SIM000100001"], "registry"),
        ("tess", ["probe", "keys", "export", "--meters", "SIM000100001", "--out", "KEYS", "--expires", "1d"],
         "field-keys"),
    ],
)
def test_commands_beyond_the_role_are_refused_with_one_line_and_audited(
        env: dict[str, str | None], registry: Registry, tmp_path: Path, user: str, args: list[str],
        action: str) -> None:
    tokens = users_with_tokens(env)
    args = [str(tmp_path / a.lower()) if a in ("OUT", "BUNDLE", "MANIFEST", "KEYS") else a for a in args]
    before = len(audits(registry))
    refused = runner.invoke(app, args, env={**env, "HES_TOKEN": tokens[user]})
    assert refused.exit_code == 4, refused.output
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and f"may not {action}" in lines[0]
    assert refused.stdout == ""
    entries = audits(registry)[before:]
    assert any(e.result.startswith("REFUSED") and e.who.startswith(user) for e in entries)
    assert not list(tmp_path.glob("out*")) and not (tmp_path / "keys").exists()
