"""The compiled candidate search (_idcor_kernel.py) against the NumPy path it replaces: same s_next, same candidate
values, and bit-identical TwoNN ratios, including duplicate rows, exact ties and permuted joins."""

from __future__ import annotations

import numpy as np
import pytest

from precompute.metrics import _idcor_fast, _idcor_kernel
from precompute.metrics._idcor_fast import distance_block, joint_ratios
from precompute.metrics.preprocess import zscore_columns

pytestmark = pytest.mark.skipif(not _idcor_kernel.available(), reason="numba is a core dependency; not installed")


def _lattice(n, rng):
    """Integer coordinates: many exactly tied distances in both blocks and in the join."""
    return rng.integers(0, 4, size=(n, 5)).astype(float), rng.integers(0, 3, size=(n, 3)).astype(float)


def _smooth(n, rng):
    A = rng.normal(size=(n, 4)) @ rng.normal(size=(4, 14))
    return A, np.tanh(A @ rng.normal(size=(14, 6)))


def _numpy_candidates(d2a, d2b, sa, sb, rows, c):
    fast = d2a[sa[rows]][:, sa] + d2b[sb[rows]][:, sb]
    fast[np.arange(rows.size), rows] = np.inf
    part = np.argpartition(fast, c, axis=1)
    return fast, part[:, :c], fast[np.arange(rows.size), part[:, c]]


@pytest.mark.parametrize("make", [_lattice, _smooth])
@pytest.mark.parametrize("c", [1, 4, 64])
def test_candidates_equal_the_numpy_selection(make, c):
    rng = np.random.default_rng(3)
    A, B = make(300, rng)
    a, b = distance_block(A), distance_block(B)
    sa, sb = np.arange(300), rng.permutation(300)
    rows = np.sort(rng.choice(300, 120, replace=False))
    cand, s_next = _idcor_kernel.top_candidates((a.d2, b.d2), np.stack([sa, sb]), rows, c)
    fast, cand_np, s_next_np = _numpy_candidates(a.d2, b.d2, sa, sb, rows, c)
    np.testing.assert_array_equal(s_next, s_next_np)  # the certificate's value: identical, ties or not
    got = np.sort(np.take_along_axis(fast, cand, 1), axis=1)
    want = np.sort(np.take_along_axis(fast, cand_np, 1), axis=1)
    np.testing.assert_array_equal(got, want)  # the same candidate values (tied indices may differ)
    assert not np.any(cand == rows[:, None])  # never the point itself
    assert all(np.unique(row).size == c for row in cand)


@pytest.mark.parametrize("make", [_lattice, _smooth])
def test_joint_ratios_are_bit_identical_with_and_without_the_kernel(monkeypatch, make):
    rng = np.random.default_rng(5)
    A, B = (zscore_columns(X) for X in make(400, rng))
    A[200:260] = A[:60]  # duplicated rows of A (distinct in the join unless B repeats too)
    B[200:230] = B[:30]  # 30 joint duplicates
    blocks = [distance_block(A), distance_block(B)]
    real = _idcor_fast._top2
    for index in ([None, None], [None, rng.permutation(400)]):
        with_kernel = joint_ratios(blocks, index)
        monkeypatch.setattr(_idcor_fast, "_top2", lambda *a: real(*a, use_kernel=False))
        without = joint_ratios(blocks, index)
        monkeypatch.setattr(_idcor_fast, "_top2", real)
        np.testing.assert_array_equal(with_kernel[0], without[0])
        assert with_kernel[1:] == without[1:]


def test_bad_calls_are_refused():
    d2 = distance_block(np.random.default_rng(0).normal(size=(10, 3))).d2
    sel = np.stack([np.arange(10)] * 2)
    with pytest.raises(ValueError, match="1 <= c <= m - 2"):
        _idcor_kernel.top_candidates((d2, d2), sel, np.arange(10), 9)
    with pytest.raises(ValueError, match="exactly 2 blocks"):
        _idcor_kernel.top_candidates((d2,), sel[:1], np.arange(10), 3)
