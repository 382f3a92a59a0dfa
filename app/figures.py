"""Plotly figures, pure functions of the tables the backend returns (no Streamlit here, so tests can call them)."""

from __future__ import annotations

from io import StringIO

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .figures_matrix import (  # noqa: F401  # one definition for both figure modules
    NAN_COLOUR,
    _fmt,
    _scale,
    dendrogram_segments,
    diff_heatmap,
    family_block,
    heatmap,
)

PALETTE = [
    "#4C78A8", "#F58518", "#54A24B", "#E45756", "#72B7B2", "#EECA3B", "#B279A2", "#FF9DA6", "#9D755D", "#BAB0AC",
    "#393B79", "#BCBD22", "#17BECF", "#9467BD", "#8C564B", "#E377C2", "#7F7F7F", "#D62728", "#2CA02C", "#1F77B4",
]  # fmt: skip
# the second ten open with colours unlike the first ten (family 11 of the shipped release, rxnmapper, was #1F77B4
# beside ANI's #4C78A8 in the 1600 x 1000 screenshots)


# Plotly's own export (modebar) on every figure, drawn by the browser (no kaleido): PNG at twice the size or SVG,
# named like the CSV
def plotly_config(filename: str, fmt: str = "png") -> dict:
    return {
        "displaylogo": False,
        "displayModeBar": True,
        "toImageButtonOptions": {"format": fmt, "filename": filename.removesuffix(".csv"), "scale": 2},
    }


def colour_map(values, *, sort: bool = True) -> dict[str, str]:
    keys = sorted(dict.fromkeys(values)) if sort else list(dict.fromkeys(values))
    return {v: PALETTE[i % len(PALETTE)] for i, v in enumerate(keys)}


def family_colours(families) -> dict[str, str]:
    """One colour per family for every view: PALETTE by the position of the family in the release's sorted family
    list (all families, not only those a figure shows), so a family keeps its colour on every page and filter."""
    return colour_map(families, sort=True)


def tree_layout(newick: str) -> tuple[pd.DataFrame, list, list]:
    """Leaf table (model_id, x = distance from the root, y) and rectangular branch lines from a Biopython parse."""
    from Bio import Phylo

    t = Phylo.read(StringIO(newick), "newick")
    depths = t.depths(unit_branch_lengths=not any(c.branch_length for c in t.find_clades()))
    leaves = t.get_terminals()
    ys = {leaf: float(i) for i, leaf in enumerate(leaves)}

    def y_of(clade):
        if clade not in ys:
            ys[clade] = float(np.mean([y_of(ch) for ch in clade.clades]))
        return ys[clade]

    y_of(t.root)
    xs_l, ys_l = [], []
    for clade in t.find_clades(order="preorder"):
        if not clade.clades:
            continue
        x0 = depths[clade]
        cy = [ys[ch] for ch in clade.clades]
        xs_l += [x0, x0, None]
        ys_l += [min(cy), max(cy), None]
        for ch in clade.clades:
            xs_l += [x0, depths[ch], None]
            ys_l += [ys[ch], ys[ch], None]
    leaf_df = pd.DataFrame(
        {"model_id": [str(leaf.name) for leaf in leaves], "x": [depths[leaf] for leaf in leaves],
         "y": [ys[leaf] for leaf in leaves]}
    )  # fmt: skip
    return leaf_df, xs_l, ys_l


def tree_figure(
    leaf_df: pd.DataFrame, xs: list, ys: list, colour_col: str, colours: dict[str, str] | None = None
) -> go.Figure:
    """Leaves as markers with their label, coloured by `colour_col`; `colours` (family -> colour, the app's one
    map) is used when colouring by family so a family has the same colour as in every other view."""
    fig = go.Figure(
        go.Scatter(x=xs, y=ys, mode="lines", line={"color": "#666", "width": 1.2}, hoverinfo="skip", showlegend=False)
    )
    cmap = colours if colour_col == "family" and colours else colour_map(leaf_df[colour_col])
    for val, g in leaf_df.groupby(colour_col, sort=True):
        fig.add_trace(
            go.Scatter(
                x=g["x"], y=g["y"], mode="markers+text", name=str(val),
                marker={"size": 11, "color": cmap.get(val, "#777"), "line": {"width": 1, "color": "#333"}},
                text=g["label"], textposition="middle right",
                customdata=np.stack([g["family"], g["source"], g["training"]], axis=1),
                hovertemplate="%{text}<br>family: %{customdata[0]}<br>source: %{customdata[1]}<br>"
                "training: %{customdata[2]}<br>depth: %{x:.3f}<extra></extra>",
            )
        )  # fmt: skip
    xmax = float(np.nanmax([x for x in xs if x is not None] + list(leaf_df["x"]))) if len(leaf_df) else 1.0
    fig.update_xaxes(title="distance from the root (1 − similarity)", range=[-0.02 * xmax, xmax * 1.45 + 1e-9])
    fig.update_yaxes(visible=False)
    fig.update_layout(
        height=max(380, 26 * len(leaf_df) + 140), legend_title=colour_col, margin={"l": 10, "r": 10, "t": 40, "b": 10}
    )
    return fig


# ----------------------------------------------------------------------------------------------------------------
def _legend_top(n_items: int) -> dict:
    """A horizontal legend in the figure's top band (container coordinates): every entry visible, never scrolled."""
    return {"orientation": "h", "yref": "container", "y": 0.995, "yanchor": "top", "x": 0, "xanchor": "left",
            "title": {"text": "family"}}  # fmt: skip


def id_bars(
    df: pd.DataFrame,
    labels: dict[str, str],
    colours: dict[str, str] | None = None,
    titles: dict[str, str] | None = None,
) -> go.Figure:
    """Intrinsic dimension per model (bars grouped and coloured by family, `colours` the app's family map) with the
    bootstrap CI as error bars; one panel per dataset (titled `titles[dataset]`), spaced in pixels so that the
    rotated model labels of one panel never reach the next panel's title."""
    cmap = colours or colour_map(df["family"])
    datasets = list(dict.fromkeys(df["dataset_id"]))
    longest = max((len(labels.get(m, m)) for m in df["model_id"]), default=8)
    label_px = int(6.5 * longest * 0.75) + 30  # the -45° tick labels below each panel
    panel_px, legend_px = 300, 40 + 22 * int(np.ceil(df["family"].nunique() / 6))
    total = len(datasets) * (panel_px + label_px + 40) + legend_px
    spacing = (label_px + 40) / total if len(datasets) > 1 else 0.0
    names = [(titles or {}).get(d, d) for d in datasets]
    fig = make_subplots(rows=len(datasets), cols=1, subplot_titles=names if len(datasets) > 1 else None,
                        shared_xaxes=False, vertical_spacing=spacing)  # fmt: skip
    shown = set()
    for r, ds in enumerate(datasets, start=1):
        d = df[df["dataset_id"] == ds]
        for fam, g in d.groupby("family", sort=True):
            lo = (g["value"] - g["ci_low"]).to_numpy(dtype=float)
            hi = (g["ci_high"] - g["value"]).to_numpy(dtype=float)
            fig.add_trace(
                go.Bar(
                    x=[labels.get(m, m) for m in g["model_id"]], y=g["value"], name=fam, legendgroup=fam,
                    showlegend=fam not in shown, marker_color=cmap.get(fam, "#777"),
                    error_y={"type": "data", "symmetric": False, "array": hi, "arrayminus": lo, "visible": True},
                    customdata=np.stack([g["ci_low"], g["ci_high"], g["n"], g["estimator"]], axis=1),
                    hovertemplate="%{x}<br>ID: %{y:.2f}<br>CI: [%{customdata[0]:.2f}, %{customdata[1]:.2f}]<br>"
                    "n: %{customdata[2]}<br>estimator: %{customdata[3]}<extra>%{fullData.name}</extra>",
                ),
                row=r, col=1,
            )  # fmt: skip
            shown.add(fam)
        fig.update_yaxes(title_text="intrinsic dimension", row=r, col=1)
        fig.update_xaxes(tickangle=-45, automargin=True, tickfont={"size": 11}, row=r, col=1)
    fig.update_layout(
        height=int(total + 60), barmode="group", legend=_legend_top(len(shown)),
        margin={"l": 10, "r": 10, "t": legend_px + 50, "b": 10},
    )  # fmt: skip
    return fig


def quantile_scale(values, lo: float, hi: float, steps: int = 8) -> list:
    """A Viridis colour scale over [lo, hi] whose colour stops sit at the values' quantiles, so that a skewed
    distribution (most pairs near 0) still spans every colour; the colour bar keeps the true values."""
    from plotly.colors import sample_colorscale

    v = np.asarray(pd.to_numeric(pd.Series(values), errors="coerce"), dtype=float)
    v = v[np.isfinite(v)]
    if len(v) < 3 or hi <= lo:
        return "Viridis"
    qs = np.quantile(v, np.linspace(0, 1, steps + 1))
    pos = np.clip((qs - lo) / (hi - lo), 0, 1)
    pos[0], pos[-1] = 0.0, 1.0
    pos = np.maximum.accumulate(pos)
    keep = np.concatenate([[True], np.diff(pos) > 1e-6])
    pos = pos[keep]
    if len(pos) < 2:
        return "Viridis"
    pos[-1] = 1.0
    cols = sample_colorscale("Viridis", list(np.linspace(0, 1, len(pos))))
    return [[float(p), c] for p, c in zip(pos, cols, strict=True)]


def scatter_pairs(df: pd.DataFrame, x: str, y: str, colour: str, *, xlab: str, ylab: str, diagonal=False,
                  continuous=False, cmin=None, cmax=None, hover=("model_a", "model_b"), colour_title=None,
                  colours: dict[str, str] | None = None, colorscale="Viridis") -> go.Figure:  # fmt: skip
    """One marker per row; colour categorical (a trace per value, `colours` for a fixed map such as the families)
    or continuous (one trace with a colour bar from cmin to cmax)."""
    fig = go.Figure()
    lab = pd.Series([" – ".join(map(str, t)) for t in zip(*(df[h] for h in hover), strict=True)], index=df.index)
    if continuous:
        fig.add_trace(
            go.Scatter(
                x=df[x], y=df[y], mode="markers", text=lab,
                marker={"size": 10, "color": df[colour], "colorscale": colorscale, "cmin": cmin, "cmax": cmax,
                        "colorbar": {"title": {"text": colour_title or colour}}, "line": {"width": 0.5, "color": "#333"}},
                showlegend=False,
                hovertemplate=f"%{{text}}<br>{xlab}: %{{x:.4f}}<br>{ylab}: %{{y:.4f}}<br>{colour}: %{{marker.color:.4f}}"
                "<extra></extra>",
            )
        )  # fmt: skip
    else:
        cmap = colours or colour_map(df[colour].astype(str), sort=False)  # order of appearance (e.g. k ascending)
        for val, g in df.groupby(df[colour].astype(str), sort=colours is not None):
            fig.add_trace(
                go.Scatter(
                    x=g[x], y=g[y], mode="markers", name=val, text=lab.loc[g.index],
                    marker={"size": 10, "color": cmap.get(val, "#777"), "line": {"width": 0.5, "color": "#333"}},
                    hovertemplate=f"%{{text}}<br>{xlab}: %{{x:.4f}}<br>{ylab}: %{{y:.4f}}<extra>{val}</extra>",
                )
            )  # fmt: skip
    if diagonal and len(df):
        vals = pd.concat([df[x], df[y]]).astype(float)
        lo, hi = float(np.nanmin(vals)), float(np.nanmax(vals))
        fig.add_trace(go.Scatter(x=[lo, hi], y=[lo, hi], mode="lines", line={"dash": "dot", "color": "#888"},
                                 name="y = x", hoverinfo="skip", showlegend=not continuous))  # fmt: skip
    fig.update_layout(xaxis_title=xlab, yaxis_title=ylab, height=520, margin={"l": 10, "r": 10, "t": 40, "b": 10},
                      legend_title=colour_title or colour, showlegend=not continuous)  # fmt: skip
    return fig


def place_labels(xs, ys, texts, *, width_px: float = 900, height_px: float = 420, log_x: bool = True) -> list:
    """A text position per point ('top center', ...) or None (label left out) so that no two labels overlap:
    greedy, points taken from the top, each label tries eight places around its marker and keeps the first whose
    box (about 6.5 px per character, 14 px high) meets no label or marker already placed."""
    x = np.log10(np.asarray(xs, dtype=float)) if log_x else np.asarray(xs, dtype=float)
    y = np.asarray(ys, dtype=float)
    ok = np.isfinite(x) & np.isfinite(y)
    out: list = [None] * len(x)
    if not ok.any():
        return out

    def norm(v):
        lo, hi = float(np.nanmin(v[ok])), float(np.nanmax(v[ok]))
        return (v - lo) / (hi - lo if hi > lo else 1.0)

    px, py = norm(x) * width_px, norm(y) * height_px
    boxes = [(px[i] - 6, py[i] - 6, px[i] + 6, py[i] + 6) for i in range(len(x)) if ok[i]]  # the markers
    places = {  # text position -> (dx, dy) of the box centre from the marker, given half width w
        "top center": lambda w: (0, 14), "bottom center": lambda w: (0, -14),
        "middle right": lambda w: (w + 8, 0), "middle left": lambda w: (-w - 8, 0),
        "top right": lambda w: (w + 4, 12), "top left": lambda w: (-w - 4, 12),
        "bottom right": lambda w: (w + 4, -12), "bottom left": lambda w: (-w - 4, -12),
    }  # fmt: skip
    for i in sorted(np.flatnonzero(ok), key=lambda j: -py[j]):
        w = 3.25 * len(str(texts[i])) + 2
        for name, d in places.items():
            dx, dy = d(w)
            b = (px[i] + dx - w, py[i] + dy - 7, px[i] + dx + w, py[i] + dy + 7)
            if all(b[2] <= o[0] or b[0] >= o[2] or b[3] <= o[1] or b[1] >= o[3] for o in boxes if o is not None):
                out[i] = name
                boxes.append(b)
                break
    return out


def convergence(
    df: pd.DataFrame,
    labels: dict[str, str],
    ylab: str,
    point_text: dict[str, str] | None = None,
    colours: dict[str, str] | None = None,
) -> go.Figure:
    """Energy MAE (x, log) against alignment to the lowest-MAE model (y) with CI; the best model starred.

    `point_text` (model id -> text written next to its point; None: no text) lets the page choose short ids; labels
    are placed so that none overlaps another (a crowded point's label is left out: its hover has the full label).
    The best model has no alignment to itself, so its star is drawn at the top of the plot at its own MAE."""
    cmap = colours or colour_map(df["family"])
    fig = go.Figure()
    texts = [None if point_text is None else point_text.get(m, m) for m in df["model_id"]]
    ys = df["alignment"].dropna()
    star_y = float(ys.max()) + 0.06 * ((float(ys.max()) - float(ys.min())) or 1.0) if len(ys) else None
    best_x = df.loc[df["is_best"], "mae_per_atom"]
    where = [None] * len(df)
    if point_text is not None:  # the star is an obstacle too (a point without text)
        extra = len(best_x) and star_y is not None
        where = place_labels(
            list(df["mae_per_atom"]) + ([float(best_x.iloc[0])] if extra else []),
            list(df["alignment"]) + ([star_y] if extra else []),
            texts + ([""] if extra else []),
        )[: len(df)]
    pos = dict(zip(df.index, where, strict=True))
    for fam, g in df.groupby("family", sort=True):
        err = {}
        if g["ci_low"].notna().any():
            err = {"error_y": {"type": "data", "symmetric": False, "array": g["ci_high"] - g["alignment"],
                               "arrayminus": g["alignment"] - g["ci_low"]}}  # fmt: skip
        gp = [pos[i] if isinstance(pos[i], str) else None for i in g.index]
        fig.add_trace(
            go.Scatter(
                x=g["mae_per_atom"], y=g["alignment"], mode="markers" if point_text is None else "markers+text",
                name=fam,
                text=None if point_text is None else [point_text.get(m, m) if p else "" for m, p
                                                      in zip(g["model_id"], gp, strict=True)],
                hovertext=[labels.get(m, m) for m in g["model_id"]],
                textposition=[p or "top center" for p in gp], cliponaxis=False,
                marker={"size": [18 if b else 11 for b in g["is_best"]], "color": cmap.get(fam, "#777"),
                        "symbol": ["star" if b and np.isfinite(y) else "circle"
                                   for b, y in zip(g["is_best"], g["alignment"].astype(float), strict=True)],
                        "line": {"width": 0.5, "color": "#333"}},
                customdata=np.stack([g["n_test"], g["n"].astype(float)], axis=1),
                hovertemplate="%{hovertext}<br>MAE: %{x:.4f} eV/atom (n_test %{customdata[0]})<br>alignment: %{y:.4f} "
                "(n %{customdata[1]})<extra>%{fullData.name}</extra>", **err,
            )
        )  # fmt: skip
    best = df[df["is_best"]]
    if len(best) and len(ys):  # the best model has no alignment to itself: a star at the top, a dashed line down
        b = best.iloc[0]
        x = float(b["mae_per_atom"])
        top = float(ys.max())
        lab = labels.get(b["model_id"], b["model_id"])
        fig.add_trace(
            go.Scatter(x=[x, x], y=[float(ys.min()), top], mode="lines", hoverinfo="skip",
                       line={"dash": "dash", "color": "#888"}, showlegend=False, name=f"best: {lab}")
        )  # fmt: skip
        fig.add_trace(
            go.Scatter(
                x=[x], y=[star_y], mode="markers", name=f"★ best: {lab}",
                marker={"symbol": "star", "size": 20, "color": cmap.get(b["family"], "#777"),
                        "line": {"width": 1, "color": "#333"}},
                hovertext=[f"{lab}: the lowest energy MAE ({x:.4f} eV/atom); its alignment to itself is not plotted"],
                hovertemplate="%{hovertext}<extra></extra>", cliponaxis=False,
            )
        )  # fmt: skip
    fig.update_xaxes(title="energy MAE (eV/atom, held-out split)", type="log")
    fig.update_yaxes(title=ylab)
    fig.update_layout(height=560, margin={"l": 10, "r": 40, "t": 50, "b": 10}, legend_title="family")
    return fig


def bar_counts(df: pd.DataFrame) -> go.Figure:
    """Models by family (x) stacked by source."""
    fig = go.Figure()
    colours = {"pretrained": "#4C78A8", "random_init": "#E45756", "trained_here": "#54A24B", "descriptor": "#BAB0AC"}
    for src, g in df.groupby("source", sort=True):
        fig.add_trace(go.Bar(x=g["family"], y=g["n_models"], name=src, marker_color=colours.get(src)))
    fig.update_layout(barmode="stack", height=340, yaxis_title="models", legend_title="source",
                      margin={"l": 10, "r": 10, "t": 40, "b": 10})  # fmt: skip
    return fig


def compare_bars(df: pd.DataFrame, metrics: list[str] | None = None, ylab: str = "value (A → B)") -> go.Figure:
    """The pairwise metrics `metrics` (None: all) of one pair (value A→B), x = metric (k), one colour per dataset."""
    d = df[df["scope"] == "pair"].copy()
    if metrics is not None:
        d = d[d["metric"].isin(metrics)]
    d["what"] = [f"{m}" + ("" if pd.isna(k) else f" k={int(k)}") for m, k in zip(d["metric"], d["k"], strict=True)]
    cmap = colour_map(d["dataset_id"])
    fig = go.Figure()
    for ds, g in d.groupby("dataset_id", sort=True):
        fig.add_trace(
            go.Bar(x=g["what"], y=g["value_ab"], name=ds, marker_color=cmap[ds],
                   customdata=np.stack([g["value_ba"].astype(float), g["n"].astype(float)], axis=1),
                   hovertemplate="%{x}<br>A→B: %{y:.4f}<br>B→A: %{customdata[0]:.4f}<br>n: %{customdata[1]}"
                   "<extra>%{fullData.name}</extra>")
        )  # fmt: skip
    fig.update_layout(barmode="group", height=420, yaxis_title=ylab, legend_title="dataset",
                      margin={"l": 10, "r": 10, "t": 40, "b": 10})  # fmt: skip
    return fig


def pair_vs_k(df: pd.DataFrame, mdefs: pd.DataFrame, calibrated: bool = False) -> go.Figure:
    """One pair's value against k (`df`: backend.queries.pair_vs_k on one scale), a line per (metric, dataset),
    error bars from ci_low / ci_high where stored. Rows without a value on the scale (NaN) are left out."""
    d = df[df["value"].notna()].copy()
    fig = go.Figure()
    cmap = colour_map(d["dataset_id"])
    dash = dict(zip(sorted(set(d["metric"])), ["solid", "dash", "dot", "dashdot"] * 3, strict=False))
    for (metric, ds), g in d.groupby(["metric", "dataset_id"], sort=True):
        g = g.sort_values("k")
        name = f"{mdefs.at[metric, 'display_name'] if metric in mdefs.index else metric} · {ds}"
        err = {}
        if g["ci_low"].notna().any():
            err = {"error_y": {"type": "data", "symmetric": False, "array": g["ci_high"] - g["value"],
                               "arrayminus": g["value"] - g["ci_low"]}}  # fmt: skip
        raw = g["value_raw"].astype(float)
        fig.add_trace(
            go.Scatter(x=g["k"].astype(float), y=g["value"], mode="lines+markers", name=name,
                       line={"color": cmap[ds], "dash": dash[metric]},
                       customdata=np.stack([g["n"].astype(float), raw, g["ci_low"].astype(float),
                                            g["ci_high"].astype(float)], axis=1),
                       hovertemplate="k = %{x}<br>" + ("calibrated" if calibrated else "value") + ": %{y:.4f} "
                       "[%{customdata[2]:.4f}, %{customdata[3]:.4f}]" + ("<br>raw: %{customdata[1]:.4f}" if calibrated
                       else "") + "<br>n: %{customdata[0]}<extra>%{fullData.name}</extra>", **err)
        )  # fmt: skip
    ks = sorted({int(k) for k in d["k"]})
    # the stored k only: a log axis's own minor labels (2 ... 9 between decades) crowded the axis
    fig.update_xaxes(title="k (neighbours)", type="log", tickmode="array", tickvals=ks, ticktext=[str(k) for k in ks])
    fig.update_yaxes(title="calibrated score (A → B)" if calibrated else "value (A → B)")
    fig.update_layout(height=460, margin={"l": 10, "r": 10, "t": 50, "b": 10}, legend_title="metric · dataset")
    return fig


def width_check(df: pd.DataFrame, metric_name: str, q_name: str) -> go.Figure:
    """The width check (backend.null_vs_width): each pair's permutation-null mean against the product of the two
    models' embedding dimensions (log axis); the null's 95th (or 5th) percentile as a second marker."""
    prod = (df["dim_a"].astype(float) * df["dim_b"].astype(float)).to_numpy()
    lab = [f"{a} × {b}<br>dims {int(x)} × {int(y)}" for a, b, x, y in
           zip(df["model_a"], df["model_b"], df["dim_a"], df["dim_b"], strict=True)]  # fmt: skip
    fig = go.Figure()
    for col, name, sym in (("null_mean", "null mean", "circle"), ("null_q95", f"null {q_name} percentile", "x-thin")):
        fig.add_trace(go.Scatter(x=prod, y=df[col], mode="markers", name=name, text=lab,
                                 marker={"symbol": sym, "size": 7, "line": {"width": 1}},
                                 hovertemplate="%{text}<br>" + name + ": %{y:.4f}<extra></extra>"))  # fmt: skip
    fig.update_xaxes(type="log", title_text="dim(A) × dim(B) (log)")
    fig.update_yaxes(title_text=f"{metric_name} under the null")
    fig.update_layout(height=320, margin={"l": 10, "r": 10, "t": 40, "b": 10},
                      legend={"orientation": "h", "y": -0.35})  # fmt: skip
    return fig
