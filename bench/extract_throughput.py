"""Extraction throughput: samples per second, batched against one by one, for models of the offline zoo.

    .venv/bin/python bench/extract_throughput.py [--n 200] [--batch-size 64] [--threads 1] [--device cpu]
        [--models ani1x,rxnfp-bert-pretrained,chgnet-0.3.0]

Any registry model of the main environment can be named (its card is loaded from the registry); the default set is
a structure model (ANI-1x), a SMILES transformer (rxnfp BERT) and a graph model whose input preparation is per
structure (CHGNet 0.3.0).

Input: the first n molecules of the seeded QM9 subsample (seed 0; molecules outside H, C, N, O are recorded as ANI
failures and counted as processed). Each model is warmed up on 8 molecules first. "one by one" calls
`adapter.embed([sample])` per molecule; "batched" calls `adapter.embed(samples, batch_size)` once. Both include all
of the adapter's per-call work (input checks, graph building, padding). For CHGNet the time spent in its graph
converter (pymatgen neighbour list + C graph code, per structure, not batchable) is reported separately, since it
bounds the speed-up that batching the network can give. Prints one line per model and a JSON summary; target:
batched >= 5x faster. Results: docs/bench/extract_throughput_cpu.txt.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
import warnings


def timed(fn, repeats: int = 1) -> float:
    """Best wall time of `repeats` runs (the machine is shared; the best run is the least disturbed)."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=200)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch intra-op threads (docs/bench/extract_throughput_cpu.txt reports 1 and 2 on the 2-core CPU)",
    )
    p.add_argument("--device", default="cpu")
    p.add_argument("--graph-workers", type=int, default=0, help="CHGNet graph conversion processes (0: in-process)")
    p.add_argument("--models", default="ani1x,rxnfp-bert-pretrained,chgnet-0.3.0", help="comma-separated model ids")
    p.add_argument("--input", default=None, help="extended XYZ of molecules to use instead of QM9 (e.g. on a GPU box)")
    p.add_argument("--repeats", type=int, default=3, help="best of this many runs per mode")
    args = p.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")
    from precompute.adapters import build_adapter
    from precompute.adapters._testdata import qm9_molecules, read_extxyz
    from precompute.registry import load_card

    samples = read_extxyz(args.input)[: args.n] if args.input else qm9_molecules(args.n, seed=0)
    results = {}
    wanted = [m.strip() for m in args.models.split(",") if m.strip()]
    for model_id in wanted:
        card = load_card(model_id)
        if model_id.startswith("chgnet"):
            card = {**card, "options": {**(card.get("options") or {}), "graph_workers": args.graph_workers}}
        ad = build_adapter(card, device=args.device)
        ad.embed(samples[:8], batch_size=8)  # warm-up
        for s in samples[:8]:
            ad.embed([s], batch_size=1)
        t_one = timed(lambda ad=ad: [ad.embed([s], batch_size=1) for s in samples], args.repeats)
        t_bat = timed(lambda ad=ad: ad.embed(samples, batch_size=args.batch_size), args.repeats)
        res = ad.embed(samples, batch_size=args.batch_size)
        row = {
            "n": len(samples),
            "n_ok": len(res.ids),
            "n_failed": len(res.failures),
            "one_by_one_s": round(t_one, 3),
            "batched_s": round(t_bat, 3),
            "one_by_one_per_s": round(len(samples) / t_one, 1),
            "batched_per_s": round(len(samples) / t_bat, 1),
            "speedup": round(t_one / t_bat, 2),
        }
        if model_id.startswith("chgnet"):
            row["graph_conversion_s"] = round(timed(lambda ad=ad: [ad.graph(s) for s in samples], args.repeats), 3)
        results[model_id] = row
        extra = f", graph conversion alone {row['graph_conversion_s']} s" if "graph_conversion_s" in row else ""
        print(
            f"{model_id:22s} n={row['n']} one-by-one {row['one_by_one_per_s']:8.1f}/s  batched(bs={args.batch_size}) "
            f"{row['batched_per_s']:8.1f}/s  speedup {row['speedup']:.2f}x{extra}"
        )
    summary = {
        "device": args.device,
        "threads": args.threads,
        "batch_size": args.batch_size,
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "results": results,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
