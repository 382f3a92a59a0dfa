"""In- vs out-of-distribution: pair classes (both_id, mixed, both_ood) from model cards' training sets and
datasets' in_distribution_for."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from precompute.release.schema import METRICS

from ..release import Release
from ._common import _dataset, k_values
from .catalogue import available_metrics
from .matrix import matrix

PAIR_CLASSES = ("both_id", "mixed", "both_ood")


def _in_dist(release: Release, dataset: str) -> dict[str, bool]:
    rows = release.query(
        "SELECT m.model_id, list_has_any(m.training_sets, d.in_distribution_for) AS id FROM models m, datasets d "
        "WHERE d.dataset_id = ?",
        [dataset],
    )
    return dict(zip(rows["model_id"], rows["id"].astype(bool), strict=True))


def _pair_class(a: bool, b: bool) -> str:
    return "both_id" if a and b else ("both_ood" if not a and not b else "mixed")


def id_ood_pairs(
    release: Release, dataset: str, metric: str, k: int | None = None, models: Sequence[str] | None = None
) -> pd.DataFrame:
    """Each pair's value on one dataset with its in/out-of-distribution class.

    A model is in-distribution (ID) on a dataset when its card's training_sets intersect the dataset's
    in_distribution_for. pair_class: both_id | mixed | both_ood. Pairs of distinct models; for mirror_fill metrics
    each unordered pair once (model_a < model_b).
    Columns: model_a, model_b, value, ci_low, ci_high, p_value, n, k, mirrored, a_in_distribution,
    b_in_distribution, pair_class, family_a, family_b.
    """
    res = matrix(release, dataset, metric, k, models=models)
    c = res.cells[res.cells["model_a"] != res.cells["model_b"]]
    if METRICS[res.metric].mirror_fill:
        c = c[c["model_a"] < c["model_b"]]
    idd = _in_dist(release, dataset)
    c = c.assign(
        a_in_distribution=[idd[m] for m in c["model_a"]],
        b_in_distribution=[idd[m] for m in c["model_b"]],
    )
    c["pair_class"] = [_pair_class(a, b) for a, b in zip(c["a_in_distribution"], c["b_in_distribution"], strict=True)]
    cols = ["model_a", "model_b", "value", "ci_low", "ci_high", "p_value", "n", "k", "mirrored"]
    cols += ["a_in_distribution", "b_in_distribution", "pair_class", "family_a", "family_b"]
    return c[cols].reset_index(drop=True)


def id_vs_ood(
    release: Release,
    id_dataset: str,
    ood_dataset: str,
    metric: str = "cknna",
    k: int | None = None,
    models: Sequence[str] | None = None,
) -> pd.DataFrame:
    """The same pairs on two datasets (e.g. OMat24 in-distribution vs OMol25 out-of-distribution).

    Columns: model_a, model_b, family_a, family_b, value_id, value_ood, difference (value_ood - value_id), n_id,
    n_ood, pair_class_id, pair_class_ood. Only pairs with a value on both datasets. k must exist on both (default:
    the smallest k common to both).
    """
    _dataset(release, id_dataset)
    _dataset(release, ood_dataset)
    if k is None and isinstance(metric, str) and metric in METRICS and METRICS[metric].has_k:
        common = sorted(set(k_values(release, id_dataset, metric)) & set(k_values(release, ood_dataset, metric)))
        if not common:
            raise ValueError(f"metric {metric!r} has no k common to {id_dataset!r} and {ood_dataset!r}")
        k = common[0]
    a = id_ood_pairs(release, id_dataset, metric, k, models)
    b = id_ood_pairs(release, ood_dataset, metric, k, models)
    m = a.merge(b, on=["model_a", "model_b"], suffixes=("_id", "_ood"))
    out = pd.DataFrame(
        {
            "model_a": m["model_a"],
            "model_b": m["model_b"],
            "family_a": m["family_a_id"],
            "family_b": m["family_b_id"],
            "value_id": m["value_id"],
            "value_ood": m["value_ood"],
            "difference": m["value_ood"] - m["value_id"],
            "n_id": m["n_id"],
            "n_ood": m["n_ood"],
            "pair_class_id": m["pair_class_id"],
            "pair_class_ood": m["pair_class_ood"],
        }
    )
    return out.reset_index(drop=True)


def id_ood_summary(
    release: Release, metric: str = "cknna", k: int | None = None, models: Sequence[str] | None = None
) -> pd.DataFrame:
    """Per dataset (where metric/k exist) and pair class: dataset_id, pair_class, n_pairs, value_mean, value_median."""
    if not isinstance(metric, str) or metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; known: {list(METRICS)}")
    avail = available_metrics(release)
    avail = avail[avail["metric"] == metric]
    if k is not None:
        if METRICS[metric].has_k and int(k) not in set(avail["k"].dropna().astype(int)):
            raise ValueError(f"unknown k {k!r} for metric {metric!r}; available: {sorted(set(avail['k'].dropna()))}")
        avail = avail[avail["k"] == k] if METRICS[metric].has_k else avail
    rows = []
    for ds in sorted(set(avail["dataset_id"])):
        ks = k_values(release, ds, metric)
        kk = k if k is not None else ks[0]
        p = id_ood_pairs(release, ds, metric, kk, models)
        for cls in PAIR_CLASSES:
            v = p.loc[p["pair_class"] == cls, "value"]
            rows.append(
                {
                    "dataset_id": ds,
                    "k": kk,
                    "pair_class": cls,
                    "n_pairs": len(v),
                    "value_mean": float(v.mean()) if len(v) else np.nan,
                    "value_median": float(v.median()) if len(v) else np.nan,
                }
            )
    out = pd.DataFrame(rows, columns=["dataset_id", "k", "pair_class", "n_pairs", "value_mean", "value_median"])
    out["k"] = pd.array(out["k"].tolist(), dtype="Int64")
    return out
