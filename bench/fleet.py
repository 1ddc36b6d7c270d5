"""Fleet benchmark: start-up time and resident memory of 20 DCs x 500 meters + 100 p2p meters in one process.

``python -m bench.fleet --json`` prints one JSON object. Start-up counts building every meter,
link and concentrator and binding every TCP server on 127.0.0.1 (free ports); the first read
cycle of every DC is then timed separately. Targets (issue 3 item 9): under 30 s and under 2 GiB.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import time
from pathlib import Path

from simulators.fleet import Fleet, FleetOptions

__all__ = ["main", "measure", "resident_mib"]


def resident_mib() -> float:
    """Current resident set size (VmRSS) in MiB; the peak from getrusage where /proc is missing."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def measure(concentrators: int, meters_per_dc: int, p2p: int, seed: int) -> dict[str, object]:
    before = resident_mib()
    started = time.perf_counter()
    fleet = Fleet(FleetOptions(concentrators=concentrators, meters_per_dc=meters_per_dc, p2p=p2p, seed=seed,
                               schedule=False))
    built = time.perf_counter()
    await fleet.start()
    listening = time.perf_counter()
    manifest = fleet.manifest()
    servers = len(manifest.concentrators) + len(manifest.p2p)
    cycle_started = time.perf_counter()
    reached = 0
    for dc in fleet.concentrators.values():
        reached += await dc.read_cycle()
    cycle = time.perf_counter() - cycle_started
    rss = resident_mib()
    await fleet.stop()
    return {
        "concentrators": concentrators,
        "meters_per_dc": meters_per_dc,
        "p2p": p2p,
        "meters": concentrators * meters_per_dc + p2p,
        "tcp_servers": servers,
        "build_s": round(built - started, 3),
        "startup_s": round(listening - started, 3),
        "first_read_cycle_s": round(cycle, 3),
        "meters_reached": reached,
        "rss_mib": round(rss, 1),
        "rss_before_mib": round(before, 1),
        "target_startup_s": 30,
        "target_rss_mib": 2048,
        "ok": listening - started < 30 and rss < 2048,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fleet", description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--concentrators", type=int, default=20)
    parser.add_argument("--meters-per-dc", type=int, default=500)
    parser.add_argument("--p2p", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    result = asyncio.run(measure(args.concentrators, args.meters_per_dc, args.p2p, args.seed))
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{result['meters']} meters, {result['tcp_servers']} TCP servers: start-up {result['startup_s']} s "
              f"(target < 30 s), resident {result['rss_mib']} MiB (target < 2048 MiB), "
              f"first read cycle {result['first_read_cycle_s']} s")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
