"""Real meters' captures through ``hes dlms decode``: the values their sources give, exit 0; cut or
corrupted copies exit 2 with one line on stderr."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest
from typer.testing import CliRunner

from cli.main import app
from tests.vectors.captures import CAPTURES, FAILING_CAPTURES, Capture

runner = CliRunner()


def _args(capture: Capture, raw_hex: str | None = None) -> list[str]:
    args = ["dlms", "decode", raw_hex if raw_hex is not None else capture.hex]
    if capture.key is not None:
        args += ["--key", capture.key]
        if capture.auth_key is not None:
            args += ["--auth-key", capture.auth_key]
    return args


def _leaves(described: Any) -> list[Any]:
    """The leaf values of a described Data, octet-strings as bytes (as the vectors write them)."""
    if isinstance(described.get("value"), list):
        return [leaf for item in described["value"] for leaf in _leaves(item)]
    value = described["value"]
    if described["type"] == "octet-string":
        return [bytes.fromhex(value)]
    return [value]


def _in_order(expected: tuple[Any, ...], found: list[Any]) -> bool:
    position = 0
    for value in expected:
        try:
            position = found.index(value, position) + 1
        except ValueError:
            return False
    return True


def _check(capture: Capture, out: dict[str, Any]) -> None:
    expected = capture.expected
    assert out["framing"] == expected.framing
    apdus = out["apdus"] if expected.apdus > 1 else [out["apdu"]]
    assert len(apdus) == expected.apdus
    first = apdus[0]
    if expected.system_title is not None:
        assert first["system_title"] == expected.system_title
        assert first["security_header"]["invocation_counter"] == expected.invocation_counter
    if capture.key is not None:
        first = first["deciphered"]
    elif expected.system_title is not None:
        assert all(apdu["deciphered"] is None for apdu in apdus)  # no key published: header only
    assert first["type"] == expected.apdu_type
    if expected.apdu_type == "DataNotification":
        found = first["date_time"]["text"] if first["date_time"] else None
        assert found == expected.date_time
        leaves = _leaves(first["body"])
        assert _in_order(expected.values, leaves), (expected.values, leaves)
    for note in expected.notes:
        assert any(note in text for text in out["notes"]), (note, out["notes"])


@pytest.mark.parametrize("capture", CAPTURES, ids=lambda capture: capture.name)
def test_capture_decodes_to_its_sources_values(capture: Capture) -> None:
    result = runner.invoke(app, _args(capture))
    assert result.exit_code == 0, result.output
    _check(capture, json.loads(result.stdout))


def _one_line_exit_2(args: list[str]) -> str:
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.stdout[:300]
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


@pytest.mark.parametrize("capture", CAPTURES, ids=lambda capture: capture.name)
@pytest.mark.parametrize("cut", ["half", "last byte"])
def test_a_cut_capture_is_one_line_and_exit_2(capture: Capture, cut: str) -> None:
    raw = bytes.fromhex(capture.hex)
    # One past the half: a capture of two whole messages cut at its half would still be whole.
    raw = raw[: len(raw) // 2 + 1] if cut == "half" else raw[:-1]
    line = _one_line_exit_2(_args(capture, raw.hex()))
    assert line.startswith("hes dlms decode: ") and "DecodeError: " in line


@pytest.mark.parametrize(
    "capture", [c for c in CAPTURES if c.expected.framing in ("hdlc", "m-bus")], ids=lambda capture: capture.name
)
def test_a_corrupted_frame_is_one_line_and_exit_2(capture: Capture) -> None:
    raw = bytearray.fromhex(capture.hex)
    raw[len(raw) // 2] ^= 0x5A  # inside a frame: its CRC or checksum no longer holds
    line = _one_line_exit_2(_args(capture, raw.hex()))
    assert "DecodeError" in line and "offset" in line


@pytest.mark.parametrize(("capture", "reason"), FAILING_CAPTURES, ids=lambda item: getattr(item, "name", ""))
def test_real_captures_that_do_not_decode_say_why(capture: Capture, reason: str) -> None:
    assert reason in _one_line_exit_2(_args(capture))


def test_a_capture_as_a_real_process() -> None:
    tinetz = next(c for c in CAPTURES if c.name == "kaifa-ma309-tinetz-mbus")
    assert tinetz.key is not None
    ok = subprocess.run([sys.executable, "-m", "cli", "dlms", "decode", "-", "--key", tinetz.key],
                        input=tinetz.hex, capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    _check(tinetz, json.loads(ok.stdout))
    bad = subprocess.run([sys.executable, "-m", "cli", "dlms", "decode", tinetz.hex[:-4], "--key", tinetz.key],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2
    assert "Traceback" not in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
    assert "M-Bus" in bad.stderr
