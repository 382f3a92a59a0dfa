"""A small, honest release for tests: every number is computed here with NumPy from seeded random embeddings.

Five models of three families embed two datasets (N = 60): each model is a random linear map of a shared latent
plus model-specific noise, one model is pure noise. `build_tables(report_models=True)` adds REPORT_MODELS (a
trained-here MACE grid named mace-qm9-n{N}-c{C} and a second pretrained structure model) for backend.report's tests;
their embeddings come from a separate seeded generator, so the five models' numbers are the same either way. The metrics are dense restatements of the formulas in
../shared/DESIGN.md (slow, fine at N = 60); nothing is typed by hand. Never writes under data/.
"""

from __future__ import annotations

from io import StringIO
from pathlib import Path

import numpy as np
import pandas as pd

N = 60
K_CKNNA = (5, 10)
K_II = (1, 5)

MODELS = [
    # model_id, family, modality, input_kind, training_sets, source, noise
    ("mace_a", "MACE", "structure", "molecule", ["mptrj"], "pretrained", 0.1),
    ("mace_b", "MACE", "structure", "molecule", ["omat24"], "random_init", 0.3),
    ("bert_a", "ChemBERTa", "smiles", "smiles", ["qm9", "uspto"], "pretrained", 0.2),
    ("bert_b", "ChemBERTa", "smiles", "smiles", ["pubchem"], "trained_here", 0.5),
    ("soap", "SOAP", "descriptor", "molecule", [], "descriptor", None),
]
REPORT_MODELS = [
    ("chgnet_a", "CHGNet", "structure", "molecule", ["mptrj"], "pretrained", 0.15),
    ("mace-qm9-n100-c8", "MACE", "structure", "molecule", ["qm9"], "trained_here", 0.6),
    ("mace-qm9-n400-c8", "MACE", "structure", "molecule", ["qm9"], "trained_here", 0.3),
    ("mace-qm9-n100-c16", "MACE", "structure", "molecule", ["qm9"], "trained_here", 0.45),
    ("mace-qm9-n400-c16", "MACE", "structure", "molecule", ["qm9"], "trained_here", 0.2),
]
DATASETS = [
    # dataset_id, domain, origin, in_distribution_for
    ("qm9", "molecules", "real", ["qm9"]),
    ("offeq", "molecules", "generated", ["omol25", "mptrj"]),
]


# ---------------------------------------------------------------------------------------------- dense metrics
# the slow dense restatements of the formulas (tests/metrics/dense.py), so every number here is independent of
# the engine under test
from tests.metrics.dense import cka, cknna, mutual_knn, twonn  # noqa: E402
from tests.metrics.dense import idcor as _dense_idcor  # noqa: E402
from tests.metrics.dense import information_imbalance as info_imbalance  # noqa: E402


def idcor(A: np.ndarray, B: np.ndarray, permutations: int, seed: int) -> tuple[float, float]:
    value, p = _dense_idcor(A, B, permutations, seed)
    return float(value), float(p)


# ---------------------------------------------------------------------------------------------- the tables
def _models(report_models: bool) -> list[tuple]:
    return MODELS + REPORT_MODELS if report_models else list(MODELS)


def embeddings(seed: int = 0, report_models: bool = False) -> dict[str, dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    extra_rng = np.random.default_rng(seed + 1000)  # REPORT_MODELS draw from their own stream: MODELS unchanged
    out = {}
    for ds, *_ in DATASETS:
        Z = rng.normal(size=(N, 4))
        out[ds] = {}
        for mid, *_, noise in MODELS:
            dim = int(rng.integers(6, 12))
            if noise is None:
                out[ds][mid] = rng.normal(size=(N, dim))
            else:
                out[ds][mid] = Z @ rng.normal(size=(4, dim)) + noise * rng.normal(size=(N, dim))
        for mid, *_, noise in REPORT_MODELS if report_models else ():
            dim = int(extra_rng.integers(6, 12))
            out[ds][mid] = Z @ extra_rng.normal(size=(4, dim)) + noise * extra_rng.normal(size=(N, dim))
    return out


def build_tables(
    seed: int = 0, permutations: int = 9, report_models: bool = False, deep: bool = False
) -> dict[str, pd.DataFrame]:
    """The release tables; report_models=True adds REPORT_MODELS (default: the five MODELS only).

    deep=True adds a `neighbours_deep` table (ranks 11-12) and a `neighbours_euclidean_deep` table (ranks 6-7), schema
    coverage only: not the depth the seeded subsets need, so scoring must not be given them.
    """
    from Bio import Phylo
    from Bio.Phylo.TreeConstruction import DistanceMatrix, DistanceTreeConstructor

    emb = embeddings(seed, report_models)
    all_models = _models(report_models)
    models = pd.DataFrame(
        [
            {
                "model_id": mid,
                "display_name": mid.replace("_", " ").upper(),
                "family": fam,
                "architecture": f"{fam} test architecture",
                "modality": mod,
                "input_kind": kind,
                "training_sets": ts,
                "equivariance": "equivariant" if fam == "MACE" else "none",
                "force_head": "conservative" if fam == "MACE" else "none",
                "params": 1000 * (i + 1) if src != "descriptor" else None,
                "embedding_dim": int(emb["qm9"][mid].shape[1]),
                "layer": "last",
                "pooling": "mean over atoms" if mod != "smiles" else "mean over tokens",
                "source": src,
                "checkpoint": None if src == "descriptor" else f"test/{mid}",
                "citation": None,
            }
            for i, (mid, fam, mod, kind, ts, src, _) in enumerate(all_models)
        ]
    )
    datasets = pd.DataFrame(
        [
            {
                "dataset_id": ds,
                "display_name": ds.upper(),
                "domain": dom,
                "n_samples": N,
                "origin": org,
                "recipe": f"seeded random latent, seed={seed}" if org == "generated" else None,
                "license": "CC0",
                "citation": None,
                "in_distribution_for": idf,
            }
            for ds, dom, org, idf in DATASETS
        ]
    )
    pair, ids, energy, trees, samples, null = [], [], [], [], [], []
    rng = np.random.default_rng(seed + 1)
    for d, (ds, *_) in enumerate(DATASETS):
        E = emb[ds]
        mids = [m[0] for m in all_models]
        y = E[mids[0]][:, 0] + 0.1 * rng.normal(size=N)  # a label the first model predicts best
        for a_i, a in enumerate(mids):
            for b_i, b in enumerate(mids):
                if a == b:
                    continue
                row = {"dataset_id": ds, "model_a": a, "model_b": b, "n": N, "ci_low": None, "ci_high": None}
                for k in K_II:
                    pair.append(
                        {
                            **row,
                            "metric": "info_imbalance",
                            "k": k,
                            "value": info_imbalance(E[a], E[b], k),
                            "p_value": None,
                        }
                    )
                for k in K_CKNNA:
                    v = cknna(E[a], E[b], k)
                    pair.append({**row, "metric": "cknna", "k": k, "value": v, "p_value": None})
                    if a_i < b_i and k == K_CKNNA[0]:
                        perm = [cknna(E[a], E[b][np.random.default_rng(s).permutation(N)], k) for s in range(5)]
                        null.append(
                            {
                                "dataset_id": ds,
                                "metric": "cknna",
                                "k": k,
                                "model_a": a,
                                "model_b": b,
                                "null_mean": float(np.mean(perm)),
                                "null_std": float(np.std(perm)),
                                "null_q95": float(np.quantile(perm, 0.95)),
                                "n_permutations": 5,
                                "seed": 0,
                                "n": N,
                            }
                        )
                if a_i < b_i:  # symmetric metrics: one orientation stored, the backend mirrors
                    for k in K_CKNNA:
                        pair.append(
                            {**row, "metric": "mutual_knn", "k": k, "value": mutual_knn(E[a], E[b], k), "p_value": None}
                        )
                    pair.append({**row, "metric": "cka", "k": None, "value": cka(E[a], E[b]), "p_value": None})
                    v, p = idcor(E[a], E[b], permutations, seed)
                    pair.append({**row, "metric": "idcor", "k": None, "value": v, "p_value": p})
        for m in mids:
            # subsampling bootstrap (80% without replacement: TwoNN needs distinct points)
            boot = [twonn(E[m][np.random.default_rng(s).choice(N, int(0.8 * N), replace=False)]) for s in range(5)]
            ids.append(
                {
                    "dataset_id": ds,
                    "model_id": m,
                    "estimator": "twonn",
                    "value": twonn(E[m]),
                    "ci_low": float(np.quantile(boot, 0.05)),
                    "ci_high": float(np.quantile(boot, 0.95)),
                    "n": N,
                    "n_duplicates": 0,
                }
            )
            if d == 0:  # energy only on the first dataset, a linear read-out fitted on a train split
                X = np.hstack([E[m], np.ones((N, 1))])
                w, *_ = np.linalg.lstsq(X[:40], y[:40], rcond=None)
                energy.append(
                    {
                        "dataset_id": ds,
                        "model_id": m,
                        "mae_per_atom": float(np.abs(X[40:] @ w - y[40:]).mean()),
                        "n_test": N - 40,
                    }
                )
        for k in K_CKNNA:
            S = np.full((len(mids), len(mids)), 1.0)
            for r in pair:
                if r["dataset_id"] == ds and r["metric"] == "cknna" and r["k"] == k:
                    S[mids.index(r["model_a"]), mids.index(r["model_b"])] = r["value"]
            Dm = 1 - (S + S.T) / 2
            dm = DistanceMatrix(mids, [[float(Dm[i, j]) for j in range(i + 1)] for i in range(len(mids))])
            for method in ("nj", "upgma"):
                buf = StringIO()
                Phylo.write(getattr(DistanceTreeConstructor(), method)(dm), buf, "newick")
                trees.append(
                    {"dataset_id": ds, "metric": "cknna", "k": k, "method": method, "newick": buf.getvalue().strip()}
                )
        for i in range(N):
            samples.append(
                {
                    "dataset_id": ds,
                    "position": i,
                    "sample_id": f"{ds}:{i:04d}",
                    "formula": None,
                    "smiles": "C" * (1 + i % 5) if ds == "qm9" else None,
                    "n_atoms": 1 + i % 5,
                }
            )
    neighbours, similarity, euclid, deeper, euclid_deep = [], [], [], [], []
    for ds, *_ in DATASETS:
        for m, X in emb[ds].items():
            Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
            S = Xn @ Xn.T
            np.fill_diagonal(S, -np.inf)
            order = np.argsort(-S, axis=1, kind="stable")[:, :12]
            D = np.linalg.norm(X[:, None, :] - X[None, :, :], axis=-1)
            np.fill_diagonal(D, np.inf)
            far = np.argsort(D, axis=1, kind="stable")[:, :7]
            near = far[:, :5]
            for i in range(N):
                for r in range(10):
                    key = {"dataset_id": ds, "model_id": m, "position": i, "rank": r + 1}
                    neighbours.append({**key, "neighbour": int(order[i, r])})
                    similarity.append({**key, "similarity": float(S[i, order[i, r]])})
                for r in range(10, 12) if deep else ():
                    deeper.append({"dataset_id": ds, "model_id": m, "position": i, "rank": r + 1,
                                   "neighbour": int(order[i, r]), "similarity": float(S[i, order[i, r]])})  # fmt: skip
                for r in range(5):
                    euclid.append({"dataset_id": ds, "model_id": m, "position": i, "rank": r + 1,
                                   "neighbour": int(near[i, r])})  # fmt: skip
                for r in range(5, 7) if deep else ():
                    euclid_deep.append({"dataset_id": ds, "model_id": m, "position": i, "rank": r + 1,
                                        "neighbour": int(far[i, r])})  # fmt: skip
    cols = ["dataset_id", "metric", "k", "model_a", "model_b", "value", "ci_low", "ci_high", "p_value", "n"]
    extra = (
        {"neighbours_deep": pd.DataFrame(deeper), "neighbours_euclidean_deep": pd.DataFrame(euclid_deep)}
        if deep
        else {}
    )
    return {
        **extra,
        "models": models,
        "datasets": datasets,
        "pairwise": pd.DataFrame(pair)[cols],
        "intrinsic_dim": pd.DataFrame(ids),
        "energy": pd.DataFrame(energy),
        "trees": pd.DataFrame(trees),
        "pairwise_null": pd.DataFrame(null),
        # synthetic calibration rows keyed like the nulls (values derived from them, not a real calibration)
        "pairwise_calibration": pd.DataFrame(
            [
                {
                    **{c: r[c] for c in ("dataset_id", "metric", "k", "model_a", "model_b", "n_permutations", "seed")},
                    "calibrated": 0.0,
                    "tau": r["null_q95"],
                    "alpha": 0.05,
                    "null_q99": r["null_q95"],
                    "p_value": 1.0,
                    "closed_form_mean": None,
                }
                for r in null
            ]
        ),
        "samples": pd.DataFrame(samples),
        "sample_structures": _structures(samples),
        "neighbours": pd.DataFrame(neighbours),
        "neighbour_similarity": pd.DataFrame(similarity),
        "neighbours_euclidean": pd.DataFrame(euclid),
    }


MANIFEST_EXTRA = {
    "inputs": [{"name": "random latent", "recipe": "numpy default_rng(seed) latent x random maps + noise", "seed": 0}],
    # per dataset, as the analysis records them (scoring reads them): l2-normalised, no clipping
    "settings": {
        ds: {"ks_knn": list(K_CKNNA), "ks_ii": list(K_II), "clip_quantile": None, "normalize": True}
        for ds, *_ in DATASETS
    },  # fmt: skip
    "code_version": "test",
}


def _structures(samples: list[dict]) -> pd.DataFrame:
    """The samples in the field's formats, written by the release code itself (chains of C atoms 1.5 Å apart)."""
    from ase import Atoms

    from precompute.datasets.base import Sample
    from precompute.release.sample_records import sample_structures_table

    parts = []
    for ds in dict.fromkeys(r["dataset_id"] for r in samples):
        rows = [r for r in samples if r["dataset_id"] == ds]
        objs = [Sample(r["sample_id"], atoms=Atoms("C" * r["n_atoms"], positions=[[1.5 * i, 0, 0]
                       for i in range(r["n_atoms"])]), smiles=r["smiles"]) for r in rows]  # fmt: skip
        parts.append(sample_structures_table(ds, objs))
    return pd.concat(parts, ignore_index=True)


def write_test_release(root: Path, release_id: str | None = None, **kw) -> Path:
    from precompute.release.writer import write_release

    return write_release(build_tables(), MANIFEST_EXTRA, root, release_id, **kw)
