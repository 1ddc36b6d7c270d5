"""Client CPU for one meter session: associate (HLS-GMAC) + clock + register + 96-row profile + release.

The meter is a ``SimulatedMeter`` in the same process, reached through an in-memory ``ApduLink``
(no sockets), so what is measured is the head-end's own work: ``hes.session`` and the protocol
stack on the client side. The meter's CPU is measured around each of its ``handle`` calls and
subtracted; the figure printed is the median over the runs (DESIGN.md target: <= 1.5 ms).

    python -m bench.session [--runs N] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections import deque
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from hes.model import CounterReservation, DirectRoute, MeterSecurity, MeterTarget
from hes.session import open_session
from hes.transport import ApduLink
from protocols.axdr import Data
from protocols.cosem import ProfileColumn, parse_profile_buffer
from protocols.cosem_datetime import CosemDateTime
from protocols.errors import ReadTimeout
from protocols.xdlms.selective_access import CaptureObjectDefinition, RangeDescriptor
from simulators.clock import FieldClock
from simulators.counters import MemoryCounterStore
from simulators.endpoint import Session
from simulators.meter import A_MINUS, A_PLUS, CLOCK, LOAD_PROFILE, PROFILE_STATUS, MeterConfig, SimulatedMeter

__all__ = ["InProcessLink", "main", "measure"]

EK = bytes.fromhex("000102030405060708090A0B0C0D0E0F")
AK = bytes.fromhex("D0D1D2D3D4D5D6D7D8D9DADBDCDDDEDF")
TITLE = bytes.fromhex("4D4D4D0000BC614E")
NOW = datetime(2024, 3, 10, 12, 7, tzinfo=UTC)
DAY = datetime(2024, 3, 8, 23, 0, tzinfo=UTC)
COLUMNS = [ProfileColumn.of(c) for c in (CaptureObjectDefinition(8, CLOCK, 2),
                                         CaptureObjectDefinition(1, PROFILE_STATUS, 2),
                                         CaptureObjectDefinition(3, A_PLUS, 2),
                                         CaptureObjectDefinition(3, A_MINUS, 2))]
SELECTION = RangeDescriptor(
    CaptureObjectDefinition(8, CLOCK, 2),
    Data.octet_string(CosemDateTime.from_datetime(DAY + timedelta(minutes=15), deviation=0).encode()),
    Data.octet_string(CosemDateTime.from_datetime(DAY + timedelta(days=1), deviation=0).encode()),
)


class InProcessLink:
    """An ``ApduLink`` to a simulator ``Session`` in memory; ``server_cpu`` is the meter's CPU time."""

    def __init__(self, session: Session) -> None:
        self._session = session
        self._answers: deque[bytes] = deque()
        self.server_cpu = 0.0

    @property
    def peer(self) -> str:
        return "in-process meter"

    async def send(self, apdus: Sequence[bytes]) -> None:
        start = time.process_time()
        for apdu in apdus:
            self._answers.extend(await self._session.handle(apdu))
        self.server_cpu += time.process_time() - start

    async def receive(self, timeout: float | None) -> bytes:
        if not self._answers:
            raise ReadTimeout("the in-process meter gave no answer")
        return self._answers.popleft()

    async def aclose(self) -> None:
        self._session.close()


async def measure(runs: int) -> list[float]:
    """Client CPU seconds per session, one figure per run."""
    meter = SimulatedMeter(MeterConfig(serial="BENCH0001", seed=1, physical_address=0x11, policy="hls-gmac",
                                       system_title=TITLE, ek=EK, ak=AK),
                           FieldClock(NOW, scale=0.0), MemoryCounterStore())
    target = MeterTarget("BENCH0001", DirectRoute("127.0.0.1", 0),
                         MeterSecurity("hls-gmac", system_title=TITLE, ek=EK, ak=AK))
    figures: list[float] = []
    last: int | None = None
    for run in range(runs):
        opened = meter.open_session(1)
        assert opened is not None
        link = InProcessLink(opened)

        async def connect(_target: MeterTarget, link: InProcessLink = link) -> ApduLink:
            return link

        start = time.process_time()
        async with open_session(target, CounterReservation(run * 10 + 1, run * 10 + 11, last),
                                connect=connect) as s:
            await s.get(8, CLOCK, 2)
            await s.get(3, A_PLUS, 2)
            rows = parse_profile_buffer(await s.get_raw(7, LOAD_PROFILE, 2, SELECTION), COLUMNS, 900)
        figures.append(time.process_time() - start - link.server_cpu)
        last = s.last_received
        if len(rows) != 96:
            raise SystemExit(f"expected 96 profile rows, got {len(rows)}")
    return figures


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    figures = asyncio.run(measure(args.runs))
    median = statistics.median(figures[len(figures) // 10:])  # the first runs warm caches up
    result = {"client_cpu_ms_median": round(median * 1000, 3), "runs": args.runs, "target_ms": 1.5}
    if args.json:
        print(json.dumps(result))
    else:
        print(f"client CPU per session (HLS-GMAC, clock, register, 96-row profile, release): "
              f"median {median * 1000:.3f} ms over {args.runs} runs (target <= 1.5 ms)")


if __name__ == "__main__":
    main()
