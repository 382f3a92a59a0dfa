"""The analysis stage end to end: real QM9 molecules -> offline models -> `matter-align analyze` -> `release` ->
backend, every served number checked against the metric functions; plus resume, executor and energy/tree units."""

from __future__ import annotations

import concurrent.futures as cf
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import precompute.metrics as M
from precompute.analyze.energy import energy_mae_per_atom
from precompute.analyze.executor import Task, run_tasks
from precompute.analyze.pipeline import collect_tables, run_analysis
from precompute.analyze.settings import AnalysisSettings
from precompute.analyze.trees import trees_from_similarity

ROOT = Path(__file__).resolve().parents[1]
MODELS = ["morgan-fp", "coulomb-spectrum", "ani1x-m0", "rxnmapper-albert"]
N = 150
SETTINGS = ["--ks", "5,10,25", "--ks-ii", "1,5", "--idcor-n", "100", "--idcor-permutations", "4",
            "--null-permutations", "5", "--bootstrap", "30"]  # fmt: skip


def cli(*args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "precompute.cli", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=900)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return proc


@pytest.fixture(scope="module")
def mini_release(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("e2e")
    store, work, out = tmp / "store", tmp / "work", tmp / "releases"
    cli(
        "extract", "--dataset", "qm9", "--n", str(N), "--seed", "0", "--models", ",".join(MODELS), "--store", str(store)
    )
    cli("analyze", "--dataset", "qm9", "--n", str(N), "--seed", "0", "--store", str(store), "--work", str(work),
        "--jobs", "2", *SETTINGS)  # fmt: skip
    analysis = work / f"qm9_n{N}_seed0"
    cli("release", "--analyses", str(analysis), "--out", str(out))
    from backend import Release
    from precompute.extract.store import DatasetKey, EmbeddingStore

    key = DatasetKey.build("qm9", N, 0)
    st = EmbeddingStore(store)
    ids = json.loads((analysis / "features" / "ids.json").read_text())
    emb = {}
    for m in MODELS:
        e = st.read(key, m)
        pos = {s: i for i, s in enumerate(e.ids)}
        emb[m] = np.asarray(e.embeddings, dtype=np.float64)[[pos[s] for s in ids]]
    return Release.open(out / (out / "latest").read_text().strip()), emb, analysis


def test_served_values_equal_the_metric_functions(mini_release):
    from backend import queries as q

    r, emb, _ = mini_release
    a, b = "ani1x-m0", "coulomb-spectrum"
    for k in (5, 25):
        mat = q.matrix(r, "qm9", "cknna", k).matrix
        assert mat.at[a, b] == pytest.approx(M.cknna(emb[a], emb[b], k, clip_quantile=0.95), abs=1e-12)
        assert mat.at[b, a] == pytest.approx(M.cknna(emb[b], emb[a], k, clip_quantile=0.95), abs=1e-12)
    mk = q.matrix(r, "qm9", "mutual_knn", 10).matrix
    assert mk.at[a, b] == pytest.approx(M.mutual_knn(emb[a], emb[b], 10, clip_quantile=0.95), abs=1e-12)
    for metric, ub in (("cka", False), ("cka_unbiased", True)):
        v = q.matrix(r, "qm9", metric).matrix.at[a, b]
        assert v == pytest.approx(M.cka(emb[a], emb[b], ub, clip_quantile=0.95), abs=1e-12)
    ii = q.information_imbalance_pairs(r, "qm9", 5, cknna_k=5)
    row = ii[(ii.model_a == a) & (ii.model_b == b)].iloc[0]
    assert row.delta_ab == pytest.approx(M.information_imbalance(emb[a], emb[b], 5, duplicates="keep"), abs=1e-12)
    assert row.delta_ba == pytest.approx(M.information_imbalance(emb[b], emb[a], 5, duplicates="keep"), abs=1e-12)
    idd = q.intrinsic_dim(r, "qm9", estimator="twonn").set_index("model_id")
    assert idd.at[a, "value"] == pytest.approx(M.twonn_id(emb[a]), abs=1e-12)
    assert idd.at[a, "ci_low"] <= idd.at[a, "value"] <= idd.at[a, "ci_high"]
    gride = q.intrinsic_dim(r, "qm9", estimator="gride").set_index("model_id")
    assert gride.at[a, "value"] == pytest.approx(M.gride_id(emb[a], 8), abs=1e-9)


def test_idcor_uses_the_recorded_subsample_and_seed(mini_release):
    _, emb, analysis = mini_release
    rows = [r for f in sorted((analysis / "idcor").glob("*.json")) for r in json.loads(f.read_text())["rows"]]
    from precompute.analyze.tasks import idcor_subsample

    settings = AnalysisSettings.from_dict(json.loads((analysis / "settings.json").read_text()))
    sub = idcor_subsample(next(iter(emb.values())).shape[0], settings)
    assert sub.size == 100
    r = rows[0]
    value, p = M.idcor(emb[r["model_a"]][sub], emb[r["model_b"]][sub], permutations=4, seed=r["seed"])
    assert value == pytest.approx(r["value"], abs=1e-12) and p == r["p_value"]


def test_release_tables_and_provenance(mini_release):
    r, _, _ = mini_release
    m = r.manifest
    assert m["settings"]["qm9"]["clip_quantile"] == 0.95
    assert any(i["name"].endswith("/ani1x-m0") and len(i["sha256"]) == 64 for i in m["inputs"])
    pw = r.query("select metric, count(*) as c from pairwise group by metric").set_index("metric")["c"]
    n_models = len(MODELS)
    assert pw["cknna"] == 3 * n_models * (n_models - 1)  # both orders, three k
    assert pw["info_imbalance"] == 2 * n_models * (n_models - 1)
    trees = r.query("select method, newick from trees")
    assert set(trees.method) == {"nj", "upgma"} and all(all(mm in t for mm in MODELS) for t in trees.newick)
    null = r.query("select * from pairwise_null")
    # a null for every pairwise value (idcor included), and a calibrated score next to each
    assert len(null) == len(r.query("select * from pairwise")) and (null.null_std >= 0).all()
    assert len(r.query("select * from pairwise where p_value is null")) == 0
    cal = r.query("select * from pairwise_calibration")
    assert len(cal) == len(null) and cal.calibrated.between(0, 1).all()
    p = r.query("select p_value from pairwise where metric = 'cknna' and k = 10")["p_value"]
    assert p.notna().all() and ((p > 0) & (p <= 1)).all()
    from backend import queries as q

    assert not q.list_models(r, dataset="qm9")["in_distribution"].any()  # no model here was trained on QM9
    assert set(q.id_ood_pairs(r, "qm9", "cknna", 10)["pair_class"]) == {"both_ood"}
    samples = q.list_samples(r, "qm9", limit=1000)
    assert len(samples) == r.query("select n_samples from datasets")["n_samples"][0]
    assert samples.sample_id.str.startswith("qm9:").all() and samples.n_atoms.min() >= 1
    src = r.query("select model_id, source from models").set_index("model_id")["source"]
    assert src["ani1x-m0"] == "pretrained" and src["morgan-fp"] == "descriptor"


def test_rerun_resumes_without_recomputing(mini_release, tmp_path):
    _, emb, analysis = mini_release
    before = {p: p.stat().st_mtime_ns for p in analysis.rglob("*.json") if "features" not in p.parts}
    settings = AnalysisSettings.from_dict(json.loads((analysis / "settings.json").read_text()))
    ids = json.loads((analysis / "features" / "ids.json").read_text())
    run_analysis(analysis, {m: (ids, emb[m]) for m in MODELS}, settings)
    after = {p: p.stat().st_mtime_ns for p in before}
    assert before == after


def test_changed_settings_need_a_new_work_folder(mini_release):
    _, emb, analysis = mini_release
    ids = json.loads((analysis / "features" / "ids.json").read_text())
    with pytest.raises(ValueError, match="settings differ"):
        run_analysis(analysis, {m: (ids, emb[m]) for m in MODELS}, AnalysisSettings(ks_knn=(7,)))


def test_changed_model_list_needs_a_new_work_folder(mini_release):
    # a rerun with one more model once kept the old pair blocks (resumed by file) and silently left out its pairs
    _, emb, analysis = mini_release
    ids = json.loads((analysis / "features" / "ids.json").read_text())
    with pytest.raises(ValueError, match="previous run analysed models"):
        run_analysis(analysis, {m: (ids, emb[m]) for m in MODELS[:-1]})
    extra = {**{m: (ids, emb[m]) for m in MODELS}, "copy": (ids, emb[MODELS[0]] * 2.0)}
    with pytest.raises(ValueError, match="use a new work folder"):
        run_analysis(analysis, extra)


def _square(path: str, value: int) -> None:
    Path(path).write_text(str(value * value))


def test_executor_runs_pending_tasks_through_any_executor(tmp_path):
    tasks = [Task(f"t{i}", _square, {"path": str(tmp_path / f"{i}.txt"), "value": i}, tmp_path / f"{i}.txt")
             for i in range(4)]  # fmt: skip
    (tmp_path / "0.txt").write_text("done before")
    with cf.ThreadPoolExecutor(2) as pool:  # stands in for a cluster engine's executor
        status = run_tasks(tasks, executor=pool, progress=False)
    assert status == {"t0": "skipped", "t1": "done", "t2": "done", "t3": "done"}
    assert (tmp_path / "0.txt").read_text() == "done before" and (tmp_path / "3.txt").read_text() == "9"


def test_a_failing_task_is_reported(tmp_path):
    with pytest.raises(RuntimeError, match="t0: failed"):
        run_tasks([Task("t0", _square, {"path": str(tmp_path / "x" / "y.txt"), "value": 1})], jobs=2, progress=False)


def test_analysis_on_structured_embeddings_matches_functions(tmp_path):
    rng = np.random.default_rng(1)
    Z = rng.normal(size=(80, 3))
    emb = {f"m{i}": ([f"s{j}" for j in range(80)], np.tanh(Z @ rng.normal(size=(3, 6 + i)))) for i in range(3)}
    s = run_analysis(tmp_path, emb, AnalysisSettings(ks_knn=(5, 100), ks_ii=(1,), idcor_permutations=0,
                                                     null_permutations=3, bootstrap=10, clip_quantile=None))  # fmt: skip
    assert s.ks_knn == (5,)  # k = 100 is impossible at N = 80 and is dropped, recorded in the settings
    t = collect_tables(tmp_path, "qm9")["pairwise"]
    row = t[(t.metric == "cknna") & (t.model_a == "m2") & (t.model_b == "m0")].iloc[0]
    assert row.value == pytest.approx(M.cknna(emb["m2"][1], emb["m0"][1], 5), abs=1e-12)
    assert t[t.metric == "idcor"].p_value.isna().all()  # no permutations: no p-value, never a made-up one


def test_samples_missing_from_one_model_are_dropped_for_all(tmp_path):
    rng = np.random.default_rng(2)
    X = rng.normal(size=(30, 4))
    emb = {"a": ([f"s{i}" for i in range(30)], X), "b": ([f"s{i}" for i in range(1, 30)], X[1:] + 1)}
    run_analysis(tmp_path, emb, AnalysisSettings(ks_knn=(3,), ks_ii=(1,), idcor_permutations=0, null_permutations=2,
                                                 bootstrap=5))  # fmt: skip
    meta = json.loads((tmp_path / "features" / "meta.json").read_text())
    assert meta["n_shared"] == 29 and meta["per_model"]["a"]["dropped"] == 1


def test_non_finite_embedding_is_named(tmp_path):
    X = np.ones((20, 3))
    X[4, 1] = np.nan
    with pytest.raises(ValueError, match="embedding of sample s4 is not finite"):
        run_analysis(tmp_path, {"a": ([f"s{i}" for i in range(20)], X), "b": ([f"s{i}" for i in range(20)], X)})


def test_trees_recover_two_clusters():
    names = ["a1", "a2", "b1", "b2"]
    S = np.array([[1, 0.9, 0.1, 0.1], [0.9, 1, 0.1, 0.1], [0.1, 0.1, 1, 0.8], [0.1, 0.1, 0.8, 1]])
    upgma = trees_from_similarity(names, S)["upgma"]
    assert "(a1:" in upgma.replace("(a2:", "(a1:") and ("a1" in upgma and "b2" in upgma)
    from io import StringIO

    from Bio import Phylo

    tree = Phylo.read(StringIO(upgma), "newick")
    assert tree.common_ancestor("a1", "a2") != tree.root and tree.common_ancestor("b1", "b2") != tree.root


def test_energy_mae_removes_per_element_references():
    rng = np.random.default_rng(3)
    counts = rng.integers(1, 6, size=(40, 3)).astype(float)
    label = counts @ np.array([-13.6, -1030.0, -1485.0]) + rng.normal(0, 0.01, 40)
    predicted = counts @ np.array([-3.0, -9.0, -8.0])  # a different reference, otherwise exact
    train = np.arange(40) < 20
    mae, n_test = energy_mae_per_atom(label, predicted, counts, train)
    assert n_test == 20 and mae < 0.01
    noisy = predicted + rng.normal(0, 1.0, 40)
    assert energy_mae_per_atom(label, noisy, counts, train)[0] > 10 * mae
    with pytest.raises(ValueError, match="sample 5"):
        energy_mae_per_atom(np.where(np.arange(40) == 5, np.nan, label), predicted, counts, train)


def test_pairwise_columns_follow_the_contract(mini_release):
    from precompute.release.schema import TABLES

    _, _, analysis = mini_release
    t = pd.read_parquet(analysis / "tables" / "pairwise.parquet")
    assert list(t.columns) == TABLES["pairwise"].column_names


def test_gride_is_not_reported_for_tied_distances_and_the_reason_is_kept(tmp_path):
    rng = np.random.default_rng(4)
    fp = (rng.random(size=(60, 12)) < 0.3).astype(float)  # a fingerprint-like binary code: many equal distances
    fp = np.unique(fp, axis=0)[:40]
    cont = rng.normal(size=(len(fp), 5))
    ids = [f"s{i}" for i in range(len(fp))]
    run_analysis(tmp_path, {"fp": (ids, fp), "cont": (ids, cont)},
                 AnalysisSettings(ks_knn=(3,), ks_ii=(1,), idcor_permutations=0, null_permutations=2, bootstrap=5,
                                  gride_n1=2))  # fmt: skip
    rec = json.loads((tmp_path / "models" / "fp.json").read_text())
    assert [r["estimator"] for r in rec["rows"]] == ["twonn"] and "ties" in rec["skipped"]
    t = collect_tables(tmp_path, "qm9")["intrinsic_dim"]
    assert set(t[t.model_id == "cont"].estimator) == {"twonn", "gride"}


def test_energy_table_matches_the_stored_predictions_and_labels(mini_release):
    """ani1x-m0 predicts energies: its MAE in the release equals energy_mae_per_atom recomputed from the stored
    predictions, QM9's U0 (hartree -> eV) and the split recorded in the manifest; models without an energy head
    have no row."""
    from ase.units import Hartree

    from precompute.analyze.energy import element_counts, train_split
    from precompute.datasets import load_dataset
    from precompute.extract.store import DatasetKey, EmbeddingStore

    r, _, analysis = mini_release
    e = r.query("select * from energy")
    assert list(e.model_id) == ["ani1x-m0"]
    info = r.manifest["settings"]["qm9"]["energy"]
    assert info["label"] == "energy_U0" and info["unit"] == "eV"
    ids = json.loads((analysis / "features" / "ids.json").read_text())
    by_id = {s.sample_id: s for s in load_dataset("qm9", n=N, seed=0)}
    samples = [by_id[i] for i in ids]
    stored = EmbeddingStore(analysis.parents[1] / "store").read(DatasetKey.build("qm9", N, 0), "ani1x-m0")
    pos = {s: i for i, s in enumerate(stored.ids)}
    pred = stored.energies[[pos[i] for i in ids]]
    label = np.array([s.labels["energy_U0"].value * Hartree for s in samples])
    train = train_split(len(ids), info["train_fraction"], info["seed"])
    assert int(train.sum()) == info["n_train"]
    mae, n_test = energy_mae_per_atom(label, pred, element_counts(samples)[0], train)
    assert e.mae_per_atom[0] == pytest.approx(mae, rel=1e-12) and e.n_test[0] == n_test == len(ids) - info["n_train"]
    # ANI-1x (wB97x) against QM9's B3LYP U0 after per-element references: tens of meV/atom, not eV
    assert 0.001 < mae < 0.1


def test_energy_table_units_and_missing_predictions():
    from ase import Atoms

    from precompute.analyze.energy import energy_table
    from precompute.datasets.base import Label, Sample

    rng = np.random.default_rng(0)
    samples, label = [], []
    for i in range(30):
        n_h, n_c = int(rng.integers(1, 6)), int(rng.integers(1, 4))
        e = -0.5 * n_h - 38.0 * n_c + rng.normal(0, 1e-3)  # hartree
        samples.append(Sample(f"x:{i}", atoms=Atoms("H" * n_h + "C" * n_c), labels={"energy_U0": Label(e, "hartree")}))
        label.append(e)
    ids = [s.sample_id for s in samples]
    pred_ev = np.array(label) * 27.211386245988 + 5.0 * np.array([len(s.atoms) for s in samples])  # offset per atom
    rows, info = energy_table("toy", samples, {"good": (ids, pred_ev)}, train_fraction=0.5, seed=0)
    assert info["label"] == "energy_U0" and rows[0]["mae_per_atom"] < 1e-6  # per-element offsets are fitted away
    with pytest.raises(ValueError, match="x:3"):
        energy_table("toy", samples, {"bad": (ids[:3] + ids[4:], np.delete(pred_ev, 3))}, train_fraction=0.5, seed=0)
    unlabeled = [Sample(s.sample_id, atoms=s.atoms, labels={"energy_chgnet": Label(1.0, "eV")}) for s in samples]
    assert energy_table("toy", unlabeled, {"good": (ids, pred_ev)}, train_fraction=0.5, seed=0) == ([], None)


def test_analyze_refuses_embeddings_of_different_dataset_contents(mini_release, tmp_path):
    """Embeddings carry the sha256 of the dataset content they were computed on; two models embedded on different
    contents under the same ids (e.g. a generated set regenerated differently in another environment) are refused."""
    import shutil

    from precompute.datasets import load_dataset
    from precompute.extract.store import sha256_samples

    _, _, analysis = mini_release
    store = tmp_path / "store"
    shutil.copytree(analysis.parents[1] / "store", store)
    folder = store / f"qm9_n{N}_seed0"
    meta = json.loads((folder / "morgan-fp.json").read_text())
    assert meta["dataset_sha256"] == sha256_samples(load_dataset("qm9", n=N, seed=0))
    meta["dataset_sha256"] = "0" * 64
    (folder / "morgan-fp.json").write_text(json.dumps(meta))
    proc = subprocess.run([sys.executable, "-m", "precompute.cli", "analyze", "--dataset", "qm9", "--n", str(N),
                           "--seed", "0", "--store", str(store), "--work", str(tmp_path / "work"), *SETTINGS],
                          capture_output=True, text=True, cwd=ROOT, timeout=600)  # fmt: skip
    assert proc.returncode == 2 and "different contents" in proc.stderr and "morgan-fp" in proc.stderr, proc.stderr


def test_release_neighbours_reproduce_mutual_knn(mini_release):
    """The neighbours table (top-25 cosine neighbours per model at this N) reproduces every mutual kNN value at
    k <= 25."""
    r, emb, _ = mini_release
    nb = r.query("select model_id, position, rank, neighbour from neighbours where dataset_id = 'qm9'")
    assert set(nb.model_id) == set(MODELS) and nb["rank"].max() == 25
    lists = {
        m: g.sort_values(["position", "rank"]).neighbour.to_numpy().reshape(-1, 25) for m, g in nb.groupby("model_id")
    }
    pw = r.query("select model_a, model_b, k, value from pairwise where metric = 'mutual_knn' and k <= 25")
    assert len(pw) > 0
    for row in pw.itertuples():
        a, b = lists[row.model_a][:, : row.k], lists[row.model_b][:, : row.k]
        value = np.mean([len(set(x) & set(y)) / row.k for x, y in zip(a, b, strict=True)])
        assert value == pytest.approx(row.value, abs=1e-12), row


def test_cli_settings_options_reach_the_settings_and_help_quotes_the_live_defaults():
    import argparse

    from precompute import cli_analyze

    p = argparse.ArgumentParser()
    cli_analyze.add_arguments(p)
    args = p.parse_args(
        ["--dataset", "qm9", "--resamples", "7", "--null-permutations", "0", "--idcor-permutations", "3"]
    )
    s = cli_analyze.settings_from_args(args)
    assert (s.resamples, s.null_permutations, s.idcor_permutations) == (7, 0, 3)
    dflt = AnalysisSettings()
    assert cli_analyze.settings_from_args(p.parse_args(["--dataset", "qm9"])).resamples == dflt.resamples
    help_text = " ".join(p.format_help().split())
    assert f"(default {dflt.null_permutations})" in help_text and f"(default {dflt.resamples})" in help_text
