"""Local vs global: CKNNA (local neighbourhoods) against IDCor (global) across k; the information-imbalance plane."""

import pandas as pd
import streamlit as st

from app import figures
from app.data import q
from app.state import control
from app.ui import about, csv_name, ctx, figure, need, range_control, range_note, scale_control, zrange

c = ctx()
r, f = c.release, c.f
st.title("Local vs global alignment")
avail = q(r, "available_metrics", f.dataset) if f.dataset else None
have = set(avail["metric"]) if avail is not None else set()

# one switch for both views; each view says where its own values have no calibration and stay raw
scale = scale_control(c, f.dataset, None, None)


def _raw_note(metric: str, k=None) -> None:
    st.info(f"{c.metric_name(metric)}: " + str(q(r, "calibration_note", f.dataset, metric, k)))


st.subheader("CKNNA across k against IDCor")
if need({"cknna", "idcor"} <= have, "This dataset needs both CKNNA and IDCor values for this view."):
    cv = q(r, "cknna_vs_idcor", f.dataset, models=f.model_filter, scale=scale)
    if need(not cv.empty, "No pair of the filtered models has both values."):
        cal = scale == "calibrated"
        raw_k = sorted({int(k) for k, s in zip(cv["k"], cv["cknna_scale"], strict=True) if s == "raw"}) if cal else []
        id_cal = cal and (cv["idcor_scale"] == "calibrated").all()
        if cal and not id_cal:
            _raw_note("idcor")
        for kk in raw_k:
            _raw_note("cknna", kk)
        ci = lambda lo, hi: "–" if pd.isna(lo) else f"[{lo:.3f}, {hi:.3f}]"  # noqa: E731
        cv = cv.assign(
            label_a=[c.labels.get(m, m) for m in cv["model_a"]],
            label_b=[c.labels.get(m, m) for m in cv["model_b"]],
            k_label=[f"k={k}" + (" (raw)" if k in raw_k else "") for k in cv["k"]],
            ci_text=[f"CKNNA {ci(a, b)}, IDCor {ci(x, y)}" for a, b, x, y in
                     cv[["cknna_ci_low", "cknna_ci_high", "idcor_ci_low", "idcor_ci_high"]].itertuples(index=False)],
        )  # fmt: skip
        ck_cal = cal and len(raw_k) < cv["k"].nunique()
        ylab = ("calibrated " if ck_cal else "") + "CKNNA (local" + ("; raw where the legend says)" if ck_cal and
                                                                   raw_k else ")")  # fmt: skip
        # the nulls behind the calibrated axes (none on a raw axis)
        perms = None
        if cal:
            perms = pd.concat([cv.loc[cv["cknna_scale"] == "calibrated", "cknna_n_permutations"],
                               cv.loc[cv["idcor_scale"] == "calibrated", "idcor_n_permutations"]])  # fmt: skip
        figure(
            figures.scatter_pairs(
                cv,
                "idcor",
                "cknna",
                "k_label",
                xlab=("calibrated IDCor (global)" if id_cal else "IDCor (global)"),
                ylab=ylab,
                colour_title="k",
                hover=("label_a", "label_b", "ci_text"),
            ),
            cv.drop(columns=["label_a", "label_b", "k_label", "ci_text"]),
            csv_name(c, "cknna-vs-idcor" + ("-calibrated" if cal else ""), f.dataset, "cknna"),
            key="cknna_idcor",
            title=("Calibrated · " if cal else "")
            + "CKNNA (every k) vs IDCor · "
            + about(c, f.dataset, n=cv["n"], perms=perms)
            + f" · {cv[['model_a', 'model_b']].drop_duplicates().shape[0]} pairs",
            caption="One point per pair of models and k; the hover gives both intervals. A pair can share its "
            "global geometry (high IDCor) while its local neighbourhoods differ (low CKNNA at small k), and vice "
            "versa."
            + (
                " Calibrated: each axis is the pair's null-calibrated score where the release has one (0 = not "
                "beyond the permutation null; IDCor's is the effect size above its critical value, so it can "
                "exceed 0 without bound); a pair without calibration is left out."
                if cal
                else ""
            ),
        )

st.subheader("Information imbalance plane")
if need("info_imbalance" in have, "This dataset has no information-imbalance values."):
    ks = q(r, "k_values", f.dataset, "info_imbalance")
    col1, col2, col3 = st.columns(3)
    iik = control("ii_k", "k of the information imbalance", ks, ks[0], where=col1, what="information-imbalance k")
    scale_ii = scale
    if scale_ii == "calibrated" and q(r, "calibration_note", f.dataset, "info_imbalance", iik) is not None:
        _raw_note("info_imbalance", iik)
        scale_ii = "raw"
    xcol, ycol = ("calibrated_ab", "calibrated_ba") if scale_ii == "calibrated" else ("delta_ab", "delta_ba")
    colour_opts = [m for m in ("cknna", "idcor") if m in have] or ["none"]
    ic = control("ii_colour", "Colour by", colour_opts, colour_opts[0], where=col2, widget="radio", what="colouring")
    rng = range_control(col3) if colour_opts != ["none"] else "data"
    ck_k = f.k if f.metric == "cknna" else None
    ii = q(r, "information_imbalance_pairs", f.dataset, iik, cknna_k=ck_k, models=f.model_filter)
    if need(not ii.empty, "No pair of the filtered models has information-imbalance values."):
        ii = ii.assign(
            label_a=[c.labels.get(m, m) for m in ii["model_a"]], label_b=[c.labels.get(m, m) for m in ii["model_b"]]
        )
        cont = ic != "none"
        lo, hi = (None, None)
        if cont:
            md = c.mdef(ic)
            lo, hi = zrange(ii[ic], md, rng)
        figure(
            figures.scatter_pairs(
                ii,
                xcol,
                ycol,
                ic if cont else "family_a",
                continuous=cont,
                cmin=lo,
                cmax=hi,
                diagonal=True,
                xlab="calibrated Δ(A → B) (higher = more aligned)" if scale_ii == "calibrated" else "Δ(A → B)",
                ylab="calibrated Δ(B → A) (higher = more aligned)" if scale_ii == "calibrated" else "Δ(B → A)",
                colour_title=c.metric_name(ic) if cont else "family of A",
                colours=None if cont else c.colours,
                colorscale=figures.quantile_scale(ii[ic], lo, hi) if cont else "Viridis",
                hover=("label_a", "label_b"),
            ),
            ii.drop(columns=["label_a", "label_b"]),
            csv_name(
                c,
                "information-imbalance" + ("-calibrated" if scale_ii == "calibrated" else ""),
                f.dataset,
                "info_imbalance",
                iik,
            ),  # fmt: skip
            key="ii_plane",
            title=("Calibrated information imbalance · " if scale_ii == "calibrated" else "Information imbalance · ")
            + about(c, f.dataset, None, iik, ii["n"] if "n" in ii else None)
            + (f" · colour: CKNNA at k = {ii['cknna_k'].iloc[0]}" if ic == "cknna" and len(ii) else "")
            + (" · colour: IDCor" if ic == "idcor" else ""),
            caption=(
                "Calibrated: each direction's null-calibrated score, 0 = not below its permutation null's 5th "
                "percentile, higher = more informative; above the diagonal, A is more informative about B. "
                if scale_ii == "calibrated"
                else "Δ ≈ 0: A's neighbours predict B's; ≈ 1: unrelated (lower = more informative). Below the "
                "diagonal, A is more informative about B than B about A. "
            )
            + f"Colour: {ic}. "
            + (range_note((lo, hi), c.mdef(ic), rng) if cont else "")
            + (
                "Colour stops at the values' eighths (quantiles): each colour band holds about the same number of "
                "pairs, so a skewed distribution is not one colour; the colour bar gives the values."
                if cont
                else ""
            ),
        )
