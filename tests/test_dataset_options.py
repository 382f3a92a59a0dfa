"""Dataset options (`--dataset-option KEY=VALUE`): validated against the loader, part of the dataset key, passed to
every loader call of extract and analyze, recorded in the store and the release, and compared on every read.

The end-to-end case runs real chains: the PDB fixtures of tests/data/pdb plus chains cut from 2xdgA to known
lengths, embedded by the cheap test adapter (tests/_helpers_extract.py), filtered to 40-85 residues.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from precompute.datasets import DatasetError, load_dataset
from precompute.datasets.options import option_args, parse_dataset_options
from precompute.extract.store import DatasetKey, EmbeddingStore, StoreError
from tests._helpers_extract import make_card

pytest.importorskip("Bio")

REPO = Path(__file__).resolve().parent.parent
PDB_DIR = REPO / "tests" / "data" / "pdb"
CUT = (30, 45, 50, 55, 60, 65, 70, 75, 80)  # residues kept from the start of 2xdgA (89 residues)
FILTER = ["--dataset-option", "min_length=40", "--dataset-option", "max_length=85"]
SETTINGS = ["--ks", "2,3", "--ks-ii", "1", "--idcor-n", "9", "--idcor-permutations", "3", "--null-permutations", "3",
            "--resamples", "0", "--bootstrap", "10"]  # fmt: skip


def _chains_folder(dst: Path) -> Path:
    """The four fixtures (13, 84, 89, 89 residues) plus 2xdgA cut to each length of CUT, as 9tNNA.pdb."""
    dst.mkdir(parents=True, exist_ok=True)
    for f in PDB_DIR.iterdir():
        shutil.copy(f, dst / f.name)
    lines = gzip.open(PDB_DIR / "2xdgA.pdb.gz", "rt").read().splitlines()
    for k in CUT:
        keep, seen = [], []
        for ln in lines:
            if ln.startswith("ATOM"):
                if ln[22:27] not in seen:
                    seen.append(ln[22:27])
                if len(seen) <= k:
                    keep.append(ln)
        (dst / f"9t{k}A.pdb").write_text("\n".join([*keep, "END"]) + "\n")
    return dst


def _cli(*args: str, ok: bool = True) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MATTER_ALIGN_TEST_", "MATTER_ALIGN_PY_"))}
    env.update({"MATTER_ALIGN_PY_ZOO": sys.executable, "OMP_NUM_THREADS": "1"})
    r = subprocess.run([sys.executable, "-m", "precompute.cli", *args], cwd=REPO, env=env, capture_output=True,
                       text=True, timeout=600)  # fmt: skip
    if ok:
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:]
    return r


# --------------------------------------------------------------------------------------------------------------------


def test_options_change_the_dataset_key_and_no_options_keep_the_old_one():
    plain = DatasetKey.build("pdb", path=str(PDB_DIR))
    opts = parse_dataset_options("pdb", ["max_length=1000", "min_length=40"])
    assert opts == {"max_length": 1000, "min_length": 40} and list(opts) == ["max_length", "min_length"]
    filtered = DatasetKey.build("pdb", path=str(PDB_DIR), options=opts)
    # unfiltered: the slug, identity and metadata are exactly those of keys made before options existed
    assert re.fullmatch(r"pdb_nall_seed0_path-[0-9a-f]{10}", plain.slug)
    assert "options" not in plain.identity() and "options" not in plain.to_dict()
    assert filtered.slug == plain.slug + "_max_length-1000_min_length-40"
    assert filtered.identity() == {**plain.identity(), "options": {"max_length": 1000, "min_length": 40}}
    assert filtered.to_dict()["options"] == {"max_length": 1000, "min_length": 40}
    # order of the flags does not matter; another value is another key; the key survives its metadata round trip
    same = DatasetKey.build("pdb", path=str(PDB_DIR), options=parse_dataset_options("pdb", ["min_length=40",
                                                                                           "max_length=1000"]))  # fmt: skip
    assert same == filtered and same.slug == filtered.slug
    other = DatasetKey.build("pdb", path=str(PDB_DIR), options=parse_dataset_options("pdb", ["min_length=41"]))
    assert other.slug != filtered.slug and other.identity() != filtered.identity()
    assert DatasetKey.from_dict(json.loads(json.dumps(filtered.to_dict()))) == filtered
    # a value that is not file-name safe is hashed into the slug, never written into it
    odd = DatasetKey.build("pdb", path=str(PDB_DIR), options=parse_dataset_options("pdb", ["source=my set/1"]))
    assert re.fullmatch(r"pdb_nall_seed0_path-[0-9a-f]{10}_opts-[0-9a-f]{10}", odd.slug)
    assert parse_dataset_options("pdb", ["max_length=none"]) == {"max_length": None}
    assert parse_dataset_options("pdb", option_args(opts)[1::2]) == opts  # what the workers are given


@pytest.mark.parametrize(
    ("items", "message"),
    [
        (["min_len=40"], "unknown dataset option 'min_len'; options of this loader: max_length, min_length, source"),
        (["n=5"], "unknown dataset option 'n' (n, seed and path have their own flags)"),
        (["pisces=list.txt"], "unknown dataset option 'pisces' (a file, output or collection parameter"),
        (["min_length=forty"], "dataset option min_length='forty' is not a valid int"),
        (["min_length=none"], "dataset option min_length='none': None is not allowed"),
        (["min_length"], "dataset option 'min_length' is not KEY=VALUE"),
        (["min_length=4", "min_length=5"], "dataset option 'min_length' given twice"),
    ],
)
def test_bad_options_are_refused_naming_the_option(items, message):
    with pytest.raises(DatasetError) as e:
        parse_dataset_options("pdb", items)
    assert message in str(e.value)


def test_qm9_has_no_options_and_the_clis_refuse_unknown_ones(tmp_path):
    with pytest.raises(DatasetError, match="unknown dataset option 'min_length'; options of this loader: none"):
        parse_dataset_options("qm9", ["min_length=40"])
    base = ["--dataset", "pdb", "--path", str(PDB_DIR), "--store", str(tmp_path / "store")]
    r = _cli("extract", *base, "--models", "morgan-fp", "--dataset-option", "min_len=40", ok=False)
    assert r.returncode == 2 and "unknown dataset option 'min_len'" in r.stderr, r.stderr
    r = _cli("analyze", *base, "--dataset-option", "max_length=big", ok=False)
    assert r.returncode == 2 and "max_length='big' is not a valid int" in r.stderr, r.stderr
    assert not (tmp_path / "store").exists()


def test_extract_and_analyze_keep_only_the_chains_in_range_and_refuse_other_options(tmp_path, monkeypatch):
    chains = _chains_folder(tmp_path / "pdb")
    lengths = {s.sample_id: s.meta["n_residues"] for s in load_dataset("pdb", path=str(chains))}
    expected = [sid for sid, n in lengths.items() if 40 <= n <= 85]
    assert len(lengths) == 13 and len(expected) == 9  # cut 30, fixtures 13 / 89 / 89 residues are left out
    cards = []
    for name, dim in (("test-a", 8), ("test-b", 16)):
        cards.append(tmp_path / f"{name}.json")
        cards[-1].write_text(json.dumps(make_card(name, dim=dim)))
    store, work = tmp_path / "store", tmp_path / "work"
    base = ["--dataset", "pdb", "--path", str(chains), "--store", str(store)]
    _cli("extract", *base, *FILTER, "--models", ",".join(map(str, cards)), "--device", "cpu", "--progress", "none")
    key = DatasetKey.build("pdb", path=str(chains), options={"min_length": 40, "max_length": 85})
    for m in ("test-a", "test-b"):
        e = EmbeddingStore(store).read(key, m)
        assert e.ids == expected and e.meta["dataset_key"]["options"] == {"max_length": 85, "min_length": 40}
    assert sorted(p.name for p in store.iterdir()) == [key.slug]

    _cli("analyze", *base, *FILTER, "--work", str(work), *SETTINGS)
    folder = work / key.slug
    meta = json.loads((folder / "analysis.json").read_text())
    assert meta["n"] == 9 and meta["dataset_key"]["options"] == {"max_length": 85, "min_length": 40}
    import pandas as pd

    assert pd.read_parquet(folder / "tables" / "samples.parquet")["sample_id"].tolist() == expected
    import precompute.registry as registry
    from precompute.cli_release import build_tables

    real_card = registry.load_card("esm2-8m")  # the test adapters have no registry card; the release needs one
    monkeypatch.setattr(registry, "load_card", lambda m, cards_dir=None: {**real_card, "model_id": m})
    _, extra = build_tables([folder])
    assert extra["settings"]["pdb"]["dataset_options"] == {"max_length": 85, "min_length": 40}
    recipe = json.loads(next(i["recipe"] for i in extra["inputs"] if i["name"] == "dataset:pdb"))
    assert recipe["options"] == {"max_length": 85, "min_length": 40}

    # without the options the key is another folder: nothing is found, nothing is mixed
    r = _cli("analyze", *base, "--work", str(work), *SETTINGS, ok=False)
    assert r.returncode == 2 and "need at least 2 models" in r.stderr, r.stderr
    # an entry made with other options (here: copied under the key of max_length=80) is refused by name
    other = DatasetKey.build("pdb", path=str(chains), options={"min_length": 40, "max_length": 80})
    shutil.copytree(store / key.slug, store / other.slug)
    with pytest.raises(StoreError, match="max_length': 85"):
        EmbeddingStore(store).read(other, "test-a")
    r = _cli("analyze", *base, "--dataset-option", "min_length=40", "--dataset-option", "max_length=80",
             "--work", str(work), *SETTINGS, ok=False)  # fmt: skip
    assert r.returncode == 2 and "test-a" in r.stderr and "'max_length': 85" in r.stderr, r.stderr


def test_the_workers_and_shards_get_the_same_key():
    """The orchestrator hands the options to the worker (and to each cluster shard, which parses the worker's
    arguments): the key the worker rebuilds is the orchestrator's, slug included."""
    import argparse

    from precompute.cli_extract import Job, worker_args
    from precompute.extract.worker import build_parser, dataset_key

    key = DatasetKey.build("pdb", path=str(PDB_DIR), options={"min_length": 40, "max_length": None})
    args = argparse.Namespace(device="cpu", chunk_size=8, batch_size=4, force=False)
    argv = worker_args(Job("esm2-8m", "esm2-8m", None, None), args, key, EmbeddingStore("/tmp/unused-store"))
    assert argv.count("--dataset-option") == 2 and "max_length=none" in argv
    assert dataset_key(build_parser().parse_args(argv)) == key
    shard_parser = build_parser()
    shard_parser.add_argument("--shard", type=int)
    assert dataset_key(shard_parser.parse_args([*argv, "--shard", "0"])).slug == key.slug
