"""Overview: the question, the release, how to read each metric, models by family and source."""

import streamlit as st

from app import figures
from app.data import SOURCE_LABELS, q, release_zip
from app.ui import csv_name, ctx, download, figure, table

c = ctx()
r = c.release
st.title("Do scientific foundation models converge to one representation of matter?")
st.markdown(
    "Models of molecules, materials and proteins (interatomic potentials, SMILES and protein language models, "
    "descriptors) embed the same samples; each pair of models is compared by how similar their representations "
    "are (local neighbourhoods: CKNNA, mutual kNN, information imbalance; global: CKA, IDCor), and each model by "
    "how many dimensions it uses (intrinsic dimension). Every number here comes from one frozen, verified release; "
    "the number of samples *n* and the neighbourhood size *k* are shown next to each value."
)
s = q(r, "release_summary")
st.markdown(
    f"**Release** `{s.release_id}` · **created** {s.created.replace('T', ' ').removesuffix('Z')} UTC · "
    f"**code** `{s.code_version}`"
)
a, b, z = st.columns(3)
a.metric("Models", s.n_models)
b.metric("Datasets", s.n_datasets)
z.download_button(
    "Download the whole release (.zip)", data=release_zip(r), file_name=f"matter-align_{r.release_id}.zip",
    mime="application/zip", key="zip_release", on_click="ignore", icon=":material/folder_zip:",
    help="Every table (Parquet), the manifest and its checksums, as one archive: what this dashboard shows.",
)  # fmt: skip

st.subheader("Datasets")
ds = s.datasets.copy()
ds["origin"] = [("generated (recipe recorded)" if o == "generated" else o) for o in ds["origin"]]
table(ds, column_config={"n": st.column_config.NumberColumn("n (largest, analysed)")})
download(s.datasets, csv_name(c, "datasets"), key="csv_datasets")

st.subheader("Models by family and source")
counts = s.model_counts
figure(figures.bar_counts(counts), counts, csv_name(c, "model-counts"), key="counts")
st.markdown("\n".join(f"- **{k}**: {v}" for k, v in SOURCE_LABELS.items()))

st.subheader("How to read each metric")
md = q(r, "metric_definitions")
for _, m in md.iterrows():
    direction = "higher = more aligned" if m["higher_is_aligned"] else "lower = more aligned (B is predicted by A)"
    k = "has k" if m["has_k"] else "no k"
    sym = "symmetric" if m["symmetric"] else "not symmetric"
    st.markdown(
        f"**{m['display_name']}** (`{m['metric']}`; {k}; {sym}; {direction}; colour range "
        f"[{m['value_min']:g}, {m['value_max']:g}]): {m['description']}"
    )
st.markdown(
    "**Intrinsic dimension** (TwoNN): how many dimensions the embedded samples really occupy; bootstrap CI. "
    "**In- vs out-of-distribution**: a model is in-distribution on a dataset when its training sets intersect the "
    "dataset's `in_distribution_for` tags (never typed per pair)."
)
if s.settings:
    with st.expander("Release settings (from the manifest)"):
        st.json(s.settings)
