"""Cold start of scoring (issue 13.7): the server reads the scoring lists once, in the background, and a command
that scores one dataset loads only that dataset's scoring tables (every file still checked against the manifest)."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pandas as pd
import pytest

from backend import Release, ReleaseError
from backend.scoring import SCORING_TABLES, score_embeddings, warm
from backend.scoring import zoo as zoo_mod
from tests._release_fixture import embeddings, write_test_release


@pytest.fixture()
def release_dir(tmp_path):
    return write_test_release(tmp_path)


def test_a_partial_open_scores_like_the_whole_release_and_loads_only_its_part(release_dir):
    whole = Release.open(release_dir)
    part = Release.open(release_dir, only=SCORING_TABLES, dataset="qm9")
    assert part.partial == {"dataset": "qm9", "tables": sorted(set(SCORING_TABLES) & set(whole.tables))}
    assert "pairwise" in whole.tables and "pairwise" not in part.tables
    with pytest.raises(Exception, match="pairwise"):  # a table left out is absent: no silent empty answer
        part.query("SELECT count(*) FROM pairwise")
    assert set(part.query("SELECT DISTINCT dataset_id FROM neighbours").dataset_id) == {"qm9"}
    assert len(set(whole.query("SELECT DISTINCT dataset_id FROM neighbours").dataset_id)) == 2
    X = embeddings()["qm9"]["mace_a"]
    zoo_mod._CACHE.clear()  # each open reads its own lists
    a = score_embeddings(whole, "qm9", X, "me", permutations=3).table
    zoo_mod._CACHE.clear()
    b = score_embeddings(part, "qm9", X, "me", permutations=3).table
    pd.testing.assert_frame_equal(a, b)


def test_a_partial_open_still_refuses_a_tampered_file_it_does_not_load(release_dir):
    path = release_dir / "pairwise.parquet"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ReleaseError, match="pairwise.parquet.*(SHA-256|bytes)"):
        Release.open(release_dir, only=SCORING_TABLES, dataset="qm9")


def test_derive_refuses_a_partial_release(release_dir):
    from precompute.release.derive import derive_release

    part = Release.open(release_dir, only=SCORING_TABLES, dataset="qm9")
    res = score_embeddings(part, "qm9", embeddings()["qm9"]["mace_a"], "me", permutations=0)
    with pytest.raises(ValueError, match="opened in part"):
        derive_release(part, res, release_dir.parent / "derived", upload_sha256="0" * 64, modality="structure")


def test_warm_reads_every_dataset_once_and_a_score_after_it_reads_no_list(release_dir, monkeypatch):
    release = Release.open(release_dir)
    zoo_mod._CACHE.clear()
    assert sorted(warm(release)) == ["offeq", "qm9"]

    def no_read(*a, **kw):
        raise AssertionError("a list was read after warm()")

    monkeypatch.setattr(zoo_mod, "_lists", no_read)
    monkeypatch.setattr(zoo_mod, "_deep", no_read)
    for ds, models in embeddings().items():
        t = score_embeddings(release, ds, models["mace_a"], "me", permutations=0).table
        assert t.value.notna().sum() > 0


def test_the_app_warms_the_scoring_lists_in_the_background(release_dir):
    from app import data

    release = Release.open(release_dir)
    zoo_mod._CACHE.clear()
    state = data.warm_scoring(release)
    state["thread"].join(60)
    assert not state["thread"].is_alive() and state["error"] is None and sorted(state["done"]) == ["offeq", "qm9"]
    assert data.warm_scoring(release) is state  # once per release and server process


def test_the_score_command_without_derive_opens_only_the_dataset(release_dir, tmp_path, capsys, monkeypatch):
    from precompute import cli_score

    opened = []
    real_open = Release.open
    monkeypatch.setattr(Release, "open", lambda *a, **kw: opened.append(kw) or real_open(*a, **kw))
    np.save(tmp_path / "mine.npy", embeddings()["qm9"]["mace_a"])
    args = argparse.Namespace(release=str(release_dir), dataset="qm9", embeddings=str(tmp_path / "mine.npy"),
                              name="Mine", out=str(tmp_path / "s.csv"), permutations=0, seed=0, top=3, derive=None,
                              modality="structure")  # fmt: skip
    assert cli_score.run(args) == 0
    assert opened == [{"only": SCORING_TABLES, "dataset": "qm9"}]
    t = pd.read_csv(tmp_path / "s.csv")
    assert set(t.dataset_id) == {"qm9"} and t.value.notna().sum() > 0
    assert "mine on qm9" in capsys.readouterr().out
    assert json.loads((release_dir / "manifest.json").read_text())["release_id"] == release_dir.name  # untouched
