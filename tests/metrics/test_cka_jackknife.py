"""Delete-a-group jackknife for CKA (precompute/metrics/cka_jackknife.py): each θ_(-g) equals a direct recompute."""

from __future__ import annotations

import numpy as np
import pytest

from precompute.metrics.cka import cka_features
from precompute.metrics.cka_jackknife import (
    CkaGroupParts,
    cka_jackknife_values,
    jackknife_groups,
    jackknife_interval,
)
from precompute.metrics.preprocess import KernelPreprocessing, kernel_features

PREP = KernelPreprocessing(None, True)


def _pair(n=240, seed=0):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 3))
    A = kernel_features(np.tanh(z @ rng.normal(size=(3, 12))) + 0.5 * rng.normal(size=(n, 12)) + 2.0, PREP)
    B = kernel_features(z @ rng.normal(size=(3, 20)) + rng.normal(size=(n, 20)), PREP)
    return A, B


@pytest.mark.parametrize("dtype,rel", [(np.float64, 1e-10), (np.float32, 2e-5)])
def test_leave_group_out_values_equal_a_direct_recompute(dtype, rel):
    A, B = _pair()
    labels = jackknife_groups(A.shape[0], 7, seed=3)
    vals = cka_jackknife_values(CkaGroupParts(A, labels, dtype), CkaGroupParts(B, labels, dtype))
    for g in range(7):
        keep = labels != g
        assert vals["cka"][g] == pytest.approx(cka_features(A[keep], B[keep]), rel=rel)
        assert vals["cka_unbiased"][g] == pytest.approx(cka_features(A[keep], B[keep], True), rel=rel)


def test_groups_are_a_seeded_balanced_partition():
    labels = jackknife_groups(103, 10, seed=1)
    assert sorted(np.bincount(labels)) == [10] * 7 + [11] * 3
    assert np.array_equal(labels, jackknife_groups(103, 10, seed=1))
    assert not np.array_equal(labels, jackknife_groups(103, 10, seed=2))
    with pytest.raises(ValueError, match="groups"):
        jackknife_groups(10, 1, seed=0)


def test_interval_is_the_jackknife_standard_error():
    v = np.array([0.5, 0.52, 0.49, 0.51])
    lo, hi = jackknife_interval(0.505, v, 0.95)
    sd = np.sqrt(3 / 4 * np.sum((v - v.mean()) ** 2))
    assert (hi - lo) / 2 == pytest.approx(1.959964 * sd, rel=1e-5)
    assert (lo + hi) / 2 == pytest.approx(0.505)


def test_mismatched_groups_are_refused():
    A, B = _pair(60)
    a = CkaGroupParts(A, jackknife_groups(60, 5, 0))
    b = CkaGroupParts(B, jackknife_groups(60, 5, 1))
    with pytest.raises(ValueError, match="same groups"):
        cka_jackknife_values(a, b)
