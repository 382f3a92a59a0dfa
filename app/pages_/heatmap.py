"""Alignment heatmap: one (dataset, metric, k) matrix over the filtered models, by family or clustered."""

import streamlit as st

from app import figures
from app.data import q
from app.state import control
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
    zrange,
)
from backend import queries

c = ctx()
r, f = c.release, c.f
st.title("Alignment heatmap")
if need(f.dataset is not None and f.metric is not None, "This release has no pairwise values to show."):
    col1, col2, col3, col4 = st.columns(4)
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
    scale = scale_control(c, f.dataset, f.metric, f.k, where=col4)
    raw_mdef = c.mdef(f.metric)
    mdef = scaled_mdef(raw_mdef, scale)
    title = f"{mdef['display_name']} on {c.ds_name(f.dataset)}{k_text(f.k)}"
    if need(len(f.models) >= 1, "The filters hide every model on this dataset."):
        if view == "matrix":
            res = q(r, "matrix", f.dataset, f.metric, f.k, order=order, models=f.model_filter, scale=scale)
            st.subheader(title)
            if need(len(res.order) >= 1, "No values for these models on this dataset."):
                # the CSV carries what the hover shows: raw and calibrated value, CI, null, p as shown
                table = queries.matrix_table(res)
                zr = zrange(res.matrix.to_numpy(dtype=float), mdef, rng)
                perms = res.cells["n_permutations"] if res.cells["n_permutations"].notna().any() else None
                marked = int((res.cells["above_null_q95"] == False).sum())  # noqa: E712 (nullable boolean)
                q_name = "95th" if raw_mdef["higher_is_aligned"] else "5th"
                figure(
                    heatmap_figure(c, res, mdef, c.labels, zrange=zr),
                    table,
                    csv_name(c, "matrix" if scale == "raw" else "matrix-calibrated", f.dataset, f.metric, f.k),
                    key="heatmap",
                    title=("calibrated · " if scale == "calibrated" else "")
                    + about(c, f.dataset, f.metric, f.k, res.cells["n"], perms),
                    caption="Rows: model A, columns: model B. "
                    + range_note(zr, mdef, rng)
                    + f"{'Higher' if mdef['higher_is_aligned'] else 'Lower'} = more aligned. "
                    + (
                        "Calibrated: 0 = not above the pair's permutation null (Gröger et al. 2026). "
                        if scale == "calibrated"
                        else ""
                    )
                    + ("Not symmetric: A→B and B→A differ. " if not raw_mdef["symmetric"] else "")
                    + (
                        f"× marks the {marked} cells whose raw value is not beyond the null's {q_name} percentile "
                        "(a permutation of B's rows does as well). "
                        if perms is not None and marked
                        else f"No cell is marked: all {int(res.cells['above_null_q95'].notna().sum())} cells with a "
                        f"stored null are beyond their null's {q_name} percentile. "
                        if perms is not None
                        else "No cell is marked: no permutation null is stored for these values. "
                    )
                    + "Hover for n, k, confidence interval, p-value and, where the release has one, the permutation-null "
                    "baseline (mean ± sd, z). Blank cells: no value stored.",
                )
        else:
            fb = q(r, "family_block_matrix", f.dataset, f.metric, f.k, models=f.model_filter, scale=scale)
            st.subheader(f"Family means: {title}")
            nres = q(r, "matrix", f.dataset, f.metric, f.k, models=f.model_filter)
            figure(
                figures.family_block(fb, mdef, zrange(fb["value_mean"], mdef, rng)),
                fb,
                csv_name(c, "family-block" if scale == "raw" else "family-block-calibrated", f.dataset, f.metric, f.k),
                key="family_block",
                title=f"Family means{' (calibrated)' if scale == 'calibrated' else ''} · "
                + about(c, f.dataset, f.metric, f.k, nres.cells["n"]),
                caption="Each cell: the mean over ordered pairs of distinct models of the two families, and the "
                "number of pairs; blank: a one-model family's own block.",
            )
