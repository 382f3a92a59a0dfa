"""Energy error of a model that predicts energies, on the held-out split.

Different models (and the dataset's labels) use different reference energies, so a per-element reference is fitted
first: on the train split, least squares of the residual r = E_label - E_model on the element counts c (one
column per element), r ≈ c·w. The reported error is the mean over held-out samples of |r - c·w| / n_atoms, in
eV per atom.
"""

from __future__ import annotations

import numpy as np


def energy_mae_per_atom(
    label_ev: np.ndarray, predicted_ev: np.ndarray, element_counts: np.ndarray, train: np.ndarray
) -> tuple[float, int]:
    """(MAE in eV/atom on ~train, number of held-out samples). element_counts: (N, n_elements)."""
    label_ev, predicted_ev = np.asarray(label_ev, float), np.asarray(predicted_ev, float)
    counts = np.asarray(element_counts, float)
    train = np.asarray(train, bool)
    if not (np.isfinite(label_ev).all() and np.isfinite(predicted_ev).all()):
        bad = int(np.flatnonzero(~(np.isfinite(label_ev) & np.isfinite(predicted_ev)))[0])
        raise ValueError(f"energy of sample {bad} is not finite")
    if train.sum() < counts.shape[1] or (~train).sum() == 0:
        raise ValueError(f"need at least {counts.shape[1]} training and 1 held-out sample(s)")
    resid = label_ev - predicted_ev
    w, *_ = np.linalg.lstsq(counts[train], resid[train], rcond=None)
    n_atoms = counts.sum(1)
    test = ~train
    return float(np.mean(np.abs(resid[test] - counts[test] @ w) / n_atoms[test])), int(test.sum())
