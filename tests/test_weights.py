"""precompute/adapters/_weights.py: the one rule for where user-provided weights live (no model library needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from precompute.adapters import _weights as w


@pytest.fixture()
def root(tmp_path, monkeypatch):
    monkeypatch.setenv(w.WEIGHTS_ENV, str(tmp_path / "weights"))
    return tmp_path / "weights"


def test_root_from_env_else_the_repo_default(root, monkeypatch):
    assert w.weights_root() == root
    assert w.model_weights_dir("orb-v2") == root / "orb-v2"
    monkeypatch.setenv(w.WEIGHTS_ENV, "~/somewhere")
    assert not str(w.weights_root()).startswith("~")  # expanded
    monkeypatch.delenv(w.WEIGHTS_ENV)
    assert w.weights_root() == w.REPO_ROOT / "work-cache" / "weights"
    assert (w.REPO_ROOT / "precompute" / "adapters" / "_weights.py").is_file()  # the root is this repository


@pytest.mark.parametrize("bad", ["", ".", "..", "a/b"])
def test_model_id_must_be_one_folder_name(root, bad):
    with pytest.raises(ValueError, match="not a model id"):
        w.model_weights_dir(bad)


def test_url_file_name_and_hf_url_parts():
    url = "https://huggingface.co/facebook/OMAT24/resolve/main/eqV2_31M_omat.pt"
    assert w.url_file_name(url) == "eqV2_31M_omat.pt"
    assert w.url_file_name("https://x.org/a/b.model?download=1") == "b.model"
    assert w.url_file_name("") == ""
    assert w.hf_url_parts(url) == ("facebook/OMAT24", "main", "eqV2_31M_omat.pt")
    assert w.hf_url_parts("https://huggingface.co/o/r/resolve/abc123/sub/f.pt?x=1") == ("o/r", "abc123", "sub/f.pt")
    assert w.hf_url_parts("https://github.com/ACEsuit/mace-mp/releases/download/x/y.model") is None


def test_file_found_by_url_name_then_as_the_only_checkpoint(root):
    folder = root / "orb-v2"
    assert w.find_weights_file("orb-v2", "orb-v2-20241011.ckpt") is None  # no folder at all
    folder.mkdir(parents=True)
    (folder / "README.txt").write_text("notes")  # not a checkpoint suffix: ignored
    (folder / ".hidden.ckpt").write_bytes(b"x")  # hidden: ignored
    assert w.find_weights_file("orb-v2", "orb-v2-20241011.ckpt") is None
    (folder / "renamed.ckpt").write_bytes(b"x")
    assert w.find_weights_file("orb-v2", "orb-v2-20241011.ckpt") == folder / "renamed.ckpt"  # the only one
    assert w.find_weights_file("orb-v2", "orb-v2-20241011.ckpt", suffixes=(".model",)) is None
    (folder / "other.pt").write_bytes(b"y")
    with pytest.raises(w.AmbiguousWeights, match="other.pt, renamed.ckpt") as err:
        w.find_weights_file("orb-v2", "orb-v2-20241011.ckpt")
    assert "--checkpoint" in str(err.value)
    (folder / "orb-v2-20241011.ckpt").write_bytes(b"z")
    assert w.find_weights_file("orb-v2", "orb-v2-20241011.ckpt") == folder / "orb-v2-20241011.ckpt"  # name wins


def test_symlinked_file_counts(root, tmp_path):
    real = tmp_path / "elsewhere.model"
    real.write_bytes(b"x")
    (root / "m").mkdir(parents=True)
    (root / "m" / "2023-12-03-mace-128-L1_epoch-199.model").symlink_to(real)
    assert w.find_weights_file("m", "2023-12-03-mace-128-L1_epoch-199.model").resolve() == real


def test_hf_folder_needs_config_json(root):
    assert w.find_hf_folder("esm2-650m") is None
    (root / "esm2-650m").mkdir(parents=True)
    assert w.find_hf_folder("esm2-650m") is None
    (root / "esm2-650m" / "config.json").write_text("{}")
    assert w.find_hf_folder("esm2-650m") == root / "esm2-650m"


def test_card_local_paths(tmp_path, monkeypatch):
    assert w.card_local_paths("https://x.org/f.model") == []
    assert w.card_local_paths("") == []
    assert w.card_local_paths(str(tmp_path / "f.model")) == [tmp_path / "f.model"]
    rel = "work-cache/trained/m/model.model"  # a model trained here: as given, then under the repository
    monkeypatch.chdir(tmp_path)
    assert w.card_local_paths(rel) == [Path(rel), w.REPO_ROOT / rel]
    monkeypatch.chdir(w.REPO_ROOT)
    assert w.card_local_paths(rel) == [Path(rel)]  # the same file once
    assert w.card_local_paths("pkg://no_such_package_here/x.pt") == []
    pkg = w.card_local_paths("pkg://precompute/adapters/_weights.py")  # an installed package's file
    assert len(pkg) == 1 and pkg[0].is_file()


def test_missing_message_names_place_source_and_flag(root):
    expected = w.model_weights_dir("orb-v2") / "orb-v2-20241011.ckpt"
    url = "https://example.org/forcefields/orb-v2-20241011.ckpt"
    msg = w.missing_message("Orb", "orb-v2", expected, url, looked=["/a/b"], hint="Extra.")
    assert msg.startswith("Orb orb-v2: no local weights.")
    for part in (str(expected), url, "--checkpoint PATH", "--checkpoint orb-v2=PATH", w.WEIGHTS_ENV, "/a/b", "Extra."):
        assert part in msg, (part, msg)
    msg = w.missing_message("", "esm2-650m", root / "esm2-650m", "facebook/esm2", checkpoint="/x", folder=True)
    assert msg.startswith("esm2-650m: --checkpoint /x does not exist or is not a model folder.")
    assert f"in the folder {root / 'esm2-650m'}/" in msg and "facebook/esm2" in msg
    assert issubclass(w.MissingCheckpoint, FileNotFoundError)
