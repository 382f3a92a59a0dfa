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


# Labels that are a reference energy of the whole structure (never a model's own prediction, such as the CHGNet
# energies recorded on the generated crystals), in order of preference, and their conversion to eV.
REFERENCE_LABELS = ("energy", "energy_U0")


def _to_ev(unit: str) -> float:
    """Factor from a label's unit to eV (hartree: ase.units.Hartree, the conversion the adapters use too)."""
    if unit == "eV":
        return 1.0
    if unit == "hartree":
        from ase.units import Hartree

        return float(Hartree)
    raise ValueError(f"energy label in unknown unit {unit!r} (known: eV, hartree)")


def reference_energies_ev(samples: list) -> tuple[np.ndarray, str] | None:
    """(label energies in eV, label name) of the first label in REFERENCE_LABELS that every sample carries, or None
    when the dataset has no reference energies."""
    for name in REFERENCE_LABELS:
        if samples and all(name in (s.labels or {}) for s in samples):
            vals = []
            for s in samples:
                lab = s.labels[name]
                vals.append(float(lab.value) * _to_ev(lab.unit))
            return np.asarray(vals, dtype=float), name
    return None


def train_split(n: int, train_fraction: float, seed: int) -> np.ndarray:
    """Boolean mask of the train split: a seeded permutation's first round(train_fraction * n) positions."""
    if not 0.0 < train_fraction < 1.0:
        raise ValueError(f"energy_train_fraction must be in (0, 1), got {train_fraction}")
    mask = np.zeros(n, dtype=bool)
    mask[np.random.default_rng(seed).permutation(n)[: int(round(train_fraction * n))]] = True
    return mask


def element_counts(samples: list) -> tuple[np.ndarray, list[int]]:
    """(N, n_elements) atom counts per element, and the atomic numbers of the columns (sorted)."""
    zs = sorted({int(z) for s in samples for z in s.atoms.numbers})
    col = {z: j for j, z in enumerate(zs)}
    counts = np.zeros((len(samples), len(zs)))
    for i, s in enumerate(samples):
        for z in s.atoms.numbers:
            counts[i, col[int(z)]] += 1
    return counts, zs


def energy_table(
    dataset_id: str,
    samples: list,
    predictions: dict[str, tuple[list[str], np.ndarray]],
    *,
    train_fraction: float,
    seed: int,
) -> tuple[list[dict], dict | None]:
    """Rows (dataset_id, model_id, mae_per_atom, n_test) for every model with predicted energies, on `samples` (the
    analysed samples, in analysis order), and a description of the label and split (None: no reference labels).

    predictions: model -> (ids, predicted total energies in eV); every analysed sample must have one.
    """
    ref = reference_energies_ev(samples)
    if ref is None or not predictions:
        return [], None
    label_ev, label_name = ref
    counts, zs = element_counts(samples)
    train = train_split(len(samples), train_fraction, seed)
    rows = []
    for model, (ids, energies) in predictions.items():
        pos = {s: i for i, s in enumerate(ids)}
        missing = [s.sample_id for s in samples if s.sample_id not in pos]
        if missing:
            raise ValueError(f"{model}: no predicted energy for sample {missing[0]} ({len(missing)} missing)")
        pred = np.asarray(energies, dtype=float)[[pos[s.sample_id] for s in samples]]
        mae, n_test = energy_mae_per_atom(label_ev, pred, counts, train)
        rows.append({"dataset_id": dataset_id, "model_id": model, "mae_per_atom": mae, "n_test": n_test})
    info = {"label": label_name, "unit": "eV", "train_fraction": train_fraction, "seed": seed,
            "n_train": int(train.sum()), "elements": zs,
            "method": "per-element reference energies fitted by least squares on the train split, "
                      "MAE per atom on the rest"}  # fmt: skip
    return rows, info
