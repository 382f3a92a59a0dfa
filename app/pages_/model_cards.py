"""Model cards, generated from the release's models table and every number the release holds for the model."""

import streamlit as st

from app.data import SOURCE_LABELS, q
from app.state import control
from app.ui import csv_name, ctx, download, need

c = ctx()
r, f = c.release, c.f
st.title("Model cards")
catalogue = q(
    r,
    "list_models",
    family=f.family or None,
    modality=f.modality or None,
    training_set=f.training_set or None,
    source=f.source or None,
)
st.caption(f"{len(catalogue)} model(s) pass the model filters (on any dataset).")
cols = ["model_id", "display_name", "family", "modality", "source", "training_sets", "params", "embedding_dim"]
st.dataframe(catalogue[cols], hide_index=True)
download(catalogue, csv_name(c, "models"), key="csv_models", label="Download the model table (CSV)")
ids = list(catalogue["model_id"])
if need(bool(ids), "No model passes the filters."):
    m = control("model", "Model", ids, ids[0], where=st, format_func=c.labels.get, what="model")
    card = q(r, "model_card", m).iloc[0]
    src = card["source"]
    st.header(c.labels[m])
    if src == "random_init":
        st.warning(
            "**Random initialisation.** These numbers come from the real architecture with *random* weights "
            "(the published checkpoint was not used). They are a baseline, **not** the pretrained model's results.",
            icon=":material/casino:",
        )
    elif src == "trained_here":
        st.info("**Trained here**: weights trained by this project, not a published checkpoint.")
    elif src == "descriptor":
        st.info("**Descriptor**: a fixed, untrained featurisation.")
    else:
        st.success("**Pretrained**: the published weights.")
    fields = [
        ("Source", f"`{src}`: {SOURCE_LABELS[src]}"),
        ("Family", card["family"]),
        ("Architecture", card["architecture"]),
        ("Modality / input", f"{card['modality']} / {card['input_kind']}"),
        ("Training sets", ", ".join(card["training_sets"]) or "(none)"),
        ("Equivariance", card["equivariance"]),
        ("Force head", card["force_head"]),
        (
            "Parameters",
            "unknown" if card["params"] is None or card["params"] != card["params"] else f"{int(card['params']):,}",
        ),
        ("Embedding", f"{card['embedding_dim']} dims from layer `{card['layer']}`, pooling: {card['pooling']}"),
        (
            "Checkpoint" if src != "random_init" else "Checkpoint (not used here: what a user with the weights loads)",
            card["checkpoint"] or "—",
        ),
        ("Licence", card.get("license") or "—"),
        ("Citation", card["citation"] or "—"),
        ("Datasets with results", ", ".join(c.ds_name(d) for d in card["datasets"]) or "none"),
    ]
    st.markdown("\n".join(f"- **{k}**: {v}" for k, v in fields))
    prof = q(r, "model_profile", m)
    st.subheader("Every number for this model")
    st.dataframe(prof, hide_index=True)
    download(prof, csv_name(c, f"model-{m}"), key="csv_profile", label="Download this model's numbers (CSV)")
