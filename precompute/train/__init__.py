"""Models trained here (source: trained_here cards): small MACE models fitted to QM9 energies with mace-torch.

`python -m precompute.train.mace_qm9 --n-train N --channels C --seed S --out work-cache/trained/<name>` trains one
(run it in .venv-mlip); `bash precompute/train/train_family.sh` trains the whole grid of the default release.
See docs/TRAINING.md.
"""
