from collections import Counter

import pytest

from combogan.data.sampler import PairSampler

NAMES = ["spring", "summer", "autumn", "winter"]


def test_pairs_are_distinct_and_uniform():
    s = PairSampler(NAMES, seed=3)
    counts = Counter(s.pairs(0, 12_000))
    assert all(a != b for a, b in counts)
    assert len(counts) == 12  # every ordered pair occurs
    for c in counts.values():  # expected 1000 each; 5 sigma is about 150
        assert 850 < c < 1150


def test_seeded_and_a_pure_function_of_step():
    a, b, c = PairSampler(NAMES, seed=1), PairSampler(NAMES, seed=1), PairSampler(NAMES, seed=2)
    assert a.pairs(0, 100) == b.pairs(0, 100)
    assert a.pairs(0, 100) != c.pairs(0, 100)
    assert a.pair(5000) == b.pairs(4990, 5010)[10]  # random access equals sequential


def test_usage_before_counts_each_side():
    s = PairSampler(NAMES, seed=0)
    for step in (0, 1, 777, 4096, 9000):
        expected = Counter(n for pair in s.pairs(0, step) for n in pair)
        assert s.usage_before(step) == {n: expected.get(n, 0) for n in NAMES}


def test_anchor_mode_pairs_new_with_existing_both_ways():
    s = PairSampler(["fog"], seed=0, anchors=["summer", "winter"])
    pairs = s.pairs(0, 2000)
    assert all(("fog" in p) and (set(p) - {"fog"}) <= {"summer", "winter"} for p in pairs)
    firsts = sum(p[0] == "fog" for p in pairs)
    assert 850 < firsts < 1150
    counts = s.usage_before(2000)
    assert counts["fog"] == 2000 and counts["summer"] + counts["winter"] == 2000


def test_needs_two_domains():
    with pytest.raises(ValueError):
        PairSampler(["only"], seed=0)
