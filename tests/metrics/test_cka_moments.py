"""The CKA permutation null from exact moments (precompute/metrics/cka_moments.py).

Mean and variance: exact, checked against the full enumeration of the 7! = 5,040 permutations. Quantiles: a
moment-matched Pearson III, checked against 4,000 seeded permutations on five structured generators.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from precompute.metrics.calibrated import calibrated_from_critical
from precompute.metrics.cka import cka_features
from precompute.metrics.cka_moments import CkaMomentParts, cka_null_moments, permutation_moments
from precompute.metrics.nulls import cka_null_values
from precompute.metrics.preprocess import KernelPreprocessing, kernel_features

PREP = KernelPreprocessing(None, True)


def _enumerated(A, B):
    perms = [np.array(p) for p in itertools.permutations(range(A.shape[0]))]
    biased = np.array([cka_features(A, B[p]) for p in perms])
    unbiased = np.array([cka_features(A, B[p], True) for p in perms])
    return biased, unbiased


@pytest.mark.parametrize("case", ["gauss", "skewed", "low_rank", "shifted"])
def test_mean_and_variance_are_exact_over_all_permutations(case):
    rng = np.random.default_rng(7)
    A = rng.normal(size=(7, 3))
    B = rng.normal(size=(7, 2)) ** 2
    if case == "skewed":
        A, B = np.exp(2 * A), rng.standard_cauchy(size=(7, 4))
    elif case == "low_rank":
        A, B = rng.normal(size=(7, 1)) @ rng.normal(size=(1, 5)), rng.normal(size=(7, 2)) @ rng.normal(size=(2, 6))
    elif case == "shifted":  # non-centred features: the moments are of the centred kernels, as CKA's are
        A, B = A + 50.0, B - 3.0
    biased, unbiased = _enumerated(A, B)
    null = cka_null_moments(A, B)
    assert null["cka"].mean == pytest.approx(biased.mean(), rel=1e-10)
    assert null["cka"].var == pytest.approx(biased.var(), rel=1e-10)
    assert abs(unbiased.mean()) < 1e-12
    assert null["cka_unbiased"].var == pytest.approx(unbiased.var(), rel=1e-10)
    assert null["cka_unbiased"].var == pytest.approx(2 / (7 * 4), rel=1e-12)


def test_raw_moments_of_the_permuted_trace_against_enumeration():
    rng = np.random.default_rng(3)
    n = 7
    Ac = rng.normal(size=(n, 4))
    Bc = rng.normal(size=(n, 3))
    Ac, Bc = Ac - Ac.mean(0), Bc - Bc.mean(0)
    K, L = Ac @ Ac.T, Bc @ Bc.T
    t = np.array([np.sum(K * L[np.ix_(p, p)]) for p in map(np.array, itertools.permutations(range(n)))])

    def terms(M):
        d = np.diag(M)
        return d.sum(), d @ d, np.sum(M * M) - d @ d

    mean, second = permutation_moments(n, terms(K), terms(L))
    assert mean == pytest.approx(t.mean(), rel=1e-10)
    assert second == pytest.approx(np.mean(t**2), rel=1e-10)


def test_unbiased_terms_match_the_u_centred_gram():
    rng = np.random.default_rng(5)
    n = 150
    X = kernel_features(np.tanh(rng.normal(size=(n, 3)) @ rng.normal(size=(3, 12))) + 0.3, PREP)
    K = X @ X.T
    np.fill_diagonal(K, 0.0)
    r = K.sum(1)
    U = K - r[:, None] / (n - 2) - r[None, :] / (n - 2) + K.sum() / ((n - 1) * (n - 2))
    np.fill_diagonal(U, 0.0)
    parts = CkaMomentParts.of(X)
    assert parts.o1_u == pytest.approx(np.sum(U * U), rel=1e-9)
    tr3 = np.trace(U @ U @ U)
    assert parts.tr3_u == pytest.approx(tr3, rel=0.05)  # the O(1/n) approximation of the skewness term


def _generators(rng, n):
    z = rng.normal(size=(n, 3))
    yield "gauss", rng.normal(size=(n, 16)), rng.normal(size=(n, 24))
    yield (
        "latent",
        np.tanh(z @ rng.normal(size=(3, 16))) + 0.4 * rng.normal(size=(n, 16)),
        z @ rng.normal(size=(3, 40)) + rng.normal(size=(n, 40)),
    )
    u, v = rng.normal(size=(n, 1)), rng.normal(size=(n, 2))  # one and two directions
    low_a = u @ rng.normal(size=(1, 12)) + 1e-3 * rng.normal(size=(n, 12))
    yield "low_rank", low_a, v @ rng.normal(size=(2, 20)) + 1e-3 * rng.normal(size=(n, 20))
    yield "lognormal", np.exp(rng.normal(size=(n, 16))), np.exp(1.5 * rng.normal(size=(n, 32)))
    c = rng.integers(0, 4, n)
    heavy = rng.normal(size=(n, 30)) * np.where(rng.random((n, 1)) < 0.1, 5, 1)
    yield "clusters", 3 * rng.normal(size=(4, 10))[c] + rng.normal(size=(n, 10)), heavy


@pytest.mark.parametrize("n", [300, 500])
def test_fitted_quantiles_match_4000_permutations(n):
    """Tolerance, in units of the null sd: 0.15 at q95, 0.35 at q99. A 4,000-permutation quantile is itself
    uncertain: its standard error is sqrt(p(1-p)/P)/f(q), ~0.03 sd (q95) and ~0.06 sd (q99) for a symmetric null
    and ~0.2 sd at q99 for the one- and two-direction generator (skewness ~2, a scaled chi-square with 1 dof); the
    rest is the shape approximation (measured: at most 0.10 sd at q95 and 0.29 sd at q99 on these generators)."""
    rng = np.random.default_rng(1)
    for name, A, B in _generators(rng, n):
        A, B = kernel_features(A, PREP), kernel_features(B, PREP)
        perm = cka_null_values(A, B, 4000, 7, dtype=np.float64)
        fit = cka_null_moments(A, B)
        for metric in ("cka", "cka_unbiased"):
            x, f = perm[metric], fit[metric]
            sd = x.std()
            assert abs(x.mean() - f.mean) < 0.1 * sd, (name, metric)  # 4,000 draws: SE of the mean 0.016 sd
            assert f.var == pytest.approx(x.var(), rel=0.1), (name, metric)  # SE of the variance ~2-5 %
            q95, q99 = np.quantile(x, [0.95, 0.99])
            assert abs(f.quantile(0.95) - q95) < 0.15 * sd, (name, metric, f.quantile(0.95), q95)
            assert abs(f.quantile(0.99) - q99) < 0.35 * sd, (name, metric, f.quantile(0.99), q99)
            p_obs = f.p_value(q95)  # the fitted tail at the permutation q95 is near 5 %
            assert 0.03 < p_obs < 0.07, (name, metric, p_obs)


def test_p_value_has_no_permutation_floor_and_calibration_uses_tau():
    rng = np.random.default_rng(2)
    z = rng.normal(size=(400, 2))
    A = kernel_features(z @ rng.normal(size=(2, 10)) + 0.1 * rng.normal(size=(400, 10)), PREP)
    B = kernel_features(z @ rng.normal(size=(2, 14)) + 0.1 * rng.normal(size=(400, 14)), PREP)
    fit = cka_null_moments(A, B)["cka"]
    s = cka_features(A, B)
    p = fit.p_value(s)
    assert 0 < p < 1e-6  # far beyond 1 / (P + 1) of any permutation count used here
    tau = fit.quantile(0.95)
    cal = calibrated_from_critical(s, tau, p, "cka")
    assert cal.value == pytest.approx((s - tau) / (1 - tau))
    assert cal.n_permutations == 0
    assert calibrated_from_critical(tau - 1e-3, tau, 0.2, "cka").value == 0.0
    assert calibrated_from_critical(1.2, 0.1, 1e-9, "cka_unbiased").value == pytest.approx(1.1)  # effect size
    with pytest.raises(ValueError, match="p-value"):
        calibrated_from_critical(0.5, 0.1, 1.5, "cka")
