"""bench/calibration_cost.py at a tiny size (N = 240: every default k fits a half subsample): both runs on the same data, the calibrated one with a CI on every
pairwise row and a null per row, the uncalibrated one with neither; the torch path (the GPU variant) on the CPU."""

from __future__ import annotations

import pytest

from bench.calibration_cost import main

TINY = [
    "--n",
    "240",
    "--models",
    "3",
    "--min-width",
    "8",
    "--max-width",
    "32",
    "--permutations",
    "4",
    "--resamples",
    "5",
]


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_calibration_cost_runs_both_analyses_on_the_same_data(backend, capsys):
    runs = main([*TINY, "--backend", backend])
    u, c = runs["uncalibrated"], runs["calibrated"]
    assert u["rows"] == c["rows"] > 0
    assert u["with_ci"] == 0 and u["nulls"] == 0
    assert c["with_ci"] == c["rows"] and c["nulls"] == c["rows"]
    assert c["tasks"].count == u["tasks"].count  # the same tasks, timed one by one
    assert c["cpu"] > 0 and c["peak_mb"] > 0
    out = capsys.readouterr().out
    assert "calibrated / uncalibrated: wall time" in out and f"backend {backend} on cpu" in out


def test_gpu_variant_refuses_without_cuda():
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    with pytest.raises(SystemExit, match="no CUDA device"):
        main([*TINY, "--device", "cuda"])
