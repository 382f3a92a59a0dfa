"""Dataset cards, generated from the release's datasets table (generated sets labelled as such)."""

import streamlit as st

from app.data import q
from app.ui import csv_name, ctx, download, need, table

c = ctx()
r, f = c.release, c.f
st.title("Dataset cards")
ds = q(r, "list_datasets")


def _pick() -> None:  # the page's picker drives the sidebar's (hidden here) dataset value, kept in the URL
    st.session_state["dataset"] = st.session_state["dataset_card_pick"]


ids = list(ds["dataset_id"])
if ids and f.dataset in ids:
    st.selectbox(
        "Dataset", ids, index=ids.index(f.dataset), key="dataset_card_pick", on_change=_pick,
        format_func=lambda d: f"{c.ds_name(d)} ({d})",
    )  # fmt: skip
if need(f.dataset is not None, "This release has no datasets."):
    card = q(r, "dataset_card", f.dataset).iloc[0]
    st.header(f"{card['display_name']} (`{card['dataset_id']}`)")
    if card["origin"] == "generated":
        st.warning(
            f"**Generated dataset**: not real measured or curated data; made by a recorded recipe: "
            f"{card['recipe'] or '(recipe missing)'}",
            icon=":material/science:",
        )
    else:
        st.success("**Real data**")
    fields = [
        ("Domain", card["domain"]),
        ("Origin", card["origin"]),
        ("Samples analysed", f"{int(card['n_samples']):,}"),
        ("Recipe", card["recipe"] or "—"),
        ("Licence", card["license"] or "—"),
        ("Citation", card["citation"] or "—"),
        ("In-distribution for training sets", ", ".join(card["in_distribution_for"]) or "(none)"),
        ("Models with results", int(card["n_models"])),
        ("Metrics", ", ".join(card["metrics"]) or "none"),
    ]
    st.markdown("\n".join(f"- **{k}**: {v}" for k, v in fields))
    st.subheader("Models on this dataset")
    models = q(r, "list_models", dataset=f.dataset)
    models = models[models["model_id"].isin(f.models)]
    cols = ["model_id", "display_name", "family", "source", "training_sets", "in_distribution"]
    table(models[cols])
    download(models, csv_name(c, "models-on", f.dataset), key="csv_ds_models", label="Download this table (CSV)")
    samples = q(r, "list_samples", f.dataset, 20, 0)
    if not samples.empty:
        st.subheader("First samples (embedding order)")
        table(samples)
st.subheader("Every dataset of the release")
table(ds)
download(ds, csv_name(c, "datasets"), key="csv_datasets", label="Download the dataset table (CSV)")
