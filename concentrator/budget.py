"""A data concentrator's session budget: how many sessions the head-end runs through it at once.

A DC multiplexes the head-end's associations over its WAN link and its PLC/RF network; it serves
a handful at a time (G3-PLC and PRIME gateways are commonly configured for 4 to 16). There is ONE
budget per DC in the head-end: the plan engine's items in flight, N2PLoad's concentrated reads and
on-demand reads through the DC all take their slot from it (``hes.slots.ConcentratorSlots``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["DEFAULT_SESSIONS", "MAX_SESSIONS", "BudgetError", "SessionBudget"]

#: Sessions per DC unless configured (``HES_SCHEDULER_PER_DC``, ``--per-dc``, the DC's own setting).
DEFAULT_SESSIONS = 4
#: No DC serves more: a larger number is a typo, not a configuration.
MAX_SESSIONS = 1000


class BudgetError(ValueError):
    """A session budget outside 1..MAX_SESSIONS."""


def _check(value: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_SESSIONS:
        raise BudgetError(f"{what}: {value!r} sessions at once, expected 1 to {MAX_SESSIONS}")
    return value


@dataclass(frozen=True, slots=True)
class SessionBudget:
    """``default`` sessions per DC, except the DCs named in ``per_concentrator`` (their own setting)."""

    default: int = DEFAULT_SESSIONS
    per_concentrator: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check(self.default, "the default session budget")
        for ident, value in self.per_concentrator.items():
            _check(value, f"concentrator {ident}")

    def of(self, concentrator_id: str) -> int:
        """The sessions ``concentrator_id`` may serve at once."""
        return self.per_concentrator.get(concentrator_id, self.default)

    def with_default(self, default: int) -> SessionBudget:
        """The same DC settings over another default (a command line's ``--per-dc``)."""
        return SessionBudget(default, self.per_concentrator)
