"""Score your own model (issue 13): a zoo model's own embeddings, scored against a release as if new, reproduce the
release's values; permuted rows score at null level; every bad file gets its message."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from backend import Release
from backend.scoring import ScoringInputError, read_embeddings, score_embeddings

ROOT = Path(__file__).resolve().parents[1]
MODELS = ["morgan-fp", "coulomb-spectrum", "ani1x-m0"]
N = 120


def _cli(*args: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "precompute.cli", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=900)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]


@pytest.fixture(scope="module")
def scored_release(tmp_path_factory):
    """A real release (QM9 molecules, three offline models) and each model's analysed embedding rows."""
    tmp = tmp_path_factory.mktemp("score")
    store, work, out = tmp / "store", tmp / "work", tmp / "releases"
    _cli("extract", "--dataset", "qm9", "--n", str(N), "--seed", "0", "--models", ",".join(MODELS),
         "--store", str(store))  # fmt: skip
    _cli("analyze", "--dataset", "qm9", "--n", str(N), "--seed", "0", "--store", str(store), "--work", str(work),
         "--jobs", "1", "--ks", "5,10,25", "--ks-ii", "1,5,25", "--idcor-n", "60", "--idcor-permutations", "2",
         "--null-permutations", "3", "--bootstrap", "10")  # fmt: skip
    analysis = work / f"qm9_n{N}_seed0"
    _cli("release", "--analyses", str(analysis), "--out", str(out))
    feats = {m: np.load(analysis / "features" / f"{m}.npy") for m in MODELS}
    return Release.open(out / (out / "latest").read_text().strip()), feats


def test_a_release_model_scored_as_new_reproduces_its_release_values(scored_release):
    release, feats = scored_release
    pw = release.query("SELECT metric, k, model_a, model_b, value FROM pairwise WHERE dataset_id = 'qm9'")
    look = {(r.metric, None if pd.isna(r.k) else int(r.k), r.model_a, r.model_b): r.value for r in pw.itertuples()}
    checked = 0
    for m in MODELS:
        others = [z for z in MODELS if z != m]
        res = score_embeddings(release, "qm9", feats[m], "mine", models=others, permutations=0)
        assert res.ks_knn == (5, 10, 25) and res.ks_ii == (1, 5)
        for r in res.table.dropna(subset=["value"]).itertuples():
            key = (r.metric, int(r.k), m if r.model_a == "mine" else r.model_a, m if r.model_b == "mine" else r.model_b)
            if key not in look and r.metric == "mutual_knn":  # stored once per unordered pair
                key = (r.metric, int(r.k), key[3], key[2])
            assert r.value == pytest.approx(look[key], abs=1e-6), (key, r.value, look[key])
            checked += 1
    assert checked == 3 * 2 * (3 * 3 + 2)  # 3 models x 2 others x (3 k x (2 CKNNA + mutual) + 2 II)


def test_a_release_model_scored_as_new_gets_the_analysis_intervals(scored_release):
    """The half-sampling CIs of a zoo model's rows, from the release's lists alone (neighbours + neighbours_deep),
    equal the analysis' CIs of that model at every k the release makes scorable (N = 120: k <= 10); the other k
    have none and say why."""
    release, feats = scored_release
    pw = release.query("SELECT metric, k, model_a, model_b, ci_low, ci_high FROM pairwise WHERE dataset_id = 'qm9' "
                       "AND ci_low IS NOT NULL AND metric IN ('cknna', 'mutual_knn', 'info_imbalance')")  # fmt: skip
    look = {(r.metric, int(r.k), r.model_a, r.model_b): (r.ci_low, r.ci_high) for r in pw.itertuples()}
    assert release.query("SELECT count(*) AS n FROM neighbours_deep").n.iloc[0] > 0
    assert release.query("SELECT count(*) AS n FROM neighbours_euclidean_deep").n.iloc[0] > 0
    checked = 0
    for m in MODELS:
        others = [z for z in MODELS if z != m]
        t = score_embeddings(release, "qm9", feats[m], "mine", models=others, permutations=0).table
        knn = t[t.metric.isin(["cknna", "mutual_knn"])]
        assert knn[knn.k == 25].ci_low.isna().all() and knn[knn.k == 25].note.str.contains("k <= 10").all()
        for r in knn[knn.k <= 10].itertuples():
            key = (r.metric, int(r.k), m if r.model_a == "mine" else r.model_a, m if r.model_b == "mine" else r.model_b)
            if key not in look:  # mutual kNN is stored once per unordered pair
                key = (r.metric, int(r.k), key[3], key[2])
            assert (r.ci_low, r.ci_high) == pytest.approx(look[key], abs=1e-6), (key, r.ci_low, r.ci_high, look[key])
            checked += 1
        # information imbalance other -> m: the analysis' interval, from neighbours_euclidean_deep and m's own rows
        for r in t[(t.metric == "info_imbalance") & t.k.notna()].itertuples():
            key = ("info_imbalance", int(r.k), r.model_a, m)
            assert r.ci_low < r.ci_high and pd.isna(r.note), (key, r.note)
            assert (r.ci_low, r.ci_high) == pytest.approx(look[key], abs=1e-6), (key, r.ci_low, r.ci_high, look[key])
            checked += 1
    assert checked == 3 * 2 * 2 * 3 + 3 * 2 * 2  # 3 models x 2 others x 2 k x (2 CKNNA + mutual, + II)
    from backend.scoring import ranked

    rk = ranked(release, score_embeddings(release, "qm9", feats["ani1x-m0"], "x", permutations=0), 5)
    assert rk.cknna_ci_low.notna().all() and (rk.cknna_ci_low <= rk.cknna_ci_high).all()
    assert rk.tie_group.iloc[0] == 1 and rk.tie_group.is_monotonic_increasing  # overlapping intervals share a group


def test_a_release_without_euclidean_deep_lists_says_why_ii_has_no_interval(scored_release, monkeypatch):
    import backend.scoring.compute as compute

    release, feats = scored_release
    monkeypatch.setattr(compute, "deep_euclidean_lists", lambda *a: {})  # as a release before 2026-12-04
    t = score_embeddings(release, "qm9", feats["ani1x-m0"], "x", models=["morgan-fp"], permutations=0).table
    ii = t[(t.metric == "info_imbalance") & t.value.notna()]
    assert len(ii) == 2 and ii.ci_low.isna().all() and ii.note.str.contains("neighbours_euclidean_deep").all()
    assert t[t.metric == "cknna"].ci_low.notna().any()  # the kNN intervals are unaffected


def test_imbalance_intervals_switch_skips_only_the_information_imbalance_intervals(scored_release):
    """imbalance_intervals=False (the dashboard's default) leaves every value and every kNN interval as it was and
    gives the II rows no interval, with a note saying it was not asked for."""
    release, feats = scored_release
    full = score_embeddings(release, "qm9", feats["ani1x-m0"], "x", models=["morgan-fp"], permutations=0).table
    part = score_embeddings(release, "qm9", feats["ani1x-m0"], "x", models=["morgan-fp"], permutations=0,
                            imbalance_intervals=False).table  # fmt: skip
    ii = (part.metric == "info_imbalance") & part.value.notna()
    assert ii.sum() == 2 and part[ii].ci_low.isna().all() and full[ii].ci_low.notna().all()
    assert part[ii].note.str.contains("imbalance_intervals=False").all()
    pd.testing.assert_frame_equal(part[~ii], full[~ii])
    pd.testing.assert_series_equal(part.value, full.value)


def test_rows_given_by_sample_id_in_any_order_give_the_same_scores(scored_release):
    release, feats = scored_release
    ids = release.query("SELECT sample_id FROM samples WHERE dataset_id = 'qm9' ORDER BY position").sample_id.tolist()
    perm = np.random.default_rng(1).permutation(len(ids))
    a = score_embeddings(release, "qm9", feats["ani1x-m0"], "x", models=["morgan-fp"], permutations=0).table
    b = score_embeddings(release, "qm9", feats["ani1x-m0"][perm], "x", sample_ids=[ids[i] for i in perm],
                         models=["morgan-fp"], permutations=0).table  # fmt: skip
    pd.testing.assert_frame_equal(a, b)


def test_permuted_rows_score_at_null_level_and_real_rows_above_it(scored_release):
    release, feats = scored_release
    X = feats["coulomb-spectrum"]
    real = score_embeddings(release, "qm9", X, "x", models=["ani1x-m0"], permutations=30, seed=3).table
    n = X.shape[0]  # the analysed samples: every model embedded them (one QM9 molecule fails for some models)
    shuffled = X[np.random.default_rng(0).permutation(n)]
    null = score_embeddings(release, "qm9", shuffled, "x", models=["ani1x-m0"], permutations=30, seed=3).table
    for t in (real, null):
        assert t.loc[t.metric.isin(["cknna", "mutual_knn"]), "n_permutations"].eq(30).all()
    ck = lambda t: t[(t.metric == "cknna") & (t.k == 10) & (t.model_a == "x")].iloc[0]  # noqa: E731
    assert ck(real).value > ck(real).null_q95 and ck(real).p_value == pytest.approx(1 / 31)
    # CKNNA's null is far from 0 at this N (the inflation calibration corrects): judge against the null itself
    z = lambda r: (r.value - r.null_mean) / r.null_std  # noqa: E731
    assert abs(z(ck(null))) < 3 < z(ck(real))
    assert ck(real).calibrated > 0 and ck(null).calibrated == 0.0  # calibrated: 0 unless above the critical value
    ii = lambda t: t[(t.metric == "info_imbalance") & (t.k == 1)].iloc[0]  # noqa: E731
    assert ii(real).n_permutations == 30 and ii(null).null_mean == pytest.approx(1.0, abs=0.05)  # E[Δ] = 1 (no ties)
    assert ii(real).value < ii(real).null_q95 and ii(real).p_value == pytest.approx(1 / 31)  # lower = more aligned
    mk = null[(null.metric == "mutual_knn") & (null.k == 10)].iloc[0]
    assert mk.null_mean == pytest.approx(10 / (n - 1), rel=0.5)  # the null's mean is near k / (N - 1)


def test_metrics_a_release_cannot_score_say_so(scored_release):
    release, feats = scored_release
    t = score_embeddings(release, "qm9", feats["ani1x-m0"], "x", permutations=0).table
    notes = t[t.value.isna()]
    assert set(notes.metric) == {"cka", "cka_unbiased", "idcor", "info_imbalance"}
    assert notes.note.str.contains("embeddings|distances").all()
    scored = t.dropna(subset=["value"])
    assert scored[scored.ci_low.notna()].note.isna().all()  # a value without an interval says why
    assert scored[scored.ci_low.isna()].note.str.startswith("no interval").all()


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda X, ids: X[:-1], r"\d+ rows, but dataset 'qm9' has \d+ samples"),
        (lambda X, ids: np.where(np.arange(X.size).reshape(X.shape) == 7, np.nan, X), r"sample 'qm9:\d+'.*feature 7"),
        (lambda X, ids: np.ones_like(X), "every row is identical"),
    ],
)
def test_bad_arrays_are_named(scored_release, make, match):
    release, feats = scored_release
    X = feats["ani1x-m0"]
    with pytest.raises(ScoringInputError, match=match):
        score_embeddings(release, "qm9", make(X, None), "x", permutations=0)


def test_bad_sample_ids_are_named(scored_release):
    release, feats = scored_release
    ids = release.query("SELECT sample_id FROM samples WHERE dataset_id = 'qm9' ORDER BY position").sample_id.tolist()
    X = feats["ani1x-m0"]
    with pytest.raises(ScoringInputError, match="row 3: sample id 'qm9:nope'"):
        score_embeddings(release, "qm9", X, "x", sample_ids=ids[:3] + ["qm9:nope"] + ids[4:])
    with pytest.raises(ScoringInputError, match=f"rows 0 and 1 both give sample {ids[0]!r}"):
        score_embeddings(release, "qm9", X, "x", sample_ids=[ids[0]] + ids[:-1])
    with pytest.raises(ScoringInputError, match="already a model of the release"):
        score_embeddings(release, "qm9", X, "ani1x-m0")


def test_file_formats_read_without_pickle(tmp_path):
    X = np.random.default_rng(0).normal(size=(5, 3))
    ids = [f"s{i}" for i in range(5)]
    np.save(tmp_path / "a.npy", X)
    np.savez(tmp_path / "b.npz", embeddings=X, sample_id=np.array(ids))
    pd.DataFrame(X, columns=list("abc")).assign(sample_id=ids).to_parquet(tmp_path / "c.parquet")
    pd.DataFrame(X, columns=list("abc")).assign(sample_id=ids).to_csv(tmp_path / "d.csv", index=False)
    assert np.array_equal(read_embeddings(tmp_path / "a.npy")[0], X)
    for f in ("b.npz", "c.parquet", "d.csv"):
        got, got_ids = read_embeddings(tmp_path / f)
        assert np.allclose(got, X, rtol=1e-15) and got_ids == ids, f
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    bad = {
        "obj.npy": "not a readable .npy file",
        "e.npy": "the file is empty",
        "x.pkl": "unsupported format",
        "t.csv": "column 'b' is not numeric \\(row 1: 'oops'\\)",
        "v.npy": "shape \\(5,\\)",
        "m.npz": "name the embedding array 'embeddings'",
    }
    (tmp_path / "e.npy").write_bytes(b"")
    (tmp_path / "x.pkl").write_bytes(b"\x80\x04.")
    (tmp_path / "t.csv").write_text("a,b\n1,2\n3,oops\n")
    np.save(tmp_path / "v.npy", X[:, 0])
    np.savez(tmp_path / "m.npz", one=X, two=X)
    for f, match in bad.items():
        with pytest.raises(ScoringInputError, match=match):
            read_embeddings(tmp_path / f)
    with pytest.raises(ScoringInputError, match="r.csv: not a readable .csv"):
        read_embeddings(b"\xff\xfe\x00garbage", name="r.csv")
    from_bytes, _ = read_embeddings((tmp_path / "a.npy").read_bytes(), name="upload.npy")  # the dashboard's path
    assert np.array_equal(from_bytes, X)


def test_score_command_writes_the_table_and_derives_a_release(scored_release, tmp_path):
    release, feats = scored_release
    np.save(tmp_path / "mine.npy", feats["ani1x-m0"])
    before = {p.name: p.read_bytes() for p in release.path.iterdir()}
    proc = subprocess.run(
        [sys.executable, "-m", "precompute.cli", "score", "--release", str(release.path), "--dataset", "qm9",
         "--embeddings", str(tmp_path / "mine.npy"), "--name", "My Model", "--out", str(tmp_path / "s.csv"),
         "--permutations", "5", "--derive", str(tmp_path / "derived")],
        capture_output=True, text=True, cwd=ROOT, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "my-model on qm9" in proc.stdout and "nearest release models by CKNNA at k = 10" in proc.stdout
    assert "not computable from a release" in proc.stdout
    assert "95% half-sampling intervals (equal to the analysis'): CKNNA and mutual kNN at k = [5, 10]" in proc.stdout
    table = pd.read_csv(tmp_path / "s.csv")
    assert {"value", "null_mean", "p_value", "note"} <= set(table.columns)
    # the ani1x-m0 rows of the score equal its self-pair: CKNNA of a model with itself is 1
    self_rows = table[(table.metric == "cknna") & (table.model_b == "ani1x-m0")]
    assert np.allclose(self_rows.value, 1.0, atol=1e-6)
    assert {p.name: p.read_bytes() for p in release.path.iterdir()} == before  # the parent is untouched
    derived = [p for p in (tmp_path / "derived").iterdir() if p.is_dir()]
    assert len(derived) == 1
    d = Release.open(derived[0])
    assert d.manifest["parent_release"] == release.release_id
    assert d.manifest["derived"]["upload_sha256"] == __import__("hashlib").sha256(
        (tmp_path / "mine.npy").read_bytes()).hexdigest()  # fmt: skip
    m = d.query("SELECT source, embedding_dim FROM models WHERE model_id = 'my-model'")
    assert m.source.tolist() == ["user"] and m.embedding_dim.tolist() == [feats["ani1x-m0"].shape[1]]
    pw = d.query("SELECT * FROM pairwise WHERE model_a = 'my-model' AND metric = 'cknna' AND k = 10")
    assert len(pw) == 3
    # the derived release can be scored against in turn: its lists for my-model reproduce the scored values
    again = score_embeddings(d, "qm9", feats["coulomb-spectrum"], "x", models=["my-model"], permutations=0).table
    ref = score_embeddings(release, "qm9", feats["coulomb-spectrum"], "x", models=["ani1x-m0"], permutations=0).table
    assert np.allclose(again.dropna(subset=["value"]).value, ref.dropna(subset=["value"]).value, atol=1e-6)
    # ... and its neighbours_deep and neighbours_euclidean_deep rows give my-model the intervals ani1x-m0 gets
    ci = lambda t: t.dropna(subset=["ci_low"])[["ci_low", "ci_high"]].to_numpy(float)  # noqa: E731
    assert len(ci(ref)) == 8 and np.allclose(ci(again), ci(ref), atol=1e-6)  # + II at k = 1, 5
    assert d.query("SELECT count(*) AS n FROM intrinsic_dim WHERE model_id = 'my-model'").n.iloc[0] == 1
    trees = d.query("SELECT newick FROM trees WHERE dataset_id = 'qm9'").newick
    assert len(trees) == 2 and trees.str.contains("my-model").all()  # rebuilt with the user's model (k = 25 scored)


def test_scores_equal_the_dense_restatement_of_the_fixture_release(tmp_path):
    """tests/_release_fixture.py computes CKNNA, mutual kNN and II with the slow dense formulas of DESIGN.md; the
    scores of its models' embeddings, computed from the shipped lists only, equal them."""
    from tests._release_fixture import embeddings, write_test_release

    release = Release.open(write_test_release(tmp_path))
    emb = embeddings()
    pw = release.query("SELECT dataset_id, metric, k, model_a, model_b, value FROM pairwise")
    look = {(r.dataset_id, r.metric, r.k, r.model_a, r.model_b): r.value for r in pw.itertuples()}
    n_checked, seen = 0, set()
    for ds, models in emb.items():
        for m, X in models.items():
            t = score_embeddings(release, ds, X, "me", models=[z for z in models if z != m], permutations=0).table
            for r in t.dropna(subset=["value"]).itertuples():
                key = (ds, r.metric, r.k, m if r.model_a == "me" else r.model_a, m if r.model_b == "me" else r.model_b)
                if key not in look:
                    key = (ds, r.metric, r.k, key[4], key[3])  # symmetric metrics are stored once
                if key in look:
                    assert r.value == pytest.approx(look[key], abs=1e-6), key
                    n_checked += 1
                    seen.add(r.metric)
    assert n_checked > 100 and seen == {"cknna", "mutual_knn", "info_imbalance"}, seen


def test_samples_are_written_in_the_fields_formats_in_release_order(scored_release, tmp_path):
    """extxyz frames read back with ASE carry the sample ids in release order and the analysed molecules' atoms;
    the CSV carries SMILES and SELFIES; a format the dataset lacks is a named error."""
    import ase.io

    from backend.scoring import sample_formats, samples_file

    release, _ = scored_release
    assert sample_formats(release, "qm9") == ["extxyz", "csv"]
    ids = release.query("SELECT sample_id, n_atoms FROM samples WHERE dataset_id = 'qm9' ORDER BY position")
    path = tmp_path / "qm9.extxyz"
    proc = subprocess.run([sys.executable, "-m", "precompute.cli", "samples", "--release", str(release.path),
                           "--dataset", "qm9", "--format", "extxyz", "--out", str(path)],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    frames = ase.io.read(path, index=":", format="extxyz")
    assert [f.info["sample_id"] for f in frames] == ids.sample_id.tolist()
    assert [len(f) for f in frames] == ids.n_atoms.tolist()
    csv = pd.read_csv(io.BytesIO(samples_file(release, "qm9", "csv")))
    assert csv.sample_id.tolist() == ids.sample_id.tolist() and csv.selfies.str.startswith("[").all()
    with pytest.raises(ValueError, match="holds no fasta"):
        samples_file(release, "qm9", "fasta")


def test_fasta_of_protein_chains_names_each_chain(tmp_path):
    from backend.scoring import sample_formats, samples_file
    from precompute.release.writer import write_release
    from tests._release_fixture import MANIFEST_EXTRA, build_tables

    tables = build_tables()
    st = tables["sample_structures"]
    ds = st.dataset_id.iloc[0]
    mask = st.dataset_id == ds
    st.loc[mask, "sequence"] = ["MKV" + "A" * (i % 7) for i in range(int(mask.sum()))]
    release = Release.open(write_release(tables, MANIFEST_EXTRA, tmp_path))
    assert "fasta" in sample_formats(release, ds)
    text = samples_file(release, ds, "fasta").decode()
    records = text.strip().split("\n")
    assert records[0] == f">{st.sample_id.iloc[0]}" and records[1] == "MKV"
    assert len(records) == 2 * int(mask.sum())


def test_a_derived_release_opens_on_every_dashboard_page(scored_release, tmp_path, monkeypatch):
    """source 'user' has a label and a tag: the compare and model-card pages of a derived release do not fail."""
    from streamlit.testing.v1 import AppTest

    from backend.scoring import score_embeddings as score
    from precompute.release.derive import derive_release

    release, feats = scored_release
    res = score(release, "qm9", feats["ani1x-m0"], "mine", permutations=3)
    folder = derive_release(release, res, tmp_path, upload_sha256="0" * 64, modality="structure")
    (tmp_path / "latest").write_text(folder.name)
    monkeypatch.setenv("MATTER_ALIGN_RELEASES", str(tmp_path))
    for page, params in (("model_cards", {"model": "mine"}), ("compare", {"model_a": "mine", "dataset": "qm9"}),
                         ("overview", {})):  # fmt: skip
        at = AppTest.from_file(str(ROOT / "app" / "main.py"), default_timeout=60)
        for k, v in params.items():
            at.query_params[k] = v
        if page != "overview":
            at.switch_page(f"pages_/{page}.py")
        at.run()
        assert not at.exception, (page, [e.message for e in at.exception])
