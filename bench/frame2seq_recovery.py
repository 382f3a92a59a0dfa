"""Sequence recovery of Frame2seq models 1-3 (and their logit-averaged ensemble, as the package's design uses) on the
chains of a PDB folder: the argmax residue of the fully masked model against the native residue.

    .venv/bin/python -m bench.frame2seq_recovery [--path work-cache/pdb/offline] [--n N] [--max-residues L]

Prints, per model, the recovery pooled over all residues and the median over chains; uniform guessing gives 5 %.
The chains are not checked against Frame2seq's CATH 4.2 training set: some may be in it.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--path", default="work-cache/pdb/offline")
    p.add_argument("--n", type=int, default=None, help="first N chains only")
    p.add_argument("--max-residues", type=int, default=None, help="skip longer chains (time, memory)")
    args = p.parse_args(argv)

    import torch

    from precompute.adapters.base import CannotEmbed
    from precompute.adapters.frame2seq import Frame2seqAdapter
    from precompute.datasets import load_dataset

    torch.set_num_threads(1)
    chains = load_dataset("pdb", path=args.path)[: args.n]
    if args.max_residues:
        chains = [s for s in chains if len(s.sequence or "") <= args.max_residues]
    adapters = {i: Frame2seqAdapter({"model_id": f"frame2seq-{i}", "options": {"model": i}}) for i in (1, 2, 3)}
    hits: dict[str, list[np.ndarray]] = {name: [] for name in ("model 1", "model 2", "model 3", "ensemble")}
    failed: dict[str, str] = {}
    t0 = time.perf_counter()
    for s in chains:
        try:
            preds = [adapters[i].predict(s) for i in (1, 2, 3)]
        except CannotEmbed as exc:
            failed[s.sample_id] = str(exc)
            continue
        native = preds[0][1]
        for i, (logits, _) in enumerate(preds, start=1):
            hits[f"model {i}"].append(logits[:, :20].argmax(-1) == native)
        mean = sum(lg for lg, _ in preds) / 3
        hits["ensemble"].append(mean[:, :20].argmax(-1) == native)
    n_res = sum(len(h) for h in hits["ensemble"])
    print(f"{args.path} (max residues {args.max_residues}): {len(hits['ensemble'])} chains, {n_res} residues; {len(failed)} not read "
          f"({time.perf_counter() - t0:.0f} s)")  # fmt: skip
    for name, per_chain in hits.items():
        pooled = float(np.concatenate(per_chain).mean())
        median = float(np.median([h.mean() for h in per_chain]))
        print(f"  {name:9s} recovery pooled {pooled:.1%}, median over chains {median:.1%}")
    for sid, why in failed.items():
        print(f"  not read: {sid}: {why[:160]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
