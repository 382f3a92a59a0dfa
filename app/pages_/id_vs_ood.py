"""In- vs out-of-distribution: two datasets' matrices side by side, their difference, and each pair's values."""

import streamlit as st

from app import figures
from app.data import q, short_labels
from app.state import control, hidden_line
from app.ui import (
    about,
    csv_name,
    ctx,
    figure,
    heatmap_figure,
    k_text,
    need,
    range_control,
    range_note,
    scale_control,
    scaled_mdef,
    table,
    zrange,
)
from backend import queries

c = ctx()
r, f = c.release, c.f
st.title("In- vs out-of-distribution")
st.markdown(
    "A model is **in-distribution** (ID) on a dataset when its training sets intersect the dataset's "
    "`in_distribution_for` tags (from the cards, never typed per pair). Pick the dataset in the sidebar (A) and a "
    "second dataset (B) here: the same pairs of models are compared on both."
)
others = [d for d in q(r, "filter_options")["dataset"] if d != f.dataset]
if need(f.metric is not None and bool(others), "This comparison needs a metric with values on two datasets."):
    col1, col2, col3 = st.columns(3)
    dsb = control("dataset_b", "Dataset B", others, others[0], where=col1, what="second dataset", format_func=c.ds_name)
    rng = range_control(col2)
    scale = scale_control(c, f.dataset, f.metric, f.k, where=col3)
    if scale == "calibrated" and (note_b := q(r, "calibration_note", dsb, f.metric, f.k)) is not None:
        st.info(f"Dataset B: {note_b}")
        scale = "raw"
    try:
        md = q(r, "matrix_difference", f.dataset, dsb, f.metric, f.k, models=f.model_filter, scale=scale)
    except ValueError as e:
        md = None
        st.info(f"{c.metric_name(f.metric)}{k_text(f.k)} cannot be compared on these datasets: {e}")
    if md is not None and need(len(md.order) >= 2, "Fewer than two models have values on both datasets."):
        mdef = scaled_mdef(c.mdef(f.metric), scale)
        ida = q(r, "list_models", dataset=f.dataset).set_index("model_id")["in_distribution"]
        idb = q(r, "list_models", dataset=dsb).set_index("model_id")["in_distribution"]
        tag = lambda ids, m: "ID" if bool(ids.get(m, False)) else "OOD"  # noqa: E731
        short = short_labels(r)  # model ids: two matrices side by side leave no room for long names
        la = {m: f"{short.get(m, m)} ({tag(ida, m)})" for m in md.order}
        lb = {m: f"{short.get(m, m)} ({tag(idb, m)})" for m in md.order}
        kt = k_text(md.k)
        if c.line is not None:  # this page shows only the models with values on both datasets
            c.line.caption(
                hidden_line(
                    f,
                    c.ds_name(f.dataset),
                    len(md.order),
                    f" (with values on both {c.ds_name(f.dataset)} and {c.ds_name(dsb)})",
                )
            )
        both = list(md.a.matrix.to_numpy(dtype=float).ravel()) + list(md.b.matrix.to_numpy(dtype=float).ravel())
        zr = zrange(both, mdef, rng)
        st.subheader(f"{mdef['display_name']}{kt}: {c.ds_name(f.dataset)} (A) and {c.ds_name(dsb)} (B)")
        st.caption(range_note(zr, mdef, rng) + "The same colour range on A and B.")
        left, right = st.columns(2)
        with left:
            st.markdown(f"**A: {c.ds_name(f.dataset)}** (labels: ID/OOD on A)")
            figure(
                heatmap_figure(c, md.a, mdef, la, zrange=zr, width_px=200),
                queries.matrix_table(md.a),
                csv_name(c, "matrix-a", f.dataset, f.metric, md.k),
                key="mat_a",
                title=f"A{' · calibrated' if scale == 'calibrated' else ''} · "
                + about(c, f.dataset, f.metric, md.k, md.a.cells["n"]),
            )
        with right:
            st.markdown(f"**B: {c.ds_name(dsb)}** (labels: ID/OOD on B)")
            figure(
                heatmap_figure(c, md.b, mdef, lb, zrange=zr, width_px=200),
                queries.matrix_table(md.b),
                csv_name(c, "matrix-b", dsb, f.metric, md.k),
                key="mat_b",
                title=f"B{' · calibrated' if scale == 'calibrated' else ''} · "
                + about(c, dsb, f.metric, md.k, md.b.cells["n"]),
            )
        st.subheader("Difference B − A")
        diff_tab = md.cells.assign(dataset_a=f.dataset, dataset_b=dsb, metric=f.metric, k=md.k)
        figure(
            figures.diff_heatmap(md.difference, short),
            diff_tab,
            csv_name(c, f"difference-{dsb}-minus", f.dataset, f.metric, md.k),
            key="diff",
            title=f"{c.ds_name(dsb)} − {c.ds_name(f.dataset)} · {mdef['display_name']}{kt} · "
            f"A: {about(c, f.dataset, n=md.a.cells['n'])}; B: {about(c, dsb, n=md.b.cells['n'])}",
            caption="Red: higher on B, blue: higher on A (for a similarity, red = more aligned on B). Grey: no value "
            "(a model with itself), not a difference of zero.",
        )
        st.subheader("Each pair: value on A against value on B" + (" (raw values)" if scale == "calibrated" else ""))
        pairs = q(r, "id_vs_ood", f.dataset, dsb, f.metric, md.k, models=f.model_filter)
        if need(not pairs.empty, "No pair has values on both datasets."):
            pairs = pairs.assign(
                label_a=[c.labels.get(m, m) for m in pairs["model_a"]],
                label_b=[c.labels.get(m, m) for m in pairs["model_b"]],
            )
            figure(
                figures.scatter_pairs(
                    pairs,
                    "value_id",
                    "value_ood",
                    "pair_class_id",
                    diagonal=True,
                    xlab=f"{c.ds_name(f.dataset)} (A)",
                    ylab=f"{c.ds_name(dsb)} (B)",
                    hover=("label_a", "label_b"),
                    colour_title="pair class on A",
                ),
                pairs.drop(columns=["label_a", "label_b"]),
                csv_name(c, f"pairs-vs-{dsb}", f.dataset, f.metric, md.k),
                key="pairs",
                title=f"Each pair on A and B · {c.metric_name(f.metric)}{kt} · A: {c.ds_name(f.dataset)}, "
                f"B: {c.ds_name(dsb)} · {len(pairs)} pairs",
                caption="Colour: the pair's class on A (both_id: both models in-distribution on A; mixed; "
                "both_ood). Points above the dotted line are more aligned on B (for similarities).",
            )
        summary = q(r, "id_ood_summary", f.metric, md.k, models=f.model_filter)
        st.markdown("**Mean value per pair class on every dataset**")
        table(summary)
