"""The calibrated score (Gröger et al. 2026, Algorithm 1) on hand-made nulls: every branch of the definition."""

from __future__ import annotations

import numpy as np
import pytest

from precompute.metrics.calibrated import calibrated_score


def test_tau_is_the_order_statistic_of_the_combined_sample():
    null = np.arange(1, 20) / 100.0  # 0.01 .. 0.19, K = 19: ceil(0.95 * 20) = 19 -> the 19th of 20 combined values
    res = calibrated_score(0.6, null)
    assert res.tau == pytest.approx(0.19)
    assert res.p_value == pytest.approx(1 / 20)
    assert res.value == pytest.approx((0.6 - 0.19) / (1 - 0.19))
    # the observed value is part of the combined sample: when it is the largest but tiny, tau is still a null value
    assert calibrated_score(0.195, null).value == pytest.approx((0.195 - 0.19) / 0.81)


def test_zero_when_not_above_the_critical_value_and_one_at_the_maximum():
    null = np.linspace(0.1, 0.3, 99)
    assert calibrated_score(0.2, null).value == 0.0
    assert calibrated_score(1.0, null).value == pytest.approx(1.0)
    assert calibrated_score(0.5, null, smax=None).value == pytest.approx(0.5 - np.sort(np.append(null, 0.5))[94])
    with pytest.raises(ValueError, match="beyond the best"):
        calibrated_score(1.5, null)
    with pytest.raises(ValueError, match="alpha"):
        calibrated_score(0.5, null, alpha=1.0)


def test_lower_is_aligned_mirrors_one_minus_the_score():
    rng = np.random.default_rng(0)
    null = 1.0 + 0.01 * rng.normal(size=50)
    for obs in (0.2, 0.99, 1.02):
        lo = calibrated_score(obs, null, higher_is_aligned=False)
        hi = calibrated_score(1.0 - obs, 1.0 - null)
        assert lo.value == pytest.approx(hi.value, abs=1e-12)
        assert lo.tau == pytest.approx(1.0 - hi.tau, abs=1e-12)
        assert lo.p_value == hi.p_value
    assert calibrated_score(0.2, null, higher_is_aligned=False).value > 0.7


def test_metric_rule_unbiased_estimators_above_one_get_the_effect_size_not_an_error():
    import precompute.metrics as M
    from precompute.metrics.calibrated import calibrated_metric_score

    # CKNNA's unbiased HSIC ratio is not bounded by 1 when k is close to N (seen: 1.47 at k = 100 on 135 chains)
    rng = np.random.default_rng(137)
    a = rng.normal(size=(30, 5)) + rng.normal(size=5) * 2
    b = a @ rng.normal(size=(5, 5)) + rng.normal(size=(30, 5)) * rng.uniform(0, 2)
    s = M.cknna(a, b, 28)
    assert s > 1.0
    null = np.linspace(-0.2, 0.3, 99)
    with pytest.raises(ValueError, match="beyond the best attainable"):
        calibrated_score(s, null)
    cal = calibrated_metric_score(s, null, "cknna")
    assert (
        cal.tau == calibrated_score(s, null, smax=None).tau
        and cal.value == pytest.approx(s - cal.tau)
        and cal.value > 1
    )
    # within the bound: the normalised score, as calibrated_score with s_max = 1
    assert calibrated_metric_score(0.8, null, "cknna").value == pytest.approx(calibrated_score(0.8, null).value)
    assert calibrated_metric_score(0.8, null, "idcor").value == pytest.approx(0.8 - calibrated_score(0.8, null).tau)
    ii = calibrated_metric_score(0.1, null + 0.5, "info_imbalance")
    assert ii.value == pytest.approx(calibrated_score(0.1, null + 0.5, higher_is_aligned=False).value)
