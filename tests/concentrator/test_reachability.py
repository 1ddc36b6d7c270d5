"""A DC's reachability: every (state, event) pair of the one table, contact outcomes, recheck and fail-fast."""

from __future__ import annotations

import itertools

import pytest

from concentrator.reachability import (
    NEVER,
    TRANSITIONS,
    Contact,
    FailureKind,
    Reachability,
    ReachabilityState,
    RecheckDue,
    contact_outcome,
    reached,
)

S = ReachabilityState
EVENTS: list[Contact | RecheckDue] = [*Contact, *RecheckDue]

EXPECTED = {
    # (state, event): state after; every pair of the machine, written out.
    (S.UNKNOWN, Contact.ANSWERED): S.REACHABLE,
    (S.UNKNOWN, Contact.METER_SILENT): S.REACHABLE,
    (S.UNKNOWN, Contact.NO_CONNECTION): S.DOWN,
    (S.UNKNOWN, RecheckDue.RECHECK_DUE): S.UNKNOWN,
    (S.REACHABLE, Contact.ANSWERED): S.REACHABLE,
    (S.REACHABLE, Contact.METER_SILENT): S.REACHABLE,
    (S.REACHABLE, Contact.NO_CONNECTION): S.DOWN,
    (S.REACHABLE, RecheckDue.RECHECK_DUE): S.REACHABLE,
    (S.DOWN, Contact.ANSWERED): S.REACHABLE,
    (S.DOWN, Contact.METER_SILENT): S.REACHABLE,
    (S.DOWN, Contact.NO_CONNECTION): S.DOWN,
    (S.DOWN, RecheckDue.RECHECK_DUE): S.RECHECK,
    (S.RECHECK, Contact.ANSWERED): S.REACHABLE,
    (S.RECHECK, Contact.METER_SILENT): S.REACHABLE,
    (S.RECHECK, Contact.NO_CONNECTION): S.DOWN,
    (S.RECHECK, RecheckDue.RECHECK_DUE): S.RECHECK,
}


@pytest.mark.parametrize(("state", "event"), list(itertools.product(S, EVENTS)))
def test_every_state_and_event(state: ReachabilityState, event: Contact | RecheckDue) -> None:
    assert TRANSITIONS.get((state, event), state) is EXPECTED[(state, event)]
    before = Reachability(state, last_attempt=10.0, last_contact=5.0, down_since=10.0 if state in (S.DOWN, S.RECHECK)
                          else None)
    after = before.record(event, 20.0) if isinstance(event, Contact) else before.at(10.0 + 300.0, 300.0)
    assert after.state is EXPECTED[(state, event)]


def test_times_follow_the_outcome() -> None:
    r = Reachability().record(Contact.ANSWERED, 100.0)
    assert (r.state, r.last_attempt, r.last_contact, r.down_since) == (S.REACHABLE, 100.0, 100.0, None)
    r = r.record(Contact.NO_CONNECTION, 200.0)
    assert (r.state, r.last_attempt, r.last_contact, r.down_since) == (S.DOWN, 200.0, 100.0, 200.0)
    r = r.record(Contact.NO_CONNECTION, 300.0)
    assert (r.last_attempt, r.down_since) == (300.0, 200.0)  # down since the first failure of the outage
    r = r.record(Contact.METER_SILENT, 400.0)  # the DC answered; its meter did not
    assert (r.state, r.last_contact, r.down_since) == (S.REACHABLE, 400.0, None)


def test_a_dc_found_down_is_not_contacted_before_its_recheck_unless_forced() -> None:
    down = Reachability().record(Contact.NO_CONNECTION, 1000.0)
    assert not down.may_contact(1000.0 + 299, 300)
    assert down.may_contact(1000.0 + 299, 300, force=True)
    assert down.may_contact(1000.0 + 300, 300)
    assert down.recheck_at(300) == 1300.0
    assert down.at(1300.0, 300).state is S.RECHECK
    assert Reachability().may_contact(0.0) and Reachability().record(Contact.ANSWERED, 1).may_contact(2.0)
    assert down.at(1e12, NEVER).state is S.DOWN


def test_work_queued_before_the_failure_fails_fast_later_work_tries_again() -> None:
    down = Reachability().record(Contact.NO_CONNECTION, 50.0)
    assert down.fails_fast(10.0) and down.fails_fast(50.0)
    assert not down.fails_fast(51.0)
    assert not Reachability().record(Contact.ANSWERED, 50.0).fails_fast(10.0)
    assert not down.at(50.0 + 300, 300).fails_fast(10.0)  # due a recheck: the next one tries


def test_stored_state() -> None:
    assert Reachability.stored(None, None, None).state is S.UNKNOWN
    assert Reachability.stored(True, 5.0, 5.0).state is S.REACHABLE
    stored = Reachability.stored(False, 7.0, 1.0)
    assert (stored.state, stored.down_since) == (S.DOWN, 7.0)
    # A failure stored before attempts were timed is rechecked rather than blocked for ever.
    assert Reachability.stored(False, None, None).state is S.RECHECK
    assert Reachability.stored(False, 9.0, 1.0, down_since=3.0).down_since == 3.0
    assert [s.reachable for s in S] == [None, True, False, False]


@pytest.mark.parametrize(("failure", "associated", "tunnelled", "expected"), [
    (None, False, False, Contact.ANSWERED),
    (None, True, True, Contact.ANSWERED),
    (FailureKind.CONNECT, False, False, Contact.NO_CONNECTION),
    (FailureKind.CONNECT, False, True, Contact.NO_CONNECTION),
    (FailureKind.LOST, False, True, Contact.NO_CONNECTION),
    (FailureKind.TIMEOUT, False, False, Contact.NO_CONNECTION),  # the DC answers concentrated reads itself
    (FailureKind.TIMEOUT, False, True, Contact.METER_SILENT),  # the meter did not answer through the gateway
    (FailureKind.TIMEOUT, True, True, Contact.ANSWERED),  # the DC carried an association already
    (FailureKind.LOST, True, False, Contact.ANSWERED),
    (FailureKind.ANSWER, False, False, Contact.ANSWERED),  # a refusal is an answer
    (FailureKind.ANSWER, False, True, Contact.ANSWERED),
])
def test_contact_outcome(failure: FailureKind | None, associated: bool, tunnelled: bool, expected: Contact) -> None:
    assert contact_outcome(failure, associated=associated, tunnelled=tunnelled) is expected


@pytest.mark.parametrize("contact", list(Contact))
def test_a_contact_leads_to_the_same_state_whatever_the_state_before(contact: Contact) -> None:
    after = {TRANSITIONS[(state, contact)] for state in S}
    assert len(after) == 1
    assert reached(contact) is (after.pop() is S.REACHABLE)
