"""Bad input gets a ValueError that names the problem (and the row); never a silent NaN."""

from __future__ import annotations

import numpy as np
import pytest

from precompute.metrics import cka, cknna, idcor, information_imbalance, mutual_knn, twonn_details, twonn_id

rng = np.random.default_rng(0)
A = rng.normal(size=(50, 6))
B = rng.normal(size=(50, 4))
PAIR_METRICS = [
    lambda a, b: cknna(a, b, 5),
    lambda a, b: mutual_knn(a, b, 5),
    lambda a, b: cka(a, b),
    lambda a, b: cka(a, b, True),
    lambda a, b: idcor(a, b, permutations=2),
    lambda a, b: information_imbalance(a, b, 3),
]


@pytest.mark.parametrize("metric", PAIR_METRICS)
@pytest.mark.parametrize("bad,msg", [(np.nan, "row 7 column 2 is nan"), (np.inf, "row 7 column 2 is inf")])
def test_nan_and_inf_name_the_row(metric, bad, msg):
    X = A.copy()
    X[7, 2] = bad
    with pytest.raises(ValueError, match=msg):
        metric(X, B)
    with pytest.raises(ValueError, match=msg):
        metric(A, X)


@pytest.mark.parametrize("metric", PAIR_METRICS)
def test_different_n(metric):
    with pytest.raises(ValueError, match="50 rows and B has 49"):
        metric(A, B[:49])


@pytest.mark.parametrize(
    "call",
    [
        lambda: cknna(A[:6], B[:6], 5),
        lambda: mutual_knn(A[:6], B[:6], 5),
        lambda: information_imbalance(A[:4], B[:4], 3),
    ],
)
def test_too_few_samples_for_k(call):
    with pytest.raises(ValueError, match="must exceed k \\+ 1"):
        call()


@pytest.mark.parametrize("k", [0, -1, 2.5, True, "3"])
def test_invalid_k(k):
    with pytest.raises(ValueError, match="k must be"):
        cknna(A, B, k)


@pytest.mark.parametrize("metric", PAIR_METRICS)
def test_constant_representation(metric):
    C = np.ones((50, 3))
    with pytest.raises(ValueError, match="identical|zero norm"):
        metric(C, B)


def test_zero_row_has_no_cosine():
    X = A.copy()
    X[11] = 0.0
    for f in (lambda: cknna(X, B, 5), lambda: mutual_knn(X, B, 5), lambda: cka(X, B)):
        with pytest.raises(ValueError, match="row 11 has zero norm"):
            f()


@pytest.mark.parametrize(
    "call", [lambda X: cknna(X, B, 5), lambda X: mutual_knn(X, B, 5), lambda X: information_imbalance(X, B, 2)]
)
def test_duplicated_rows_are_named(call):
    X = A.copy()
    X[30] = X[4]
    with pytest.raises(ValueError, match="rows 4 and 30 are identical"):
        call(X)


def test_rows_equal_after_normalisation_are_duplicates_for_cosine():
    X = A.copy()
    X[30] = 4.0 * X[4]  # a power of two: exactly the same direction in floating point
    with pytest.raises(ValueError, match="rows 4 and 30 are identical after preprocessing"):
        cknna(X, B, 5)
    assert np.isfinite(cknna(X, B, 5, duplicates="keep"))


def test_twonn_removes_and_counts_duplicates():
    X = np.vstack([A, A[:5]])
    res = twonn_details(X)
    assert res.n_duplicates == 5 and res.n == 50
    assert res.dimension == twonn_id(A)


@pytest.mark.parametrize("metric", PAIR_METRICS)
@pytest.mark.parametrize("bad", [np.zeros((50, 0)), np.zeros((0, 3)), np.ones(50), np.ones((50, 3, 2))])
def test_bad_shapes(metric, bad):
    with pytest.raises(ValueError, match="zero columns|no rows|2-D"):
        metric(bad, B)


@pytest.mark.parametrize("metric", PAIR_METRICS)
def test_non_numeric(metric):
    for bad in (np.array([["a", "b"]] * 50), np.array([[object()] * 3] * 50, dtype=object), A > 0):
        with pytest.raises(ValueError, match="non-numeric"):
            metric(bad, B)


def test_twonn_too_few_distinct_points():
    with pytest.raises(ValueError, match="only 3 distinct rows"):
        twonn_id(np.repeat(A[:3], 5, axis=0))


def test_integer_input_is_accepted_as_numbers():
    Xi = rng.integers(0, 1000, size=(50, 6))
    assert np.isfinite(cknna(Xi, B, 5))


def test_sparse_features_are_not_clipped_to_zero():
    # a binary fingerprint: >95% zeros, so the 0.95-quantile threshold is 0 and clipping would erase every row
    fp = (rng.random(size=(50, 200)) < 0.03).astype(float)
    fp[:, 0] = 1.0
    from precompute.metrics.preprocess import clip_at_quantile, clip_threshold

    assert clip_threshold(fp, 0.95) == 0.0
    assert np.array_equal(clip_at_quantile(fp, 0.95), fp)  # left as is, not zeroed
    expected = cknna(fp, clip_at_quantile(B, 0.95), 5, duplicates="keep")
    assert cknna(fp, B, 5, clip_quantile=0.95, duplicates="keep") == expected


def test_euclidean_cache_exact_far_from_the_origin():
    """Data at 1e5 with 1e-3 noise: the Gram form alone would pick wrong neighbours; centring keeps the cache exact."""
    from precompute.metrics import build_neighbour_cache

    rng = np.random.default_rng(3)
    X = 1e5 + 1e-3 * rng.standard_normal((300, 6))
    cache = build_neighbour_cache(X, 5, "euclidean")
    d = np.sqrt(((X[:, None, :] - X[None, :, :]) ** 2).sum(-1))
    np.fill_diagonal(d, np.inf)
    want = np.argsort(d, axis=1, kind="stable")[:, :5]
    np.testing.assert_array_equal(cache.indices, want)
    np.testing.assert_allclose(cache.scores, np.take_along_axis(d, want, 1), rtol=1e-9)


def test_twonn_without_discarding_is_finite():
    from precompute.metrics import twonn_id

    X = np.random.default_rng(0).standard_normal((400, 3))
    assert np.isfinite(twonn_id(X, discard_fraction=0.0))
