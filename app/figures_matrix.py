"""Matrix figures (heatmap, family blocks, difference map), pure functions of backend tables (no Streamlit).

Sizing: cells are square (the y axis is anchored to the x axis) and the figure's height is the cells plus the
room the rotated labels need, so a 4 x 4 matrix is as readable as a 40 x 40 one.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from backend.queries import METRICS

MARK_COLOUR = "#e7298a"  # the heatmap's "not above the null" ×: magenta stands out on every Viridis colour and white
NAN_COLOUR = "#c8c8c8"  # cells without a value (the difference map's diagonal): grey, never a data colour


def _scale(higher_is_aligned: bool) -> str:
    return "Viridis" if higher_is_aligned else "Viridis_r"


def _fmt(v, digits=3) -> str:
    try:
        f = float(v)
    except (TypeError, ValueError):  # None, pd.NA
        return "–"
    return f"{f:.{digits}f}" if np.isfinite(f) else "–"


def cell_px(n: int, width_px: int = 620) -> int:
    """Pixels per cell so that n cells fit the plot width the page gives (`width_px`, the width left after the
    labels and the colour bar): at most 48, at least 12."""
    return int(max(12, min(48, width_px // max(n, 1))))


AXIS_LABEL_CHARS = 40  # a matrix axis label's length; the full name is in the hover


def axis_labels(labels: list[str], limit: int = AXIS_LABEL_CHARS) -> list[str]:
    """Labels cut to `limit` characters for a matrix axis, keeping a trailing "[...]" tag (the model's source) and
    marking the cut with "…"; one long name ("MACE-MP-0 medium architecture, random weights (seed 0) [random init]")
    would otherwise set the label room of the whole figure. A cut that would make two labels equal is not made."""
    out = []
    for t in labels:
        if len(t) <= limit:
            out.append(t)
            continue
        tag = t[t.rfind(" [") :] if t.endswith("]") and " [" in t else ""
        head = t[: len(t) - len(tag)]
        room = max(8, limit - len(tag) - 1)
        cut = head[:room]
        if head[room : room + 1] not in ("", " ") and " " in cut:  # at a word boundary
            cut = cut[: cut.rfind(" ")]
        out.append(cut.rstrip(" ,(") + "…" + tag)
    seen: dict[str, int] = {}
    for x in out:
        seen[x] = seen.get(x, 0) + 1
    return [full if seen[cut] > 1 else cut for cut, full in zip(out, labels, strict=True)]


def matrix_height(n: int, labels: list[str], width_px: int = 620) -> int:
    """Cells + the rotated (-45°) x labels below (about 7.5 px a character at 12 px, times sin 45°, as the
    1600 x 1000 screenshots measured: 4.7 px a character clipped the in- vs out-of-distribution labels) + a title
    band above."""
    longest = max((len(t) for t in labels), default=4)
    return int(cell_px(n, width_px) * n + 5.4 * longest + 100)


def _range(z: np.ndarray, mdef: pd.Series, zrange) -> tuple[float, float]:
    if zrange is not None:
        return float(zrange[0]), float(zrange[1])
    return float(mdef["value_min"]), float(mdef["value_max"])


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
    res,
    mdef: pd.Series,
    labels: dict[str, str],
    *,
    family_lines: bool = True,
    null: pd.DataFrame | None = None,
    zrange: tuple[float, float] | None = None,
    width_px: int = 620,
) -> go.Figure:
    """The matrix of a backend MatrixResult: z = res.matrix (rows = model_a; raw or calibrated, `res.scale`); colour
    range `zrange` (default: the metric's range); hover with the value, raw and calibrated, n, k, CI, p (as
    "p < 1/(P+1)" at its floor) and the permutation null (mean ± sd, 95th percentile, z; from the cells, or from
    `null` = backend.pairwise_null for a release with only that table); cells whose raw value is not above the null's
    95th percentile (below its 5th for information imbalance) carry a marker (trace "not above null"); a dendrogram
    above when the result carries a linkage."""
    order = list(res.order)
    n = len(order)
    z = res.matrix.loc[order, order].to_numpy(dtype=float)
    c = res.cells
    cal = "calibrated" in c.columns
    nums = ("n", "ci_low", "ci_high", "p_value", "mirrored", "value_raw", "calibrated", "null_mean", "null_std",
            "null_q95", "above_null_q95", "n_permutations")  # fmt: skip
    extra = np.full((n, n, len(nums)), np.nan)
    ptext = np.full((n, n), "–", dtype=object)
    if len(c):
        r, col = c["row"].to_numpy(int), c["col"].to_numpy(int)
        for j, name in enumerate(nums):
            if name in c.columns:
                extra[r, col, j] = pd.to_numeric(c[name].astype(object), errors="coerce").to_numpy(dtype=float)
        if "p_text" in c.columns:
            ptext[r, col] = c["p_text"].to_numpy(dtype=object)
        else:
            ptext[r, col] = [f"p = {_fmt(p)}" for p in c["p_value"]]
    nulls: dict[tuple[int, int], str] = {}
    if null is not None and len(null):
        pos = {m: i for i, m in enumerate(order)}
        for a, b, mu, sd, zz, npm in zip(null["model_a"], null["model_b"], null["null_mean"], null["null_std"],
                                         null["z"], null["n_permutations"], strict=True):  # fmt: skip
            if a in pos and b in pos:
                how = "exact moments" if npm == 0 else f"{npm} perm."  # 0: CKA's exact-moment null
                nulls[pos[a], pos[b]] = f"<br>null ({how}): {_fmt(mu)} ± {_fmt(sd)}, z = {_fmt(zz, 1)}"
    q_name = "95th" if METRICS[res.metric].higher_is_aligned else "5th"  # the raw metric's direction, on any scale
    ticks = [labels.get(m, m) for m in order]  # full names in the hover, cut ones on the axes
    kk = res.k if res.k is not None else "–"
    scale = getattr(res, "scale", "raw")

    def cell_text(i: int, j: int) -> str:
        e = extra[i, j]
        t = (f"A: {ticks[i]}<br>B: {ticks[j]}<br>n = {int(e[0]) if np.isfinite(e[0]) else '–'}, k = {kk}"
             + f"<br>{'calibrated ' if scale == 'calibrated' else ''}CI: "
             + (f"[{_fmt(e[1])}, {_fmt(e[2])}]" if np.isfinite(e[1]) else "not computed")
             + f"<br>{ptext[i, j]}")  # fmt: skip
        if cal:
            t += f"<br>raw: {_fmt(e[5], 4)} · calibrated: " + (_fmt(e[6], 4) if np.isfinite(e[6]) else "none stored")
            if np.isfinite(e[7]):
                zz = (e[5] - e[7]) / e[8] if e[8] > 0 else np.nan
                perm = f"{int(e[11])} perm." if np.isfinite(e[11]) else "perm."
                t += (f"<br>null ({perm}): {_fmt(e[7])} ± {_fmt(e[8])}, z = {_fmt(zz, 1)}; {q_name} percentile "
                      f"{_fmt(e[9])}" + (" (not beyond it: marked ×)" if e[10] == 0 else ""))  # fmt: skip
        if not (cal and np.isfinite(e[7])):
            t += nulls.get((i, j), "")
        return t + ("<br>(mirrored from B→A)" if e[4] == 1 else "")

    text = [[cell_text(i, j) for j in range(n)] for i in range(n)]
    bar_title = str(mdef["display_name"])  # the page passes the calibrated definition on that scale
    if scale == "calibrated" and not bar_title.startswith("calibrated"):
        bar_title = f"calibrated {bar_title}"
    hm = go.Heatmap(
        z=z,
        x=list(range(n)),
        y=list(range(n)),
        zmin=_range(z, mdef, zrange)[0],
        zmax=_range(z, mdef, zrange)[1],
        colorscale=_scale(scale == "calibrated" or bool(mdef["higher_is_aligned"])),
        colorbar={"title": {"text": bar_title}, "len": 0.9},
        text=text,
        hovertemplate="%{text}<br>value: %{z:.4f}<extra></extra>",
        hoverongaps=False,
        name="matrix",
    )
    axis = {"tickmode": "array", "tickvals": list(range(n)), "ticktext": axis_labels(ticks), "showgrid": False}
    size = matrix_height(n, axis["ticktext"], width_px)
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
        fig.update_yaxes(**axis, autorange="reversed", scaleanchor="x", constrain="domain")
        fig.update_xaxes(constrain="domain")
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
    not_above = np.argwhere(extra[:, :, 10] == 0)
    if len(not_above):  # one marker trace: the cells a permutation of B's rows explains
        mark = go.Scatter(
            x=not_above[:, 1].tolist(), y=not_above[:, 0].tolist(), mode="markers", hoverinfo="skip",
            marker={"symbol": "x-thin", "size": max(5, min(12, cell_px(n, width_px) // 3)),
                    "line": {"width": 2, "color": MARK_COLOUR}},
            name=f"not above the null's {q_name} percentile", showlegend=True,
        )  # fmt: skip
        if res.linkage is not None and n >= 2:
            fig.add_trace(mark, row=2, col=1)
        else:
            fig.add_trace(mark)
        fig.update_layout(legend={"orientation": "h", "x": 0, "y": 1.0, "yanchor": "bottom"})
    fig.update_layout(height=size, margin={"l": 10, "r": 10, "t": 40, "b": 10}, xaxis_title=None)
    return fig


def family_block(df: pd.DataFrame, mdef: pd.Series, zrange: tuple[float, float] | None = None) -> go.Figure:
    """Family x family means (backend.family_block_matrix); each cell shows its mean and its number of pairs."""
    fams = list(dict.fromkeys(df["family_a"]))
    piv = df.pivot(index="family_a", columns="family_b", values="value_mean").reindex(index=fams, columns=fams)
    npairs = df.pivot(index="family_a", columns="family_b", values="n_pairs").reindex(index=fams, columns=fams)
    std = df.pivot(index="family_a", columns="family_b", values="value_std").reindex(index=fams, columns=fams)
    z = piv.to_numpy(dtype=float)
    nf = len(fams)
    text = [
        ["" if not np.isfinite(z[i, j]) else f"{z[i, j]:.3f}<br>{int(npairs.iat[i, j])} pairs" for j in range(nf)]
        for i in range(nf)
    ]
    hover = [[f"pairs: {_fmt(npairs.iat[i, j], 0)}, sd: {_fmt(std.iat[i, j])}" for j in range(nf)] for i in range(nf)]
    lo, hi = _range(z, mdef, zrange)
    fig = go.Figure(
        go.Heatmap(
            z=z, x=fams, y=fams, zmin=lo, zmax=hi, colorscale=_scale(bool(mdef["higher_is_aligned"])),
            text=text, texttemplate="%{text}", textfont={"size": 11}, customdata=hover,
            hovertemplate="%{y} → %{x}<br>mean: %{z:.4f}<br>%{customdata}<extra></extra>",
            colorbar={"title": {"text": str(mdef["display_name"])}}, hoverongaps=False,
        )
    )  # fmt: skip
    fig.update_yaxes(autorange="reversed", scaleanchor="x", constrain="domain")
    fig.update_xaxes(constrain="domain", tickangle=-45)
    cell = max(60, min(110, 900 // max(nf, 1)))
    fig.update_layout(
        height=int(cell * nf + 6.5 * max(len(x) for x in fams) * 0.75 + 130),
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
    )
    return fig


def diff_heatmap(diff: pd.DataFrame, labels: dict[str, str], title: str | None = None) -> go.Figure:
    """B − A per pair, diverging colours centred on 0 (red: higher on B, blue: higher on A); cells without a value (the diagonal) in grey, so a blank is
    never read as a difference of zero."""
    z = diff.to_numpy(dtype=float)
    lim = float(np.nanmax(np.abs(z))) if np.isfinite(z).any() else 1.0
    ticks = [labels.get(m, m) for m in diff.index]
    n = len(ticks)
    fig = go.Figure(
        go.Heatmap(
            z=z, x=list(range(n)), y=list(range(n)), zmid=0, zmin=-lim, zmax=lim, colorscale="RdBu_r",
            customdata=[[f"A: {ticks[i]}<br>B: {ticks[j]}" for j in range(n)] for i in range(n)],
            hovertemplate="%{customdata}<br>difference: %{z:.4f}<extra></extra>", hoverongaps=False,
            colorbar={"title": {"text": "B − A"}},
        )
    )  # fmt: skip
    axis = {
        "tickmode": "array",
        "tickvals": list(range(n)),
        "ticktext": axis_labels(ticks),
        "showgrid": False,
        "zeroline": False,
    }
    fig.update_xaxes(**axis, tickangle=-45, constrain="domain")
    fig.update_yaxes(**axis, autorange="reversed", scaleanchor="x", constrain="domain")
    fig.update_layout(
        title=title, height=matrix_height(n, axis["ticktext"]), plot_bgcolor=NAN_COLOUR,
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
    )  # fmt: skip
    return fig
