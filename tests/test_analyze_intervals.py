"""Every pairwise row of an analysis carries a half-sampling CI, information imbalance and IDCor included, and the
stored intervals are the ones the metric functions give on the recorded subsets."""

from __future__ import annotations

import json

import numpy as np
import pytest

from precompute.analyze.pipeline import collect_tables, run_analysis
from precompute.analyze.settings import AnalysisSettings
from precompute.analyze.tasks import idcor_subsample, load_cache, resample_subsets
from precompute.metrics import resampling as rs
from precompute.metrics.resampling_ii import info_imbalance_subsample_values

N = 90


def test_every_pairwise_row_has_an_interval_and_ii_idcor_match_the_functions(tmp_path):
    rng = np.random.default_rng(3)
    Z = rng.normal(size=(N, 3))
    emb = {f"m{i}": ([f"s{j}" for j in range(N)], np.tanh(Z @ rng.normal(size=(3, 5 + 3 * i)))
                     + 0.2 * rng.normal(size=(N, 5 + 3 * i))) for i in range(3)}  # fmt: skip
    s = run_analysis(tmp_path, emb, AnalysisSettings(ks_knn=(5,), ks_ii=(1, 4), idcor_n=70, idcor_permutations=3,
                                                     null_permutations=3, resamples=6, bootstrap=5))  # fmt: skip
    t = collect_tables(tmp_path, "qm9")["pairwise"]
    assert set(t.metric) >= {"cknna", "mutual_knn", "cka", "cka_unbiased", "info_imbalance", "idcor"}
    assert t.ci_low.notna().all() and t.ci_high.notna().all(), t[t.ci_low.isna()][["metric", "model_a", "model_b"]]
    assert (t.ci_low <= t.ci_high).all()
    assert ((t.ci_high - t.ci_low) > 0).all()  # a real spread, not a degenerate interval

    # information imbalance m0 -> m2 at k = 4, recomputed from the stored caches and the recorded subsets
    subs = resample_subsets(N, s)
    caches = {a: load_cache(tmp_path, a, "euclid") for a in ("m0", "m1")}
    assert min(c.k_max for c in caches.values()) == rs.subsample_list_length(4)  # long enough for the subsets
    vals = info_imbalance_subsample_values(emb["m2"][1], {a: c.indices for a, c in caches.items()},
                                           {a: emb[a][1] for a in caches}, subs, s.ks_ii)  # fmt: skip
    row = t[(t.metric == "info_imbalance") & (t.k == 4) & (t.model_a == "m0") & (t.model_b == "m2")].iloc[0]
    expect = rs.basic_interval(row.value, vals["m0"][:, 1], N, subs[0].size, s.ci_level)
    assert (row.ci_low, row.ci_high) == pytest.approx(expect, abs=1e-12)

    # IDCor on its subsample: the subsets are drawn inside it, seeded per dataset
    sub = idcor_subsample(N, s)
    rec = json.loads(next((tmp_path / "idcor").glob("*.json")).read_text())["rows"][0]
    n_sub = sub.size
    isubs = rs.subsets(n_sub, s.resamples, np.random.SeedSequence([s.seed, 0x1DC0]), m=n_sub // 2)
    feats = {m: emb[m][1][sub] for m in (rec["model_a"], rec["model_b"])}
    iv = rs.idcor_subsample_values(feats, [(rec["model_a"], rec["model_b"])], isubs)
    expect = rs.basic_interval(rec["value"], iv[(rec["model_a"], rec["model_b"])], n_sub, n_sub // 2, s.ci_level)
    assert (rec["ci_low"], rec["ci_high"]) == pytest.approx(expect, abs=1e-12)
