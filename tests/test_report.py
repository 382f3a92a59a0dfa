"""backend.report: the numbers FINDINGS.md cites, recomputed here from the release's own tables."""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pytest

from backend import Release, report
from precompute.release import write_release
from tests._release_fixture import MANIFEST_EXTRA, build_tables


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("rep")
    return Release.open(write_release(build_tables(), MANIFEST_EXTRA, tmp))


def test_within_family_mean_is_the_mean_of_symmetrised_pairs(release):
    from backend import queries as q

    mat = q.matrix(release, "qm9", "cknna", 10).matrix
    fam = dict(release.query("select model_id, family from models").itertuples(index=False))
    same = [(mat.at[a, b] + mat.at[b, a]) / 2 for a, b in combinations(list(mat.index), 2) if fam[a] == fam[b]]
    assert same
    lines = report.dataset_report(release, "qm9", 10)
    line = next(x for x in lines if x.strip().startswith("same family"))
    assert f"mean {np.mean(same):.3f}" in line and f"({len(same)} pairs)" in line


def test_report_runs_on_every_dataset(release, capsys):
    assert report.main([str(release.path)]) == 0
    out = capsys.readouterr().out
    assert "## qm9" in out and "## offeq" in out and "nearest model" in out
