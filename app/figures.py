"""Plotly figures, pure functions of the tables the backend returns (no Streamlit here, so tests can call them)."""

from __future__ import annotations

import math
from io import StringIO

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

PALETTE = [
    "#4C78A8", "#F58518", "#54A24B", "#E45756", "#72B7B2", "#EECA3B", "#B279A2", "#FF9DA6", "#9D755D", "#BAB0AC",
    "#1F77B4", "#2CA02C", "#D62728", "#9467BD", "#8C564B", "#E377C2", "#7F7F7F", "#BCBD22", "#17BECF", "#393B79",
]  # fmt: skip


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


def _scale(higher_is_aligned: bool) -> str:
    return "Viridis" if higher_is_aligned else "Viridis_r"


def _fmt(v, digits=3) -> str:
    try:
        f = float(v)
    except (TypeError, ValueError):  # None, pd.NA
        return "–"
    return f"{f:.{digits}f}" if math.isfinite(f) else "–"


# ----------------------------------------------------------------------------------------------------------------
def dendrogram_segments(link: np.ndarray, n: int) -> tuple[list, list]:
    """Line coordinates (x = leaf position 0..n-1 in leaves order, y = merge height) of a scipy linkage, None breaks."""
    link = np.asarray(link, dtype=float)
    children = {n + i: (int(a), int(b)) for i, (a, b, *_rest) in enumerate(link)}

    def leaves(node):  # leaf order of the dendrogram = scipy's leaves_list
        stack, out = [node], []
        while stack:
            x = stack.pop()
            if x < n:
                out.append(x)
            else:
                a, b = children[x]
                stack += [b, a]
        return out

    order = leaves(n + len(link) - 1) if len(link) else list(range(n))
    pos = {leaf: i for i, leaf in enumerate(order)}
    height = dict.fromkeys(range(n), 0.0)
    xs, ys = [], []
    for i, (a, b, h, _c) in enumerate(link):
        a, b = int(a), int(b)
        node = n + i
        pos[node] = (pos[a] + pos[b]) / 2
        height[node] = h
        xs += [pos[a], pos[a], pos[b], pos[b], None]
        ys += [height[a], h, h, height[b], None]
    return xs, ys


def heatmap(
    res, mdef: pd.Series, labels: dict[str, str], *, family_lines: bool = True, null: pd.DataFrame | None = None
) -> go.Figure:
    """The matrix of a backend MatrixResult: z = res.matrix (rows = model_a), fixed colour range of the metric,
    hover with value, n, k, CI, p and (if given, from backend.pairwise_null) the permutation-null mean, sd and z;
    a dendrogram above when the result carries a linkage."""
    order = list(res.order)
    n = len(order)
    z = res.matrix.loc[order, order].to_numpy(dtype=float)
    c = res.cells
    extra = np.full((n, n, 5), np.nan)
    if len(c):
        r, col = c["row"].to_numpy(int), c["col"].to_numpy(int)
        for j, name in enumerate(("n", "ci_low", "ci_high", "p_value")):
            extra[r, col, j] = pd.to_numeric(c[name], errors="coerce").to_numpy(dtype=float)
        extra[r, col, 4] = c["mirrored"].to_numpy(dtype=float)
    nulls: dict[tuple[int, int], str] = {}
    if null is not None and len(null):
        pos = {m: i for i, m in enumerate(order)}
        for a, b, mu, sd, zz, npm in zip(null["model_a"], null["model_b"], null["null_mean"], null["null_std"],
                                         null["z"], null["n_permutations"], strict=True):  # fmt: skip
            if a in pos and b in pos:
                nulls[pos[a], pos[b]] = f"<br>null ({npm} perm.): {_fmt(mu)} ± {_fmt(sd)}, z = {_fmt(zz, 1)}"
    ticks = [labels.get(m, m) for m in order]
    kk = res.k if res.k is not None else "–"
    text = [
        [
            f"A: {ticks[i]}<br>B: {ticks[j]}<br>n = {int(extra[i, j, 0]) if np.isfinite(extra[i, j, 0]) else '–'}, "
            f"k = {kk}<br>CI: "
            + (f"[{_fmt(extra[i, j, 1])}, {_fmt(extra[i, j, 2])}]" if np.isfinite(extra[i, j, 1]) else "not computed")
            + f"<br>p: {_fmt(extra[i, j, 3])}"
            + nulls.get((i, j), "")
            + ("<br>(mirrored from B→A)" if extra[i, j, 4] == 1 else "")
            for j in range(n)
        ]
        for i in range(n)
    ]
    hm = go.Heatmap(
        z=z,
        x=list(range(n)),
        y=list(range(n)),
        zmin=float(mdef["value_min"]),
        zmax=float(mdef["value_max"]),
        colorscale=_scale(bool(mdef["higher_is_aligned"])),
        colorbar={"title": {"text": str(mdef["display_name"])}},
        text=text,
        hovertemplate="%{text}<br>value: %{z:.4f}<extra></extra>",
        hoverongaps=False,
        name="matrix",
    )
    axis = {"tickmode": "array", "tickvals": list(range(n)), "ticktext": ticks, "showgrid": False}
    size = max(420, min(1400, 20 * n + 260))
    if res.linkage is not None and n >= 2:
        fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.18, 0.82], vertical_spacing=0.01)
        xs, ys = dendrogram_segments(res.linkage, n)
        fig.add_trace(
            go.Scatter(x=xs, y=ys, mode="lines", line={"color": "#555", "width": 1}, hoverinfo="skip",
                       name="dendrogram", showlegend=False),
            row=1, col=1,
        )  # fmt: skip
        fig.add_trace(hm, row=2, col=1)
        fig.update_xaxes(**axis, row=2, col=1, tickangle=-45)
        fig.update_xaxes(showticklabels=False, showgrid=False, row=1, col=1)
        fig.update_yaxes(**axis, autorange="reversed", row=2, col=1)
        fig.update_yaxes(title_text="distance", showgrid=False, row=1, col=1)
        size += 120
    else:
        fig = go.Figure(hm)
        fig.update_xaxes(**axis, tickangle=-45)
        fig.update_yaxes(**axis, autorange="reversed")
        if family_lines and len(c):  # white lines between family blocks, one trace (add_shape per line is slow)
            fams = c.drop_duplicates("model_a").set_index("model_a")["family_a"].reindex(order).tolist()
            xs, ys = [], []
            for i in range(1, n):
                if fams[i] != fams[i - 1]:
                    xs += [i - 0.5, i - 0.5, None, -0.5, n - 0.5, None]
                    ys += [-0.5, n - 0.5, None, i - 0.5, i - 0.5, None]
            if xs:
                fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", line={"color": "white", "width": 1.5},
                                         hoverinfo="skip", showlegend=False, name="family boundaries"))  # fmt: skip
    fig.update_layout(height=size, margin={"l": 10, "r": 10, "t": 30, "b": 10}, xaxis_title=None)
    return fig


def family_block(df: pd.DataFrame, mdef: pd.Series) -> go.Figure:
    """Family x family means (backend.family_block_matrix), same fixed colour range as the full matrix."""
    fams = list(dict.fromkeys(df["family_a"]))
    piv = df.pivot(index="family_a", columns="family_b", values="value_mean").reindex(index=fams, columns=fams)
    npairs = df.pivot(index="family_a", columns="family_b", values="n_pairs").reindex(index=fams, columns=fams)
    std = df.pivot(index="family_a", columns="family_b", values="value_std").reindex(index=fams, columns=fams)
    text = [[f"pairs: {int(npairs.iat[i, j])}, sd: {_fmt(std.iat[i, j])}" for j in range(len(fams))]
            for i in range(len(fams))]  # fmt: skip
    fig = go.Figure(
        go.Heatmap(
            z=piv.to_numpy(dtype=float),
            x=fams,
            y=fams,
            zmin=float(mdef["value_min"]),
            zmax=float(mdef["value_max"]),
            colorscale=_scale(bool(mdef["higher_is_aligned"])),
            text=text,
            hovertemplate="%{y} → %{x}<br>mean: %{z:.4f}<br>%{text}<extra></extra>",
            colorbar={"title": {"text": str(mdef["display_name"])}},
            hoverongaps=False,
        )
    )
    fig.update_yaxes(autorange="reversed")
    fig.update_layout(height=max(360, 60 * len(fams) + 160), margin={"l": 10, "r": 10, "t": 30, "b": 10})
    return fig


def diff_heatmap(diff: pd.DataFrame, labels: dict[str, str], title: str) -> go.Figure:
    z = diff.to_numpy(dtype=float)
    lim = float(np.nanmax(np.abs(z))) if np.isfinite(z).any() else 1.0
    ticks = [labels.get(m, m) for m in diff.index]
    fig = go.Figure(
        go.Heatmap(
            z=z, x=ticks, y=ticks, zmid=0, zmin=-lim, zmax=lim, colorscale="RdBu",
            hovertemplate="A: %{y}<br>B: %{x}<br>difference: %{z:.4f}<extra></extra>", hoverongaps=False,
        )
    )  # fmt: skip
    fig.update_yaxes(autorange="reversed")
    fig.update_layout(title=title, height=max(380, 30 * len(ticks) + 200), margin={"l": 10, "r": 10, "t": 40, "b": 10})
    return fig


# ----------------------------------------------------------------------------------------------------------------
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


def tree_figure(leaf_df: pd.DataFrame, xs: list, ys: list, colour_col: str) -> go.Figure:
    fig = go.Figure(
        go.Scatter(x=xs, y=ys, mode="lines", line={"color": "#666", "width": 1.2}, hoverinfo="skip", showlegend=False)
    )
    cmap = colour_map(leaf_df[colour_col])
    for val, g in leaf_df.groupby(colour_col, sort=True):
        fig.add_trace(
            go.Scatter(
                x=g["x"], y=g["y"], mode="markers+text", name=str(val),
                marker={"size": 11, "color": cmap[val], "line": {"width": 1, "color": "#333"}},
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
        height=max(380, 26 * len(leaf_df) + 120), legend_title=colour_col, margin={"l": 10, "r": 10, "t": 30, "b": 10}
    )
    return fig


# ----------------------------------------------------------------------------------------------------------------
def id_bars(df: pd.DataFrame, labels: dict[str, str]) -> go.Figure:
    """Intrinsic dimension per model (bars grouped and coloured by family) with the bootstrap CI as error bars."""
    cmap = colour_map(df["family"])
    datasets = list(dict.fromkeys(df["dataset_id"]))
    fig = make_subplots(rows=len(datasets), cols=1, subplot_titles=datasets, shared_xaxes=False,
                        vertical_spacing=0.12 if len(datasets) > 1 else 0.0)  # fmt: skip
    shown = set()
    for r, ds in enumerate(datasets, start=1):
        d = df[df["dataset_id"] == ds]
        for fam, g in d.groupby("family", sort=True):
            lo = (g["value"] - g["ci_low"]).to_numpy(dtype=float)
            hi = (g["ci_high"] - g["value"]).to_numpy(dtype=float)
            fig.add_trace(
                go.Bar(
                    x=[labels.get(m, m) for m in g["model_id"]], y=g["value"], name=fam, legendgroup=fam,
                    showlegend=fam not in shown, marker_color=cmap[fam],
                    error_y={"type": "data", "symmetric": False, "array": hi, "arrayminus": lo, "visible": True},
                    customdata=np.stack([g["ci_low"], g["ci_high"], g["n"], g["estimator"]], axis=1),
                    hovertemplate="%{x}<br>ID: %{y:.2f}<br>CI: [%{customdata[0]:.2f}, %{customdata[1]:.2f}]<br>"
                    "n: %{customdata[2]}<br>estimator: %{customdata[3]}<extra>%{fullData.name}</extra>",
                ),
                row=r, col=1,
            )  # fmt: skip
            shown.add(fam)
        fig.update_yaxes(title_text="intrinsic dimension", row=r, col=1)
    fig.update_layout(height=420 * len(datasets), barmode="group", margin={"l": 10, "r": 10, "t": 40, "b": 10})
    return fig


def scatter_pairs(df: pd.DataFrame, x: str, y: str, colour: str, *, xlab: str, ylab: str, diagonal=False,
                  continuous=False, cmin=None, cmax=None, hover=("model_a", "model_b"), colour_title=None) -> go.Figure:  # fmt: skip
    """One marker per row; colour categorical (a trace per value) or continuous (one trace with a colour bar)."""
    fig = go.Figure()
    lab = pd.Series([" – ".join(map(str, t)) for t in zip(*(df[h] for h in hover), strict=True)], index=df.index)
    if continuous:
        fig.add_trace(
            go.Scatter(
                x=df[x], y=df[y], mode="markers", text=lab,
                marker={"size": 10, "color": df[colour], "colorscale": "Viridis", "cmin": cmin, "cmax": cmax,
                        "colorbar": {"title": {"text": colour_title or colour}}, "line": {"width": 0.5, "color": "#333"}},
                showlegend=False,
                hovertemplate=f"%{{text}}<br>{xlab}: %{{x:.4f}}<br>{ylab}: %{{y:.4f}}<br>{colour}: %{{marker.color:.4f}}"
                "<extra></extra>",
            )
        )  # fmt: skip
    else:
        cmap = colour_map(df[colour].astype(str), sort=False)  # order of appearance (e.g. k ascending)
        for val, g in df.groupby(df[colour].astype(str), sort=False):
            fig.add_trace(
                go.Scatter(
                    x=g[x], y=g[y], mode="markers", name=val, text=lab.loc[g.index],
                    marker={"size": 10, "color": cmap[val], "line": {"width": 0.5, "color": "#333"}},
                    hovertemplate=f"%{{text}}<br>{xlab}: %{{x:.4f}}<br>{ylab}: %{{y:.4f}}<extra>{val}</extra>",
                )
            )  # fmt: skip
    if diagonal and len(df):
        vals = pd.concat([df[x], df[y]]).astype(float)
        lo, hi = float(np.nanmin(vals)), float(np.nanmax(vals))
        fig.add_trace(go.Scatter(x=[lo, hi], y=[lo, hi], mode="lines", line={"dash": "dot", "color": "#888"},
                                 name="y = x", hoverinfo="skip", showlegend=not continuous))  # fmt: skip
    fig.update_layout(xaxis_title=xlab, yaxis_title=ylab, height=520, margin={"l": 10, "r": 10, "t": 30, "b": 10},
                      legend_title=colour_title or colour, showlegend=not continuous)  # fmt: skip
    return fig


def convergence(
    df: pd.DataFrame, labels: dict[str, str], ylab: str, point_text: dict[str, str] | None = None
) -> go.Figure:
    """Energy MAE (x, log) against alignment to the lowest-MAE model (y) with CI; the best model starred.

    `point_text` (model id -> text written next to its point; None: no text) lets the page choose short ids when
    a dozen ensemble members crowd one corner; the hover always has the full label from `labels`."""
    cmap = colour_map(df["family"])
    fig = go.Figure()
    for fam, g in df.groupby("family", sort=True):
        err = {}
        if g["ci_low"].notna().any():
            err = {"error_y": {"type": "data", "symmetric": False, "array": g["ci_high"] - g["alignment"],
                               "arrayminus": g["alignment"] - g["ci_low"]}}  # fmt: skip
        fig.add_trace(
            go.Scatter(
                x=g["mae_per_atom"], y=g["alignment"], mode="markers" if point_text is None else "markers+text",
                name=fam, text=None if point_text is None else [point_text.get(m, m) for m in g["model_id"]],
                hovertext=[labels.get(m, m) for m in g["model_id"]], textposition="top center", cliponaxis=False,
                marker={"size": [18 if b else 11 for b in g["is_best"]], "color": cmap[fam],
                        "symbol": ["star" if b else "circle" for b in g["is_best"]],
                        "line": {"width": 0.5, "color": "#333"}},
                customdata=np.stack([g["n_test"], g["n"].astype(float)], axis=1),
                hovertemplate="%{hovertext}<br>MAE: %{x:.4f} eV/atom (n_test %{customdata[0]})<br>alignment: %{y:.4f} "
                "(n %{customdata[1]})<extra>%{fullData.name}</extra>", **err,
            )
        )  # fmt: skip
    best = df[df["is_best"]]
    ys = df["alignment"].dropna()
    if len(best) and len(ys):  # the best model has no alignment to itself: mark its MAE with a dashed line
        b = best.iloc[0]
        x = float(b["mae_per_atom"])
        fig.add_trace(
            go.Scatter(x=[x, x], y=[float(ys.min()), float(ys.max())], mode="lines", hoverinfo="skip",
                       line={"dash": "dash", "color": "#888"},
                       name=f"best: {labels.get(b['model_id'], b['model_id'])}")
        )  # fmt: skip
    fig.update_xaxes(title="energy MAE (eV/atom, held-out split)", type="log")
    fig.update_yaxes(title=ylab)
    fig.update_layout(height=520, margin={"l": 10, "r": 40, "t": 40, "b": 10}, legend_title="family")
    return fig


def bar_counts(df: pd.DataFrame) -> go.Figure:
    """Models by family (x) stacked by source."""
    fig = go.Figure()
    colours = {"pretrained": "#4C78A8", "random_init": "#E45756", "trained_here": "#54A24B", "descriptor": "#BAB0AC"}
    for src, g in df.groupby("source", sort=True):
        fig.add_trace(go.Bar(x=g["family"], y=g["n_models"], name=src, marker_color=colours.get(src)))
    fig.update_layout(barmode="stack", height=340, yaxis_title="models", legend_title="source",
                      margin={"l": 10, "r": 10, "t": 30, "b": 10})  # fmt: skip
    return fig


def compare_bars(df: pd.DataFrame) -> go.Figure:
    """Every pairwise metric of one pair (value A→B), x = metric (k), one colour per dataset."""
    d = df[df["scope"] == "pair"].copy()
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
    fig.update_layout(barmode="group", height=420, yaxis_title="value (A → B)", legend_title="dataset",
                      margin={"l": 10, "r": 10, "t": 30, "b": 10})  # fmt: skip
    return fig
