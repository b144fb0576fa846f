"""Derived event ids: deterministic, distinct, and independent of line order."""

from __future__ import annotations

import itertools

from cwl_pipeline.core.identity import DERIVED_ID_PREFIX, DerivedEventIds, derived_event_id

BASE = ("/app", "web-1", 1_795_168_800_000, '{"session_id":1}')


def test_same_fields_same_id():
    assert derived_event_id(*BASE) == derived_event_id(*BASE)
    assert derived_event_id(*BASE).startswith(DERIVED_ID_PREFIX)
    assert len(derived_event_id(*BASE)) == len(DERIVED_ID_PREFIX) + 40


def test_every_field_changes_the_id():
    variants = [
        derived_event_id(*BASE),
        derived_event_id("/app2", *BASE[1:]),
        derived_event_id(BASE[0], "web-2", *BASE[2:]),
        derived_event_id(*BASE[:2], BASE[2] + 1, BASE[3]),
        derived_event_id(*BASE[:3], '{"session_id":2}'),
        derived_event_id(*BASE, 1),
    ]
    assert len(set(variants)) == len(variants)


def test_field_boundaries_are_unambiguous():
    # Moving characters between adjacent fields must not produce the same hash input.
    assert derived_event_id("ab", "c", 1, "m") != derived_event_id("a", "bc", 1, "m")
    assert derived_event_id("a", "b", 12, "3") != derived_event_id("a", "b", 1, "23")


def test_bytes_messages_and_surrogates_hash():
    assert derived_event_id("g", "s", 1, b"\xff\xfe").startswith(DERIVED_ID_PREFIX)
    assert derived_event_id("g", "s", 1, "\ud800") != derived_event_id("g", "s", 1, "\ud801")


def test_assigner_numbers_duplicates():
    ids = DerivedEventIds()
    first, second, other = ids(*BASE), ids(*BASE), ids("/app", "web-1", 1, "x")
    assert first == derived_event_id(*BASE, 0)
    assert second == derived_event_id(*BASE, 1)
    assert len({first, second, other}) == 3


def test_assignment_is_independent_of_order():
    events = [("g", "s", 1, "a"), ("g", "s", 1, "a"), ("g", "s", 2, "b"), ("g", "s", 1, "c")]
    expected = None
    for order in itertools.permutations(events):
        ids = DerivedEventIds()
        assigned = sorted(ids(*e) for e in order)
        expected = expected or assigned
        assert assigned == expected
