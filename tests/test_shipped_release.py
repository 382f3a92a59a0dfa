"""The release shipped in data/releases: it opens (every sha256, row count and type verified), its tables follow
the schema, every model's source is labelled, generated data is labelled generated, and derived tables can be
recomputed from the shipped pairwise values."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from backend import Release
from backend import queries as q
from precompute.analyze.trees import trees_from_similarity
from precompute.release.schema import TABLES
from precompute.release.validation import validate_table

ROOT = Path(__file__).resolve().parents[1] / "data" / "releases"


@pytest.fixture(scope="module")
def shipped():
    latest = (ROOT / "latest").read_text().strip()
    return Release.open(ROOT / latest)


def test_opens_verified_and_every_table_follows_the_schema(shipped):
    for name in shipped.manifest["tables"]:
        validate_table(name, shipped.query(f"select * from {name}"))  # noqa: S608 - names from the manifest's fixed list
        assert name in TABLES


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
