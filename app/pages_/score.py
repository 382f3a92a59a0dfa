"""Score your model: upload an embedding of a dataset's samples; see it ranked against the release, in the heatmap,
in the tree and beside the release's intrinsic dimensions. Computed in this session's memory only."""

import hashlib

import plotly.graph_objects as go
import streamlit as st

from app import figures
from app.data import scoring_releases
from app.ui import ctx, download, need, table
from backend import scoring

c = ctx()
r = c.release
st.title("Score your model")
st.markdown(
    "Embed the samples of a dataset with your model (one row per sample, in the order of the sample list below, or "
    "with a `sample_id` column), upload the matrix, and see where it falls among the release's models. The scores "
    "are computed exactly as the analysis computes them for its own models (same preprocessing, same ties rule), "
    "from the neighbour lists the release carries."
)
st.info(
    "**Your file stays private**: it is read and scored in this browser session's server memory only, never written "
    f"to disk or to any release, and forgotten when the session ends. Formats: {', '.join(scoring.FORMATS)} (no "
    f"pickle); at most {scoring.MAX_UPLOAD_BYTES // 2**20} MB. The command line does the same and more: "
    "`matter-align score` (docs/SCORING.md).",
    icon=":material/lock:",
)
sd = scoring.scorable_datasets(r)
if need(not sd.empty, "This release carries no neighbour lists, so nothing can be scored against it."):
    names = dict(zip(sd["dataset_id"], sd["display_name"], strict=True))
    # default: the dataset with the most samples that can be scored on CKNNA (QM9 on the shipped releases)
    ranked_ds = sd.sort_values(["has_similarity", "n_samples"], ascending=False)["dataset_id"].tolist()
    ds = st.selectbox("Dataset", ranked_ds, format_func=lambda d: f"{names[d]} ({d})", key="score_dataset")
    row = sd.set_index("dataset_id").loc[ds]
    if not row.has_similarity:
        st.warning(
            f"Release {r.release_id} was written before releases carried the neighbours' similarities, so only mutual "
            "kNN can be scored against it here; CKNNA and information imbalance need a release written by this "
            "version of `matter-align release` (docs/SCORING.md)."
            + (f" Releases here that carry it: {', '.join(f'`{x}`' for x in others)} (the sidebar's Release)."
               if (others := [x for x in scoring_releases() if x != r.release_id]) else ""),
            icon=":material/info:",
        )  # fmt: skip
    st.caption(
        f"{int(row.n_samples):,} samples · can be scored: {row.scorable}. Not computable from a release (they need "
        "the release models' embeddings): CKA, unbiased CKA, IDCor, information imbalance yours -> model."
    )
    cols = st.columns(len(scoring.sample_formats(r, ds)) + 1)
    labels_fmt = {"extxyz": "structures (extended XYZ, sample_id in each frame)", "csv": "sample list / SMILES (CSV)",
                  "fasta": "sequences (FASTA)"}  # fmt: skip
    for col, fmt in zip(cols, scoring.sample_formats(r, ds), strict=False):
        col.download_button(
            f"Samples to embed: {labels_fmt[fmt]}", scoring.samples_file(r, ds, fmt),
            f"matter-align_{r.release_id}_{ds}_samples{scoring.SAMPLE_FORMATS[fmt]}", key=f"score_samples_{fmt}",
            on_click="ignore", icon=":material/download:",
        )  # fmt: skip
    name = st.text_input("Your model's name", value="my-model", max_chars=64, key="score_name")
    want_ii = st.checkbox(
        "Information-imbalance intervals too (model → yours): the slowest part of a score, about three times the "
        "rest at QM9 size (docs/SCORING.md)", value=False, key="score_ii_ci",
    )  # fmt: skip
    up = st.file_uploader("Embeddings file", type=[e.lstrip(".") for e in scoring.FORMATS], key="score_file")
    if up is not None:
        data = up.getvalue()
        result = None
        # one score per (file, name, dataset, options) in this session's memory: other widgets do not recompute it
        key = (r.release_id, ds, name.strip(), hashlib.sha256(data).hexdigest(), want_ii)
        held = st.session_state.get("score_result")
        if held is not None and held[0] == key:
            result = held[1]
        elif len(data) > scoring.MAX_UPLOAD_BYTES:
            st.error(f"{up.name}: {len(data) / 2**20:.0f} MB is over the {scoring.MAX_UPLOAD_BYTES // 2**20} MB limit")
        else:
            with st.status(f"Scoring {up.name} against the release…", expanded=False) as status:
                try:
                    X, ids = scoring.read_embeddings(data, name=up.name)
                    result = scoring.score_embeddings(r, ds, X, name.strip() or "my-model", sample_ids=ids,
                                                      label=up.name, permutations=20,
                                                      imbalance_intervals=want_ii)  # fmt: skip
                    status.update(label=f"Scored in {result.seconds:.1f} s", state="complete")
                    st.session_state["score_result"] = (key, result)
                except (scoring.ScoringInputError, scoring.ScoringDataError, ValueError) as e:
                    status.update(label="Could not score this file", state="error")
                    st.error(str(e), icon=":material/error:")
        if result is not None:
            # the largest k <= 10 whose rows carry intervals (QM9 ships the subset-deep lists for k <= 5 only)
            with_ci = set(result.table.loc[result.table.ci_low.notna() & (result.table.metric == "cknna"), "k"])
            k = max([k for k in result.ks_knn if k <= 10 and k in with_ci]
                    or [k for k in result.ks_knn if k <= 10] or [min(result.ks_knn)])  # fmt: skip
            st.subheader(f"Nearest release models on {names[ds]} (CKNNA, k = {k}, n = {result.n:,})")
            rk = scoring.ranked(r, result, k)
            ck_ci = result.table.ci_low.notna() & (result.table.metric == "cknna")
            st.caption(
                "CKNNA: yours -> model (cknna) and model -> yours (cknna_reverse); the null: your rows permuted "
                f"({int(result.table['n_permutations'].max() or 0)} permutations, seed 0); p at its floor reads "
                "'< 1/(P+1)'; cknna_calibrated: Gröger et al.'s null-calibrated score (0 unless above the null's "
                "95% critical value). Mutual kNN's null mean is about k/(N-1). Intervals (cknna_ci_low/high, ties "
                "grouped where they overlap): the analysis' half-sampling CIs, at "
                + (
                    f"k = {sorted({int(x) for x in result.table.loc[ck_ci, 'k']})}"
                    if ck_ci.any()
                    else "no k for this release"
                )
                + (
                    " (information imbalance model -> yours: its interval too)"
                    if (result.table.ci_low.notna() & (result.table.metric == "info_imbalance")).any()
                    else ""
                )
                + "; the others need deeper lists than a release holds (the CSV's note says why)."
                + (
                    f" {result.n_duplicates} of your rows repeat an earlier row (ties to the lower position)."
                    if result.n_duplicates
                    else ""
                )  # fmt: skip
            )
            table(rk)
            download(result.table, f"matter-align_{r.release_id}_{ds}_score_{result.name}.csv", key="score_csv",
                     label="Download every score (CSV: one row per model, metric and k)")  # fmt: skip
            if rk["cknna"].notna().any():
                M = scoring.matrix_with_user(r, result, k)
                lab = {**c.labels, result.name: f"{result.name} (yours)"}
                fig = go.Figure(go.Heatmap(z=M.to_numpy(dtype=float), x=[lab.get(m, m) for m in M.columns],
                                           y=[lab.get(m, m) for m in M.index], colorscale="Viridis",
                                           colorbar={"title": "CKNNA"},
                                           hovertemplate="A %{y}<br>B %{x}<br>CKNNA %{z:.4f}<extra></extra>"))  # fmt: skip
                fig.update_layout(height=max(420, 16 * len(M) + 200), yaxis_autorange="reversed",
                                  title=f"CKNNA, k = {k}, {names[ds]}, n = {result.n:,}: your row and column last")  # fmt: skip
                st.plotly_chart(fig, key="score_heatmap")
                newick = scoring.tree_with_user(r, result, k)
                leaves, xs, ys = figures.tree_layout(newick)
                meta = rk.set_index("model_id")
                mine = leaves["model_id"] == result.name
                leaves["family"] = [meta.at[m, "family"] if m in meta.index else "yours" for m in leaves["model_id"]]
                leaves["label"] = [lab.get(m, m) for m in leaves["model_id"]]
                leaves["source"] = ["your upload" if y else "release" for y in mine]
                leaves["training"] = ""
                st.subheader("Your model in the tree (neighbour joining, distance 1 - mean CKNNA of both orders)")
                st.plotly_chart(figures.tree_figure(leaves, xs, ys, "family", c.colours), key="score_tree")
                st.download_button("Download the tree (.nwk)", newick, f"matter-align_{ds}_tree_{result.name}.nwk",
                                   key="score_nwk", on_click="ignore")  # fmt: skip
            idt = scoring.intrinsic_dim_with_user(r, result)
            st.subheader("Intrinsic dimension (TwoNN, 95% bootstrap CI): yours beside the release's")
            idt = idt.assign(label=[f"{m} (yours)" if y else c.labels.get(m, m) for m, y in zip(idt.model_id, idt.yours,
                                                                                              strict=True)])  # fmt: skip
            bar = go.Figure(go.Bar(x=idt["label"], y=idt["value"],
                                   marker_color=["#E45756" if y else "#4C78A8" for y in idt["yours"]],
                                   error_y={"type": "data", "symmetric": False,
                                            "array": (idt["ci_high"] - idt["value"]).tolist(),
                                            "arrayminus": (idt["value"] - idt["ci_low"]).tolist()}))  # fmt: skip
            bar.update_layout(height=460, yaxis_title="TwoNN intrinsic dimension", xaxis_tickangle=-45)
            st.plotly_chart(bar, key="score_id")
