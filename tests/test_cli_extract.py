"""`matter-align extract` and the worker, end to end in subprocesses, on real QM9 molecules.

The test adapter (tests/_helpers_extract.py) is pointed to by an inline card file; it counts its calls in a file so
that resumption can be checked, and can die like a killed process after its first chunk.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from precompute import cli, cli_extract
from precompute.extract.store import DatasetKey, EmbeddingStore
from tests._helpers_extract import fake_embedding, make_card, read_counter

REPO = Path(__file__).resolve().parent.parent
HEAVY = ("torch", "transformers", "chgnet", "torchani", "sevenn", "rdkit", "ase", "precompute.adapters")

pytest.importorskip("qm9pack")


def _card(tmp_path: Path, name: str = "test-counting", **options) -> str:
    path = tmp_path / f"{name}.json"
    card = make_card(name, **options)
    path.write_text(json.dumps(card))
    return str(path)


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MATTER_ALIGN_TEST_", "MATTER_ALIGN_PY_"))}
    env.update({"MATTER_ALIGN_PY_ZOO": sys.executable, "MATTER_ALIGN_TEST_COUNTER": str(tmp_path / "calls.jsonl")})
    env.update(extra)
    return env


def _extract(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "precompute.cli", "extract", "--dataset", "qm9", "--seed", "0", "--device", "cpu"]
    cmd += ["--store", str(tmp_path / "store"), "--progress", "lines", *args]
    return subprocess.run(cmd, cwd=REPO, env=env or _env(tmp_path), capture_output=True, text=True, timeout=120)


def _qm9_ids(n: int) -> list[str]:
    from precompute.datasets import load_dataset

    return [s.sample_id for s in load_dataset("qm9", n=n, seed=0)]


# ---------------------------------------------------------------------------------------------------------------------

_NO_HEAVY = """
import json, sys
from precompute import cli
rc = cli.main(sys.argv[1:])
heavy = sorted(m for m in sys.modules if m.split(".")[0] in {HEAVY} or m.startswith("precompute.adapters"))
print("HEAVY=" + json.dumps(heavy))
sys.exit(rc)
"""


def test_end_to_end_real_qm9_with_morgan_fingerprints_and_no_model_import(tmp_path):
    """A real model (the registry's RDKit Morgan fingerprint card) on 20 real QM9 molecules, next to the test adapter;
    the orchestrator imports no model library."""
    from precompute.registry import card_hash, load_card

    card = load_card("morgan-fp")
    radius, n_bits = card["options"]["radius"], card["options"]["n_bits"]
    counting = _card(tmp_path, fail_every=7)
    store = tmp_path / "store"
    script = _NO_HEAVY.replace("{HEAVY}", repr(set(HEAVY)))
    cmd = [sys.executable, "-c", script, "extract", "--dataset", "qm9", "--n", "20", "--seed", "0", "--device", "cpu",
           "--models", f"morgan-fp,{counting}", "--store", str(store), "--progress", "bar"]  # fmt: skip
    r = subprocess.run(cmd, cwd=REPO, env=_env(tmp_path), capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    heavy = json.loads(r.stdout.split("HEAVY=")[1].splitlines()[0])
    assert heavy == [], f"the orchestrator imported {heavy}"
    assert "2 done, 0 skipped, 0 failed" in r.stdout

    key = DatasetKey("qm9", 20, 0)
    emb = EmbeddingStore(store).read(key, "morgan-fp")
    from precompute.datasets import load_dataset

    samples = load_dataset("qm9", n=20, seed=0)
    assert emb.ids == [s.sample_id for s in samples] and emb.embeddings.shape == (20, n_bits)
    from rdkit import Chem
    from rdkit.Chem import rdFingerprintGenerator

    gen = rdFingerprintGenerator.GetMorganGenerator(radius=radius, fpSize=n_bits)
    expected = np.stack([gen.GetFingerprintAsNumPy(Chem.MolFromSmiles(s.smiles)) for s in samples]).astype(np.float32)
    np.testing.assert_array_equal(emb.embeddings, expected)
    m = emb.meta
    assert m["device"] == "cpu" and m["code_version"] and m["card_hash"] and m["timing"]["seconds"] >= 0
    assert m["python"] == sys.executable and m["card_hash"] == card_hash(card)

    # the test adapter recorded its failures with reasons, never dropping them
    c = EmbeddingStore(store).read(key, "test-counting")
    assert len(c.ids) + len(c.failures) == 20 and c.failures
    assert all("divisible by 7" in reason for reason in c.failures.values())

    # second run: both complete in the store -> skipped, through the console script
    script_path = Path(sys.executable).parent / "matter-align"
    base = [str(script_path)] if script_path.exists() else [sys.executable, "-m", "precompute.cli"]
    calls_before = len(read_counter(tmp_path / "calls.jsonl"))
    r2 = subprocess.run([*base, *cmd[3:]], cwd=REPO, env=_env(tmp_path), capture_output=True, text=True, timeout=120)
    assert r2.returncode == 0, r2.stdout + r2.stderr
    assert "0 done, 2 skipped, 0 failed" in r2.stdout
    assert len(read_counter(tmp_path / "calls.jsonl")) == calls_before


def test_killed_worker_resumes_without_recomputing_finished_chunks(tmp_path):
    card = _card(tmp_path)
    args = ("--n", "30", "--models", card, "--chunk-size", "8")
    r = _extract(tmp_path, *args, env=_env(tmp_path, MATTER_ALIGN_TEST_DIE_ON_CALL="2"))
    assert r.returncode == 1, r.stdout + r.stderr
    assert "failed" in r.stdout and "worker exited with status 137" in r.stdout
    key = DatasetKey("qm9", 30, 0)
    st = EmbeddingStore(tmp_path / "store")
    parts = st.parts_dir(key, "test-counting")
    assert sorted(p.name for p in parts.glob("chunk-*")) == ["chunk-000000.npz"]
    assert st.status(key, "test-counting").state == "missing"
    first = read_counter(tmp_path / "calls.jsonl")
    assert len(first) == 1 and len(first[0]) == 8

    r = _extract(tmp_path, *args)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "1 done" in r.stdout
    calls = read_counter(tmp_path / "calls.jsonl")
    ids = _qm9_ids(30)
    assert [len(c) for c in calls] == [8, 8, 8, 6]
    assert [s for c in calls for s in c] == ids  # every sample embedded exactly once, chunk 0 not recomputed
    emb = st.read(key, "test-counting")
    assert emb.ids == ids and not parts.exists()
    np.testing.assert_array_equal(emb.embeddings, np.stack([fake_embedding(s, 8) for s in ids]))
    assert emb.meta["timing"]["resumed"] is True


def test_sigkill_after_first_chunk_then_resume_through_the_worker(tmp_path):
    """A real SIGKILL (no cleanup at all) while chunk 1 is being computed; stdout carries JSON lines only."""
    card = _card(tmp_path, sleep=0.4, noisy=True)
    cmd = [sys.executable, "-m", "precompute.extract.worker", "--dataset", "qm9", "--n", "12", "--seed", "0",
           "--card", card, "--device", "cpu", "--store", str(tmp_path / "store"), "--chunk-size", "4"]  # fmt: skip
    proc = subprocess.Popen(
        cmd, cwd=REPO, env=_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    events = []
    for line in proc.stdout:
        events.append(json.loads(line))
        if events[-1]["event"] == "chunk":
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(timeout=30)
    proc.stdout.close()
    proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    assert [e["event"] for e in events] == ["stage", "stage", "start", "chunk"]
    assert events[2]["n_total"] == 12 and events[2]["chunks_total"] == 3 and events[3]["n_done"] == 4

    r = subprocess.run(cmd, cwd=REPO, env=_env(tmp_path), capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    events = [json.loads(line) for line in r.stdout.splitlines()]  # the adapter's prints went to stderr
    assert "noise on stdout" in r.stderr
    start = next(e for e in events if e["event"] == "start")
    assert start["chunks_done"] >= 1 and start["n_done"] >= 4
    assert events[-1]["event"] == "done" and events[-1]["n_ok"] == 12 and not events[-1]["skipped"]
    flat = [s for c in read_counter(tmp_path / "calls.jsonl") for s in c]
    ids = _qm9_ids(12)
    assert flat[:4] == ids[:4] and ids[:4] == sorted(set(flat[:4]), key=ids.index)
    assert flat.count(ids[0]) == 1  # chunk 0 was not recomputed
    # third run: already complete
    r = subprocess.run(cmd, cwd=REPO, env=_env(tmp_path), capture_output=True, text=True, timeout=60)
    assert json.loads(r.stdout.splitlines()[-1])["skipped"] is True


def test_failing_models_do_not_stop_the_others(tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({**make_card("broken"), "adapter": "tests._helpers_extract:NoSuchAdapter"}))
    missing_env = tmp_path / "needs-sevenn.json"
    missing_env.write_text(json.dumps({**make_card("needs-sevenn"), "environment": "sevenn"}))
    unknown_env = tmp_path / "odd-env.json"
    unknown_env.write_text(json.dumps({**make_card("odd-env"), "environment": "nowhere"}))
    good = _card(tmp_path)
    models = ",".join([str(broken), str(missing_env), "no-such-model-id", str(unknown_env), good])
    env = _env(tmp_path, MATTER_ALIGN_PY_SEVENN=str(tmp_path / "no-venv" / "bin" / "python"))
    r = _extract(tmp_path, "--n", "10", "--models", models, env=env)
    assert r.returncode == 1
    out = r.stdout
    assert "1 done, 0 skipped, 4 failed" in out
    lines = {ln.split()[1]: ln for ln in out.splitlines() if ln.startswith("  ") and len(ln.split()) > 1}
    assert lines["test-counting"].split()[0] == "done"
    assert "NoSuchAdapter" in out and "log:" in lines["broken"]
    assert "environment 'sevenn' is missing" in lines["needs-sevenn"]
    assert "create it with: bash precompute/envs/create_sevenn.sh" in lines["needs-sevenn"]
    assert "unknown environment 'nowhere'" in lines["odd-env"]
    assert "model card" in lines["no-such-model-id"]


def test_stale_keys_and_changed_cards_are_recomputed(tmp_path):
    card = _card(tmp_path)
    assert _extract(tmp_path, "--n", "10", "--models", card).returncode == 0
    assert _extract(tmp_path, "--n", "12", "--models", card).returncode == 0  # different n: new entry
    assert [len(c) for c in read_counter(tmp_path / "calls.jsonl")] == [10, 12]
    r = _extract(tmp_path, "--n", "10", "--models", card)
    assert "1 skipped" in r.stdout and len(read_counter(tmp_path / "calls.jsonl")) == 2
    st = EmbeddingStore(tmp_path / "store")
    assert {k.slug for k, _, _ in st.entries()} == {"qm9_n10_seed0", "qm9_n12_seed0"}

    card = _card(tmp_path, dim=5)  # same model id, changed card -> stale -> recomputed
    r = _extract(tmp_path, "--n", "10", "--models", card)
    assert "1 done" in r.stdout and st.read(DatasetKey("qm9", 10, 0), "test-counting").embeddings.shape == (10, 5)

    # a corrupted file is recomputed, not served
    path = st.npz_path(DatasetKey("qm9", 10, 0), "test-counting")
    with np.load(path, allow_pickle=False) as z:
        ids, emb = z["ids"], z["embeddings"] + 1
    np.savez(path, ids=ids, embeddings=emb)
    r = _extract(tmp_path, "--n", "10", "--models", card)
    assert "1 done" in r.stdout, r.stdout
    st.read(DatasetKey("qm9", 10, 0), "test-counting")  # verifies


def test_worker_records_dropped_and_raising_samples(tmp_path):
    card = _card(tmp_path, drop_every=5, raise_every=7)
    r = _extract(tmp_path, "--n", "30", "--models", card, "--chunk-size", "10")
    assert r.returncode == 0, r.stdout + r.stderr
    emb = EmbeddingStore(tmp_path / "store").read(DatasetKey("qm9", 30, 0), "test-counting")
    ids = _qm9_ids(30)
    num = {s: int(s.split(":")[1]) for s in ids}
    assert set(emb.ids) | set(emb.failures) == set(ids)
    for s in ids:
        if num[s] % 7 == 0:
            assert emb.failures[s].startswith("ValueError: test adapter raises")
        elif num[s] % 5 == 0:
            assert "no embedding and no reason" in emb.failures[s]
        else:
            assert s in emb.ids


def test_cli_registry_and_helpers(tmp_path, monkeypatch, capsys):
    assert "extract" in cli.subcommand_modules()
    with pytest.raises(SystemExit) as e:
        cli.main(["--help"])
    assert e.value.code == 0 and "extract" in capsys.readouterr().out
    assert cli.main([]) == 2
    monkeypatch.setenv("MATTER_ALIGN_PY_FAIRCHEM1", "/opt/fc1/bin/python")
    assert cli_extract.env_python("fairchem1") == Path("/opt/fc1/bin/python")
    monkeypatch.delenv("MATTER_ALIGN_PY_ZOO", raising=False)
    assert cli_extract.env_python("zoo") == REPO / ".venv" / "bin" / "python"
    assert cli_extract.create_command("zoo") == "make env"
    assert cli_extract._checkpoints(["a.pt"], ["m1"]) == {"m1": "a.pt"}
    assert cli_extract._checkpoints(["m2=b.pt"], ["m1", "m2"]) == {"m2": "b.pt"}
    with pytest.raises(SystemExit):
        cli_extract._checkpoints(["b.pt"], ["m1", "m2"])


def test_dry_run_and_summary_json(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MATTER_ALIGN_PY_ZOO", sys.executable)
    monkeypatch.setenv("MATTER_ALIGN_PY_SEVENN", str(tmp_path / "absent" / "python"))
    needs = tmp_path / "needs-sevenn.json"
    needs.write_text(json.dumps({**make_card("needs-sevenn"), "environment": "sevenn"}))
    summary = tmp_path / "summary.json"
    argv = ["extract", "--dataset", "qm9", "--n", "5", "--models", f"{_card(tmp_path)},{needs}", "--dry-run",
            "--store", str(tmp_path / "store"), "--summary-json", str(summary), "--progress", "none"]  # fmt: skip
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "2 to run (dry run)" in out and "MISSING, create it with: bash precompute/envs/create_sevenn.sh" in out
    s = json.loads(summary.read_text())
    assert s["dataset_key"]["slug"] == "qm9_n5_seed0"
    assert [m["status"] for m in s["models"]] == ["planned", "planned"]
    assert not (tmp_path / "store").exists()  # nothing ran


def test_worker_stores_predicted_energies_and_refuses_non_finite_ones(tmp_path):
    """A model's predicted energies travel with its embeddings; a non-finite energy makes that sample a failure
    (never a silent NaN), also when the chunk is retried one sample at a time."""
    card = _card(tmp_path, energy=True, nan_energy_every=4, raise_every=9)
    r = _extract(tmp_path, "--n", "30", "--models", card, "--chunk-size", "10")
    assert r.returncode == 0, r.stdout + r.stderr
    emb = EmbeddingStore(tmp_path / "store").read(DatasetKey("qm9", 30, 0), "test-counting")
    num = {s: int(s.split(":")[1]) for s in _qm9_ids(30)}
    assert emb.energies is not None and emb.energies.dtype == np.float64
    np.testing.assert_array_equal(emb.energies, [-1.5 * num[s] for s in emb.ids])
    for s, k in num.items():
        if k % 9 == 0:
            assert emb.failures[s].startswith("ValueError: test adapter raises")
        elif k % 4 == 0:
            assert emb.failures[s] == "non-finite predicted energy (NaN or inf)"
        else:
            assert s in emb.ids
    assert emb.meta["energies"]["unit"] == "eV"
    plain = _card(tmp_path, "no-energy")
    assert _extract(tmp_path, "--n", "30", "--models", plain).returncode == 0
    assert EmbeddingStore(tmp_path / "store").read(DatasetKey("qm9", 30, 0), "no-energy").energies is None


def test_replacing_local_weights_makes_the_entry_stale(tmp_path):
    """A trained-here card names a local file: changing that file (or the weights folder) recomputes the entry."""
    weights = tmp_path / "model.bin"
    weights.write_bytes(b"first")
    card = tmp_path / "local-weights.json"
    card.write_text(json.dumps({**make_card("local-weights"), "checkpoint": str(weights)}))
    assert _extract(tmp_path, "--n", "20", "--models", str(card)).returncode == 0
    calls = len(read_counter(tmp_path / "calls.jsonl"))
    assert _extract(tmp_path, "--n", "20", "--models", str(card)).returncode == 0
    assert len(read_counter(tmp_path / "calls.jsonl")) == calls  # unchanged weights: nothing recomputed
    weights.write_bytes(b"second")
    r = _extract(tmp_path, "--n", "20", "--models", str(card))
    assert r.returncode == 0, r.stderr
    assert len(read_counter(tmp_path / "calls.jsonl")) > calls
    meta = EmbeddingStore(tmp_path / "store").read(DatasetKey("qm9", 20, 0), "local-weights").meta
    from precompute.extract.store import path_fingerprint

    assert meta["checkpoint_fingerprint"] == path_fingerprint(weights)
    folder = tmp_path / "w" / "local-weights"
    folder.mkdir(parents=True)
    (folder / "model.bin").write_bytes(b"from the weights folder")
    env = _env(tmp_path, MATTER_ALIGN_WEIGHTS=str(tmp_path / "w"))
    assert _extract(tmp_path, "--n", "20", "--models", str(card), env=env).returncode == 0
    meta = EmbeddingStore(tmp_path / "store").read(DatasetKey("qm9", 20, 0), "local-weights").meta
    assert meta["checkpoint_fingerprint"] == path_fingerprint(folder)
