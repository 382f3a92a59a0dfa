"""bench/cka_calibration_cost.py runs at a tiny size and reports both schemes' times for each pair."""

from __future__ import annotations

from bench import cka_calibration_cost


def test_bench_reports_before_and_after_for_each_pair(capsys):
    assert cka_calibration_cost.main(["--n", "300", "--pairs", "16x8,24x12", "--perms", "2", "--subsets", "2"]) == 0
    out = capsys.readouterr().out
    assert out.count("before: permutation null") == 2 and out.count("after:  moment null") == 2
    assert "16 x 8:" in out and "24 x 12:" in out and "speed-up" in out
