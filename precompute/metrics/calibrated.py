"""Null-calibrated similarity (Gröger, Wen, Brbić 2026, "Revisiting the Platonic Representation Hypothesis: An
Aristotelian View", arXiv 2602.14486, Algorithm 1 "scalar null-calibration"; reference package
calibrated-similarity 0.1.1, `calibrate`).

Given the observed score s and K permutation-null scores s_1..s_K (rows of B permuted), with the combined sample
s_(1) <= ... <= s_(K+1) of {s, s_1, ..., s_K} (the observed value included, so the test is exact at level α):

    τ     = s_(⌈(1-α)(K+1)⌉)                               the (1-α) critical value (index clamped to 1..K+1)
    p     = (1 + #{s_k >= s}) / (K + 1)
    s_cal = clip((s - τ) / (s_max - τ), 0, 1)              s_max the largest attainable score (1 for all ours)

so s_cal = 0 whenever the observed score is not above the null's (1-α) critical value, and 1 only for a perfect
score. (With s_max = None the paper's unnormalised effect size max(s - τ, 0) is returned.) The denominator is
floored at 1e-12, as in the reference.

Information imbalance Δ is "lower is more aligned" with best value 0: the definition is applied to s = -Δ with
s_max = -0, i.e. τ is the α-quantile of the combined Δ's and s_cal = clip((τ - Δ) / τ, 0, 1); identical to
calibrating 1 - Δ with s_max = 1.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

_EPS = 1e-12


@dataclass(frozen=True)
class CalibratedScore:
    value: float  # s_cal in [0, 1] (or the effect size max(s - τ, 0) when s_max is None)
    tau: float  # critical value, in the metric's own units
    p_value: float
    alpha: float
    n_permutations: int

    def as_dict(self) -> dict:
        return asdict(self)


def calibrated_score(
    observed: float,
    null_values: np.ndarray,
    *,
    alpha: float = 0.05,
    smax: float | None = 1.0,
    higher_is_aligned: bool = True,
    best: float = 0.0,
) -> CalibratedScore:
    """Calibrate one observed score against its permutation null; see the module docstring.

    higher_is_aligned=False (information imbalance): `best` is the most aligned value (0 for Δ) and `smax` is
    ignored unless None (then the effect size max(τ - Δ, 0) is returned).
    """
    null = np.asarray(null_values, dtype=np.float64).ravel()
    k = null.size
    if k < 1:
        raise ValueError("calibration needs at least one permutation")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if not (np.isfinite(observed) and np.isfinite(null).all()):
        raise ValueError("calibration needs a finite observed score and finite null values")
    sign = 1.0 if higher_is_aligned else -1.0
    s, sn = sign * float(observed), sign * null
    top = None if smax is None else (float(smax) if higher_is_aligned else -float(best))
    if top is not None and s > top + 1e-9 * max(1.0, abs(top)):
        raise ValueError(f"observed score {observed!r} is beyond the best attainable value")
    combined = np.sort(np.append(sn, s))
    idx = min(max(math.ceil((1.0 - alpha) * (k + 1)) - 1, 0), k)
    tau = float(combined[idx])
    p = (1.0 + np.count_nonzero(sn >= s)) / (k + 1)
    if top is None:
        value = max(s - tau, 0.0)
    else:
        value = min(max((s - tau) / max(top - tau, _EPS), 0.0), 1.0)
    return CalibratedScore(float(value), sign * tau, float(p), float(alpha), int(k))


def calibrated_metric_score(
    observed: float, null_values: np.ndarray, metric: str, *, alpha: float = 0.05
) -> CalibratedScore:
    """`calibrated_score` with each metric's bound, the one rule the analysis and the scoring share.

    Information imbalance: lower is aligned, best 0. IDCor has no attainable maximum (estimated IDs can give values
    above 1): the unnormalised effect size max(s - τ, 0). Every other metric is normalised by s_max = 1, except when
    the observed value itself exceeds 1: CKNNA and unbiased CKA are ratios of unbiased HSIC estimates, which are not
    bounded by 1 when k is close to N (CKNNA at k = 100 on 135 protein chains gives 1.47); such a row gets the
    effect size too, so it is neither refused nor shown as a perfect 1.
    """
    if metric == "info_imbalance":
        return calibrated_score(observed, null_values, alpha=alpha, higher_is_aligned=False)
    bounded = metric != "idcor" and observed <= 1.0
    return calibrated_score(observed, null_values, alpha=alpha, smax=1.0 if bounded else None)


def calibrated_from_critical(observed: float, tau: float, p_value: float, metric: str, *,
                             alpha: float = 0.05) -> CalibratedScore:  # fmt: skip
    """The calibrated score for a critical value τ and p-value from a fitted null (CKA's exact-moment null).

    Same rule as `calibrated_metric_score` (higher is aligned, s_max = 1, the effect size above 1), with τ the
    fitted (1 - α) quantile instead of the combined-sample order statistic; n_permutations = 0 marks it.
    """
    if not (math.isfinite(observed) and math.isfinite(tau)):
        raise ValueError(f"calibration needs a finite observed score and critical value, got {observed!r}, {tau!r}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if not 0.0 <= p_value <= 1.0:
        raise ValueError(f"p-value must be in [0, 1], got {p_value!r}")
    if metric == "info_imbalance":
        raise ValueError("a fitted critical value is defined here only for higher-is-aligned metrics")
    s = float(observed)
    if metric == "idcor" or s > 1.0:
        value = max(s - tau, 0.0)
    else:
        value = min(max((s - tau) / max(1.0 - tau, _EPS), 0.0), 1.0)
    return CalibratedScore(float(value), float(tau), float(p_value), float(alpha), 0)
