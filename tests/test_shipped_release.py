"""The releases shipped in data/releases: each opens (every sha256, row count and type verified) and its tables follow
the schema; on `latest`, every model's source is labelled, generated data is labelled generated, and derived tables
can be recomputed from the shipped pairwise values; on every shipped release with calibration and scoring data
(issue 18.4), CKNNA recomputed from the shipped lists equals the pairwise table, and every pairwise row carries its
null, calibrated value and interval."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from backend import Release
from backend import queries as q
from backend.release import list_releases
from precompute.analyze.trees import trees_from_similarity
from precompute.release.schema import TABLES
from precompute.release.validation import validate_table

ROOT = Path(__file__).resolve().parents[1] / "data" / "releases"


RELEASES = list_releases(ROOT)
# the shipped releases written with calibration and scoring data (issue 18): the new tables' tests run on these
SCORING_TABLES = {"pairwise_null", "pairwise_calibration", "neighbour_similarity", "neighbours_euclidean", "samples"}
CALIBRATED = [
    r for r in RELEASES if SCORING_TABLES <= set(json.loads((ROOT / r / "manifest.json").read_text())["tables"])
]


@pytest.fixture(scope="module")
def shipped():
    latest = (ROOT / "latest").read_text().strip()
    return Release.open(ROOT / latest)


@pytest.fixture(scope="module", params=CALIBRATED)
def calibrated(request):
    return Release.open(ROOT / request.param)


@pytest.mark.parametrize("release_id", RELEASES)
def test_opens_verified_and_every_table_follows_the_schema(release_id):
    release = Release.open(ROOT / release_id)
    for name in release.manifest["tables"]:
        validate_table(name, release.query(f"select * from {name}"))  # noqa: S608 - names from the manifest's fixed list
        assert name in TABLES


def test_a_shipped_release_carries_calibration_and_scoring_data():
    assert CALIBRATED, f"no release under {ROOT} has the tables {sorted(SCORING_TABLES)}"


def test_every_model_source_and_dataset_origin_is_labelled(shipped):
    models = q.list_models(shipped)
    assert set(models.source) <= {"pretrained", "random_init", "trained_here", "descriptor"}
    assert (models.source == "descriptor").sum() >= 2 and (models.source == "pretrained").sum() >= 10
    ds = q.list_datasets(shipped).set_index("dataset_id")
    assert ds.at["qm9", "origin"] == "real" and ds.at["offeq-molecules", "origin"] == "generated"
    assert "generated" in ds.at["offeq-molecules", "display_name"].lower()


def test_provenance_in_the_manifest(shipped):
    m = shipped.manifest
    emb = [i for i in m["inputs"] if i.get("sha256") and "/" in i["name"]]
    analysed = shipped.query("select count(*) as c from intrinsic_dim where estimator = 'twonn'")["c"][0]
    assert len(emb) == analysed  # one checksummed embedding input per (dataset, model)
    assert all(len(i["sha256"]) == 64 for i in emb)
    assert m["settings"]["qm9"]["clip_quantile"] == 0.95 and m["code_version"]


@pytest.mark.parametrize("dataset", ["qm9", "offeq-molecules", "pdb"])
def test_trees_recomputed_from_the_shipped_cknna(shipped, dataset):
    k = shipped.manifest["settings"][dataset]["tree_k"]
    mat = q.matrix(shipped, dataset, "cknna", k, order="family").matrix
    names = sorted(mat.index)
    S = mat.reindex(index=names, columns=names).to_numpy(dtype=float, copy=True)
    np.fill_diagonal(S, 1.0)
    recomputed = trees_from_similarity(names, S)
    for method in ("nj", "upgma"):  # the same tree: the same leaf-to-leaf path lengths (leaf order may differ)
        shipped_tree = _leaf_distances(q.tree(shipped, dataset, "cknna", k, method), names)
        assert np.allclose(shipped_tree, _leaf_distances(recomputed[method], names), atol=1e-6)


def _leaf_distances(newick: str, names: list[str]) -> np.ndarray:
    from io import StringIO

    from Bio import Phylo

    tree = Phylo.read(StringIO(newick), "newick")
    return np.array([[tree.distance(a, b) if a != b else 0.0 for b in names] for a in names])


def test_cknna_exceeds_its_permutation_null(shipped):
    null = q.pairwise_null(shipped, "qm9", "cknna", 10)
    assert len(null) > 0 and (null.value > null.null_q95).mean() > 0.9


def _mutual_knn_from_neighbours(release, dataset: str, a: str, b: str, k: int) -> float:
    """mutual kNN at k recomputed from the shipped neighbour lists: mean over samples of |N_a(i) & N_b(i)| / k."""
    sql = ("select position, list(neighbour order by rank) as nb from neighbours "
           "where dataset_id = ? and model_id = ? and rank <= ? group by position order by position")  # fmt: skip
    na = release.query(sql, [dataset, a, k])
    nb = release.query(sql, [dataset, b, k])
    assert list(na.position) == list(nb.position) and len(na) > 0
    return float(np.mean([len(set(x) & set(y)) / k for x, y in zip(na.nb, nb.nb, strict=True)]))


@pytest.mark.parametrize("dataset", ["qm9", "crystals", "offeq-molecules", "pdb"])
def test_mutual_knn_recomputed_from_the_shipped_neighbours(shipped, dataset):
    """A pairwise value recomputed from shipped data: mutual kNN at k = 10 of the first pairs of each dataset,
    from the neighbours table alone, equals the pairwise table."""
    pw = shipped.query("select model_a, model_b, value from pairwise where dataset_id = ? and metric = 'mutual_knn' "
                       "and k = 10 order by model_a, model_b limit 3", [dataset])  # fmt: skip
    assert len(pw) == 3
    for r in pw.itertuples():
        assert _mutual_knn_from_neighbours(shipped, dataset, r.model_a, r.model_b, 10) == pytest.approx(
            r.value, abs=1e-12
        )


# ------------------------------------------------------------------ the rebuilt release's new tables (issue 18.4)
def _cknna_from_shipped_lists(release, dataset: str, a: str, b: str, k: int) -> tuple[float, float]:
    """CKNNA(a, b) and CKNNA(b, a) at k from the shipped cosine lists and their similarities alone (the scoring data)."""
    from backend.scoring.zoo import zoo_lists
    from precompute.metrics.cknna import cknna_from_caches
    from precompute.metrics.neighbours import NeighbourCache

    n = int(release.query("select count(*) as c from samples where dataset_id = ?", [dataset])["c"][0])
    zoo = zoo_lists(release, dataset, n)
    ca, cb = (NeighbourCache(zoo[m].cosine_indices, zoo[m].cosine_similarity, "cosine", {}) for m in (a, b))
    return cknna_from_caches(ca, cb, k), cknna_from_caches(cb, ca, k)


def _datasets(release) -> list[str]:
    return list(q.list_datasets(release).dataset_id)


def test_scoring_data_reproduces_shipped_cknna(calibrated):
    """For two pairs per dataset, CKNNA at k = 10 (both orders) recomputed from the `neighbours` and
    `neighbour_similarity` tables equals the `pairwise` table: what `matter-align score` relies on."""
    for dataset in _datasets(calibrated):
        pw = calibrated.query("select model_a, model_b, value from pairwise where dataset_id = ? and metric = 'cknna' "
                           "and k = 10 and model_a < model_b order by model_a, model_b limit 2", [dataset])  # fmt: skip
        assert len(pw) == 2, dataset
        for r in pw.itertuples():
            ab, ba = _cknna_from_shipped_lists(calibrated, dataset, r.model_a, r.model_b, 10)
            back = calibrated.query("select value from pairwise where dataset_id = ? and metric = 'cknna' and k = 10 "
                                 "and model_a = ? and model_b = ?", [dataset, r.model_b, r.model_a])  # fmt: skip
            assert ab == pytest.approx(r.value, abs=1e-6) and ba == pytest.approx(back.value[0], abs=1e-6)


def test_every_pairwise_row_has_a_null_a_calibrated_value_and_an_interval(calibrated):
    """Every pairwise row of every dataset carries its null, its calibrated value and a CI, consistently:
    the CI holds the value, p is not below 1/(P+1) for permutation nulls, calibrated is 0 exactly when the value is
    not beyond its critical value, and the null's 95th percentile lies on the aligned side of its mean."""
    rows = calibrated.query(
        "select p.dataset_id, p.metric, p.k, p.model_a, p.model_b, p.value, p.ci_low, p.ci_high, z.null_mean, "
        "z.null_q95, c.calibrated, c.tau, c.p_value, c.n_permutations from pairwise p "
        "left join pairwise_null z on z.dataset_id = p.dataset_id and z.metric = p.metric and z.model_a = p.model_a "
        "and z.model_b = p.model_b and z.k is not distinct from p.k "  # k is null for CKA and IDCor
        "left join pairwise_calibration c on c.dataset_id = p.dataset_id and c.metric = p.metric "
        "and c.model_a = p.model_a and c.model_b = p.model_b and c.k is not distinct from p.k"
    )
    assert len(rows) > 1000
    missing = rows[rows[["ci_low", "ci_high", "null_mean", "calibrated", "tau", "p_value"]].isna().any(axis=1)]
    assert missing.empty, missing.groupby(["dataset_id", "metric"]).size().to_dict()
    assert ((rows.ci_low <= rows.value + 1e-12) & (rows.value <= rows.ci_high + 1e-12)).mean() > 0.99
    perm = rows[rows.n_permutations > 0]
    assert (perm.p_value >= 1.0 / (perm.n_permutations + 1) - 1e-12).all()
    lower = rows.metric == "info_imbalance"
    beyond = np.where(lower, rows.value < rows.tau, rows.value > rows.tau)
    assert ((rows.calibrated > 0) == beyond).all()
    assert (np.where(lower, rows.null_q95 <= rows.null_mean, rows.null_q95 >= rows.null_mean)).all()


def test_every_dataset_ships_its_samples_and_scoring_lists(calibrated):
    """Each dataset's samples (one per analysed position) and every model's cosine and Euclidean lists."""
    for dataset in _datasets(calibrated):
        n = calibrated.query("select count(*) as c, max(position) as m from samples where dataset_id = ?", [dataset])
        assert n.c[0] == n.m[0] + 1 > 0, dataset
        models = set(calibrated.query("select model_id from intrinsic_dim where dataset_id = ? and estimator = 'twonn'",
                                   [dataset]).model_id)  # fmt: skip
        for table in ("neighbours", "neighbour_similarity", "neighbours_euclidean"):
            got = set(
                calibrated.query(f"select distinct model_id from {table} where dataset_id = ?", [dataset]).model_id
            )  # noqa: S608 - fixed names
            assert got == models, (dataset, table)


def test_data_folder_is_under_100_mb():
    total = sum(p.stat().st_size for p in ROOT.parent.rglob("*") if p.is_file())
    assert total < 100 * 2**20, f"data/ holds {total / 2**20:.1f} MB"
