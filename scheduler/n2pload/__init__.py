"""N2PLoad: collect each meter's load profile and daily values after its watermark, idempotently, every pass.

The scheduled activity of the use case: for every reachable concentrator, each meter's intervals
not yet collected. Split by job:

| module | what |
|---|---|
| ``plan`` | what to ask a meter for: after its watermark, its gaps, the profile's kept shape |
| ``collect`` | the executors: the order runner's steps for a meter's items, one session; shared transactions |
| ``assemble`` | what a read means (pure): rows, gaps, where the watermark goes, the observations |

Storage is ``hes.db.collection``'s (watermarks, gaps, a meter's reachability as collection sees it).
"""

from hes.profiles import QUALITY_AFTER_GAP
from scheduler.n2pload.assemble import GAP_GIVE_UP_ATTEMPTS
from scheduler.n2pload.collect import (
    N2PLoadExecutor,
    PassMeter,
    collect_daily,
    collect_meter,
    collect_profile,
    pass_meters,
)
from scheduler.n2pload.plan import DEFAULT_LOOKBACK, MAX_SPAN

__all__ = [
    "DEFAULT_LOOKBACK",
    "GAP_GIVE_UP_ATTEMPTS",
    "MAX_SPAN",
    "QUALITY_AFTER_GAP",
    "N2PLoadExecutor",
    "PassMeter",
    "collect_daily",
    "collect_meter",
    "collect_profile",
    "pass_meters",
]
