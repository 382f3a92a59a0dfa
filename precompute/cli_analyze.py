"""`matter-align analyze`: embeddings in the store -> neighbour caches -> every metric -> this dataset's tables.

    matter-align analyze --dataset qm9 --n 1000 --seed 0 [--models a,b,c] [--store ROOT] [--work DIR] [--jobs 2]
        [--cluster local:N | tcp://HOST:PORT | slurm] [--cluster-config FILE]   (docs/CLUSTER.md)

Resumable: rerunning skips every finished task. The tables land in <work>/<dataset key>/tables/*.parquet, ready
for `matter-align release`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HELP = "compute every alignment metric and intrinsic dimension for one dataset's stored embeddings"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", required=True, help="dataset id (qm9, crystals, pdb, ...)")
    p.add_argument("--n", type=int, default=None, help="the subsample size used at extraction (omit for all)")
    p.add_argument("--seed", type=int, default=0, help="the subsampling seed used at extraction")
    p.add_argument("--path", default=None, help="the dataset path used at extraction, if any")
    from precompute.datasets.options import add_option_argument

    add_option_argument(p)  # the same options as at extraction: they are part of the dataset key
    p.add_argument("--models", default=None, help="comma-separated model ids (default: every complete store entry)")
    p.add_argument("--store", default=None, help="embedding store root (default: work-cache/embeddings)")
    p.add_argument("--work", default="work-cache/analysis", help="analysis work root")
    p.add_argument("--limit", type=int, default=None, help="analyse only the first N shared samples (dataset order)")
    p.add_argument("--jobs", type=int, default=1, help="worker processes (local process pool)")
    p.add_argument("--backend", choices=["numpy", "torch"], default="numpy", help="neighbour-search backend")
    p.add_argument("--device", default="cpu", help="torch device for --backend torch (cpu, cuda)")
    p.add_argument("--ks", default=None, help="k values for CKNNA / mutual kNN, e.g. 5,10,25,50,100")
    p.add_argument("--ks-ii", default=None, help="k values for the information imbalance, e.g. 1,5,25")
    p.add_argument("--clip-quantile", default=None, help="kernel clipping quantile, or 'none' (default 0.95)")
    p.add_argument("--idcor-n", type=int, default=None, help="IDCor subsample size (default 2000)")
    from precompute.analyze.settings import AnalysisSettings

    dflt = AnalysisSettings()  # help texts quote the live defaults, so they cannot drift from the code
    p.add_argument("--idcor-permutations", type=int, default=None,
                   help=f"IDCor permutations (default {dflt.idcor_permutations})")  # fmt: skip
    p.add_argument("--null-permutations", type=int, default=None,
                   help=f"permutation nulls of every pairwise metric and k; 0 turns nulls and calibration off "
                   f"(default {dflt.null_permutations})")  # fmt: skip
    p.add_argument("--cka-null", choices=["moments", "permutations"], default=None,
                   help=f"CKA's null: exact permutation moments with fitted quantiles, or --null-permutations "
                   f"permuted cross products (default {dflt.cka_null})")  # fmt: skip
    p.add_argument("--resamples", type=int, default=None,
                   help=f"half-sampling resamples for the confidence intervals (default {dflt.resamples})")  # fmt: skip
    p.add_argument("--bootstrap", type=int, default=None, help=f"TwoNN bootstrap replicates (default {dflt.bootstrap})")
    from precompute.cluster import add_cluster_arguments

    add_cluster_arguments(p)


def settings_from_args(args: argparse.Namespace):
    from precompute.analyze.settings import AnalysisSettings

    d = AnalysisSettings().as_dict()
    if args.ks:
        d["ks_knn"] = [int(x) for x in args.ks.split(",")]
    if args.ks_ii:
        d["ks_ii"] = [int(x) for x in args.ks_ii.split(",")]
    if args.clip_quantile is not None:
        d["clip_quantile"] = None if args.clip_quantile.lower() == "none" else float(args.clip_quantile)
    for name in ("idcor_n", "idcor_permutations", "null_permutations", "cka_null", "resamples", "bootstrap"):
        if getattr(args, name) is not None:
            d[name] = getattr(args, name)
    return AnalysisSettings.from_dict(d)


def analysed_samples(
    dataset: str, ids: list[str], n: int | None, seed: int, path: str | None, options: dict | None = None
) -> list:
    """The dataset's Samples for the analysed ids, in analysis order (loaded with the key's dataset options)."""
    from precompute.datasets import load_dataset

    by_id = {s.sample_id: s for s in load_dataset(dataset, n=n, seed=seed, path=path, **(options or {}))}
    missing = [i for i in ids if i not in by_id]
    if missing:
        raise ValueError(f"{dataset}: sample {missing[0]} is in the embeddings but not in the dataset as loaded now")
    return [by_id[i] for i in ids]


def samples_table(dataset: str, samples: list):
    """The analysed samples in embedding order, with formula, SMILES and atom count where the dataset has them."""
    import pandas as pd

    rows = []
    for pos, s in enumerate(samples):
        sid = s.sample_id
        atoms = s.atoms
        rows.append({"dataset_id": dataset, "position": pos, "sample_id": sid,
                     "formula": atoms.get_chemical_formula() if atoms is not None else None, "smiles": s.smiles,
                     "n_atoms": len(atoms) if atoms is not None else None})  # fmt: skip
    return pd.DataFrame(rows)


def run(args: argparse.Namespace) -> int:
    import pandas as pd

    from precompute.analyze.energy import energy_table
    from precompute.analyze.pipeline import collect_tables, repeated_rows_notes, run_analysis
    from precompute.analyze.tasks import write_json_atomic
    from precompute.cluster import spec_from_args
    from precompute.datasets import DatasetError
    from precompute.datasets.options import parse_dataset_options
    from precompute.extract.store import DatasetKey, EmbeddingStore
    from precompute.release.sample_records import sample_structures_table

    try:
        options = parse_dataset_options(args.dataset, getattr(args, "dataset_options", None))
        key = DatasetKey.build(args.dataset, args.n, args.seed, args.path, options)
    except (FileNotFoundError, DatasetError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    store = EmbeddingStore(args.store)
    folder = store.folder(key)
    if args.models:
        models = [m.strip() for m in args.models.split(",") if m.strip()]
    else:
        models = sorted(p.stem for p in folder.glob("*.npz")) if folder.exists() else []
    if len(models) < 2:
        print(f"error: need at least 2 models with embeddings under {folder}, found {models}", file=sys.stderr)
        return 2
    embeddings, inputs, energies, contents = {}, [], {}, {}
    for m in models:
        try:
            e = store.read(key, m)
        except Exception as exc:  # noqa: BLE001 - report which entry is unusable and stop
            print(f"error: {m}: {exc}", file=sys.stderr)
            return 2
        embeddings[m] = (e.ids, e.embeddings)
        if e.energies is not None:
            energies[m] = (e.ids, e.energies)
        meta = e.meta
        if meta.get("dataset_sha256") is not None:  # the dataset content the entry was computed on
            contents.setdefault(meta["dataset_sha256"], []).append(m)
        inputs.append({"name": f"{key.slug}/{m}", "sha256": meta.get("sha256"), "card_hash": meta.get("card_hash"),
                       "code_version": meta.get("code_version"), "n_embedded": len(e.ids),
                       "n_failed": len(e.failures)})  # fmt: skip
    if len(contents) > 1:
        groups = "; ".join(f"{', '.join(ms)} ({sha[:12]})" for sha, ms in contents.items())
        print(f"error: the models were embedded on different contents of {key.slug} under the same sample ids "
              f"({groups}); re-extract with --force in one consistent environment", file=sys.stderr)  # fmt: skip
        return 2
    work = Path(args.work) / (key.slug + (f"_limit{args.limit}" if args.limit else ""))
    analysis = {
        "jobs": args.jobs,
        "progress": True,
        "backend": args.backend,
        "device": args.device,
        "limit": args.limit,
    }
    try:
        spec = spec_from_args(args)  # None: the local process pool
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if spec is None:
        settings = run_analysis(work, embeddings, settings_from_args(args), **analysis)
    else:  # the tasks run on the cluster's workers, reading and writing the (shared) work folder
        from precompute.cluster import DaskSession

        work = work.resolve()
        with DaskSession(spec) as session:
            try:
                session.check_shared(work.parent)
            except (RuntimeError, OSError) as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 2
            with session.executor() as ex:
                settings = run_analysis(work, embeddings, settings_from_args(args), executor=ex, **analysis)
    tables = collect_tables(work, args.dataset)
    ids = json.loads((work / "features" / "ids.json").read_text())
    samples = analysed_samples(args.dataset, ids, args.n, args.seed, args.path, key.options_dict)
    tables["samples"] = samples_table(args.dataset, samples)
    tables["sample_structures"] = sample_structures_table(args.dataset, samples)
    energy_rows, energy_info = energy_table(args.dataset, samples, energies, seed=settings.seed,
                                            train_fraction=settings.energy_train_fraction)  # fmt: skip
    tables["energy"] = pd.DataFrame(energy_rows, columns=["dataset_id", "model_id", "mae_per_atom", "n_test"])
    tdir = work / "tables"
    tdir.mkdir(parents=True, exist_ok=True)
    for name, df in tables.items():
        df.to_parquet(tdir / f"{name}.parquet", index=False)
    write_json_atomic(work / "analysis.json", {"dataset_key": key.to_dict(), "limit": args.limit, "models": models, "n": len(ids),
                                               "settings": settings.as_dict(), "inputs": inputs,
                                               "energy": energy_info})  # fmt: skip
    counts = tables["pairwise"].groupby("metric").size().to_dict()
    print(f"analysed {len(models)} models on {len(ids)} shared samples of {key.slug}: {counts}")
    for line in repeated_rows_notes(work):
        print(line)
    if energy_info:
        print(f"energy MAE vs {energy_info['label']} for {len(energy_rows)} model(s): "
              + ", ".join(f"{r['model_id']} {1000 * r['mae_per_atom']:.1f} meV/atom" for r in energy_rows))  # fmt: skip
    print(f"tables in {tdir}")
    return 0
