"""``hes.heap.collection_heap``: the collector's settings while a fleet is collected, and that nothing leaks."""

from __future__ import annotations

import gc
import threading
import weakref

from hes.heap import YOUNG_THRESHOLD, collection_heap


class _Node:
    def __init__(self) -> None:
        self.other: _Node | None = None


def _cycle() -> weakref.ref[_Node]:
    a, b = _Node(), _Node()
    a.other, b.other = b, a
    return weakref.ref(a)


def test_inside_the_heap_is_frozen_and_young_collections_are_rarer() -> None:
    before = gc.get_threshold()
    assert gc.get_freeze_count() == 0
    with collection_heap():
        assert gc.get_freeze_count() > 1000  # at least the modules' objects
        assert gc.get_threshold() == (max(YOUNG_THRESHOLD, before[0]), before[1], before[2])
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_garbage_alive_on_entry_is_still_collected_after_exit() -> None:
    """A cycle frozen on entry is not lost: it goes back to the collector when the block ends."""
    gc.collect()
    ref = _cycle()
    assert ref() is not None  # not collected yet: only a collection frees a cycle
    with collection_heap():
        gc.collect()
        assert ref() is not None  # frozen: the collector does not look at it
    gc.collect()
    assert ref() is None


def test_cycles_made_inside_are_collected_inside() -> None:
    with collection_heap():
        ref = _cycle()
        gc.collect()
        assert ref() is None


def test_nested_and_concurrent_uses_share_one_freeze() -> None:
    before = gc.get_threshold()
    entered, leave = threading.Event(), threading.Event()

    def other() -> None:
        with collection_heap():
            entered.set()
            leave.wait(10)

    thread = threading.Thread(target=other)
    with collection_heap():
        thread.start()
        assert entered.wait(10)
        with collection_heap():
            assert gc.get_threshold()[0] >= YOUNG_THRESHOLD
        assert gc.get_threshold()[0] >= YOUNG_THRESHOLD and gc.get_freeze_count() > 0
    # The other thread is still inside: the settings stay until it leaves.
    assert gc.get_threshold()[0] >= YOUNG_THRESHOLD and gc.get_freeze_count() > 0
    leave.set()
    thread.join(10)
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0


def test_an_error_inside_restores_the_settings() -> None:
    before = gc.get_threshold()
    try:
        with collection_heap():
            raise KeyError("x")
    except KeyError:
        pass
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0
