"""backend.report: the numbers FINDINGS.md cites, recomputed here from the release's own tables.

The new sections run on the fixture with REPORT_MODELS (a trained-here mace-qm9-n{N}-c{C} grid, a second
pretrained structure model, the random_init mace_b, energies on qm9 only); every expected number below is computed
here from the fixture's pandas tables (build_tables), not through backend.queries.
"""

from __future__ import annotations

import copy
from io import StringIO
from itertools import combinations

import numpy as np
import pandas as pd
import pytest

from backend import Release, report
from precompute.release import write_release
from tests._release_fixture import MANIFEST_EXTRA, build_tables


@pytest.fixture(scope="module")
def tables():
    return build_tables(report_models=True)


@pytest.fixture(scope="module")
def release(tmp_path_factory, tables):
    tmp = tmp_path_factory.mktemp("rep")
    return Release.open(write_release(tables, MANIFEST_EXTRA, tmp))


# ------------------------------------------------------------------------------------------- hand computations
def _value(t: dict, ds: str, metric: str, k: int, a: str, b: str) -> float:
    """The stored (a, b) row; for metrics stored in one orientation only, the (b, a) row."""
    p = t["pairwise"]
    p = p[(p.dataset_id == ds) & (p.metric == metric) & (p.k == k)]
    hit = p[(p.model_a == a) & (p.model_b == b)]
    if hit.empty:
        hit = p[(p.model_a == b) & (p.model_b == a)]
    return float(hit.value.iloc[0])


def _sym(t: dict, ds: str, k: int, a: str, b: str) -> float:
    return (_value(t, ds, "cknna", k, a, b) + _value(t, ds, "cknna", k, b, a)) / 2


def _spearman(x, y) -> float:
    """Pearson correlation of average ranks (no scipy)."""
    rx, ry = pd.Series(list(x)).rank().to_numpy(), pd.Series(list(y)).rank().to_numpy()
    return float(np.corrcoef(rx, ry)[0, 1])


def _line(lines: list[str], start: str) -> str:
    hits = [x for x in lines if x.strip().startswith(start)]
    assert len(hits) == 1, (start, lines)
    return hits[0]


def _source(t: dict) -> dict[str, str]:
    return dict(zip(t["models"].model_id, t["models"].source, strict=True))


# ------------------------------------------------------------------------------------------- the old sections
def test_within_family_mean_is_the_mean_of_symmetrised_pairs(release):
    from backend import queries as q

    mat = q.matrix(release, "qm9", "cknna", 10).matrix
    fam = dict(release.query("select model_id, family from models").itertuples(index=False))
    same = [(mat.at[a, b] + mat.at[b, a]) / 2 for a, b in combinations(list(mat.index), 2) if fam[a] == fam[b]]
    assert same
    lines = report.dataset_report(release, "qm9", 10)
    line = next(x for x in lines if x.strip().startswith("same family"))
    assert f"mean {np.mean(same):.3f}" in line and f"({len(same)} pairs)" in line


def test_report_runs_on_every_dataset(release, capsys):
    assert report.main([str(release.path)]) == 0
    out = capsys.readouterr().out
    assert "## qm9" in out and "## offeq" in out and "nearest model" in out
    for head in ("models by source:", "energy vs alignment (", "random-init controls (", "trained-here family ("):
        assert out.count(head) == 2, head
    assert "tree clusters by first training-set tag" in out


def test_report_one_dataset_and_bad_names(release, capsys):
    assert report.main([str(release.path), "--dataset", "offeq"]) == 0
    out = capsys.readouterr().out
    assert "## offeq" in out and "## qm9" not in out
    with pytest.raises(SystemExit):
        report.main([str(release.path), "--dataset", "no-such-set"])
    assert "no-such-set not in release" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------- 4. sources
def test_source_counts(release, tables):
    src = pd.Series(_source(tables)).value_counts()  # every fixture model has values on both datasets
    for ds in ("qm9", "offeq"):
        line = report.source_report(release, ds)[0]
        for s in ("pretrained", "random_init", "trained_here", "descriptor"):
            assert f"{s} {src.get(s, 0)}" in line
        assert f"({len(tables['models'])} models)" in line
    assert "random_init 1, trained_here 5" in line


# ------------------------------------------------------------------------------------------- 1. energy vs alignment
def test_energy_vs_alignment(release, tables):
    e = tables["energy"][tables["energy"].dataset_id == "qm9"].sort_values(["mae_per_atom", "model_id"])
    best = e.model_id.iloc[0]
    src = _source(tables)
    lines = report.energy_alignment_report(release, "qm9", 10)
    assert f"best model (lowest MAE) {best}, {1000 * e.mae_per_atom.iloc[0]:.1f} meV/atom" in lines[0]
    rest = e.iloc[1:]
    for metric, label in (("cknna", "CKNNA"), ("mutual_knn", "mutual kNN")):
        align = {m: _value(tables, "qm9", metric, 10, m, best) for m in rest.model_id}
        for m, mae in zip(rest.model_id, rest.mae_per_atom, strict=True):
            line = _line(lines, f"{m} [")
            assert f"MAE {1000 * mae:.1f} meV/atom" in line and f"{label} to best {align[m]:.3f}" in line
        rho = _spearman(rest.mae_per_atom, [align[m] for m in rest.model_id])
        assert _line(lines, f"Spearman(MAE, {label} to best), all").endswith(f"rho {rho:+.3f} (n = {len(rest)})")
        th = rest[[src[m] == "trained_here" for m in rest.model_id]]
        rho = _spearman(th.mae_per_atom, [align[m] for m in th.model_id])
        assert _line(lines, f"Spearman(MAE, {label} to best), trained_here").endswith(f"rho {rho:+.3f} (n = {len(th)})")
        fam = e[[src[m] == "trained_here" for m in e.model_id]]
        fbest, others = fam.model_id.iloc[0], fam.iloc[1:]
        rho = _spearman(others.mae_per_atom, [_value(tables, "qm9", metric, 10, m, fbest) for m in others.model_id])
        assert _line(lines, f"Spearman(MAE, {label} to the family's best {fbest})").endswith(
            f"rho {rho:+.3f} (n = {len(others)})"
        )
    # offeq has no energy rows in the fixture
    assert report.energy_alignment_report(release, "offeq", 10) == [
        "  energy vs alignment (k = 10): not in this release (no energy rows on offeq)"
    ]


# ------------------------------------------------------------------------------------------- 2. random-init controls
def test_random_init_controls(release, tables):
    src = _source(tables)
    mods = dict(zip(tables["models"].model_id, tables["models"].modality, strict=True))
    others = [m for m in src if m != "mace_b"]
    for ds in ("qm9", "offeq"):
        lines = report.random_init_report(release, ds, 10)
        v = {m: _sym(tables, ds, 10, "mace_b", m) for m in others}
        top = max(v, key=v.get)
        line = _line(lines, "mace_b: with the other")
        assert f"with the other {len(others)} models mean {np.mean(list(v.values())):.3f}" in line
        assert f"max {v[top]:.3f} ({top})" in line
        pre = [m for m in src if src[m] == "pretrained"]
        pp = [_sym(tables, ds, 10, a, b) for a, b in combinations(pre, 2)]
        assert f"pretrained-pretrained pairs mean {np.mean(pp):.3f} ({len(pp)} pairs)" in lines[0]
        assert "permutation null not in this release" in lines[0]  # the fixture's null is at k = 5 only
        ids = tables["intrinsic_dim"]
        ids = ids[(ids.dataset_id == ds) & (ids.estimator == "twonn")].set_index("model_id").value
        band = ids[[m for m in pre if mods[m] == "structure"]]
        line = _line(lines, "mace_b: TwoNN ID")
        assert f"TwoNN ID {ids['mace_b']:.1f}; pretrained structure models {band.min():.1f}..{band.max():.1f}" in line
        assert f"(median {band.median():.1f}, {len(band)} models)" in line
    # at k = 5 the permutation null exists: its pairs with mace_b, and how many observed values exceed their q95
    null = tables["pairwise_null"]
    null = null[(null.dataset_id == "qm9") & (null.k == 5)]
    nm = null[(null.model_a == "mace_b") | (null.model_b == "mace_b")]
    obs = [_value(tables, "qm9", "cknna", 5, a, b) for a, b in zip(nm.model_a, nm.model_b, strict=True)]
    above = int((np.array(obs) > nm.null_q95.to_numpy()).sum())
    lines = report.random_init_report(release, "qm9", 5)
    assert f"permutation null mean {null.null_mean.mean():.4f} ({len(null)} ordered pairs)" in lines[0]
    line = _line(lines, "mace_b: with the other")
    assert f"null on its pairs mean {nm.null_mean.mean():.4f}, largest 95th percentile {nm.null_q95.max():.4f}" in line
    assert f"{above} of {len(nm)} ordered pairs above" in line


# ------------------------------------------------------------------------------------------- 3. trained-here family
def test_trained_here_family(release, tables):
    ds, k = "qm9", 10
    lines = report.trained_here_report(release, ds, k)
    assert "5 models, 4 with N (training-set size) and C (channels)" in lines[0]
    g = "mace-qm9-n{}-c{}"
    for c in (8, 16):
        v = _sym(tables, ds, k, g.format(100, c), g.format(400, c))
        assert _line(lines, f"same C = {c} (across N)").endswith(f"N=100~N=400 {v:.3f}; mean {v:.3f} (1 pairs)")
    for n in (100, 400):
        v = _sym(tables, ds, k, g.format(n, 8), g.format(n, 16))
        assert _line(lines, f"same N = {n} (across C)").endswith(f"C=8~C=16 {v:.3f}; mean {v:.3f} (1 pairs)")
    src = _source(tables)
    mods = dict(zip(tables["models"].model_id, tables["models"].modality, strict=True))
    ps = [m for m in src if src[m] == "pretrained" and mods[m] == "structure"]
    assert sorted(ps) == ["chgnet_a", "mace_a"]
    mae = tables["energy"][tables["energy"].dataset_id == ds].set_index("model_id").mae_per_atom
    fam = sorted(m for m in src if src[m] == "trained_here")
    means = {m: np.mean([_sym(tables, ds, k, m, p) for p in ps]) for m in fam}
    for m in fam:
        line = _line(lines, f"{m}: MAE")
        assert f"MAE {1000 * mae[m]:.1f} meV/atom" in line and f"mean {means[m]:.3f} over models" in line
        assert f"CHGNet {_sym(tables, ds, k, m, 'chgnet_a'):.3f}" in line
    rho = _spearman([mae[m] for m in fam], [means[m] for m in fam])
    assert _line(lines, "Spearman(MAE, mean CKNNA to pretrained structure models)").endswith(f"rho {rho:+.3f} (n = 5)")
    rho = _spearman([mae[m] for m in fam], [_sym(tables, ds, k, m, "chgnet_a") for m in fam])
    assert _line(lines, "Spearman(MAE, mean CKNNA to pretrained CHGNet)").endswith(f"rho {rho:+.3f} (n = 5)")
    # offeq: no energy, the CKNNA still reported
    assert "no energy MAE" in _line(report.trained_here_report(release, "offeq", k), "mace-qm9-n400-c16:")


# ------------------------------------------------------------------------------------------- 5. tree clades
def _clade_sets(newick: str) -> list[set[str]]:
    from Bio import Phylo

    tree = Phylo.read(StringIO(newick), "newick")
    return [{t.name for t in c.get_terminals()} for c in tree.find_clades()]


def _expected_clades(tables: dict, ds: str, k: int) -> dict[str, bool]:
    t = tables["trees"]
    nwk = t[(t.dataset_id == ds) & (t.k == k) & (t.method == "upgma") & (t.metric == "cknna")].newick.iloc[0]
    sets = _clade_sets(nwk)
    groups: dict[str, set[str]] = {}
    for m, ts in zip(tables["models"].model_id, tables["models"].training_sets, strict=True):
        if len(ts):
            groups.setdefault(ts[0], set()).add(m)
    return {tag: ms in sets for tag, ms in groups.items() if len(ms) >= 2}


def test_tree_clades(release, tables):
    verdicts = set()
    for ds in ("qm9", "offeq"):
        exp = _expected_clades(tables, ds, 10)  # the fixture's manifest has no per-dataset tree_k: k = 10 is used
        assert set(exp) == {"mptrj", "qm9"}
        lines = report.tree_clade_report(release, ds, 10)
        assert "(UPGMA, CKNNA k = 10): 10 leaves, 1 without a training set" in lines[0]
        for tag, is_clade in exp.items():
            line = _line(lines, f"{tag} (")
            assert line.endswith(": a clade") == is_clade, line
            verdicts.add(is_clade)
        assert _line(lines, "tags with one model").endswith("omat24, pubchem")
    assert verdicts == {True, False}  # the fixture exercises both answers


def test_tree_k_from_the_manifest(tmp_path, tables):
    extra = copy.deepcopy(MANIFEST_EXTRA)
    extra["settings"]["qm9"] = {"tree_k": 5}
    r = Release.open(write_release(tables, extra, tmp_path))
    assert "CKNNA k = 5)" in report.tree_clade_report(r, "qm9", 10)[0]
    exp = _expected_clades(tables, "qm9", 5)
    lines = report.tree_clade_report(r, "qm9", 10)
    for tag, is_clade in exp.items():
        assert _line(lines, f"{tag} (").endswith(": a clade") == is_clade


# ------------------------------------------------------------------------------------------- degrading gracefully
def test_sections_degrade_without_energy_controls_family_or_trees(tmp_path):
    t = build_tables()  # the five models only
    t["models"] = t["models"].assign(source=t["models"].source.replace({"random_init": "pretrained",
                                                                      "trained_here": "pretrained"}))  # fmt: skip
    t["energy"] = t["energy"].iloc[0:0]
    t["trees"] = t["trees"].iloc[0:0]
    r = Release.open(write_release(t, MANIFEST_EXTRA, tmp_path))
    for ds in ("qm9", "offeq"):
        lines = report.extra_report(r, ds, 10)
        assert len(lines) == 6
        assert all("not in this release" in x for x in lines[2:]), lines
        assert "pretrained 4, random_init 0, trained_here 0, descriptor 1 (5 models)" in lines[1]
