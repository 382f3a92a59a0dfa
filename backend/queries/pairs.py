"""Pairs of models: information imbalance both ways with CKNNA and IDCor, permutation nulls, one model's profile,
two models side by side."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from precompute.release.schema import METRICS

from ..release import Release
from ._common import _dataset, _meta_maps, _metric_k, _model, _models_arg, k_values
from .calibration import add_scale, calibration_note, check_scale, has_calibration, p_value_text, pair_rows_of
from .matrix import _cells


# ----------------------------------------------------------------------------------------------------------------
# local vs global: information imbalance, CKNNA, IDCor
# ----------------------------------------------------------------------------------------------------------------
def _pair_lookup(release: Release, dataset: str, metric: str, k: int | None) -> dict[tuple[str, str], pd.Series]:
    cells = _cells(release, dataset, metric, k, None)
    return {(a, b): row for a, b, (_, row) in zip(cells["model_a"], cells["model_b"], cells.iterrows(), strict=True)}


def information_imbalance_pairs(
    release: Release,
    dataset: str,
    k: int | None = None,
    cknna_k: int | None = None,
    models: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Information imbalance in both directions per unordered pair, with the pair's CKNNA and IDCor.

    k: information-imbalance k (default smallest). cknna_k: CKNNA's k (default: k if CKNNA has it, else the smallest
    CKNNA k). Columns: model_a, model_b (model_a < model_b), family_a, family_b, k, delta_ab (A -> B), delta_ba
    (B -> A), cknna, cknna_k, idcor, idcor_p_value, n, and per direction the calibrated score (calibrated_ab,
    calibrated_ba; higher = more aligned), the null's 5th percentile (null_q05_ab, null_q05_ba) and the p-value as
    shown (p_text_ab, p_text_ba). cknna/idcor/calibration are NaN where not computed.
    """
    _dataset(release, dataset)
    _, k = _metric_k(release, dataset, "info_imbalance", k)
    ms = _models_arg(release, models)
    ii = add_scale(_cells(release, dataset, "info_imbalance", k, ms), "info_imbalance", "raw")
    fwd = {(a, b): v for a, b, v in zip(ii["model_a"], ii["model_b"], ii["value"], strict=True)}
    cal = {(a, b): (v, q, t) for a, b, v, q, t in zip(ii["model_a"], ii["model_b"], ii["calibrated"], ii["null_q95"],
                                                      ii["p_text"], strict=True)}  # fmt: skip
    nn = {(a, b): v for a, b, v in zip(ii["model_a"], ii["model_b"], ii["n"], strict=True)}
    ck, ck_k = {}, None
    try:
        cks = k_values(release, dataset, "cknna")
    except ValueError:
        cks = []
    if cknna_k is not None:
        _, ck_k = _metric_k(release, dataset, "cknna", cknna_k)
    elif cks:
        ck_k = k if k in cks else cks[0]
    if ck_k is not None:
        c = _cells(release, dataset, "cknna", ck_k, ms)
        ck = {(a, b): v for a, b, v in zip(c["model_a"], c["model_b"], c["value"], strict=True)}
    idc, idp = {}, {}
    try:
        k_values(release, dataset, "idcor")
        c = _cells(release, dataset, "idcor", None, ms)
        idc = {(a, b): v for a, b, v in zip(c["model_a"], c["model_b"], c["value"], strict=True)}
        idp = {(a, b): v for a, b, v in zip(c["model_a"], c["model_b"], c["p_value"], strict=True)}
    except ValueError:
        pass
    _, fam = _meta_maps(release)
    pairs = sorted({tuple(sorted(p)) for p in fwd if p[0] != p[1]})
    rows = []
    for a, b in pairs:
        rows.append(
            {
                "model_a": a,
                "model_b": b,
                "family_a": fam[a],
                "family_b": fam[b],
                "k": k,
                "delta_ab": fwd.get((a, b), np.nan),
                "delta_ba": fwd.get((b, a), np.nan),
                "calibrated_ab": cal.get((a, b), (np.nan,) * 3)[0],
                "calibrated_ba": cal.get((b, a), (np.nan,) * 3)[0],
                "null_q05_ab": cal.get((a, b), (np.nan,) * 3)[1],
                "null_q05_ba": cal.get((b, a), (np.nan,) * 3)[1],
                "p_text_ab": cal.get((a, b), (np.nan, np.nan, "–"))[2],
                "p_text_ba": cal.get((b, a), (np.nan, np.nan, "–"))[2],
                "cknna": ck.get((a, b), np.nan),
                "cknna_k": ck_k,
                "idcor": idc.get((a, b), np.nan),
                "idcor_p_value": idp.get((a, b), np.nan),
                "n": nn.get((a, b), nn.get((b, a))),
            }
        )
    cols = ["model_a", "model_b", "family_a", "family_b", "k", "delta_ab", "delta_ba", "cknna", "cknna_k", "idcor"]
    cal_cols = ["calibrated_ab", "calibrated_ba", "null_q05_ab", "null_q05_ba", "p_text_ab", "p_text_ba"]
    out = pd.DataFrame(rows, columns=[*cols, "idcor_p_value", "n", *cal_cols])
    for c in ("k", "cknna_k", "n"):
        out[c] = pd.array([None if v is None or pd.isna(v) else int(v) for v in out[c]], dtype="Int64")
    return out


def _axis(release: Release, dataset: str, metric: str, k, ms, scale: str) -> tuple[pd.DataFrame, str]:
    """(dataset, metric, k)'s cells on `scale` where the release calibrates that selection, else raw; and the scale
    used."""
    sc = "calibrated" if scale == "calibrated" and has_calibration(release, dataset, metric, k) else "raw"
    return add_scale(_cells(release, dataset, metric, k, ms), metric, sc), sc


def cknna_vs_idcor(
    release: Release, dataset: str, models: Sequence[str] | None = None, scale: str = "raw"
) -> pd.DataFrame:
    """CKNNA at every stored k against IDCor, per unordered pair (model_a < model_b).

    scale "calibrated": each axis (IDCor; CKNNA per k) on the null-calibrated score where the release calibrates
    that (dataset, metric, k), else raw, as its `*_scale` column says (ValueError when the release has no
    calibration at all). Columns: model_a, model_b, family_a, family_b, k, cknna, idcor, idcor_p_value, n, then per
    metric the interval on the same scale (cknna_ci_low, cknna_ci_high, idcor_ci_low, idcor_ci_high), the raw value
    (cknna_raw, idcor_raw), the p-value as shown (cknna_p_text, idcor_p_text), the scale (cknna_scale, idcor_scale)
    and the permutations behind the null (cknna_n_permutations, idcor_n_permutations). A pair whose calibration row
    is missing in a calibrated selection has NaN there.
    """
    _dataset(release, dataset)
    check_scale(scale)
    if scale == "calibrated" and (note := calibration_note(release)) is not None:
        raise ValueError(note)
    ms = _models_arg(release, models)
    ks = k_values(release, dataset, "cknna")
    k_values(release, dataset, "idcor")
    ic, ic_scale = _axis(release, dataset, "idcor", None, ms, scale)
    idc = {(a, b): r for a, b, r in zip(ic["model_a"], ic["model_b"], ic.itertuples(), strict=True)}
    _, fam = _meta_maps(release)
    rows = []
    for kk in ks:
        c, ck_scale = _axis(release, dataset, "cknna", kk, ms, scale)
        c = c[c["model_a"] < c["model_b"]]
        for r in c.itertuples():
            i = idc.get((r.model_a, r.model_b))
            nan = np.nan
            rows.append(
                {
                    "model_a": r.model_a,
                    "model_b": r.model_b,
                    "family_a": fam[r.model_a],
                    "family_b": fam[r.model_b],
                    "k": kk,
                    "cknna": r.value,
                    "idcor": nan if i is None else i.value,
                    "idcor_p_value": nan if i is None else i.p_value,
                    "n": int(r.n),
                    "cknna_ci_low": r.ci_low,
                    "cknna_ci_high": r.ci_high,
                    "idcor_ci_low": nan if i is None else i.ci_low,
                    "idcor_ci_high": nan if i is None else i.ci_high,
                    "cknna_raw": r.value_raw,
                    "idcor_raw": nan if i is None else i.value_raw,
                    "cknna_p_text": r.p_text,
                    "idcor_p_text": "–" if i is None else i.p_text,
                    "cknna_scale": ck_scale,
                    "idcor_scale": ic_scale,
                    "cknna_n_permutations": r.n_permutations,
                    "idcor_n_permutations": nan if i is None else i.n_permutations,
                }
            )
    cols = ["model_a", "model_b", "family_a", "family_b", "k", "cknna", "idcor", "idcor_p_value", "n",
            "cknna_ci_low", "cknna_ci_high", "idcor_ci_low", "idcor_ci_high", "cknna_raw", "idcor_raw",
            "cknna_p_text", "idcor_p_text", "cknna_scale", "idcor_scale", "cknna_n_permutations",
            "idcor_n_permutations"]  # fmt: skip
    return pd.DataFrame(rows, columns=cols)


def pairwise_null(
    release: Release, dataset: str, metric: str, k: int | None = None, models: Sequence[str] | None = None
) -> pd.DataFrame:
    """Permutation-null baselines joined with the observed value (empty if the release has no pairwise_null).

    Columns: model_a, model_b, value, null_mean, null_std, null_q95, z (= (value - null_mean) / null_std),
    n_permutations, seed, n, k.
    """
    _dataset(release, dataset)
    metric, k = _metric_k(release, dataset, metric, k)
    ms = _models_arg(release, models)
    params: list = [dataset, metric, k]
    sql = (
        "SELECT z.model_a, z.model_b, p.value, z.null_mean, z.null_std, z.null_q95, "
        "CASE WHEN z.null_std > 0 THEN (p.value - z.null_mean) / z.null_std END AS z, z.n_permutations, z.seed, z.n, "
        "z.k FROM pairwise_null z LEFT JOIN pairwise p ON p.dataset_id = z.dataset_id AND p.metric = z.metric AND "
        "p.k IS NOT DISTINCT FROM z.k AND p.model_a = z.model_a AND p.model_b = z.model_b "
        "WHERE z.dataset_id = ? AND z.metric = ? AND z.k IS NOT DISTINCT FROM ?"
    )
    if ms is not None:
        sql += " AND list_contains(?, z.model_a) AND list_contains(?, z.model_b)"
        params += [ms, ms]
    return release.query(sql + " ORDER BY z.model_a, z.model_b", params)


# ----------------------------------------------------------------------------------------------------------------
# one model, two models
# ----------------------------------------------------------------------------------------------------------------
_PROFILE_COLS = ["dataset_id", "metric", "k", "scope", "other_model", "value", "ci_low", "ci_high", "p_value", "n"]
_NULL_COLS = ["calibrated", "null_mean", "null_std", "null_q95", "null_q99", "n_permutations", "p_text"]
_ON = ("{t}.dataset_id = p.dataset_id AND {t}.metric = p.metric AND {t}.k IS NOT DISTINCT FROM p.k AND "
       "{t}.model_a = p.model_a AND {t}.model_b = p.model_b")  # fmt: skip
_CAL_JOIN = f"LEFT JOIN pairwise_null z ON {_ON.format(t='z')} LEFT JOIN pairwise_calibration c ON {_ON.format(t='c')}"
_CAL_SELECT = ("coalesce(c.p_value, p.p_value) AS p_value, p.n, c.calibrated, z.null_mean, z.null_std, z.null_q95, "
               "c.null_q99, coalesce(c.n_permutations, z.n_permutations) AS n_permutations")  # fmt: skip


_VS_K_COLS = ["dataset_id", "metric", "k", "value", "ci_low", "ci_high", "value_raw", "ci_low_raw", "ci_high_raw",
              "calibrated", "calibrated_ci_low", "calibrated_ci_high", "tau", "null_mean", "null_q95", "p_text", "n",
              "n_permutations", "mirrored", "scale"]  # fmt: skip


def pair_vs_k(release: Release, model_a: str, model_b: str, scale: str = "raw") -> pd.DataFrame:
    """One pair (A -> B) against k: a row per (dataset, metric, k) of every metric with a neighbourhood size.

    The a -> b row; for a mirror_fill metric with only b -> a stored, that row (`mirrored`). scale "calibrated":
    value / ci_low / ci_high are the calibrated score and its interval (`calibration.add_scale`; NaN where the
    release has no calibration for the row; ValueError when it has none at all); the raw ones stay in value_raw,
    ci_low_raw, ci_high_raw. Columns: `_VS_K_COLS`.
    """
    _model(release, model_a)
    _model(release, model_b)
    check_scale(scale)
    if scale == "calibrated" and (note := calibration_note(release)) is not None:
        raise ValueError(note)
    rows = pair_rows_of(release, model_a, model_b)
    rows = rows[rows["k"].notna()]
    key = ["dataset_id", "metric", "k"]
    fwd = rows[rows["model_a"] == model_a].assign(mirrored=False)
    have = set(zip(*(fwd[c] for c in key), strict=True))
    mirror = [m for m, d in METRICS.items() if d.mirror_fill]
    back = rows[(rows["model_a"] == model_b) & rows["metric"].isin(mirror)]
    back = back[[t not in have for t in zip(*(back[c] for c in key), strict=True)]].assign(mirrored=True)
    both = pd.concat([fwd, back], ignore_index=True)
    if both.empty:
        return pd.DataFrame(columns=_VS_K_COLS)
    out = pd.concat([add_scale(g, m, scale) for m, g in both.groupby("metric", sort=True)], ignore_index=True)
    out["k"] = pd.array([int(v) for v in out["k"]], dtype="Int64")
    out["n"] = pd.array([None if pd.isna(v) else int(v) for v in out["n"]], dtype="Int64")
    return out.sort_values(key).reset_index(drop=True)[_VS_K_COLS]


def model_profile(release: Release, model_id: str) -> pd.DataFrame:
    """Every number about one model on every dataset.

    scope "pair": one row per pairwise row where the model is model_a (other_model = model_b; for directional
    metrics, e.g. information imbalance, value = model -> other) plus mirrored rows of mirror_fill metrics where only
    the other orientation is stored. scope "model": intrinsic dimension (metric = "intrinsic_dim:<estimator>") and
    energy (metric = "energy_mae_per_atom", n = n_test), other_model null.
    Columns: dataset_id, metric, k, scope, other_model, value, ci_low, ci_high, p_value, n, then the pair's
    calibrated score and null (calibrated, null_mean, null_std, null_q95, null_q99, n_permutations; NaN where the
    release has none) and p_text (the p-value as shown, "p < 1/(P+1)" at its floor).
    """
    _model(release, model_id)
    pair = release.query(
        "SELECT p.dataset_id, p.metric, p.k, p.model_b AS other_model, p.value, p.ci_low, p.ci_high, "
        f"{_CAL_SELECT} FROM pairwise p {_CAL_JOIN} WHERE p.model_a = ?",
        [model_id],
    )
    mirr = release.query(
        "SELECT p.dataset_id, p.metric, p.k, p.model_a AS other_model, p.value, p.ci_low, p.ci_high, "
        f"{_CAL_SELECT} FROM pairwise p {_CAL_JOIN} WHERE p.model_b = ? AND list_contains(?, p.metric) AND NOT EXISTS "
        "(SELECT 1 FROM pairwise q WHERE q.dataset_id = p.dataset_id AND q.metric = p.metric AND "
        "q.k IS NOT DISTINCT FROM p.k AND q.model_a = p.model_b AND q.model_b = p.model_a)",
        [model_id, [m for m, d in METRICS.items() if d.mirror_fill]],
    )
    ids = release.query(
        "SELECT dataset_id, 'intrinsic_dim:' || estimator AS metric, value, ci_low, ci_high, n FROM intrinsic_dim "
        "WHERE model_id = ?",
        [model_id],
    )
    en = release.query(
        "SELECT dataset_id, 'energy_mae_per_atom' AS metric, mae_per_atom AS value, n_test AS n FROM energy "
        "WHERE model_id = ?",
        [model_id],
    )
    parts = [pair.assign(scope="pair"), mirr.assign(scope="pair"), ids.assign(scope="model"), en.assign(scope="model")]
    cols = [*_PROFILE_COLS, *_NULL_COLS]
    out = pd.concat([p.reindex(columns=cols) for p in parts if not p.empty], ignore_index=True).reindex(columns=cols)
    out["p_text"] = [p_value_text(p, n) for p, n in zip(out["p_value"], out["n_permutations"], strict=True)]
    out["k"] = pd.array([None if pd.isna(v) else int(v) for v in out["k"]], dtype="Int64")
    out["n"] = pd.array([None if pd.isna(v) else int(v) for v in out["n"]], dtype="Int64")
    return out.sort_values(["dataset_id", "scope", "metric", "k", "other_model"], na_position="first").reset_index(
        drop=True
    )


def compare_models(release: Release, model_a: str, model_b: str) -> pd.DataFrame:
    """Two models side by side on every dataset.

    scope "pair": every pairwise metric of the pair: value_ab (row model_a -> model_b), value_ba (the reverse row;
    the same number for mirror_fill metrics when only one orientation is stored), ci_low, ci_high, p_value, n of the
    a -> b row. scope "model": intrinsic dimension per estimator and energy MAE, value_a and value_b.
    Columns: dataset_id, metric, k, scope, value_ab, value_ba, value_a, value_b, ci_low, ci_high, p_value, n, and
    the a -> b row's calibrated, calibrated_ba, null_mean, null_std, null_q95, null_q99, n_permutations, p_text.
    """
    _model(release, model_a)
    _model(release, model_b)
    pa_ = model_profile(release, model_a)
    pb_ = model_profile(release, model_b)
    ab = pa_[(pa_["scope"] == "pair") & (pa_["other_model"] == model_b)]
    ba = pb_[(pb_["scope"] == "pair") & (pb_["other_model"] == model_a)]
    key = ["dataset_id", "metric", "k"]
    back = ba[[*key, "value", "calibrated"]].rename(columns={"value": "value_ba", "calibrated": "calibrated_ba"})
    pair = ab.merge(back, on=key, how="outer")
    pair = pair.rename(columns={"value": "value_ab"}).assign(scope="pair")
    ma = pa_[pa_["scope"] == "model"][[*key, "value"]].rename(columns={"value": "value_a"})
    mb = pb_[pb_["scope"] == "model"][[*key, "value"]].rename(columns={"value": "value_b"})
    per = ma.merge(mb, on=key, how="outer").assign(scope="model")
    cols = ["dataset_id", "metric", "k", "scope", "value_ab", "value_ba", "value_a", "value_b"]
    cols += ["ci_low", "ci_high", "p_value", "n", "calibrated", "calibrated_ba", *_NULL_COLS[1:]]
    out = pd.concat([pair.reindex(columns=cols), per.reindex(columns=cols)], ignore_index=True)
    out["k"] = pd.array([None if pd.isna(v) else int(v) for v in out["k"]], dtype="Int64")
    out["n"] = pd.array([None if pd.isna(v) else int(v) for v in out["n"]], dtype="Int64")
    return out.sort_values(["dataset_id", "scope", "metric", "k"], na_position="first").reset_index(drop=True)
