"""Identical embedding rows (a composition-only model on polymorphs): the analysis keeps them, records how many, and
the CLI says so; TwoNN counts them as duplicates; the pairwise metrics are computed with the lower-index tie rule."""

from __future__ import annotations

import json

import numpy as np

from precompute.analyze.pipeline import collect_tables, repeated_rows, repeated_rows_notes, run_analysis
from precompute.analyze.settings import AnalysisSettings


def _composition_like(n: int = 60, n_formulas: int = 20, seed: int = 3) -> tuple[list[str], np.ndarray, np.ndarray]:
    """A structure model (every row distinct) and a composition model (one row per formula, 3 polymorphs each)."""
    rng = np.random.default_rng(seed)
    formula = np.arange(n) % n_formulas
    comp = rng.normal(size=(n_formulas, 8))[formula]
    struct = comp[:, :6] + 0.3 * rng.normal(size=(n, 6))
    return [f"s{i}" for i in range(n)], struct, comp


def test_repeated_rows_counts_groups_and_names_the_first_pair():
    ids, struct, comp = _composition_like()
    assert repeated_rows(struct, ids) == {"repeated_rows": 0, "repeated_groups": 0, "repeated_example": None}
    assert repeated_rows(comp, ids) == {"repeated_rows": 40, "repeated_groups": 20, "repeated_example": ["s0", "s20"]}


def test_analysis_keeps_repeated_rows_records_them_and_says_so(tmp_path):
    ids, struct, comp = _composition_like()
    emb = {"structure": (ids, struct), "composition": (ids, comp)}
    run_analysis(tmp_path, emb, AnalysisSettings(ks_knn=(5,), ks_ii=(1,), idcor_permutations=0, null_permutations=2,
                                                 bootstrap=5, clip_quantile=None))  # fmt: skip
    meta = json.loads((tmp_path / "features" / "meta.json").read_text())
    assert meta["per_model"]["composition"]["repeated_rows"] == 40
    assert meta["per_model"]["structure"]["repeated_rows"] == 0
    (note,) = repeated_rows_notes(tmp_path)
    assert note.startswith("note: composition: 40 of 60 rows repeat an earlier row (20 groups; e.g. s20 = s0)")
    t = collect_tables(tmp_path, "crystals-real")
    cknna = t["pairwise"][t["pairwise"].metric == "cknna"]
    assert len(cknna) == 2 and np.isfinite(cknna.value).all()
    intrinsic = t["intrinsic_dim"].set_index(["model_id", "estimator"])
    assert int(intrinsic.loc[("composition", "twonn"), "n_duplicates"]) == 40
    assert int(intrinsic.loc[("structure", "twonn"), "n_duplicates"]) == 0
