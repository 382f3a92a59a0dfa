"""Intrinsic dimension per model (TwoNN by default) with bootstrap confidence intervals, grouped by family."""

import streamlit as st

from app import figures
from app.data import q
from app.state import control
from app.ui import about, csv_name, ctx, figure, need

c = ctx()
r, f = c.release, c.f
st.title("Intrinsic dimension")
opts = q(r, "filter_options")
if need(bool(opts["estimator"]), "This release has no intrinsic-dimension values."):
    col1, col2 = st.columns(2)
    est = control(
        "estimator",
        "Estimator",
        opts["estimator"],
        "twonn" if "twonn" in opts["estimator"] else opts["estimator"][0],
        where=col1,
        widget="radio",
        what="estimator",
    )
    scope = control(
        "scope",
        "Datasets",
        ["dataset", "all"],
        "dataset",
        where=col2,
        widget="radio",
        what="scope",
        format_func=lambda s: {"dataset": "the chosen dataset", "all": "every dataset"}[s],
    )
    df = q(r, "intrinsic_dim", f.dataset if scope == "dataset" else None, est, models=f.model_filter)
    if need(not df.empty, "No intrinsic-dimension values for these models and this dataset."):
        where = c.ds_name(f.dataset) if scope == "dataset" else "every dataset"
        st.subheader(f"{est} intrinsic dimension on {where}")
        figure(
            figures.id_bars(df, c.labels, c.colours, {d: c.ds_name(d) for d in df["dataset_id"]}),
            df,
            csv_name(c, f"intrinsic-dim-{est}", f.dataset if scope == "dataset" else "all"),
            key="id_bars",
            title=f"{est} intrinsic dimension · "
            + about(c, f.dataset if scope == "dataset" else "all", None, None, df["n"]),
            caption="Bars: estimate on all n samples (after removing duplicates); error bars: seeded bootstrap "
            "interval. Colour: family (the same colour on every page).",
        )
