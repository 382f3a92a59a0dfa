"""External oracles: DADApy 0.3.4 (TwoNN; information imbalance with maxk = N-1) and scikit-dimension 0.5.0 TwoNN.

DADApy needs numpy<2, so the oracles run in their own environment (`make env-oracle`) through a subprocess that
exchanges .npz / JSON files. In CI a missing oracle environment is a failure, not a skip.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from precompute.metrics import information_imbalance, twonn_id

from .data import views

ROOT = Path(__file__).resolve().parents[2]
ORACLE_PY = Path(os.environ.get("MATTER_ALIGN_ORACLE_PY", ROOT / ".venv-oracle" / "bin" / "python"))


@pytest.fixture(scope="module")
def oracle(tmp_path_factory):
    if not ORACLE_PY.exists():
        if os.environ.get("CI"):
            pytest.fail(f"oracle environment missing at {ORACLE_PY}: run `make env-oracle`")
        pytest.skip(f"oracle environment missing at {ORACLE_PY}: run `make env-oracle`")
    reps = views(400, seed=11)
    arrays = {f"twonn_{m}": X for m, X in reps.items()}
    rng = np.random.default_rng(5)
    swiss = rng.uniform(1.5 * np.pi, 4.5 * np.pi, 500)
    arrays["twonn_swissroll"] = np.c_[swiss * np.cos(swiss), 10 * rng.uniform(size=500), swiss * np.sin(swiss)]
    for m in ("linear", "tanh", "noisy"):
        arrays[f"gride_{m}"] = reps[m]
    pairs = {"lin_tanh": ("linear", "tanh"), "noisy_unrel": ("noisy", "unrelated"), "part_lin": ("partial", "linear")}
    for key, (a, b) in pairs.items():
        arrays[f"ii_{key}"] = np.hstack([reps[a], reps[b]])
        arrays[f"dims_{key}"] = np.array([reps[a].shape[1]])
    tmp = tmp_path_factory.mktemp("oracle")
    np.savez(tmp / "in.npz", **arrays)
    proc = subprocess.run(
        [
            str(ORACLE_PY),
            str(Path(__file__).parents[1] / "oracles" / "oracle.py"),
            str(tmp / "in.npz"),
            str(tmp / "o.json"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return arrays, json.loads((tmp / "o.json").read_text())


@pytest.mark.parametrize("name", ["linear", "tanh", "noisy", "partial", "unrelated", "swissroll"])
@pytest.mark.parametrize("library", ["dadapy", "skdim"])
def test_twonn_matches_oracles(oracle, name, library):
    arrays, result = oracle
    ours = twonn_id(arrays[f"twonn_{name}"])
    assert abs(ours - result[f"twonn_{name}:{library}"]) < 1e-8 * max(1.0, ours)


def test_twonn_on_a_known_manifold(oracle):
    arrays, _ = oracle
    assert 1.7 < twonn_id(arrays["twonn_swissroll"]) < 2.3  # a 2-D sheet in 3-D


@pytest.mark.parametrize("key", ["lin_tanh", "noisy_unrel", "part_lin"])
@pytest.mark.parametrize("k", [1, 5, 10])
def test_information_imbalance_matches_dadapy_full_rank(oracle, key, k):
    arrays, result = oracle
    X, da = arrays[f"ii_{key}"], int(arrays[f"dims_{key}"][0])
    A, B = X[:, :da], X[:, da:]
    assert abs(information_imbalance(A, B, k) - result[f"ii_{key}:k{k}:ab"]) < 1e-12
    assert abs(information_imbalance(B, A, k) - result[f"ii_{key}:k{k}:ba"]) < 1e-12


@pytest.mark.parametrize("name", ["linear", "tanh", "noisy"])
@pytest.mark.parametrize("n1", [1, 2, 4, 8, 16])
def test_gride_matches_dadapy(oracle, name, n1):
    from precompute.metrics.gride import gride_id

    arrays, result = oracle
    ours = gride_id(arrays[f"gride_{name}"], n1)
    # DADApy bisects to 1e-7 and may drop extreme ratios (none in these smooth sets)
    assert abs(ours - result[f"gride_{name}:n1={n1}"]) < 1e-6 * max(1.0, ours)
