"""Embed the structures of extended-XYZ files with one or more adapters, in whatever environment runs this.

Used to test adapters that live in their own environment (SevenNet in .venv-sevenn) from the main test suite, and
handy for a quick look at any adapter::

    .venv-sevenn/bin/python -m precompute.adapters.embed_file \
        --adapter sevenn:SevenNetAdapter --options '{"model": "7net-0"}' [--options '{"model": "7net-l3i5"}'] \
        --input a.extxyz [--input b.extxyz] --output out.npz [--batch-size 32] [--one-by-one] [--device cpu]

Each frame's `info["sample_id"]` is its id (`info["smiles"]` its SMILES, if any). For option set j and input k the
output `.npz` holds `m{j}_in{k}_ids` (str), `m{j}_in{k}_emb` (n_ok, D) float32, with `--one-by-one` also
`m{j}_in0_single` (each sample of the FIRST input embedded alone), `m{j}_in{k}_failures` (a JSON string), and
`m{j}_in{k}_energies` (eV) when the adapter returns predicted energies. stdout gets one JSON
summary line. A malformed structure exits with status 4 and the error (naming the sample) on stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

EXIT_MALFORMED = 4


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m precompute.adapters.embed_file", description=__doc__.split("\n")[0])
    p.add_argument("--adapter", required=True, help='"module:Class" under precompute.adapters')
    p.add_argument("--options", action="append", default=None, help="card options as JSON (repeatable)")
    p.add_argument("--input", action="append", required=True, help="extended XYZ file (repeatable)")
    p.add_argument("--output", required=True, help=".npz to write")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--one-by-one", action="store_true", help="also embed each sample of the first input alone")
    p.add_argument("--device", default="cpu")
    p.add_argument("--checkpoint", default=None)
    args = p.parse_args(argv)

    from precompute.adapters import build_adapter
    from precompute.adapters._structure import MalformedStructure
    from precompute.adapters._testdata import read_extxyz

    inputs = [read_extxyz(path) for path in args.input]
    out: dict[str, np.ndarray] = {}
    summary: dict[str, object] = {"adapter": args.adapter, "models": []}
    for j, opts_text in enumerate(args.options or ["{}"]):
        card = {"model_id": f"embed_file-{j}", "adapter": args.adapter, "options": json.loads(opts_text)}
        t0 = time.perf_counter()
        adapter = build_adapter(card, device=args.device, checkpoint=args.checkpoint)
        info = {"options": card["options"], "load_s": round(time.perf_counter() - t0, 3), "inputs": []}
        for k, samples in enumerate(inputs):
            key = f"m{j}_in{k}"
            t0 = time.perf_counter()
            try:
                res = adapter.embed(samples, batch_size=args.batch_size)
            except MalformedStructure as exc:
                print(f"MalformedStructure: {exc}", file=sys.stderr)
                return EXIT_MALFORMED
            dt = time.perf_counter() - t0
            out[f"{key}_ids"] = np.asarray(res.ids, dtype=str)
            out[f"{key}_emb"] = res.embeddings
            out[f"{key}_failures"] = np.asarray(json.dumps(res.failures))
            if getattr(res, "energies", None) is not None:
                out[f"{key}_energies"] = np.asarray(res.energies, dtype=np.float64)
            if args.one_by_one and k == 0:
                by_id = {s.sample_id: s for s in samples}
                rows = [adapter.embed([by_id[i]], batch_size=1).embeddings[0] for i in res.ids]
                out[f"{key}_single"] = np.stack(rows) if rows else np.zeros_like(res.embeddings)
            info["inputs"].append(
                {
                    "input": args.input[k],
                    "n": len(samples),
                    "n_ok": len(res.ids),
                    "shape": list(res.embeddings.shape),
                    "seconds": round(dt, 3),
                }  # fmt: skip
            )
        summary["models"].append(info)
    np.savez(args.output, **out)
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
