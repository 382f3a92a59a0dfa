"""IDCor's Gram path (d²_A + d²_B[p][:, p] per permutation) against the direct path (TwoNN on [za | zb[p]])."""

from __future__ import annotations

import importlib

import numpy as np
import pytest

from precompute.metrics import _idcor_fast, idcor, idcor_details
from precompute.metrics._idcor_fast import distance_block, joint_ratios, row_ids
from precompute.metrics.idcor import _idcor_direct, _idcor_gram, prepare_idcor
from precompute.metrics.preprocess import zscore_columns
from precompute.metrics.twonn import twonn_ratios

REL = 1e-10
idcor_module = importlib.import_module("precompute.metrics.idcor")  # the package exports a function of this name


def _both(A, B, permutations, seed, discard_fraction=0.1):
    za, zb = zscore_columns(np.asarray(A, float)), zscore_columns(np.asarray(B, float))
    old = _idcor_direct(za, zb, permutations, seed, discard_fraction, "numpy", "cpu")
    new = _idcor_gram(za, zb, permutations, seed, discard_fraction)
    return old, new


def test_undefined_twonn_fails_the_same_way():
    """B on a 2-level lattice with 31 distinct rows: every kept r2/r1 is 1, both paths refuse it."""
    rng = np.random.default_rng(12)
    A, B = rng.integers(0, 3, size=(150, 6)).astype(float), rng.integers(0, 2, size=(150, 5)).astype(float)
    za, zb = zscore_columns(A), zscore_columns(B)
    for fn in (lambda: _idcor_direct(za, zb, 3, 1, 0.1, "numpy", "cpu"), lambda: _idcor_gram(za, zb, 3, 1, 0.1)):
        with pytest.raises(ValueError, match="every kept ratio r2/r1 equals 1"):
            fn()


def _assert_same(old, new):
    ids_old = [old.id_a, old.id_b, old.id_joint, *old.null_ids]
    ids_new = [new.id_a, new.id_b, new.id_joint, *new.null_ids]
    assert len(ids_old) == len(ids_new)
    np.testing.assert_allclose(ids_new, ids_old, rtol=REL, atol=0)
    assert abs(new.value - old.value) <= REL * max(1.0, abs(old.value))
    assert new.p_value == old.p_value
    assert (new.permutations, new.seed) == (old.permutations, old.seed)


def _random(n, rng):
    return rng.normal(size=(n, 12)), rng.normal(size=(n, 7))


def _structured(n, rng):
    A = rng.normal(size=(n, 4)) @ rng.normal(size=(4, 16))
    return A, np.tanh(A @ rng.normal(size=(16, 9)))


def _dup_a(n, rng):
    A, B = _random(n, rng)
    A[n // 2 :] = A[: n - n // 2]  # every row of A repeated; B distinct
    return A, B


def _dup_b(n, rng):
    A, B = _structured(n, rng)
    B[::3] = B[0]
    return A, B


def _dup_both(n, rng):
    A, B = _random(n, rng)
    src = rng.integers(0, n // 4, size=n)  # rows copied in both: joint duplicates, plus A-only and B-only ones
    A, B = A[src].copy(), B[src].copy()
    h = n // 8
    A[:h] = A[h : 2 * h]
    B[2 * h : 3 * h] = B[3 * h : 4 * h]
    return A, B


def _integers(n, rng):
    return rng.integers(0, 4, size=(n, 6)).astype(float), rng.integers(0, 3, size=(n, 5)).astype(float)


CASES = {
    "random": _random,
    "structured": _structured,
    "dup_a": _dup_a,
    "dup_b": _dup_b,
    "dup_both": _dup_both,
    "integer_ties": _integers,
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("seed,permutations", [(0, 0), (1, 3), (7, 10), (123456789, 5)])
def test_gram_path_equals_direct_path(case, seed, permutations):
    A, B = CASES[case](150, np.random.default_rng(seed + 11))
    old, new = _both(A, B, permutations, seed)
    _assert_same(old, new)


@pytest.mark.parametrize("case", ["structured", "dup_both", "integer_ties"])
def test_gram_path_equals_direct_path_with_other_discard_fractions_at_larger_n(case):
    A, B = CASES[case](400, np.random.default_rng(5))
    _assert_same(*_both(A, B, 4, 2, discard_fraction=0.05))
    _assert_same(*_both(A, B, 4, 2, discard_fraction=0.25))


def test_p_value_can_move_and_still_matches():
    """An unrelated pair (p well above the minimum) and a related one (p at the minimum 1/(P + 1))."""
    rng = np.random.default_rng(4)
    old, new = _both(*_random(200, rng), 9, 3)
    _assert_same(old, new)
    assert old.p_value > 0.1
    old, new = _both(*_structured(200, rng), 9, 3)
    _assert_same(old, new)
    assert old.p_value == pytest.approx(0.1)


@pytest.mark.parametrize("case", list(CASES))
def test_joint_ratios_equal_twonn_ratios_on_the_joined_matrix(case):
    rng = np.random.default_rng(8)
    A, B = (zscore_columns(X) for X in CASES[case](120, rng))
    perm = rng.permutation(120)
    mu_old, dup_old = twonn_ratios(np.hstack([A, B[perm]]))
    mu_new, dup_new, _ = joint_ratios([distance_block(A), distance_block(B)], [None, perm])
    assert dup_new == dup_old
    np.testing.assert_allclose(np.sort(mu_new), np.sort(mu_old), rtol=1e-12, atol=0)


def _brute_force_ratios(Z):
    D = np.sqrt(((Z[:, None, :] - Z[None, :, :]) ** 2).sum(-1))
    np.fill_diagonal(D, np.inf)
    D = np.sort(D, axis=1)
    return np.sort(D[:, 1] / D[:, 0])


def _spy_levels(monkeypatch):
    """Record the candidate count c of every _top2 call."""
    used, real = [], _idcor_fast._top2
    monkeypatch.setattr(_idcor_fast, "_top2", lambda *a: used.append(a[-1]) or real(*a))
    return used


@pytest.mark.parametrize("wide,levels", [(64, {2, 64}), (3, {2, 3, 124})])
def test_boundary_rows_are_redone_and_stay_exact(monkeypatch, wide, levels):
    """A jittered grid has r2 tied (to rounding) with further neighbours; with no margin (c = 2 candidates) those rows
    reach the candidate boundary and are retried wider, then (with few wide candidates) exactly over all points."""
    monkeypatch.setattr(_idcor_fast, "_MARGIN", 0)
    monkeypatch.setattr(_idcor_fast, "_WIDE", wide)
    used = _spy_levels(monkeypatch)
    grid = np.stack(np.meshgrid(*[np.arange(5.0)] * 3), -1).reshape(-1, 3)
    scale = np.array([1.0, 1.0 + 1e-13, 1.3])  # x and y steps differ only by rounding-sized amounts
    blocks = [distance_block(grid * scale), distance_block(grid[:, :2] * 0.5)]
    mu, dup, redone = joint_ratios(blocks, [None, None])
    assert redone > 0 and dup == 0
    assert set(used) == levels
    expected = _brute_force_ratios(np.hstack([grid * scale, grid[:, :2] * 0.5]))
    np.testing.assert_allclose(np.sort(mu), expected, rtol=1e-12)


def test_gram_rounding_is_bounded_and_caught(monkeypatch):
    """Rows far from the origin: the Gram form loses most digits, stays within the stated bound, and the certificate
    sends every affected row to the exact path, so the ratios are still right."""
    rng = np.random.default_rng(0)
    Z = 1e5 + 1e-3 * rng.normal(size=(60, 10))
    blk = distance_block(Z)
    exact = ((Z[:, None, :] - Z[None, :, :]) ** 2).sum(-1)
    err = np.abs(blk.d2 - exact)
    assert err.max() > 0.01 * np.median(exact[exact > 0])  # the candidates really are unreliable here
    assert (err <= blk.g * (blk.sq[:, None] + blk.sq[None, :])).all()
    used = _spy_levels(monkeypatch)
    mu_new, _, redone = joint_ratios([blk], [None])
    assert redone > 0 and set(used) == {4, 59}  # first level, then straight to all 59 others (< _WIDE)
    np.testing.assert_allclose(np.sort(mu_new), _brute_force_ratios(Z), rtol=1e-12, atol=0)


def test_ordinary_data_needs_no_exact_rows():
    A, B = (zscore_columns(X) for X in _structured(300, np.random.default_rng(1)))
    assert joint_ratios([distance_block(A), distance_block(B)], [None, np.arange(300)[::-1].copy()])[2] == 0


def test_public_functions_dispatch(monkeypatch):
    """numpy backend and N <= FAST_MAX_N: the Gram path; above the threshold: the direct path; same numbers."""
    calls = []
    real_gram, real_direct = idcor_module._idcor_gram, idcor_module._idcor_direct
    monkeypatch.setattr(idcor_module, "_idcor_gram", lambda *a: calls.append("gram") or real_gram(*a))
    monkeypatch.setattr(idcor_module, "_idcor_direct", lambda *a: calls.append("direct") or real_direct(*a))
    A, B = _structured(80, np.random.default_rng(2))
    fast = idcor_details(A, B, 3, 5)
    monkeypatch.setattr(idcor_module, "FAST_MAX_N", 79)
    slow = idcor_details(A, B, 3, 5)
    assert calls == ["gram", "direct"]
    _assert_same(slow, fast)
    assert idcor(A, B, 3, 5) == (slow.value, slow.p_value)


def test_torch_backend_keeps_the_direct_path_and_agrees():
    pytest.importorskip("torch")
    A, B = _dup_both(100, np.random.default_rng(6))
    _assert_same(idcor_details(A, B, 3, 1, backend="torch"), idcor_details(A, B, 3, 1))


def test_too_few_distinct_joint_rows_is_the_same_error():
    A = np.repeat(np.eye(3), 4, axis=0)
    B = np.repeat(np.arange(3.0)[:, None], 4, axis=0)
    for fn in (lambda: _idcor_gram(zscore_columns(A), zscore_columns(B), 1, 0, 0.1), lambda: idcor(A, B, 1)):
        with pytest.raises(ValueError, match=r"A: only 3 distinct rows \(of 12\)"):
            fn()


def test_row_ids_partition_rows_like_np_unique():
    rng = np.random.default_rng(9)
    X = rng.integers(-1, 2, size=(200, 3)).astype(float) * rng.choice([0.5, 1.0], size=3)
    X[X == 0] = rng.choice([0.0, -0.0], size=int((X == 0).sum()))  # signed zeros compare equal
    assert np.signbit(X[X == 0]).any()
    _, inverse = np.unique(X, axis=0, return_inverse=True)
    ids = row_ids(X)
    same_ids, same_unique = ids[:, None] == ids[None, :], inverse.reshape(-1)[:, None] == inverse.reshape(-1)[None, :]
    assert np.array_equal(same_ids, same_unique)
    assert len(set(ids.tolist())) < 200


def test_prepared_blocks_give_the_same_result_and_are_checked():
    rng = np.random.default_rng(10)
    A, B = _structured(120, rng)
    C = rng.normal(size=(120, 5))
    pa, pb = prepare_idcor(A), prepare_idcor(B)
    plain = idcor_details(A, B, 4, 3)
    for prepared in [(pa, pb), (pa, None), (None, pb)]:
        assert idcor_details(A, B, 4, 3, prepared=prepared) == plain
    with pytest.raises(ValueError, match="prepared block for B was not built from these rows"):
        idcor_details(A, B, 4, 3, prepared=(pa, prepare_idcor(C)))
    with pytest.raises(ValueError, match="prepared block for A"):
        idcor_details(A, B, 4, 3, prepared=(prepare_idcor(A[::-1]), None))


def test_a_prepared_block_computes_its_own_id_once(monkeypatch):
    """A model in several pairs: its TwoNN ID comes from the prepared block's memo after the first pair, and the
    results equal those of unprepared calls."""
    rng = np.random.default_rng(2)
    A, B = _structured(150, rng)
    C = rng.normal(size=(150, 5))
    pa = prepare_idcor(A, "A")
    first = idcor_details(A, B, 3, 1, prepared=(pa, None))
    calls = []
    real = _idcor_fast.joint_ratios
    monkeypatch.setattr(idcor_module, "joint_ratios", lambda blocks, *a: calls.append(len(blocks)) or real(blocks, *a))
    second = idcor_details(A, C, 3, 1, prepared=(pa, None))
    assert calls.count(1) == 1  # only C's own ID; A's from the memo
    assert second.id_a == first.id_a == idcor_details(A, C, 0, 1).id_a
