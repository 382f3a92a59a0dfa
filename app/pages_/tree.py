"""Model tree: neighbour joining or UPGMA over 1 - similarity, drawn from a Biopython parse of the Newick."""

import pandas as pd
import streamlit as st

from app import figures
from app.data import q
from app.state import control
from app.ui import about, csv_name, ctx, figure, k_text, need, scale_control

c = ctx()
r, f = c.release, c.f
st.title("Model tree")
if need(f.dataset is not None and f.metric is not None, "This release has no pairwise values to build a tree from."):
    col1, col2, col3 = st.columns(3)
    method = control(
        "method",
        "Method",
        ["nj", "upgma"],
        "nj",
        where=col1,
        widget="radio",
        what="tree method",
        format_func=lambda m: {"nj": "neighbour joining", "upgma": "UPGMA"}[m],
    )
    colour = control(
        "colour",
        "Colour leaves by",
        ["family", "training", "source"],
        "family",
        where=col2,
        widget="radio",
        what="leaf colouring",
    )
    stored = q(r, "list_trees", f.dataset)
    hit = stored[(stored["metric"] == f.metric) & (stored["method"] == method)]
    hit = hit[hit["k"].isna()] if f.k is None else hit[hit["k"] == f.k]
    newick, origin = None, ""
    scale = scale_control(c, f.dataset, f.metric, f.k, where=col3)
    if scale == "calibrated":  # stored trees are raw: the calibrated one is computed now
        if need(len(f.models) >= 3, "A tree needs at least 3 models; the filters leave fewer."):
            try:
                newick = q(r, "tree_for_models", f.dataset, f.metric, f.k, method, models=f.models, scale=scale)
                origin = f"computed now (Biopython) from the calibrated scores of the {len(f.models)} models shown"
            except ValueError as e:
                st.info(f"No tree: {e}")
    elif not f.active and not hit.empty:
        newick = str(hit.iloc[0]["newick"])
        origin = "the release's stored tree (all models)"
    elif need(len(f.models) >= 3, "A tree needs at least 3 models; the filters leave fewer."):
        try:
            newick = q(r, "tree_for_models", f.dataset, f.metric, f.k, method, models=f.models)
            origin = (
                f"computed now (Biopython) over the {len(f.models)} models the filters keep"
                if f.active
                else "computed now (Biopython): the release stores no tree for this metric and k"
            )
        except ValueError as e:
            st.info(f"No tree: {e}")
    if newick:
        leaves, xs, ys = figures.tree_layout(newick)
        meta = q(r, "list_models").set_index("model_id")
        leaves["display_name"] = [meta.at[m, "display_name"] for m in leaves["model_id"]]
        leaves["label"] = [c.labels.get(m, m) for m in leaves["model_id"]]
        leaves["family"] = [meta.at[m, "family"] for m in leaves["model_id"]]
        leaves["source"] = [meta.at[m, "source"] for m in leaves["model_id"]]
        leaves["training"] = ["+".join(meta.at[m, "training_sets"]) or "(none)" for m in leaves["model_id"]]
        leaves.insert(0, "dataset_id", f.dataset)
        leaves.insert(1, "metric", f.metric)
        leaves.insert(2, "k", pd.array([f.k] * len(leaves), dtype="Int64"))
        leaves.insert(3, "method", method)
        name = "neighbour joining" if method == "nj" else "UPGMA"
        st.subheader(
            f"{name} tree of {'calibrated ' if scale == 'calibrated' else ''}{c.metric_name(f.metric)} on {c.ds_name(f.dataset)}{k_text(f.k)}"
        )
        nres = q(r, "matrix", f.dataset, f.metric, f.k, models=f.model_filter)
        figure(
            figures.tree_figure(leaves, xs, ys, colour, c.colours),
            leaves,
            csv_name(c, f"tree-{method}{'-calibrated' if scale == 'calibrated' else ''}", f.dataset, f.metric, f.k),
            key="tree",
            title=f"{name} tree{' (calibrated)' if scale == 'calibrated' else ''} · "
            + about(c, f.dataset, f.metric, f.k, nres.cells["n"]),
            caption=f"Source: {origin}. Distance 1 − (S(A,B) + S(B,A))/2"
            + (
                " with S the calibrated score (pairs without one: the largest distance)"
                if scale == "calibrated"
                else ""
            )
            + ". Neighbour joining gives an unrooted "
            "tree; it is drawn from the root Biopython chose. Branch lengths are drawn to scale.",
        )
        st.download_button(
            "Download the tree (Newick, .nwk)", data=newick.strip() + "\n",
            file_name=csv_name(c, f"tree-{method}{'-calibrated' if scale == 'calibrated' else ''}", f.dataset, f.metric,
                               f.k, ext="nwk"), mime="text/plain",
            key="nwk_tree", on_click="ignore", icon=":material/download:",
        )  # fmt: skip
