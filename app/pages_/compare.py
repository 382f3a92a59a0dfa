"""Compare two models: every metric on every dataset, side by side."""

import pandas as pd
import streamlit as st

from app import figures
from app.data import SOURCE_LABELS, q
from app.state import control
from app.ui import csv_name, ctx, figure, need

c = ctx()
r, f = c.release, c.f
st.title("Compare two models")
models = f.models if f.active else list(q(r, "list_models")["model_id"])
if need(len(models) >= 2, "Comparing needs at least two models; the filters leave fewer."):
    col1, col2 = st.columns(2)
    a = control("model_a", "Model A", models, models[0], where=col1, format_func=c.labels.get, what="model")
    b = control("model_b", "Model B", models, models[1], where=col2, format_func=c.labels.get, what="model")
    meta = q(r, "list_models").set_index("model_id")
    for col, m in ((col1, a), (col2, b)):
        src = meta.at[m, "source"]
        col.caption(f"{meta.at[m, 'family']} · {meta.at[m, 'modality']} · source: **{src}** ({SOURCE_LABELS[src]})")
    if need(a != b, "Pick two different models."):
        df = q(r, "compare_models", a, b)
        st.subheader(f"{c.labels[a]} vs {c.labels[b]}")
        pair = df[df["scope"] == "pair"]
        if need(not pair.empty, "These two models share no pairwise value on any dataset."):
            figure(
                figures.compare_bars(df),
                df,
                csv_name(c, f"compare-{a}-{b}"),
                key="compare",
                caption="Bars: A → B (for directional metrics, information imbalance, B → A is in the hover and "
                "the table). Every metric is a similarity (higher = more aligned) except information imbalance "
                "(lower = more informative).",
            )
        st.markdown("**Every number** (scope `model`: each model's own intrinsic dimension and energy MAE)")
        st.dataframe(df, hide_index=True)
        # How A and B see every other model on the sidebar's dataset and metric
        if f.dataset is not None and f.metric is not None:
            res = q(r, "matrix", f.dataset, f.metric, f.k, models=f.model_filter)
            if a in res.order and b in res.order:
                others = [m for m in res.order if m not in (a, b)]
                rows = pd.DataFrame(
                    {
                        "dataset_id": f.dataset,
                        "metric": f.metric,
                        "k": pd.array([f.k] * len(others), dtype="Int64"),
                        "other_model": others,
                        "family": [meta.at[m, "family"] for m in others],
                        "value_a": [res.matrix.at[a, m] for m in others],
                        "value_b": [res.matrix.at[b, m] for m in others],
                    }
                )
                rows["label"] = [c.labels.get(m, m) for m in others]
                if len(rows):
                    st.subheader(
                        f"How A and B see every other model: {c.metric_name(f.metric)} on {c.ds_name(f.dataset)}"
                    )
                    figure(
                        figures.scatter_pairs(
                            rows,
                            "value_a",
                            "value_b",
                            "family",
                            diagonal=True,
                            xlab=f"{c.labels[a]} → other",
                            ylab=f"{c.labels[b]} → other",
                            hover=("label",),
                            colour_title="family of the other model",
                        ),
                        rows.drop(columns=["label"]),
                        csv_name(c, f"compare-{a}-{b}-others", f.dataset, f.metric, f.k),
                        key="compare_others",
                        caption="One point per other model: its value with A (x) and with B (y). On the diagonal: A "
                        "and B relate to the rest of the zoo alike.",
                    )
