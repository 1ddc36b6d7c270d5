"""`hes sim fleet`'s options for DC clocks, table churn and make B: bad values refused in one line."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--dc-clock-drift", "-3"], "DC clock drift"),
        (["--dc-clock-drift", "nan"], "DC clock drift"),
        (["--dc-clock-offset", "1e12"], "DC clock offset"),
        (["--table-churn", "-1"], "table churn"),
        (["--make-b-share", "1.5"], "make B share"),
        (["--make-b", "SIM000900000"], "--make-b SIM000900000: no such meter"),
    ],
)
def test_bad_options_exit_2_with_one_line(args: list[str], message: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["sim", "fleet", "--manifest", str(tmp_path / "m.json"), *args])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hes sim: ") and message in lines[0]
    assert not (tmp_path / "m.json").exists()
