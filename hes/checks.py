"""The use case's preconditions of any order, checked before anything is contacted: one set, for every path.

The meter exists, is commissioned, is linked to a concentrator (with a complete link) or has a
direct address; and its concentrator is not known to be down (a DC whose last attempt failed is
not contacted again until its recheck is due, ``concentrator.reachability``, unless forced: a plan's
retry, ``--recheck-dc``). The first check that does not hold is a ``Refused`` with the reason;
nothing is contacted then. On-demand reads, commands, N2PLoad and the DC's own orders check here.
"""

from __future__ import annotations

from datetime import UTC, datetime

from concentrator.reachability import DEFAULT_RECHECK_AFTER
from hes.db.devices import MeterFacts
from hes.errors import HesError

__all__ = ["Refused", "check_concentrator", "check_meter"]


class Refused(HesError):
    """A precondition does not hold: the order FAILs with ``reason``, nothing contacted."""

    def __init__(self, reason: str, retryable: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def check_meter(facts: MeterFacts | None, serial: str, *, verb: str = "read") -> MeterFacts:
    """The meter's own preconditions (``verb``: what is not done, for the reason: read, collected, sent ...)."""
    if facts is None:
        raise Refused(f"meter {serial} is not registered")
    if facts.state == "decommissioned":
        raise Refused(f"meter {serial} is decommissioned (since {facts.decommissioning_date}): it is not {verb}")
    if facts.state != "commissioned":
        raise Refused(f"meter {serial} is {facts.state}, not commissioned: it is not {verb} yet")
    if facts.concentrator_id is None:
        if facts.host is None and facts.serial_device is None:
            raise Refused(f"meter {serial} is linked to no concentrator and has no direct address")
        return facts
    if facts.concentrator is None or facts.dc_physical_address is None or facts.logical_device is None:
        raise Refused(f"meter {serial}: its link to concentrator {facts.concentrator_id} is incomplete")
    return facts


def check_concentrator(facts: MeterFacts, now: datetime, *, force: bool = False,
                       recheck_after: float = DEFAULT_RECHECK_AFTER) -> None:
    """The meter's DC is not known to be down (``force``: contact it anyway)."""
    dc = facts.concentrator
    if dc is None:
        return
    reach = dc.reachability
    if reach.may_contact(now.timestamp(), recheck_after, force=force):
        return
    last = "never" if reach.last_contact is None else _iso(datetime.fromtimestamp(reach.last_contact, UTC))
    again = reach.recheck_at(recheck_after)
    when = "" if again is None else f" (tried again from {_iso(datetime.fromtimestamp(again, UTC))})"
    raise Refused(f"concentrator {dc.id} is unreachable (its last contact attempt failed; last answered: {last}); "
                  f"not contacted{when}", retryable=True)
