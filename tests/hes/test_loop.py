"""``hes.loop``: collection runs and the daemon use uvloop when it is installed; ``HES_EVENT_LOOP=asyncio`` opts out."""

from __future__ import annotations

import asyncio

import pytest

from hes.loop import loop_factory, loop_name, run


async def _loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__


def test_run_uses_uvloop_when_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("uvloop", reason="uvloop is not installed (Windows): hes.loop falls back to asyncio")
    monkeypatch.delenv("HES_EVENT_LOOP", raising=False)
    assert loop_name() == "uvloop" and loop_factory() is not None
    assert run(_loop_module()).startswith("uvloop")


def test_the_standard_loop_on_request(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HES_EVENT_LOOP", "asyncio")
    assert loop_name() == "asyncio" and loop_factory() is None
    assert run(_loop_module()).startswith("asyncio")


def test_run_returns_the_result_and_raises_the_error() -> None:
    async def fail() -> None:
        raise KeyError("x")

    assert run(asyncio.sleep(0, result=42)) == 42
    with pytest.raises(KeyError):
        run(fail())
