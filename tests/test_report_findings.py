"""backend.report_findings: the claims FINDINGS.md states, raw and calibrated with intervals, recomputed here from the
tables of tests/_calibration_fixture.py (real permutation nulls and half-sampling CIs on "qm9", none on "offeq")."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from backend import Release
from backend import report_findings as rf
from tests._calibration_fixture import build_calibrated_tables


@pytest.fixture(scope="module")
def tables() -> dict[str, pd.DataFrame]:
    return build_calibrated_tables()


@pytest.fixture(scope="module")
def release(tmp_path_factory, tables) -> Release:
    from precompute.release.writer import write_release
    from tests._release_fixture import MANIFEST_EXTRA

    root = tmp_path_factory.mktemp("findings")
    return Release.open(write_release(tables, MANIFEST_EXTRA, root, None))


def _hand_pairs(t: dict, ds: str, metric: str, k: int) -> pd.DataFrame:
    """Unordered pairs from the raw tables: both orders' mean of value, CI bounds and calibrated score."""
    p = t["pairwise"]
    p = p[(p.dataset_id == ds) & (p.metric == metric) & (p.k == k) & (p.model_a != p.model_b)]
    c = t["pairwise_calibration"]
    c = c[(c.dataset_id == ds) & (c.metric == metric) & (c.k == k)][["model_a", "model_b", "calibrated"]]
    p = p.merge(c, on=["model_a", "model_b"], how="left")
    p["a"], p["b"] = np.minimum(p.model_a, p.model_b), np.maximum(p.model_a, p.model_b)
    return p.groupby(["a", "b"])[["value", "ci_low", "ci_high", "calibrated"]].mean().reset_index()


def test_pair_table_averages_both_orders_of_the_stored_rows(release, tables):
    got = rf.pair_table(release, "qm9", "cknna", 10).set_index(["a", "b"])
    want = _hand_pairs(tables, "qm9", "cknna", 10).set_index(["a", "b"])
    assert len(got) == len(want) == 10  # 5 models
    for col_got, col_want in (("value_raw", "value"), ("ci_low_raw", "ci_low"), ("ci_high_raw", "ci_high"),
                              ("calibrated", "calibrated")):  # fmt: skip
        np.testing.assert_allclose(
            got.loc[want.index, col_got].to_numpy(float), want[col_want].to_numpy(float), rtol=0, atol=1e-12
        )
    assert (got.orders == 2).all()
    # a pair is "resolved" exactly when its calibrated interval is above 0, i.e. its raw CI clears the null's tau
    assert (got.resolved == (got.calibrated_ci_low > 0)).all()


def test_group_report_means_equal_the_hand_grouping(release, tables):
    want = _hand_pairs(tables, "qm9", "cknna", 10)
    fam = tables["models"].set_index("model_id")["family"]
    same = want[want.a.map(fam) == want.b.map(fam)]
    lines = rf.group_report(release, "qm9", "relation", k=10)
    line = next(x for x in lines if x.strip().startswith("same family"))
    assert f"raw {same.value.mean():.3f} [{same.ci_low.mean():.3f}, {same.ci_high.mean():.3f}]" in line
    assert f"calibrated {same.calibrated.mean():.3f}" in line and f"({len(same)} pairs)" in line
    mod = rf.group_report(release, "qm9", "modality", k=10)
    assert any(x.strip().startswith("smiles ~ structure:") for x in mod)
    # offeq has no calibration: the lines say so rather than print a number
    off = rf.group_report(release, "offeq", "relation", k=10)
    assert all("not calibrated in this release" in x for x in off[1:]) and len(off) > 1


def test_top_pairs_are_ordered_by_the_calibrated_score_and_name_ties(release, tables):
    want = _hand_pairs(tables, "qm9", "cknna", 10).sort_values("calibrated", ascending=False)
    lines = rf.top_pairs_report(release, "qm9", k=10, n=3)
    assert "calibrated order" in lines[0]
    for line, row in zip(lines[1:4], want.head(3).itertuples(), strict=True):
        assert line.strip().startswith(f"{row.a} ~ {row.b} {row.value:.3f}")
    assert any("tied with the top pair" in x for x in lines)


def test_spearman_interval_is_fisher_z_with_fiellers_error():
    rng = np.random.default_rng(0)
    x = rng.normal(size=30)
    y = x + rng.normal(size=30)
    rho, lo, hi, n = rf.spearman_ci(x, y)
    assert rho == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-12) and n == 30
    se = np.sqrt(1.06 / 27)
    assert lo == pytest.approx(np.tanh(np.arctanh(rho) - 1.96 * se)) and hi == pytest.approx(
        np.tanh(np.arctanh(rho) + 1.96 * se)
    )
    assert lo < rho < hi
    assert np.isnan(rf.spearman_ci(x[:4], y[:4])[0])  # too few models: no number
    assert np.isnan(rf.spearman_ci([1, 2, np.nan, 4, 5], [1, 2, 3, 4, 5])[0])  # NaNs dropped, then 4 left


def test_calibration_effect_and_intrinsic_bands(release, tables):
    want = _hand_pairs(tables, "qm9", "cknna", 10)
    lines = rf.calibration_effect_report(release, "qm9")
    ck = next(x for x in lines if x.strip().startswith("cknna k = 10"))
    assert f"raw mean {want.value.mean():.3f}, calibrated mean {want.calibrated.mean():.3f}" in ck
    assert f"Spearman {stats.spearmanr(want.value, want.calibrated).statistic:.3f}" in ck
    assert any(x.strip().startswith("idcor") and "not calibrated" in x for x in lines)  # the fixture has none
    idd = tables["intrinsic_dim"]
    idd = idd[(idd.dataset_id == "qm9") & (idd.estimator == "twonn")]
    meta = tables["models"].set_index("model_id")
    band = rf.intrinsic_band_report(release, "qm9")
    for (mod, src), g in idd.groupby([idd.model_id.map(meta["modality"]), idd.model_id.map(meta["source"])]):
        line = next(x for x in band if x.strip().startswith(f"{mod} ({src}):"))
        assert f"{g.value.min():.2f}..{g.value.max():.2f}" in line and f"{len(g)} models" in line


def test_findings_report_runs_on_every_fixture_dataset(release):
    for ds in ("qm9", "offeq"):
        out = rf.findings_report(release, ds)
        assert out[0].startswith(f"## {ds}") and not any("nan" in x.lower().split() for x in out)
