"""reef.multimap's holder index (a name, or a set once shared) answers as a dict of sets."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from reef.multimap import Holders, add_holder, discard_holder, held_by_others

NAMES = st.sampled_from(["a", "b", "c"])
OPERATIONS = st.lists(st.tuples(st.booleans(), st.integers(0, 3), NAMES), max_size=60)


@given(OPERATIONS)
def test_the_holder_index_answers_like_a_dict_of_sets(
    operations: list[tuple[bool, int, str]],
) -> None:
    index: dict[int, Holders] = {}
    reference: dict[int, set[str]] = {}
    for adding, key, name in operations:
        if adding:
            add_holder(index, key, name)
            reference.setdefault(key, set()).add(name)
        else:
            discard_holder(index, key, name)
            reference.get(key, set()).discard(name)
            if not reference.get(key, True):
                del reference[key]
        assert index.keys() == reference.keys()
        for k, held in index.items():
            assert ({held} if isinstance(held, str) else held) == reference[k]
            # one holder is kept as its name, not as a one-element set
            assert isinstance(held, str) == (len(reference[k]) == 1)
        for k in range(4):
            for other in ("a", "b", "c"):
                expected = bool(reference.get(k, set()) - {other})
                assert held_by_others(index.get(k), other) == expected
