"""Alignment heatmap: one (dataset, metric, k) matrix over the filtered models, by family or clustered."""

import streamlit as st

from app import figures
from app.data import q
from app.state import control
from app.ui import about, csv_name, ctx, figure, heatmap_figure, k_text, need, range_control, range_note, zrange
from backend import queries

c = ctx()
r, f = c.release, c.f
st.title("Alignment heatmap")
if need(f.dataset is not None and f.metric is not None, "This release has no pairwise values to show."):
    col1, col2, col3 = st.columns(3)
    order = control(
        "order",
        "Order",
        ["family", "cluster"],
        "family",
        where=col1,
        widget="radio",
        what="order",
        help="family: grouped by family (white lines between families); cluster: hierarchical clustering "
        "of 1 − value (average linkage, optimal leaf order) with its dendrogram",
    )
    view = control(
        "view",
        "View",
        ["matrix", "family_block"],
        "matrix",
        where=col2,
        widget="radio",
        what="view",
        format_func=lambda v: {"matrix": "every model", "family_block": "family blocks (means)"}[v],
    )
    rng = range_control(col3)
    mdef = c.mdef(f.metric)
    title = f"{c.metric_name(f.metric)} on {c.ds_name(f.dataset)}{k_text(f.k)}"
    if need(len(f.models) >= 1, "The filters hide every model on this dataset."):
        if view == "matrix":
            res = q(r, "matrix", f.dataset, f.metric, f.k, order=order, models=f.model_filter)
            st.subheader(title)
            if need(len(res.order) >= 1, "No values for these models on this dataset."):
                table = queries.matrix_table(res)
                null = q(r, "pairwise_null", f.dataset, f.metric, f.k, models=f.model_filter)
                if not null.empty:  # the permutation baseline shown in the hover is in the CSV too
                    cols = ["model_a", "model_b", "null_mean", "null_std", "null_q95", "z", "n_permutations", "seed"]
                    table = table.merge(null[cols], on=["model_a", "model_b"], how="left")
                zr = zrange(res.matrix.to_numpy(dtype=float), mdef, rng)
                perms = null["n_permutations"] if not null.empty else None
                figure(
                    heatmap_figure(c, res, mdef, c.labels, null=null, zrange=zr),
                    table,
                    csv_name(c, "matrix", f.dataset, f.metric, f.k),
                    key="heatmap",
                    title=about(c, f.dataset, f.metric, f.k, res.cells["n"], perms),
                    caption="Rows: model A, columns: model B. "
                    + range_note(zr, mdef, rng)
                    + f"{'Higher' if mdef['higher_is_aligned'] else 'Lower'} = more aligned. "
                    + ("Not symmetric: A→B and B→A differ. " if not mdef["symmetric"] else "")
                    + "Hover for n, k, confidence interval, p-value and, where the release has one, the permutation-null "
                    "baseline (mean ± sd, z). Blank cells: no value stored.",
                )
        else:
            fb = q(r, "family_block_matrix", f.dataset, f.metric, f.k, models=f.model_filter)
            st.subheader(f"Family means: {title}")
            nres = q(r, "matrix", f.dataset, f.metric, f.k, models=f.model_filter)
            figure(
                figures.family_block(fb, mdef, zrange(fb["value_mean"], mdef, rng)),
                fb,
                csv_name(c, "family-block", f.dataset, f.metric, f.k),
                key="family_block",
                title="Family means · " + about(c, f.dataset, f.metric, f.k, nres.cells["n"]),
                caption="Each cell: the mean over ordered pairs of distinct models of the two families, and the "
                "number of pairs; blank: a one-model family's own block.",
            )
