"""``hes dlms decode`` through typer's runner and as a real process: JSON out, one line and exit 2 on bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from bench.codec_peers import CIPHERED_APDU, EXPECTED_ROWS
from cli.main import app

runner = CliRunner()
KEY_ARGS = [
    "--key", "000102030405060708090A0B0C0D0E0F",
    "--auth-key", "D0D1D2D3D4D5D6D7D8D9DADBDCDDDEDF",
    "--system-title", "4D4D4D0000BC614E",
]


def test_decodes_a_get_request() -> None:
    result = runner.invoke(app, ["dlms", "decode", "C001C100080000010000FF0200"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["apdu"]["attribute_descriptor"]["instance_id"] == "0.0.1.0.0.255"


def test_reads_stdin_and_deciphers() -> None:
    result = runner.invoke(app, ["dlms", "decode", "-", *KEY_ARGS], input=CIPHERED_APDU.hex() + "\n")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)["apdu"]["deciphered"]["result"]["rows"]
    assert rows[10][1] == EXPECTED_ROWS[10][1]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["dlms", "decode", "XYZ"], "not hexadecimal"),
        (["dlms", "decode", "C4"], "truncated"),
        (["dlms", "decode", "FE00"], "tag"),
        (["dlms", "decode", CIPHERED_APDU.hex(), "--key", "00" * 16, "--auth-key", "00" * 16,
          "--system-title", "4D4D4D0000BC614E"], "authentication tag"),
        (["dlms", "decode", "C001", "--auth-key", "00"], "go with --key"),
        (["dlms", "decode", "0202", "--data"], "DecodeError"),
        (["dlms", "decode", "0600000001", "--data", "--key", "00" * 16], "takes no keys"),
        (["dlms", "decode", "7EA0"], "DecodeError"),
        (["dlms", "decode", "6803036853FF100016"], "checksum"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args: list[str], message: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0]


def test_bare_data_with_the_data_option() -> None:
    result = runner.invoke(app, ["dlms", "decode", "--data", "0202 0906 0100010700FF 06000016DC"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["framing"] == "a-xdr-data"
    assert out["data"]["value"][0] == {"type": "octet-string", "value": "0100010700FF"}
    assert out["data"]["value"][1]["value"] == 5852


def test_as_a_real_process() -> None:
    ok = subprocess.run([sys.executable, "-m", "cli", "dlms", "decode", "C001C100080000010000FF0200"],
                        capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["apdu"]["type"] == "GetRequestNormal"
    bad = subprocess.run([sys.executable, "-m", "cli", "dlms", "decode", "0xC4zz"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2
    assert "Traceback" not in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
