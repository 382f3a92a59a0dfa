"""Shared page helpers: a figure with its CSV download, the page context (release + filters)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from backend import Release, queries
from backend.queries import MatrixResult

from . import figures
from .data import family_colours, labels, q
from .figures import plotly_config
from .state import Filters


@dataclass
class Ctx:
    """What every page gets: the open release, the sidebar filters, model labels and dataset names."""

    release: Release
    f: Filters
    labels: dict[str, str]
    dataset_names: dict[str, str]
    colours: dict[str, str] = field(default_factory=dict)  # family -> colour, the same on every page
    line: Any = None  # st.empty() holding the "N models shown" line

    def mdef(self, metric: str) -> pd.Series:
        return q(self.release, "metric_definitions").set_index("metric").loc[metric]

    def metric_name(self, metric: str) -> str:
        return str(self.mdef(metric)["display_name"])

    def ds_name(self, dataset: str | None) -> str:
        return self.dataset_names.get(dataset, str(dataset))


def ctx() -> Ctx:
    return st.session_state["_ctx"]


def make_ctx(release: Release, f: Filters) -> Ctx:
    ds = q(release, "list_datasets")
    c = Ctx(
        release,
        f,
        labels(release),
        dict(zip(ds["dataset_id"], ds["display_name"], strict=True)),
        family_colours(release),
    )
    st.session_state["_ctx"] = c
    return c


def _matrix_key(res: MatrixResult) -> tuple:
    """Within one release a MatrixResult is determined by (dataset, metric, k, model order, clustered or not,
    scale)."""
    return (res.dataset_id, res.metric, res.k, tuple(res.order), res.linkage is not None, len(res.cells), res.scale)


@st.cache_data(show_spinner=False, max_entries=300, hash_funcs={MatrixResult: _matrix_key})
def _heatmap(cache_key: tuple, res: MatrixResult, mdef: pd.Series, labels: dict, null, family_lines: bool, zr, w):
    return figures.heatmap(res, mdef, labels, family_lines=family_lines, null=null, zrange=zr, width_px=w)


def heatmap_figure(
    c: Ctx, res: MatrixResult, mdef: pd.Series, labels: dict, *, null=None, family_lines=True, zrange=None, width_px=620
):
    """figures.heatmap, cached per release and matrix (building 60 x 60 hover texts costs tens of ms)."""
    zr = None if zrange is None else (float(zrange[0]), float(zrange[1]))
    return _heatmap(c.release.cache_key, res, mdef, labels, null, family_lines, zr, width_px)


_SAFE = re.compile(r"[^A-Za-z0-9.-]+")


def filter_tag(f: Filters) -> str:
    """The active model filters as a file-name part, e.g. `family-MACE-SOAP_source-pretrained` ('' without any);
    more than three values are counted (`models-12`): the file's rows name every model."""
    parts = []
    for name, vals in (("models", f.chosen), ("family", f.family), ("modality", f.modality),
                       ("training", f.training_set), ("source", f.source)):  # fmt: skip
        if vals:
            v = "-".join(_SAFE.sub("-", str(x)).strip("-") for x in vals) if len(vals) <= 3 else str(len(vals))
            parts.append(f"{name}-{v}"[:80])
    return "_".join(parts)


def csv_name(
    c: Ctx, kind: str, dataset: str | None = None, metric: str | None = None, k: int | None = None, ext: str = "csv"
) -> str:
    """backend.queries.csv_filename + the active model filters, so a downloaded file keeps its context."""
    base = queries.csv_filename(c.release.release_id, dataset, metric, k, kind).removesuffix(".csv")
    tag = filter_tag(c.f)
    return f"{base}_{tag}.{ext}" if tag else f"{base}.{ext}"


def n_text(n) -> str:
    """'n = 9,848' or 'n = 100–111' over the values of an n column ('' when none is known)."""
    v = pd.to_numeric(pd.Series(n), errors="coerce").dropna()
    if v.empty:
        return ""
    lo, hi = int(v.min()), int(v.max())
    return f"n = {lo:,}" if lo == hi else f"n = {lo:,}–{hi:,}"


def about(c: Ctx, dataset: str | None, metric: str | None = None, k=None, n=None, perms=None) -> str:
    """The context every figure states: dataset · metric · k · n (· permutations behind a null)."""
    parts = [c.ds_name(dataset) if dataset not in (None, "all") else "every dataset"]
    if metric:
        parts.append(c.metric_name(metric) if metric in set(q(c.release, "metric_definitions")["metric"]) else metric)
    if k is not None and not pd.isna(k):
        parts.append(f"k = {int(k)}")
    nt = n_text(n) if n is not None else ""
    if nt:
        parts.append(nt + " samples")
    if perms is not None:
        p = pd.to_numeric(pd.Series(perms), errors="coerce").dropna()
        drawn = p[p > 0]  # 0: CKA's exact-moment null (no permutations drawn)
        if len(drawn):
            parts.append(f"null: {int(drawn.min())}" + (f"–{int(drawn.max())}" if drawn.max() != drawn.min() else "")
                         + " permutations" + (", CKA: exact moments" if len(drawn) < len(p) else ""))  # fmt: skip
        elif len(p):
            parts.append("null: exact permutation moments")
    return " · ".join(parts)


def zrange(values, mdef: pd.Series, mode: str) -> tuple[float, float]:
    """Colour range: 'data' fits the finite values; 'fixed' is the metric's range, widened (never clipped) where a
    value lies outside it (IDCor can exceed 1)."""
    v = np.asarray(pd.to_numeric(pd.Series(np.ravel(values)), errors="coerce"), dtype=float)
    v = v[np.isfinite(v)]
    lo, hi = float(mdef["value_min"]), float(mdef["value_max"])
    if not len(v):
        return lo, hi
    if mode == "fixed":
        return min(lo, float(v.min())), max(hi, float(v.max()))
    a, b = float(v.min()), float(v.max())
    if b - a < 1e-9:
        a, b = a - 0.05, b + 0.05
    return a, b


RANGE_OPTIONS = {"data": "fit the data", "fixed": "fixed (metric's range)"}


def range_control(where=None) -> str:
    """The colour-range control of the heatmap-like views (URL key `range`)."""
    from .state import control

    return control(
        "range", "Colour range", list(RANGE_OPTIONS), "data", where=where if where is not None else st,
        widget="radio", what="colour range", format_func=RANGE_OPTIONS.get,
        help="fit the data: the colour bar spans the values shown; fixed: the metric's own range (e.g. [0, 1]), "
        "widened where a value lies outside it (IDCor can exceed 1).",
    )  # fmt: skip


def range_note(zr: tuple[float, float], mdef: pd.Series, mode: str) -> str:
    """The caption's sentence on the colour range in use."""
    lo, hi = float(mdef["value_min"]), float(mdef["value_max"])
    if mode == "data":
        return f"Colour range [{zr[0]:.3g}, {zr[1]:.3g}] fits the values shown ('fixed' gives [{lo:g}, {hi:g}]). "
    widened = " widened to show every value" if (zr[0], zr[1]) != (lo, hi) else ""
    return f"Colour range [{zr[0]:.3g}, {zr[1]:.3g}]: the metric's range [{lo:g}, {hi:g}]{widened}. "


SCALE_OPTIONS = {"raw": "raw", "calibrated": "calibrated"}
SCALE_HELP = (
    "raw: the metric as computed. calibrated: the null-calibrated score of Gröger, Wen and Brbić (2026): "
    "(value − τ) / (1 − τ) clipped to [0, 1], τ the 95% critical value of a permutation null of the pair (rows "
    "of B shuffled), so 0 = not distinguishable from a broken correspondence and higher = more aligned for every "
    "metric (information imbalance included). Intervals are the raw interval mapped the same way."
)


def scale_control(c: Ctx, dataset, metric, k, where=None, prefer_calibrated: bool = False) -> str:
    """The raw / calibrated switch (URL key `scale`). Returns the scale to draw: 'raw' whenever the release has no
    calibration for (dataset, metric, k), and then an info box says so (on every view, whatever the switch)."""
    from .state import control

    note = q(c.release, "calibration_note", dataset, metric, k)  # dataset None: anywhere in the release
    default = "calibrated" if prefer_calibrated and note is None else "raw"
    scale = control(
        "scale", "Values", list(SCALE_OPTIONS), default, where=where if where is not None else st, widget="radio",
        what="scale", format_func=SCALE_OPTIONS.get, help=SCALE_HELP,
    )  # fmt: skip
    if note is not None:
        st.info(note)
        return "raw"
    return scale


def metric_help_panel(c: Ctx) -> None:
    """Under the Metric control: the metric's definition, what raw / calibrated and the heatmap's marks mean, and
    the width check (issue 16.6): the permutation null's mean against the two models' embedding dimensions."""
    f = c.f
    if f.dataset is None or f.metric is None:
        return
    from .state import metric_help

    mdefs = q(c.release, "metric_definitions").set_index("metric")
    with st.sidebar.expander(f"About {c.metric_name(f.metric)}: definition, calibration, width check"):
        st.markdown(metric_help(mdefs.loc[[f.metric]]))
        st.caption(SCALE_HELP + " Heatmap marks (×): cells whose raw value is not beyond the null's 95th percentile "
                   "(5th for information imbalance).")  # fmt: skip
        w = q(c.release, "null_vs_width", f.dataset, f.metric, f.k)
        if w.empty:
            st.caption(f"Width check: no permutation null of this metric{k_text(f.k)} on {c.ds_name(f.dataset)} in "
                       "this release.")  # fmt: skip
            return
        row = q(c.release, "width_check", f.dataset)
        row = row[(row["metric"] == f.metric) & (row["k"].astype("float").fillna(-1) == (f.k if f.k else -1))]
        rho = row["rho_null_logdim"].iloc[0] if len(row) else float("nan")
        pv = row["p_null_logdim"].iloc[0] if len(row) else float("nan")
        st.caption(f"Width check on {c.ds_name(f.dataset)}: {len(w)} ordered pairs, Spearman ρ(null mean, "
                   f"log dim(A)·dim(B)) = " + ("–" if pd.isna(rho) else f"{rho:+.2f} (p = {pv:.2g})") + ". A positive "
                   "ρ (negative for information imbalance) means width alone raises the raw score.")  # fmt: skip
        if st.toggle("Plot the width check", key="_width_check"):
            q_name = "95th" if bool(mdefs.at[f.metric, "higher_is_aligned"]) else "5th"
            figure(figures.width_check(w, c.metric_name(f.metric), q_name), w,
                   csv_name(c, "width-check", f.dataset, f.metric, f.k), key="width_check",
                   title=about(c, f.dataset, f.metric, f.k, None, w["n_permutations"]))  # fmt: skip


def scaled_mdef(mdef: pd.Series, scale: str) -> pd.Series:
    """The metric definition a figure uses on `scale`: calibrated scores are in [0, 1] (IDCor's effect size >= 0)
    and higher is more aligned for every metric."""
    if scale != "calibrated":
        return mdef
    out = mdef.copy()
    out["display_name"] = f"calibrated {mdef['display_name']}"
    out["value_min"], out["value_max"], out["higher_is_aligned"] = 0.0, 1.0, True
    return out


def image_format_control() -> None:
    """PNG or SVG for the camera icon of every figure's modebar (rendered in the browser: no kaleido needed)."""
    st.sidebar.radio(
        "Figure download format (camera icon)", ["png", "svg"], key="_image_format", horizontal=True,
        help="Each figure's camera icon saves the figure as PNG (twice the screen size) or SVG, named like its CSV.",
    )  # fmt: skip


def image_format() -> str:
    return str(st.session_state.get("_image_format", "png"))


@st.cache_data(show_spinner=False, max_entries=500)
def _csv_cached(df: pd.DataFrame) -> bytes:
    return queries.to_csv(df)


def _csv(df: pd.DataFrame) -> bytes:
    """queries.to_csv(df), cached on the table's content. List cells are joined with ';' first (exactly what to_csv
    does) so Streamlit can hash the table."""
    lists = [c for c in df.columns if df[c].dtype == object and any(isinstance(v, list | tuple) for v in df[c])]
    if not lists:
        return _csv_cached(df)
    flat = df.copy()
    for c in lists:
        flat[c] = [";".join(map(str, v)) if isinstance(v, list | tuple) else v for v in flat[c]]
    return _csv_cached(flat)


def download(df: pd.DataFrame, filename: str, key: str, label: str = "Download the table behind this figure (CSV)"):
    """CSV of exactly `df` (backend.queries.to_csv), without rerunning the app on click."""
    st.download_button(
        label, data=_csv(df), file_name=filename, mime="text/csv", key=key, on_click="ignore",
        icon=":material/download:",
    )  # fmt: skip


def figure(
    fig, df: pd.DataFrame, filename: str, key: str, *, caption: str | None = None, title: str | None = None
) -> None:
    """A Plotly figure (modebar export as PNG or SVG) followed by the download of the table it was drawn from.
    `title` (dataset · metric · k · n) is drawn in the figure, so an exported image keeps its context."""
    if title:
        old = int(fig.layout.margin.t or 0)
        top = max(60, old + 30)
        fig.update_layout(title={"text": title, "font": {"size": 13}, "x": 0, "xanchor": "left"}, margin_t=top)
        if fig.layout.height:  # the title's band is added, not taken from the plot (it clipped the matrix labels)
            fig.update_layout(height=int(fig.layout.height) + top - old)
    st.plotly_chart(fig, config=plotly_config(filename, image_format()), key=f"fig_{key}")
    if caption:
        st.caption(caption)
    download(df, filename, key=f"csv_{key}")


def need(cond: bool, msg: str) -> bool:
    """Show `msg` as an info box when cond is false; returns cond (pages return early on False)."""
    if not cond:
        st.info(msg)
    return cond


def k_text(k) -> str:
    return "" if k is None or pd.isna(k) else f", k = {int(k)}"


def _cell(v) -> str:
    if isinstance(v, list | tuple | np.ndarray):
        return ", ".join(map(str, v))
    if v is None or (not isinstance(v, str) and pd.isna(v)):
        return "–"
    if isinstance(v, float | np.floating):
        return f"{float(v):.4g}"
    return str(v)


def table(df: pd.DataFrame, **kw) -> None:
    """st.dataframe that never prints 'None': a column holding a missing value is shown as text with '–' there
    (Streamlit draws a null cell as 'None' whatever the formatting); complete columns keep their type (sorting)."""
    shown = df.copy()
    for col in shown.columns:
        s = shown[col]
        lists = s.dtype == object and any(isinstance(v, list | tuple | np.ndarray) for v in s)
        if lists or s.isna().any():
            shown[col] = [_cell(v) for v in s]
    st.dataframe(shown, hide_index=True, **kw)
