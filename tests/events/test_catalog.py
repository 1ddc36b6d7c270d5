"""The event table (defaults, overrides, bad files), the alarm register, and the migration against the models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hes.config import ConfigError, load_settings
from hes.events import models  # noqa: F401  (its tables join Base's metadata)
from hes.events.alarm_register import decode_alarm_register, set_bits
from hes.events.catalog import CatalogError, Criticality, default_catalog, load_catalog
from simulators.events import EventCode, EventLog


def test_defaults_name_and_grade_every_code_the_simulated_meters_log() -> None:
    catalog = default_catalog()
    for code in EventCode:
        definition = catalog.lookup_obis(str(code.log.obis), int(code))
        assert definition.known, code
    cover = catalog.lookup_obis(str(EventLog.FRAUD.obis), 44)
    assert (cover.name, cover.criticality, cover.tamper) == ("meter cover removed", Criticality.CRITICAL, True)
    assert catalog.lookup_obis(str(EventLog.STANDARD.obis), 2).criticality is Criticality.INFO
    # The DC keeps its log at the same OBIS as a meter's standard log: the device kind tells them apart.
    assert catalog.lookup_obis("0.0.99.98.0.255", 200, device="concentrator").name == "meter unreachable"
    unknown = catalog.lookup("fraud", 999)
    assert (unknown.name, unknown.criticality, unknown.known) == ("event 999", Criticality.WARNING, False)


def test_an_override_file_replaces_entries_and_adds_logs(tmp_path: Path) -> None:
    path = tmp_path / "events.json"
    path.write_text(json.dumps({"unknown_criticality": "alarm", "logs": {
        "standard": {"events": {"1": {"name": "Stromausfall", "criticality": "alarm"}}},
        "vendor": {"obis": "0.0.99.98.9.255", "events": {"7": {"name": "relay welded", "criticality": "critical",
                                                                "tamper": False}}},
    }}))
    catalog = load_catalog(path)
    assert catalog.lookup("standard", 1).name == "Stromausfall"
    assert catalog.lookup("standard", 2).name == "power up"  # untouched entries stay
    assert catalog.lookup_obis("0.0.99.98.9.255", 7).criticality is Criticality.CRITICAL
    assert catalog.lookup("standard", 555).criticality is Criticality.ALARM


@pytest.mark.parametrize(("content", "message"), [
    ("not json", "not JSON"),
    (json.dumps({"logs": {"standard": {"events": {"x": {"name": "n"}}}}}), "the code is not an integer"),
    (json.dumps({"logs": {"standard": {"events": {"1": {"name": "n", "criticality": "urgent"}}}}}),
     "'urgent' is not a criticality"),
    (json.dumps({"logs": {"new": {"events": {}}}}), "new log 'new' needs its 'obis'"),
    (json.dumps([1, 2]), "expected an object"),
])
def test_a_bad_table_is_one_clear_error(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(CatalogError, match=message):
        load_catalog(path)
    with pytest.raises(CatalogError, match="No such file"):
        load_catalog(tmp_path / "missing.json")


def test_the_alarm_register_bits() -> None:
    assert set_bits(0) == [] and set_bits(0x80000001) == [0, 31]
    with pytest.raises(ValueError):
        set_bits(1 << 32)
    decoded = decode_alarm_register((1 << 0) | (1 << 13) | (1 << 30), default_catalog())
    assert [(d.code, d.name, d.criticality.label) for d in decoded] == [
        (0, "clock invalid", "warning"), (13, "fraud attempt", "critical"), (30, "event 30", "warning")]


def test_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings({"HES_PUSH_LISTEN": "0.0.0.0:4060", "HES_MQTT_MIN_CRITICALITY": "Alarm",
                              "HES_DISCONNECT_ON_TAMPER": "yes"})
    assert (settings.push_host, settings.push_port, settings.mqtt_min_criticality, settings.disconnect_on_tamper) \
        == ("0.0.0.0", 4060, "alarm", True)
    defaults = load_settings({})
    assert (defaults.push_host, defaults.push_port, defaults.disconnect_on_tamper) == ("127.0.0.1", 4059, False)
    assert defaults.push_udp and not load_settings({"HES_PUSH_UDP": "off"}).push_udp
    for bad in ({"HES_PUSH_LISTEN": "4059"}, {"HES_MQTT_MIN_CRITICALITY": "loud"},
                {"HES_DISCONNECT_ON_TAMPER": "maybe"}, {"HES_PUSH_UDP": "maybe"}):
        with pytest.raises(ConfigError):
            load_settings(bad)
