"""Compare two models: every metric on every dataset, side by side."""

import pandas as pd
import streamlit as st

from app import figures
from app.data import SOURCE_LABELS, q
from app.state import control
from app.ui import about, csv_name, ctx, figure, need, scale_control, table

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
        # the switch needs calibration somewhere in the release; per row, a value without one is left blank
        scale = scale_control(c, None, None, None)
        if scale == "calibrated":
            df = df.assign(value_ab=df["calibrated"].where(df["scope"] == "pair", df["value_ab"]),
                           value_ba=df["calibrated_ba"].where(df["scope"] == "pair", df["value_ba"]))  # fmt: skip
            st.caption("Calibrated: each pair's null-calibrated score, higher = more aligned for every metric "
                       "(information imbalance included); blank where the release has no calibration for a value.")  # fmt: skip
        pair = df[df["scope"] == "pair"]
        if need(not pair.empty, "These two models share no pairwise value on any dataset."):
            sims = [m for m in dict.fromkeys(pair["metric"]) if m != "info_imbalance"]
            st.markdown("**Similarities** (higher = more aligned; unitless, 1 = identical geometry)")
            figure(
                figures.compare_bars(
                    df, sims, f"{'calibrated ' if scale == 'calibrated' else ''}similarity A → B (unitless)"
                ),  # fmt: skip
                df[(df["scope"] == "model") | df["metric"].isin(sims)],
                csv_name(c, f"compare-{a}-{b}-similarities{'-calibrated' if scale == 'calibrated' else ''}"),
                key="compare",
                title=f"{c.labels[a]} vs {c.labels[b]} · similarities on every dataset · "
                + about(c, "all", n=pair.loc[pair["metric"].isin(sims), "n"]),
                caption="Bars: A → B; for CKNNA B → A is in the hover and the table.",
            )
            ii = pair[pair["metric"] == "info_imbalance"]
            if not ii.empty:
                st.markdown(
                    "**Information imbalance** (lower = more aligned; unitless, ≈ 0: A's neighbours predict B's, "
                    "≈ 1: unrelated)"
                )
                figure(
                    figures.compare_bars(
                        df,
                        ["info_imbalance"],
                        "calibrated Δ(A → B) (higher = more aligned)"
                        if scale == "calibrated"
                        else "Δ(A → B) (unitless, lower = more aligned)",
                    ),  # fmt: skip
                    df[df["metric"] == "info_imbalance"],
                    csv_name(c, f"compare-{a}-{b}-information-imbalance"),
                    key="compare_ii",
                    title=f"{c.labels[a]} vs {c.labels[b]} · information imbalance Δ(A → B) · "
                    + about(c, "all", n=ii["n"]),
                    caption="Bars: Δ(A → B); Δ(B → A) is in the hover and the table.",
                )
            vk = q(r, "pair_vs_k", a, b, scale)
            if len(vk) and vk.groupby(["metric", "dataset_id"])["k"].nunique().max() > 1:
                st.markdown("**Against k** (every metric with a neighbourhood size)")
                cal = scale == "calibrated"
                lacking = vk[vk["value"].isna()][["dataset_id", "metric"]].drop_duplicates()
                if cal and len(lacking):
                    pairs_ = lacking.itertuples(index=False)
                    where = "; ".join(f"{c.ds_name(d)} · {c.metric_name(m)}" for d, m in pairs_)
                    st.info(f"This release has no calibration data for this pair on {where}: those lines are left "
                            "out of the plot against k (switch to raw to see them).")  # fmt: skip
                drawn = vk[vk["value"].notna()]
                if need(not drawn.empty, "No value of this pair against k is calibrated in this release."):
                    mdefs = q(r, "metric_definitions").set_index("metric")
                    figure(
                        figures.pair_vs_k(vk, mdefs, calibrated=cal),
                        vk,
                        csv_name(c, f"compare-{a}-{b}-vs-k{'-calibrated' if cal else ''}"),
                        key="compare_k",
                        title=f"{c.labels[a]} vs {c.labels[b]} against k{' · calibrated' if cal else ''} · "
                        + about(c, "all", n=drawn["n"], perms=drawn["n_permutations"] if cal else None),
                        caption="One line per metric (dash) and dataset (colour); error bars: the stored interval "
                        "where there is one"
                        + (
                            ", mapped through the calibration with its critical value τ fixed. Calibrated: 0 = not "
                            "beyond the pair's permutation null, higher = more aligned for every metric."
                            if cal
                            else ". Information imbalance: lower = more aligned; the others: higher."
                        ),
                    )
        st.markdown(
            "**Every number** (scope `model`: each model's own intrinsic dimension in dimensions and energy MAE in "
            "eV/atom; pairwise values are unitless)"
        )
        table(df)
        # How A and B see every other model on the sidebar's dataset and metric
        if f.dataset is not None and f.metric is not None:
            sc = "calibrated" if scale == "calibrated" and q(r, "has_calibration", f.dataset, f.metric, f.k) else "raw"
            res = q(r, "matrix", f.dataset, f.metric, f.k, models=f.model_filter, scale=sc)
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
                        f"How A and B see every other model: {'calibrated ' if sc == 'calibrated' else ''}"
                        f"{c.metric_name(f.metric)} on {c.ds_name(f.dataset)}"
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
                            colours=c.colours,
                        ),
                        rows.drop(columns=["label"]),
                        csv_name(c, f"compare-{a}-{b}-others", f.dataset, f.metric, f.k),
                        key="compare_others",
                        title=f"How {c.labels[a]} and {c.labels[b]} see the others · "
                        + about(c, f.dataset, f.metric, f.k, res.cells["n"]),
                        caption="One point per other model: its value with A (x) and with B (y). On the diagonal: A "
                        "and B relate to the rest of the zoo alike.",
                    )
