"""app.figures_matrix: matrix axes keep their labels readable (issue 15.5): long model names are cut on the axes,
never in the hover, and the figure's label room follows the cut labels."""

from __future__ import annotations

import pytest

from app.figures_matrix import AXIS_LABEL_CHARS, axis_labels, heatmap, matrix_height
from backend import Release
from backend import queries as q

LONG = "MACE-MP-0 medium architecture, random weights (seed 0) [random init]"


def test_axis_labels_cut_long_names_keep_the_source_tag_and_stay_distinct():
    short = ["ANI-1x member 0", "Orb v3-conservative-inf [random init]", "Morgan fingerprint (r=2, 2048 bits)"]
    assert axis_labels(short) == short  # within the limit: untouched
    cut = axis_labels([LONG])[0]
    assert cut == "MACE-MP-0 medium… [random init]" and len(cut) <= AXIS_LABEL_CHARS
    plain = axis_labels(["A very long name without any tag at all, which goes on"])[0]
    assert plain.endswith("…") and len(plain) <= AXIS_LABEL_CHARS and not plain[:-1].endswith(" ")
    twins = [
        "EquiformerV2 153M trained on OMat24 + MPtrj + sAlex, one",
        "EquiformerV2 153M trained on OMat24 + MPtrj + sAlex, two",
    ]
    assert axis_labels(twins) == twins  # a cut that would merge two labels is not made


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Release:
    from precompute.release import write_release
    from tests._release_fixture import MANIFEST_EXTRA, build_tables

    return Release.open(write_release(build_tables(), MANIFEST_EXTRA, tmp_path_factory.mktemp("fm")))


def test_heatmap_axes_carry_the_cut_label_and_the_hover_the_full_one(release):
    res = q.matrix(release, "qm9", "cknna", 10, order="family")
    mdef = q.metric_definitions(release).set_index("metric").loc["cknna"]
    m0 = res.order[0]
    labels = {m: m for m in res.order} | {m0: LONG}
    fig = heatmap(res, mdef, labels).to_dict()
    hm = next(t for t in fig["data"] if t["type"] == "heatmap")
    assert fig["layout"]["xaxis"]["ticktext"][0] == axis_labels([LONG])[0]
    assert any(LONG in t for t in hm["text"][0])
    ticks = [labels[m] for m in res.order]
    assert fig["layout"]["height"] < matrix_height(len(ticks), ticks)  # the room of the cut labels, not the long one
