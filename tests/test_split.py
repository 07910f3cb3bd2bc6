"""Group-aware splits: no content hash ever crosses train and validation."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from fakelens.data.split import balanced_subset, group_split, leaked_mask
from fakelens.errors import InvalidArgumentError


def test_split_sizes_and_stratification():
    sha = np.array([f"h{i}" for i in range(1000)])
    is_ai = np.array([0] * 500 + [1] * 500)
    train, val = group_split(sha, is_ai, 0.1, seed=1)
    assert len(val) == 100 and len(train) == 900
    assert is_ai[val].sum() == 50
    assert np.intersect1d(train, val).size == 0


def test_split_is_deterministic_and_seed_dependent():
    sha = np.array([f"h{i}" for i in range(200)])
    is_ai = np.arange(200) % 2
    first = group_split(sha, is_ai, 0.2, seed=3)[1]
    assert np.array_equal(first, group_split(sha, is_ai, 0.2, seed=3)[1])
    assert not np.array_equal(first, group_split(sha, is_ai, 0.2, seed=4)[1])


def test_split_does_not_depend_on_listing_order():
    sha = np.array([f"h{i % 150}" for i in range(300)])
    is_ai = np.array([int(i % 150 >= 75) for i in range(300)])
    order = np.random.default_rng(0).permutation(300)
    val_a = set(sha[group_split(sha, is_ai, 0.1, 7)[1]])
    val_b = set(sha[order][group_split(sha[order], is_ai[order], 0.1, 7)[1]])
    assert val_a == val_b


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 40), st.integers(0, 1)), min_size=2, max_size=300),
    st.floats(0.05, 0.5),
    st.integers(0, 2**16),
)
def test_no_hash_crosses_the_split(rows, fraction, seed):
    sha = np.array([f"h{h}" for h, _ in rows])
    is_ai = np.array([label for _, label in rows])
    try:
        train, val = group_split(sha, is_ai, fraction, seed)
    except InvalidArgumentError as exc:  # too few distinct files to fill both sides
        assert "non-empty train and validation" in str(exc)
        assume(False)
    assert sorted(np.concatenate([train, val]).tolist()) == list(range(len(rows)))
    assert not set(sha[train]) & set(sha[val])


def test_bad_fraction_is_rejected_with_the_value():
    with pytest.raises(ValueError, match="received 1.5"):
        group_split(np.array(["a"]), np.array([0]), 1.5, 0)


def test_leaked_mask_and_balanced_subset():
    assert leaked_mask(np.array(["a", "b", "c"]), np.array(["c", "a"])).tolist() == [True, False, True]
    is_ai = np.array([0] * 30 + [1] * 70)
    chosen = balanced_subset(is_ai, 20, seed=0)
    assert len(chosen) == 20 and is_ai[chosen].sum() == 10


def test_a_split_that_would_leave_one_side_empty_is_refused():
    with pytest.raises(InvalidArgumentError, match="4 images in 1 distinct files"):
        group_split(np.array(["same"] * 4), np.array([0, 0, 0, 0]), 0.1, 0)
