"""View state: sidebar filters and page controls, all mirrored in the URL (st.query_params) so a link reproduces
the view.

- On the first run of a session the URL's parameters are read once; every control takes its value from there if
  the value is valid (checked against `backend.queries.filter_options` or the control's options), otherwise the
  value is ignored and a visible warning says so.
- At the end of every run the URL is rewritten from the controls drawn in that run; defaults are left out.
- Lists (family, modality, training_set, source) are repeated keys: `?family=MACE&family=Orb`; a repeated
  single-value key uses the first value and says so.
- Every URL value (and unknown key) echoed in a warning goes through `shown`: control characters made visible,
  cut to SHOW_MAX characters with the full length, every markdown metacharacter escaped.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import streamlit as st

from backend import Release

from .data import q

GLOBAL_KEYS = ("release", "models", "family", "modality", "training_set", "source", "dataset", "metric", "k")
# page controls: known everywhere so that a link to another page's parameter is never called unknown
PAGE_KEYS = (
    "order",
    "view",
    "method",
    "colour",
    "dataset_b",
    "model_a",
    "model_b",
    "model",
    "estimator",
    "scope",
    "ii_k",
    "ii_colour",
    "range",
    "scale",
)
_RAW, _WARN, _REG, _PAGE = "_url_raw", "_url_warnings", "_url_registered", "_url_page"
SHOW_MAX = 80  # URL values longer than this are cut when echoed
_CTRL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u200b-\u200f\u202a-\u202e\u2066-\u2069]")
_MD = re.compile(r"([\\`*_{}\[\]()<>#+\-.!|~$:=&\"'^%@])")


def shown(value) -> str:
    """A value from the URL, safe to put in a markdown message: control characters shown as `\\xNN`, cut to
    SHOW_MAX characters (with the full length), every markdown metacharacter backslash-escaped, in quotes."""
    s = str(value)
    n = len(s)
    cut = s[:SHOW_MAX]
    cut = _CTRL.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 256 else f"\\u{ord(m.group()):04x}", cut)
    out = _MD.sub(r"\\\1", cut)
    if n > SHOW_MAX:
        out += f"… ({n:,} characters)"
    return f"“{out}”"


def start_run(page_key: str) -> None:
    """Call once per run before any control: reads the URL on the session's first run."""
    ss = st.session_state
    if _RAW not in ss:
        ss[_RAW] = {key: list(st.query_params.get_all(key)) for key in st.query_params.keys()}
        ss[_WARN] = []
        ss[_PAGE] = page_key
        for key in list(ss[_RAW]):
            if key not in GLOBAL_KEYS and key not in PAGE_KEYS:
                ss[_WARN].append(f"Unknown URL parameter {shown(key)} ignored.")
                del ss[_RAW][key]
    elif ss.get(_PAGE) != page_key:  # warnings belong to the view the link opened
        ss[_WARN] = []
        ss[_PAGE] = page_key
    ss[_REG] = {}


def warn(msg: str) -> None:
    st.session_state[_WARN].append(msg)


def warnings() -> list[str]:
    return list(st.session_state.get(_WARN, []))


def _from_url(key: str) -> list[str] | None:
    return st.session_state[_RAW].pop(key, None)


def control(
    key: str,
    label: str,
    options: Sequence,
    default,
    *,
    multi: bool = False,
    where=None,
    widget: str = "selectbox",
    format_func: Callable | None = None,
    help: str | None = None,
    what: str | None = None,
    hidden: bool = False,
):
    """A selectbox / multiselect / radio bound to session state and the URL; returns its value.

    URL values are matched against str(option); invalid ones are ignored with a warning. A session value that is no
    longer among the options (e.g. k after changing dataset) falls back to the default. `hidden`: the value is
    resolved and kept (session and URL) but no widget is drawn, for a filter that does nothing on this page; it is
    written back to session state as a plain value so Streamlit does not drop it with the undrawn widget.
    """
    ss = st.session_state
    where = where if where is not None else st.sidebar
    by_str = {str(o): o for o in options}
    what = what or key
    raw = _from_url(key)
    if raw is not None:
        if multi:
            good = [by_str[v] for v in raw if v in by_str]
            bad = [v for v in raw if v not in by_str]
            if bad:
                listed = ", ".join(shown(b) for b in bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
                warn(f"URL value(s) {listed} for `{key}` ignored: not a known {what}.")
            ss[key] = list(dict.fromkeys(good))
        else:
            if len(raw) > 1:
                warn(
                    f"URL parameter `{key}` given {len(raw)} times; only one value is allowed, the first "
                    f"({shown(raw[0])}) is used and the others ignored."
                )
            if raw and raw[0] in by_str:
                ss[key] = by_str[raw[0]]
            else:
                warn(
                    f"URL value {shown(raw[0] if raw else '')} for `{key}` ignored: not a known {what} here; "
                    f"showing {shown(default)}."
                )
                ss[key] = default
    if key in ss:
        cur = ss[key]
        if multi:
            if not isinstance(cur, list) or any(c not in options for c in cur):
                ss[key] = [c for c in (cur if isinstance(cur, list) else []) if c in options]
        elif cur not in options:
            ss[key] = default
    else:
        ss[key] = list(default) if multi else default
    ss[_REG][key] = (default, multi)
    if hidden:
        ss[key] = list(ss[key]) if multi else ss[key]
        return ss[key]
    kw = {"key": key, "help": help}
    if format_func is not None:
        kw["format_func"] = format_func
    if multi:
        where.multiselect(label, list(options), placeholder="all", **kw)
    elif widget == "radio":
        where.radio(label, list(options), horizontal=True, **kw)
    else:
        where.selectbox(label, list(options), **kw)
    return ss[key]


def sync_url() -> None:
    """Rewrite the URL from the controls drawn in this run (defaults left out); forget unread URL values."""
    ss = st.session_state
    want: dict[str, str | list[str]] = {}
    for key, (default, multi) in ss.get(_REG, {}).items():
        val = ss.get(key)
        if multi:
            if val:
                want[key] = [str(v) for v in val]
        elif val is not None and val != default:
            want[key] = str(val)
    ss[_RAW] = {}
    have = {key: list(st.query_params.get_all(key)) for key in st.query_params.keys()}
    if have != {key: (v if isinstance(v, list) else [v]) for key, v in want.items()}:
        st.query_params.from_dict(want)


# ----------------------------------------------------------------------------------------------------------------
@dataclass
class Filters:
    """The sidebar filters of every page, resolved against the release."""

    family: list[str]
    modality: list[str]
    training_set: list[str]
    source: list[str]
    dataset: str | None
    metric: str | None
    k: int | None
    models: list[str]  # models passing the filters with any result on the dataset
    n_on_dataset: int  # models with any result on the dataset
    active: list[str] = field(default_factory=list)  # names of the model filters in use
    chosen: list[str] = field(default_factory=list)  # models picked one by one (empty: no such filter)
    n_samples: int | None = None  # samples of the dataset (the n the k warning is measured against)

    @property
    def model_filter(self) -> list[str] | None:
        """For `models=` arguments: None when no model filter is active (all models)."""
        return list(self.models) if self.active else None

    @property
    def hidden(self) -> int:
        return self.n_on_dataset - len(self.models)


def default_metric(metrics: Sequence[str]) -> str | None:
    return "cknna" if "cknna" in metrics else (metrics[0] if metrics else None)


def default_k(ks: Sequence[int | None]) -> int | None:
    return 10 if 10 in ks else (ks[0] if ks else None)


def model_option_label(row) -> str:
    """'name · id · family': the multiselect searches the label, so a name, an id or a family each find the model."""
    return f"{row['display_name']} · {row['model_id']} · {row['family']}"


# the k warning: neighbourhoods covering more than a tenth of the samples are no longer local (the chance overlap
# of two random k-neighbourhoods, k/n, exceeds 0.1)
K_LARGE_FRACTION = 0.1


def k_is_large(k: int | None, n: int | None) -> bool:
    return k is not None and n is not None and n > 0 and k > K_LARGE_FRACTION * n


def metric_help(mdefs) -> str:
    """The metric control's help: each metric's definition, direction and range (mdefs indexed by metric)."""
    lines = []
    for m, d in mdefs.iterrows():
        direction = "higher = more aligned" if d["higher_is_aligned"] else "lower = more aligned"
        extra = ""
        if m == "idcor":
            extra = (
                " Can exceed 1: ID([A|B]) is itself estimated, and when the joint estimate falls below "
                "max(ID(A), ID(B)) the ratio is > 1 (estimator noise, not more than identical); such values are "
                "shown as they are, never clipped."
            )
        lines.append(
            f"**{d['display_name']}** ({direction}; range [{d['value_min']:g}, {d['value_max']:g}]"
            f"{'; has k' if d['has_k'] else ''}): {d['description']}{extra}"
        )
    return "\n\n".join(lines)


# which sidebar controls do something on each page (the others are kept in the session and the URL, not drawn)
PAGE_CONTROLS: dict[str, frozenset[str]] = {
    "overview": frozenset(),
    "summary": frozenset({"dataset", "metric", "models"}),
    "heatmap": frozenset({"dataset", "metric", "models"}),
    "tree": frozenset({"dataset", "metric", "models"}),
    "intrinsic_dimension": frozenset({"dataset", "models"}),
    "id_vs_ood": frozenset({"dataset", "metric", "models"}),
    "convergence": frozenset({"dataset", "metric", "models"}),
    "local_vs_global": frozenset({"dataset", "metric", "models"}),
    "compare": frozenset({"dataset", "metric", "models"}),
    "model_cards": frozenset({"models"}),
    "dataset_cards": frozenset({"models"}),  # the dataset picker is on the page itself
    "score": frozenset(),  # its dataset picker and upload are on the page itself
}


def sidebar_filters(release: Release, page: str | None = None) -> Filters:
    """Every filter resolved; drawn in the sidebar only where it does something on `page` (None: all drawn)."""
    uses = PAGE_CONTROLS.get(page, frozenset({"dataset", "metric", "models"})) if page else None
    show = (lambda what: True) if uses is None else (lambda what: what in uses)  # noqa: E731
    opts = q(release, "filter_options")
    datasets = q(release, "list_datasets")
    dnames = dict(zip(datasets["dataset_id"], datasets["display_name"], strict=True))
    sb = st.sidebar
    if show("dataset") or show("metric"):
        sb.markdown("### Filters")
    ds_opts = list(opts["dataset"])
    # default: a real dataset with pairwise values and the most models (generated sets are labelled, not shown first)
    info = datasets.set_index("dataset_id")
    ranked = sorted(
        ds_opts,
        key=lambda d: (not info.at[d, "metrics"], info.at[d, "origin"] != "real", -int(info.at[d, "n_models"]), d),
    )
    dataset = control(
        "dataset",
        "Dataset",
        ds_opts,
        ranked[0] if ranked else None,
        format_func=lambda d: f"{dnames.get(d, d)} ({d})",
        what="dataset",
        hidden=not show("dataset"),
    )
    mdefs = q(release, "metric_definitions").set_index("metric")
    avail = q(release, "available_metrics", dataset) if dataset else None
    metrics = [m for m in opts["metric"] if avail is not None and m in set(avail["metric"])]
    metric = control(
        "metric",
        "Metric",
        metrics,
        default_metric(metrics),
        format_func=lambda m: str(mdefs.at[m, "display_name"]) if m in mdefs.index else m,
        what=f"metric with values on {dataset}",
        help=metric_help(mdefs.loc[[m for m in metrics if m in mdefs.index]]),
        hidden=not show("metric"),
    )
    k = None
    if metric is not None and bool(mdefs.at[metric, "has_k"]):
        ks = q(release, "k_values", dataset, metric)
        k = control(
            "k", "k (neighbours)", ks, default_k(ks), what=f"k for {metric} on {dataset}", hidden=not show("metric"),
            help=f"Neighbourhood size. A warning is shown when k > {K_LARGE_FRACTION:g} n (n: the dataset's samples).",
        )  # fmt: skip
    else:
        _from_url("k")  # a metric without k: k in the URL has no meaning; drop it quietly
    hide_models = not show("models")
    if not hide_models:
        sb.markdown("### Models")
    catalogue = q(release, "list_models")
    by_id = {r["model_id"]: model_option_label(r) for _, r in catalogue.iterrows()}
    chosen = control(
        "models",
        "Models (search by name, id or family)",
        list(catalogue["model_id"]),
        [],
        multi=True,
        what="model id",
        format_func=lambda m: by_id.get(m, m),
        help="Pick models one by one (type part of a name, an id or a family); combined with the filters below.",
        hidden=hide_models,
    )
    family = control("family", "Family", opts["family"], [], multi=True, what="family", hidden=hide_models)
    modality = control("modality", "Modality", opts["modality"], [], multi=True, what="modality", hidden=hide_models)
    training_set = control(
        "training_set", "Training set", opts["training_set"], [], multi=True, what="training set", hidden=hide_models
    )
    source = control(
        "source",
        "Source of the weights",
        opts["source"],
        [],
        multi=True,
        what="source",
        help="pretrained: published weights; random_init: the real architecture with random weights (never the "
        "pretrained model); trained_here: trained by us; descriptor: a fixed descriptor.",
        hidden=hide_models,
    )
    active = [
        n
        for n, v in (
            ("models", chosen),
            ("family", family),
            ("modality", modality),
            ("training set", training_set),
            ("source", source),
        )
        if v
    ]
    on_ds = q(release, "list_models", dataset=dataset) if dataset else catalogue
    kept = (
        q(
            release,
            "list_models",
            family=family or None,
            modality=modality or None,
            training_set=training_set or None,
            source=source or None,
            dataset=dataset,
        )
        if active
        else on_ds
    )
    kept_ids = [m for m in kept["model_id"] if not chosen or m in chosen]
    n_samples = int(info.at[dataset, "n_samples"]) if dataset in info.index else None
    return Filters(
        family=family,
        modality=modality,
        training_set=training_set,
        source=source,
        dataset=dataset,
        metric=metric,
        k=k,
        models=kept_ids,
        n_on_dataset=len(on_ds),
        active=active,
        chosen=list(chosen),
        n_samples=n_samples,
    )


def hidden_line(f: Filters, dataset_name: str, shown: int | None = None, where: str = "") -> str:
    """How many models are shown and how many the filters hide; `shown`/`where` when a page shows fewer than the
    filters keep (e.g. only the models with values on two datasets)."""
    if shown is not None and shown != len(f.models):
        why = f" ({', '.join(f.active)})" if f.active else ""
        return (
            f"**{shown} of {f.n_on_dataset}** models with results on **{dataset_name}** shown{where}; "
            f"{f.hidden} hidden by the filters{why}, {len(f.models) - shown} without values here."
        )
    if not f.active:
        return f"All **{f.n_on_dataset}** models with results on **{dataset_name}** shown; no model filter active."
    return (
        f"**{len(f.models)} of {f.n_on_dataset}** models with results on **{dataset_name}** shown; "
        f"**{f.hidden} hidden by the filters** ({', '.join(f.active)})."
    )
