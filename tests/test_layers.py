"""The layout table of DESIGN.md, enforced: every module's imports against what its package may import.

| package | may import (and, through them, what they may) |
|---|---|
| protocols | the standard library and ``cryptography``; never asyncio, sockets, SQLAlchemy or the clock |
| concentrator | protocols; pure like it |
| simulators | protocols, concentrator |
| hes | protocols, concentrator (never simulators) |
| scheduler, cim | hes |
| api | hes, scheduler, cim |
| cli, tests, bench | everything |
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OURS = ("protocols", "concentrator", "simulators", "hes", "api", "scheduler", "cim", "cli", "tests", "bench")
DIRECT = {
    "protocols": set(),
    "concentrator": {"protocols"},
    "simulators": {"protocols", "concentrator"},
    "hes": {"protocols", "concentrator"},
    "scheduler": {"hes"},
    "cim": {"hes"},
    "api": {"hes", "scheduler", "cim"},
}
#: Third-party packages each pure layer may use; the rest of the world is off limits to them.
PURE_THIRD_PARTY = {"protocols": {"cryptography"}, "concentrator": set()}
#: Standard modules that would make a pure layer do I/O or read the clock.
IMPURE_STDLIB = {"asyncio", "socket", "selectors", "ssl", "select", "threading", "multiprocessing", "subprocess",
                 "time", "sqlite3", "os", "random", "secrets"}


def allowed(package: str) -> set[str]:
    out = {package}
    for other in DIRECT.get(package, ()):
        out |= allowed(other)
    return out


def imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
    return found


def modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("package", sorted(DIRECT))
def test_each_package_imports_only_what_the_layout_allows(package: str) -> None:
    permitted = allowed(package)
    breaches = []
    for path in modules(package):
        for line, name in imports(path):
            root = name.split(".")[0]
            if root in OURS and root not in permitted:
                breaches.append(f"{path.relative_to(ROOT)}:{line} imports {name}")
    assert breaches == [], f"{package} may import {sorted(permitted - {package})} only"


@pytest.mark.parametrize("package", sorted(PURE_THIRD_PARTY))
def test_the_pure_layers_do_no_io_and_read_no_clock(package: str) -> None:
    permitted = allowed(package)
    breaches = []
    for path in modules(package):
        for line, name in imports(path):
            root = name.split(".")[0]
            if root in OURS:
                continue
            stdlib = root in sys.stdlib_module_names or root == "__future__"
            if (stdlib and root in IMPURE_STDLIB) or (not stdlib and root not in PURE_THIRD_PARTY[package]):
                breaches.append(f"{path.relative_to(ROOT)}:{line} imports {name}")
    assert breaches == [], f"{package} must stay pure ({sorted(permitted)})"


def clock_reads(path: Path) -> list[tuple[int, str]]:
    """Calls that read the clock: ``datetime.now()``, ``.utcnow()``, ``.today()``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in (
                "now", "utcnow", "today") and isinstance(node.func.value, ast.Name) and node.func.value.id in (
                "datetime", "date"):
            found.append((node.lineno, f"{node.func.value.id}.{node.func.attr}()"))
    return found


@pytest.mark.parametrize("package", sorted(PURE_THIRD_PARTY))
def test_the_pure_layers_are_given_the_time(package: str) -> None:
    breaches = [f"{path.relative_to(ROOT)}:{line} calls {call}" for path in modules(package)
                for line, call in clock_reads(path)]
    assert breaches == []


def test_the_checks_see_every_package_and_catch_a_breach(tmp_path: Path) -> None:
    # Every package of the table exists (a typo in the table would check nothing) ...
    assert [p for p in DIRECT if p != "api" and not (ROOT / p).is_dir()] == []
    # ... and a breach is seen.
    sample = tmp_path / "x.py"
    sample.write_text("import asyncio\nfrom simulators.fleet import Fleet\nfrom . import y\nnow = datetime.now(UTC)\n")
    assert imports(sample) == [(1, "asyncio"), (2, "simulators.fleet")]
    assert clock_reads(sample) == [(4, "datetime.now()")]
    assert "simulators" not in allowed("hes") and "scheduler" not in allowed("cim")
    assert allowed("api") >= {"protocols", "concentrator", "hes", "scheduler", "cim"}
