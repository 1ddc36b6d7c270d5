"""Run the whole test suite on other dates: the machine's clock (libfaketime) and the pinned field epoch moved together.

``python -m tests.any_date [--dates ISO,ISO,...] [--tz ZONE] [--logs DIR] [pytest args]``

For each date, one after another, the suite runs under ``faketime`` with the clock starting at that
instant (and running on), ``HES_TEST_EPOCH`` set to the same instant (``tests.fieldtime``: every
pinned field epoch moves with it) and ``TZ`` set to a European zone, so local-time code meets its
daylight-saving days. One line per date says how it went; the exit status is 0 when every date
passed, 1 when one did not, 2 when the runner cannot run as asked (a bad date, no ``faketime``).

The clock is moved by an offset (``faketime -f +N``), not a start-at date (``@...``): a start-at
date is read in the local zone (ambiguous in the hour that repeats when summer time ends) and every
child process would start again from it, whereas an offset is exact and the suite's subprocesses
(``hes run``, the CLI) share the parent's clock. The monotonic clock stays real and
``tests/faketime_site`` gives every Python process a ``time.sleep`` that libfaketime 0.9.10 does not
break (its docstring says why).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from tests.fieldtime import EPOCH_ENV, FieldTimeError, format_epoch, parse_epoch

__all__ = ["DEFAULT_DATES", "DEFAULT_TZ", "main", "parse_dates"]

#: Why each: the suite takes about five minutes, so each start is a few minutes before the boundary
#: it is meant to cross while the tests run (a quarter-hour boundary always, and a day, a year or a
#: daylight-saving change in Europe/Madrid).
DEFAULT_DATES: tuple[str, ...] = (
    "2026-12-31T23:57:00Z",  # the year ends (UTC) during the run; local time is already 2027 (UTC+1)
    "2027-03-28T00:57:00Z",  # 01:00Z: summer time starts in the EU (02:00 CET -> 03:00 CEST)
    "2027-10-31T00:57:00Z",  # 01:00Z: summer time ends in the EU (03:00 CEST -> 02:00 CET, 02:xx twice)
    "2028-02-29T22:57:00Z",  # the leap day ends in local time (23:00Z = 00:00 CET on 1 March)
    "2027-06-16T10:07:30Z",  # an ordinary Wednesday, mid-interval, summer time
)
DEFAULT_TZ = "Europe/Madrid"
ROOT = Path(__file__).resolve().parents[1]
SITE = Path(__file__).resolve().parent / "faketime_site"
_SUMMARY = re.compile(r"^=* ?(?P<counts>(?:\d+ \w+(?:, )?)+) in (?P<seconds>[\d.]+)s")


class RunnerError(Exception):
    """The runner cannot run as asked (one line says why)."""


def parse_dates(text: str) -> list[datetime]:
    """Comma-separated ISO 8601 instants with a zone (``2027-03-28T00:57:00Z``), as aware UTC datetimes."""
    dates = []
    for part in text.split(","):
        try:
            dates.append(parse_epoch(part.strip()))
        except FieldTimeError as exc:
            raise RunnerError(f"--dates: {exc}") from None
    if not dates:
        raise RunnerError("--dates: no date given")
    return dates


def _faketime() -> str:
    path = shutil.which("faketime")
    if path is None:
        raise RunnerError("faketime (libfaketime) is not installed: apt-get install faketime, then run again")
    return path


def _clock_env(target: datetime, tz: str) -> tuple[list[str], dict[str, str]]:
    """The command prefix and environment that start this process tree's clock at ``target``."""
    offset = round(target.timestamp() - time.time())
    path = os.pathsep.join(p for p in (str(SITE), os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, EPOCH_ENV: format_epoch(target), "TZ": tz, "FAKETIME_DONT_FAKE_MONOTONIC": "1",
           "PYTHONPATH": path}
    return [_faketime(), "-f", f"{offset:+d}"], env


_PROBE = ("import threading, time; time.sleep(0.01); threading.Event().wait(0.01); "
          "import subprocess; subprocess.run(['true'], timeout=10); print(time.time())")


def _check_clock(target: datetime, tz: str) -> None:
    """Refuse to go on when faketime does not move a Python process's clock, or breaks its waits."""
    prefix, env = _clock_env(target, tz)
    try:
        probe = subprocess.run([*prefix, sys.executable, "-c", _PROBE], capture_output=True, text=True, env=env,
                               timeout=30, check=False)
    except subprocess.TimeoutExpired:
        raise RunnerError("under faketime a Python process hangs in a timed wait: see tests/faketime_site") from None
    try:
        seen = float(probe.stdout.strip())
    except ValueError:
        seen = float("nan")
    if not abs(seen - target.timestamp()) < 60:
        reason = probe.stderr.strip().splitlines()[-1] if probe.stderr.strip() else f"it reads {probe.stdout.strip()!r}"
        raise RunnerError(f"faketime does not move the clock of {sys.executable} ({reason})")


def run_date(target: datetime, tz: str, pytest_args: Sequence[str], log: Path) -> tuple[bool, str]:
    """The suite once with the clock and the pinned epoch at ``target``: (passed, pytest's summary)."""
    _check_clock(target, tz)
    prefix, env = _clock_env(target, tz)
    command = [*prefix, sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *pytest_args]
    started = time.monotonic()
    with log.open("w") as out:
        done = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT, check=False)
    elapsed = time.monotonic() - started
    summary = f"no summary (exit {done.returncode})"
    for line in reversed(log.read_text(errors="replace").splitlines()):
        match = _SUMMARY.match(line.strip())
        if match:
            summary = f"{match['counts']} in {float(match['seconds']):.0f} s"
            break
    return done.returncode == 0, f"{summary} (wall {elapsed:.0f} s)"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.any_date", description=__doc__.splitlines()[0],
                                     epilog="Any other argument goes to pytest (e.g. -x tests/cli).")
    parser.add_argument("--dates", default=",".join(DEFAULT_DATES),
                        help="comma-separated ISO 8601 instants with a zone (default: %(default)s)")
    parser.add_argument("--tz", default=DEFAULT_TZ, help="the local zone of the runs (default: %(default)s)")
    parser.add_argument("--logs", type=Path, help="where each date's pytest output goes (default: a temporary folder)")
    args, pytest_args = parser.parse_known_args(argv)
    try:
        dates = parse_dates(args.dates)
        if not Path("/usr/share/zoneinfo", args.tz).is_file():
            raise RunnerError(f"--tz {args.tz!r}: no such zone in /usr/share/zoneinfo")
        _faketime()
    except RunnerError as exc:
        print(f"any_date: {exc}", file=sys.stderr)
        return 2
    logs = args.logs or Path(tempfile.mkdtemp(prefix="hes-any-date-"))
    logs.mkdir(parents=True, exist_ok=True)
    failed = 0
    for target in dates:
        stamp = format_epoch(target)
        log = logs / f"{stamp.replace(':', '')}.log"
        try:
            passed, summary = run_date(target, args.tz, pytest_args, log)
        except RunnerError as exc:
            print(f"any_date: {exc}", file=sys.stderr)
            return 2
        failed += not passed
        print(f"{stamp} TZ={args.tz}: {'passed' if passed else 'FAILED'}: {summary}; log {log}", flush=True)
    print(f"any_date: {len(dates) - failed} of {len(dates)} dates passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
