"""Shared page helpers: a figure with its CSV download, the page context (release + filters)."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import streamlit as st

from backend import Release, queries
from backend.queries import MatrixResult

from . import figures
from .data import labels, q
from .figures import plotly_config
from .state import Filters


@dataclass
class Ctx:
    """What every page gets: the open release, the sidebar filters, model labels and dataset names."""

    release: Release
    f: Filters
    labels: dict[str, str]
    dataset_names: dict[str, str]

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
    c = Ctx(release, f, labels(release), dict(zip(ds["dataset_id"], ds["display_name"], strict=True)))
    st.session_state["_ctx"] = c
    return c


def _matrix_key(res: MatrixResult) -> tuple:
    """Within one release a MatrixResult is determined by (dataset, metric, k, model order, clustered or not)."""
    return (res.dataset_id, res.metric, res.k, tuple(res.order), res.linkage is not None, len(res.cells))


@st.cache_data(show_spinner=False, max_entries=300, hash_funcs={MatrixResult: _matrix_key})
def _heatmap(cache_key: tuple, res: MatrixResult, mdef: pd.Series, labels: dict, null, family_lines: bool):
    return figures.heatmap(res, mdef, labels, family_lines=family_lines, null=null)


def heatmap_figure(c: Ctx, res: MatrixResult, mdef: pd.Series, labels: dict, *, null=None, family_lines=True):
    """figures.heatmap, cached per release and matrix (building 60 x 60 hover texts costs tens of ms)."""
    return _heatmap(c.release.cache_key, res, mdef, labels, null, family_lines)


def csv_name(c: Ctx, kind: str, dataset: str | None = None, metric: str | None = None, k: int | None = None) -> str:
    return queries.csv_filename(c.release.release_id, dataset, metric, k, kind)


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


def figure(fig, df: pd.DataFrame, filename: str, key: str, *, caption: str | None = None) -> None:
    """A Plotly figure (modebar export on) followed by the download of the table it was drawn from."""
    st.plotly_chart(fig, config=plotly_config(filename), key=f"fig_{key}")
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
