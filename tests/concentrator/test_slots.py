"""The slot table: capacities per key, first come first served, withdrawals, and no trace of idle keys."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from concentrator.slots import SlotError, SlotTable


def test_grants_up_to_the_capacity_then_queues_in_order() -> None:
    table: SlotTable[str] = SlotTable(lambda key: 2)
    assert table.take("DC1", "a") and table.take("DC1", "b")
    assert not table.take("DC1", "c") and not table.take("DC1", "d")
    assert (table.held("DC1"), table.waiting("DC1"), table.peak["DC1"]) == (2, 2, 2)
    assert table.give_back("DC1") == "c"  # first come, first served
    assert table.give_back("DC1") == "d"
    assert table.give_back("DC1") is None and table.give_back("DC1") is None
    assert table.busy() == [] and table.held("DC1") == 0


def test_keys_are_independent_and_capacity_is_per_key() -> None:
    table: SlotTable[int] = SlotTable(lambda key: {"big": 3}.get(key, 1))
    assert table.take("big", 1) and table.take("big", 2) and table.take("big", 3)
    assert table.take("small", 4) and not table.take("small", 5)
    assert not table.take("big", 6)
    assert sorted(table.busy()) == ["big", "small"]


def test_a_newcomer_does_not_overtake_a_waiter() -> None:
    table: SlotTable[str] = SlotTable(lambda key: 1)
    assert table.take("k", "first")
    assert not table.take("k", "second")
    assert table.give_back("k") == "second"  # the slot passes to the waiter, not to whoever asks next
    assert not table.take("k", "third")


def test_a_withdrawn_waiter_is_skipped() -> None:
    table: SlotTable[str] = SlotTable(lambda key: 1)
    table.take("k", "a")
    table.take("k", "b")
    table.take("k", "c")
    assert table.withdraw("k", "b") and not table.withdraw("k", "b") and not table.withdraw("k", "a")
    assert table.give_back("k") == "c"
    assert not table.withdraw("other", "x")


def test_giving_back_what_was_not_held_is_a_bug() -> None:
    table: SlotTable[str] = SlotTable(lambda key: 1)
    with pytest.raises(SlotError):
        table.give_back("k")
    with pytest.raises(SlotError, match="capacity 0"):
        SlotTable(lambda key: 0).take("k", "a")


def test_peaks_are_kept_only_when_asked() -> None:
    table: SlotTable[str] = SlotTable(lambda key: 1, track_peak=False)
    table.take("k", "a")
    assert table.peak == {}


@given(st.lists(st.tuples(st.sampled_from(["take", "give", "withdraw"]), st.integers(0, 2), st.integers(0, 9)),
                max_size=200))
def test_never_more_holders_than_the_capacity_and_every_waiter_served_once(ops: list[tuple[str, int, int]]) -> None:
    capacity = {"k0": 1, "k1": 2, "k2": 3}
    table: SlotTable[int] = SlotTable(lambda key: capacity[key])
    holders: dict[str, int] = {key: 0 for key in capacity}
    queued: dict[str, list[int]] = {key: [] for key in capacity}
    next_waiter = 0
    for op, k, pick in ops:
        key = f"k{k}"
        if op == "take":
            next_waiter += 1
            if table.take(key, next_waiter):
                holders[key] += 1
            else:
                queued[key].append(next_waiter)
        elif op == "give" and holders[key]:
            granted = table.give_back(key)
            holders[key] -= 1
            if queued[key]:
                assert granted == queued[key].pop(0)
                holders[key] += 1
            else:
                assert granted is None
        elif op == "withdraw" and queued[key]:
            waiter = queued[key].pop(pick % len(queued[key]))
            assert table.withdraw(key, waiter)
        assert table.held(key) == holders[key] <= capacity[key]
        assert table.waiting(key) == len(queued[key])
        # A waiter only waits while every slot is taken.
        assert not queued[key] or holders[key] == capacity[key]
