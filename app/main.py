"""matter-align dashboard: `streamlit run app/main.py` (optionally `-- --release <folder>`).

The entry point draws what every page shares (the release picker, the sidebar filters, the line saying how many
models the filters hide, URL warnings) and then runs the chosen page from app/pages_/. All data comes from
`backend.queries` through app/data.py (cached).
"""

from __future__ import annotations

import sys
from pathlib import Path
from urllib.parse import urlencode

_ROOT = Path(__file__).resolve().parents[1]
if str(_ROOT) not in sys.path:  # `streamlit run app/main.py` puts app/ on the path, not the checkout
    sys.path.insert(0, str(_ROOT))

import streamlit as st  # noqa: E402

from app import data, state, ui  # noqa: E402
from app.page_list import PAGES  # noqa: E402


def main() -> None:
    st.set_page_config(
        page_title="matter-align", page_icon=str(Path(__file__).parent / "assets" / "icon.png"), layout="wide"
    )
    pg = st.navigation([st.Page(f"pages_/{f}", title=t, icon=i, default=(n == 0)) for n, (f, t, i) in enumerate(PAGES)])
    page = pg.url_path or "overview"
    state.start_run(page)
    warn_box = st.container()
    try:
        default_path = data.default_release_path()
        root = data.releases_root()
        found = data.available_releases() if default_path.parent.resolve() == root.resolve() else []
        options = found if default_path.name in found else [default_path.name]
        rid = state.control(
            "release", "Release", options, default_path.name, what="release id",
            help="Every release is a frozen, verified set of tables; the id is in every CSV file name.",
        )  # fmt: skip
        release = data.open_release(None if rid == default_path.name else rid)
        data.warm_scoring(release)  # background: the scoring lists, so a first upload scores warm
    except data.NoRelease as e:
        st.title("matter-align")
        st.error(str(e), icon=":material/folder_off:")
        _flush(warn_box)
        return
    f = state.sidebar_filters(release, page)
    c = ui.make_ctx(release, f)
    st.sidebar.caption(f"Release `{release.release_id}` · created {release.created}")
    uses = state.PAGE_CONTROLS.get(page, frozenset())
    c.line = st.empty()  # the "N models shown" line; a page that shows fewer models rewrites it
    if f.dataset is not None and "models" in uses and ("dataset" in uses or page == "dataset_cards"):
        c.line.caption(state.hidden_line(f, c.ds_name(f.dataset)))
    if "metric" in uses and state.k_is_large(f.k, f.n_samples):
        st.warning(
            f"**k = {f.k} is large for n = {f.n_samples:,} samples** on {c.ds_name(f.dataset)}: k > "
            f"{state.K_LARGE_FRACTION:g} n, so each neighbourhood covers {f.k / f.n_samples:.0%} of the data and the "
            "metric is no longer local (the chance overlap k/n of two random neighbourhoods is high). Prefer a "
            "smaller k.",
            icon=":material/warning:",
        )
    if "metric" in uses:
        ui.metric_help_panel(c)
    ui.image_format_control()
    pg.run()
    _flush(warn_box)
    _share_link()


def _flush(warn_box) -> None:
    state.sync_url()
    for w in state.warnings():
        warn_box.warning(w, icon=":material/link_off:")


def _share_link() -> None:
    """The link that reproduces this view (page + every non-default setting), to copy into a paper or a chat."""
    query = urlencode([(k, v) for k in st.query_params.keys() for v in st.query_params.get_all(k)])
    url = st.context.url or ""
    link = url + (f"?{query}" if query else "")
    st.sidebar.caption("Link to this view")
    st.sidebar.code(link or f"?{query}", language=None, wrap_lines=True)


main()
