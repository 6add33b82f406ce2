"""The gallery's compact subject table: dense slots, hash index through growth and removals."""

from __future__ import annotations

import numpy as np
import pytest

from bioauth.matching.gallery.ids import SubjectSlots


def test_slots_stay_dense_and_findable_through_growth_removal_and_reuse() -> None:
    """Thousands of adds, removals in random order and re-adds keep every id at its slot."""
    rng = np.random.default_rng(1)
    slots = SubjectSlots(max_rows=3)
    live: dict[str, list[int]] = {}
    for i in range(3000):
        name = f"id-{i}-" + "x" * (i % 40)  # ids of growing width widen the id column
        slot = slots.add(name)
        slots.set_rows(slot, [i, i + 1][: 1 + i % 2], images=1 + i % 2)
        live[name] = [i, i + 1][: 1 + i % 2]
    for name in rng.permutation(list(live))[:2000]:
        freed, moved_from = slots.remove(str(name)) or (-1, -1)
        assert 0 <= freed <= moved_from == len(slots)
        del live[str(name)]
    for i in range(500):
        slots.add(f"again-{i}")
        live[f"again-{i}"] = []

    assert len(slots) == len(live)
    seen = set()
    for name, rows in live.items():
        found = slots.find(name)
        assert found is not None
        assert slots.id_at(found) == name
        assert slots.rows_of(found).tolist() == rows
        seen.add(found)
    assert seen == set(range(len(live)))
    assert slots.find("id-never") is None
    assert slots.remove("id-never") is None


def test_replace_row_follows_a_moved_row() -> None:
    """The row store's swap-with-last is mirrored in the owner's row list."""
    slots = SubjectSlots(max_rows=3)
    slot = slots.add("a")
    slots.set_rows(slot, [4, 9, 2], images=3)
    slots.replace_row(slot, 9, 1)
    assert slots.rows_of(slot).tolist() == [4, 1, 2]
    with pytest.raises(RuntimeError):
        slots.replace_row(slot, 9, 0)


def test_duplicate_and_oversized_entries_are_refused() -> None:
    slots = SubjectSlots(max_rows=1)
    slot = slots.add("a")
    with pytest.raises(KeyError):
        slots.add("a")
    with pytest.raises(ValueError, match="at most 1"):
        slots.set_rows(slot, [1, 2], images=2)
