"""bench.calibrated_reanalysis on the fixture release, with calibration rows computed by the real calibrated_score
from seeded null draws (the fixture's own calibration rows are placeholders)."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from bench import calibrated_reanalysis as cr
from precompute.metrics.calibrated import calibrated_score


def _tables(shift: float = 0.0) -> dict[str, pd.DataFrame]:
    from tests._release_fixture import build_tables

    t = build_tables()
    rng = np.random.default_rng(7)
    rows = []
    for _, z in t["pairwise_null"].iterrows():
        obs = t["pairwise"].query("dataset_id == @z.dataset_id and metric == @z.metric and model_a == @z.model_a "
                                  "and model_b == @z.model_b and k == @z.k")["value"].iloc[0]  # fmt: skip
        null = rng.normal(z.null_mean, max(z.null_std, 1e-3), 99).clip(-1, 1)
        c = calibrated_score(float(obs), null)
        rows.append({**{c2: z[c2] for c2 in ("dataset_id", "metric", "k", "model_a", "model_b", "seed")},
                     "n_permutations": 99, "calibrated": c.value, "tau": c.tau, "alpha": 0.05,
                     "null_q99": float(np.quantile(null, 0.99)), "p_value": c.p_value, "closed_form_mean": None})  # fmt: skip
    t["pairwise_calibration"] = pd.DataFrame(rows)
    if shift:
        p = t["pairwise"]
        hit = (p.metric == "cka") & (p.dataset_id == "qm9")
        p.loc[hit.idxmax(), "value"] += shift
    return t


@pytest.fixture(scope="module")
def releases(tmp_path_factory):
    from backend.release import Release
    from precompute.release.writer import write_release
    from tests._release_fixture import MANIFEST_EXTRA

    root = tmp_path_factory.mktemp("rel")
    t = _tables()
    a = write_release(t, MANIFEST_EXTRA, root / "a", None)
    b = write_release(_tables(shift=0.01), MANIFEST_EXTRA, root / "b", None)
    return Release.open(a), Release.open(b), t


def test_calibrate_bound_is_the_calibration_map():
    null = np.random.default_rng(0).normal(0.05, 0.02, 99)
    for s in (0.02, 0.1, 0.4, 0.9):
        c = calibrated_score(s, null)
        assert cr.calibrate_bound(pd.Series([s]), pd.Series([c.tau])).iloc[0] == pytest.approx(c.value, abs=1e-12)


def test_raw_check_names_the_moved_row(releases):
    a, b, _ = releases
    same = "\n".join(cr.raw_check(a, a, "qm9"))
    assert re.search(r"cknna\s+\d+ rows, max \|diff\| 0\b", same)
    moved = "\n".join(cr.raw_check(a, b, "qm9"))
    line = next(x for x in moved.splitlines() if x.strip().startswith("cka "))
    assert "max |diff| 0.01" in line and "~" in line


def test_relation_means_follow_the_tables(releases):
    a, _, t = releases
    meta = a.query("SELECT model_id, family, modality, training_sets FROM models").set_index("model_id")
    models = sorted(meta.index)
    text = "\n".join(cr.relation_report(a, "qm9", meta, models, 5))
    cal = t["pairwise_calibration"].query("dataset_id == 'qm9' and metric == 'cknna' and k == 5")
    fam = meta["family"].to_dict()
    same = cal[[fam[x] == fam[y] for x, y in zip(cal.model_a, cal.model_b, strict=True)]]
    expect = same.calibrated.mean()  # both orders of every pair: the mean of the symmetrised values
    line = next(x for x in text.splitlines() if "cknna k=5" in x and "same family" in x)
    assert f"calibrated mean {expect:.3f}" in line
    assert f"orders not above the critical value {int((same.calibrated <= 0).sum())}" in line


def test_clades_finds_a_planted_group():
    labels = ["a1", "a2", "a3", "b1", "b2"]
    x = np.array([[0, 0], [0.1, 0], [0, 0.1], [5, 5], [5.1, 5]])
    d = np.linalg.norm(x[:, None] - x[None], axis=-1)
    clades = cr._clades(labels, d)
    assert frozenset({"a1", "a2", "a3"}) in clades and frozenset({"b1", "b2"}) in clades
    assert frozenset({"a1", "b1"}) not in clades


def test_report_runs_end_to_end(releases):
    a, b, _ = releases
    text = cr.report(a, b, "qm9", k=5, tree_k=5)
    for head in ("## raw values", "## by relation", "## UPGMA clades"):
        assert head in text
    assert "permutations >= 99" in text


def test_raw_check_refuses_rows_of_another_n(tmp_path):
    from backend.release import Release
    from precompute.release.writer import write_release
    from tests._release_fixture import MANIFEST_EXTRA

    t = _tables()
    t["pairwise"]["n"] = t["pairwise"]["n"] - 1  # same rows, as if computed on one sample fewer
    other = Release.open(write_release(t, MANIFEST_EXTRA, tmp_path, None))
    text = "\n".join(
        cr.raw_check(other, Release.open(write_release(_tables(), MANIFEST_EXTRA, tmp_path / "b", None)), "qm9")
    )
    assert "no shared row at the same N" in text and "max |diff|" not in text
