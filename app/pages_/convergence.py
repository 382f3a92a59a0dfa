"""Convergence: each model's alignment to the best model (lowest energy MAE) against its own energy MAE."""

import streamlit as st

from app import figures
from app.data import q, short_labels
from app.ui import about, csv_name, ctx, figure, k_text, need, scale_control

c = ctx()
r, f = c.release, c.f
st.title("Convergence: alignment to the best model vs energy error")
st.markdown(
    "If better models converge to one representation, models with a lower energy error should be more aligned "
    "with the best one. Energy error: per-atom MAE on a held-out split after fitting per-element reference "
    "energies on a train split."
)
en = q(r, "energy")
with_energy = sorted(set(en["dataset_id"]))
if f.dataset is not None and f.dataset not in with_energy:
    names = ", ".join(c.ds_name(d) for d in with_energy) or "none"
    st.info(
        f"**{c.ds_name(f.dataset)} has no rows in the energy table** of this release, so there is no MAE to plot "
        f"against. Datasets with energy values: {names}. Choose one of them in the sidebar."
    )
elif need(f.dataset is not None and f.metric is not None, "This release has no pairwise values."):
    scale = scale_control(c, f.dataset, f.metric, f.k)
    df = q(r, "alignment_vs_mae", f.dataset, f.metric, f.k, models=f.model_filter, scale=scale)
    mname = ("calibrated " if scale == "calibrated" else "") + c.metric_name(f.metric)
    if need(not df.empty, "The filters hide every model with an energy value on this dataset."):
        best = df.loc[df["is_best"], "model_id"]
        overall_best = str(df["best_model"].iloc[0])
        st.subheader(
            f"{mname}{k_text(f.k)} to {c.labels.get(overall_best, overall_best)} (lowest MAE on {c.ds_name(f.dataset)})"
        )
        if best.empty:
            st.caption("The best model itself is hidden by the filters; alignments are still to it.")
        texts = {"model id": short_labels(r), "name": c.labels, "none": None}
        shown = st.radio("Point labels", list(texts), horizontal=True, key="convergence_labels",
                         help="Model ids are short; names are the cards' display names. Hover shows the name.")  # fmt: skip
        figure(
            figures.convergence(df, c.labels, f"{mname} to the best model", texts[shown], c.colours),
            df,
            csv_name(
                c, "alignment-vs-mae" + ("-calibrated" if scale == "calibrated" else ""), f.dataset, f.metric, f.k
            ),
            key="convergence",
            title=("calibrated · " if scale == "calibrated" else "")
            + about(c, f.dataset, f.metric, f.k, df["n"])
            + " · energy MAE on n_test = "
            + "/".join(sorted({f"{int(v):,}" for v in df["n_test"].dropna()})),
            caption="Star (top, on the dashed line): the lowest-MAE model, drawn at its MAE above the others (it has "
            "no alignment to itself). Error bars: confidence interval where the release has one. Labels that would "
            "overlap another are left out; hover a point for its name.",
        )
