"""Summary: every model of a dataset in one sortable table, the place to start (backend.queries.model_summary)."""

from urllib.parse import urlencode

import streamlit as st

from app.data import q
from app.ui import about, csv_name, ctx, download, k_text, need, scale_control

c = ctx()
r, f = c.release, c.f
st.title("Summary: which models agree, how sure are we")
st.markdown(
    "One row per model: its mean alignment to every other model on the dataset (with an interval), its nearest "
    "model (ties marked), its intrinsic dimension and its energy error. Click a column to sort; the sidebar filters "
    "choose the models; each row links to the model's card and to the comparison with its nearest model."
)
if need(f.dataset is not None and f.metric is not None, "This release has no pairwise values to summarise."):
    # calibrated means where the release has them (the switch's default here), raw otherwise
    scale = scale_control(c, f.dataset, f.metric, f.k, prefer_calibrated=True)
    df = q(r, "model_summary", f.dataset, f.metric, f.k, models=f.model_filter, scale=scale)
    if need(not df.empty, "The filters hide every model with values on this dataset."):
        name = ("calibrated " if scale == "calibrated" else "") + c.metric_name(f.metric)
        st.subheader(f"{name}{k_text(f.k)} on {c.ds_name(f.dataset)}")
        n = q(r, "matrix", f.dataset, f.metric, f.k, models=f.model_filter).cells["n"]
        st.caption(
            about(c, f.dataset, f.metric, f.k, n) + f" · {len(df)} models. Interval: {df['interval_kind'].iloc[0]}"
            + ("" if "pairs' CIs" in df["interval_kind"].iloc[0] else " (this release has no CI per pair, so it is "
               "the spread of the model's alignment over its partners, not sampling error; ties of the nearest "
               "model are exact ties only)")
            + ". Nearest model: ties are the partners whose interval overlaps the nearest pair's."
            + (" Calibrated: each pair's null-calibrated score (0 = not above its permutation null), its interval the "
               "pair's CI mapped the same way." if scale == "calibrated" else "")
            + " Energy MAE: per atom on the held-out split, meV/atom; intrinsic dimension: TwoNN, 95% bootstrap CI."
        )  # fmt: skip
        higher = scale == "calibrated" or bool(c.mdef(f.metric)["higher_is_aligned"])
        if not higher:
            st.info(f"{name}: lower is more aligned; the table is sorted with the most aligned first.")
        show = df.assign(
            model=[c.labels.get(m, m) for m in df["model_id"]],
            nearest=[c.labels.get(m, m) for m in df["nearest_model"]],
            card=[f"model_cards?{urlencode({'model': m})}" for m in df["model_id"]],
            compare=[
                f"compare?{urlencode({'dataset': f.dataset, 'model_a': m, 'model_b': b})}"
                for m, b in zip(df["model_id"], df["nearest_model"], strict=True)
            ],
        )
        cols = ["model", "family", "modality", "source", "mean_alignment", "mean_ci_low", "mean_ci_high", "n_partners",
                "nearest", "nearest_value", "nearest_tied_with", "twonn_id", "twonn_ci_low", "twonn_ci_high",
                "energy_mae_mev_per_atom", "card", "compare"]  # fmt: skip
        st.dataframe(
            show[cols].style.format(na_rep="–", precision=3),
            hide_index=True,
            column_config={
                "mean_alignment": st.column_config.NumberColumn(f"mean {name}", format="%.3f"),
                "mean_ci_low": st.column_config.NumberColumn("interval low", format="%.3f"),
                "mean_ci_high": st.column_config.NumberColumn("interval high", format="%.3f"),
                "nearest_value": st.column_config.NumberColumn(f"{name} to nearest", format="%.3f"),
                "nearest_tied_with": st.column_config.TextColumn("tied with nearest"),
                "twonn_id": st.column_config.NumberColumn("ID (TwoNN)", format="%.2f"),
                "energy_mae_mev_per_atom": st.column_config.NumberColumn("energy MAE (meV/atom)", format="%.1f"),
                "card": st.column_config.LinkColumn("card", display_text="model card"),
                "compare": st.column_config.LinkColumn("compare", display_text="vs nearest"),
            },
            key="summary_table",
        )
        download(df, csv_name(c, "summary" if scale == "raw" else "summary-calibrated", f.dataset, f.metric, f.k), key="csv_summary",
                 label="Download this summary (CSV)")  # fmt: skip
