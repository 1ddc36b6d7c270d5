"""Test-wide fixtures: the real PostgreSQL and MQTT services, and the CI rule that they must run."""

from __future__ import annotations

import os
import socket
from collections.abc import Generator

import pytest
from hypothesis import HealthCheck, settings

IN_CI = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")

POSTGRES_URL = os.environ.get("HES_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
MQTT_HOST = os.environ.get("HES_TEST_MQTT_HOST", "127.0.0.1")
MQTT_PORT = int(os.environ.get("HES_TEST_MQTT_PORT", "1883"))

# "ci" keeps the property tests' budget small enough for every push; `fuzz` is for long runs
# (python -m tests.fuzz raises the budget further).
settings.register_profile("ci", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", deadline=None)
settings.register_profile("fuzz", max_examples=20000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if IN_CI else "dev"))


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The PostgreSQL test database; skips (a failure in CI) when the server is not running."""
    if not _reachable("127.0.0.1", 5432):
        pytest.skip("PostgreSQL is not running on 127.0.0.1:5432")
    return POSTGRES_URL


@pytest.fixture(scope="session")
def mqtt_broker() -> tuple[str, int]:
    """The MQTT broker; skips (a failure in CI) when it is not running."""
    if not _reachable(MQTT_HOST, MQTT_PORT):
        pytest.skip(f"no MQTT broker on {MQTT_HOST}:{MQTT_PORT}")
    return MQTT_HOST, MQTT_PORT


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, None, None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if not (IN_CI and report.skipped):
        return
    if item.get_closest_marker("postgres") or item.get_closest_marker("mqtt"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, where PostgreSQL and MQTT tests must run: {reason}"
