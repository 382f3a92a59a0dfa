"""Analysis rows for CKA carry the exact-moment null (n_permutations = 0) and the jackknife interval by default;
cka_null = "permutations" keeps the permutation null."""

from __future__ import annotations

import json

import numpy as np
import pytest

from precompute.analyze.pipeline import collect_tables, run_analysis
from precompute.analyze.settings import AnalysisSettings
from precompute.analyze.tasks import _prep, cka_groups
from precompute.metrics.cka import cka_features
from precompute.metrics.cka_jackknife import CkaGroupParts, cka_jackknife_values, jackknife_interval
from precompute.metrics.cka_moments import cka_null_moments
from precompute.metrics.preprocess import kernel_features

N = 80


def _embeddings():
    rng = np.random.default_rng(4)
    Z = rng.normal(size=(N, 3))
    return {f"m{i}": ([f"s{j}" for j in range(N)], np.tanh(Z @ rng.normal(size=(3, 4 + 3 * i)))
                      + 0.3 * rng.normal(size=(N, 4 + 3 * i))) for i in range(3)}  # fmt: skip


def _settings(**kw) -> AnalysisSettings:
    return AnalysisSettings(ks_knn=(5,), ks_ii=(1,), idcor_permutations=0, null_permutations=4, resamples=8,
                            bootstrap=5, **kw)  # fmt: skip


def test_cka_rows_carry_the_moment_null_and_the_jackknife_interval(tmp_path):
    emb = _embeddings()
    s = run_analysis(tmp_path, emb, _settings())
    assert s.cka_null == "moments"
    assert json.loads((tmp_path / "settings.json").read_text())["cka_null"] == "moments"
    tables = collect_tables(tmp_path, "qm9")
    null, cal, pw = tables["pairwise_null"], tables["pairwise_calibration"], tables["pairwise"]
    feats = {m: kernel_features(x, _prep(s), m) for m, (_, x) in emb.items()}
    labels = cka_groups(N, s)
    for metric, unbiased in (("cka", False), ("cka_unbiased", True)):
        rows = null[null.metric == metric]
        assert len(rows) == 3 and (rows.n_permutations == 0).all()
        for _, r in rows.iterrows():
            fit = cka_null_moments(feats[r.model_a], feats[r.model_b])[metric]
            assert r.null_mean == pytest.approx(fit.mean, rel=1e-12, abs=1e-15)
            assert r.null_std == pytest.approx(fit.sd, rel=1e-12)
            assert r.null_q95 == pytest.approx(fit.quantile(0.95), rel=1e-12)
            c = cal[(cal.metric == metric) & (cal.model_a == r.model_a) & (cal.model_b == r.model_b)].iloc[0]
            value = float(cka_features(feats[r.model_a], feats[r.model_b], unbiased))
            assert c.p_value == pytest.approx(fit.p_value(value), rel=1e-9)
            assert c.tau == pytest.approx(fit.quantile(0.95), rel=1e-12)
            assert c.n_permutations == 0
            row = pw[(pw.metric == metric) & (pw.model_a == r.model_a) & (pw.model_b == r.model_b)].iloc[0]
            jack = cka_jackknife_values(
                CkaGroupParts(feats[r.model_a], labels), CkaGroupParts(feats[r.model_b], labels)
            )
            assert (row.ci_low, row.ci_high) == pytest.approx(jackknife_interval(value, jack[metric]), abs=1e-9)
    assert (null[~null.metric.str.startswith("cka")].n_permutations == 4).all()  # the kNN metrics keep permutations


def test_permutation_null_is_kept_behind_the_setting(tmp_path):
    run_analysis(tmp_path, _embeddings(), _settings(cka_null="permutations"))
    null = collect_tables(tmp_path, "qm9")["pairwise_null"]
    assert (null[null.metric == "cka"].n_permutations == 4).all()
    with pytest.raises(ValueError, match="cka_null"):
        _settings(cka_null="gamma")


def test_cli_flag_sets_the_cka_null():
    import argparse

    from precompute import cli_analyze

    p = argparse.ArgumentParser()
    cli_analyze.add_arguments(p)
    s = cli_analyze.settings_from_args(p.parse_args(["--dataset", "qm9", "--cka-null", "permutations"]))
    assert s.cka_null == "permutations"
    assert cli_analyze.settings_from_args(p.parse_args(["--dataset", "qm9"])).cka_null == "moments"
    with pytest.raises(SystemExit):
        p.parse_args(["--dataset", "qm9", "--cka-null", "gamma"])
