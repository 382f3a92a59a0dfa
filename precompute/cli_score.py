"""`matter-align score`: place your own model's embeddings of a release's samples against every model of it.

    matter-align score --release latest --dataset qm9 --embeddings mine.npy --name "My model" --out scores.csv

Writes one row per (release model, metric, k) with the release's `pairwise` columns plus the permutation null,
prints the nearest release models, and with `--derive DIR` writes a new release that holds the model (the parent
is never touched). Get the samples to embed, in order, with `matter-align samples`.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

HELP = "score your own embeddings of a release's samples against every model of the release"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--release", default="latest", help="release folder, a release id under the releases root, or 'latest'"
    )
    p.add_argument("--dataset", required=True, help="dataset id of the release (e.g. qm9)")
    p.add_argument("--embeddings", required=True, help=".npy, .npz, .parquet or .csv (no pickle); see docs/SCORING.md")
    p.add_argument("--name", required=True, help="your model's name (its id is derived from it)")
    p.add_argument("--out", help="write the score table here (.csv or .parquet)")
    p.add_argument("--permutations", type=int, default=20, help="permutations of your rows for the null (default 20)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--top", type=int, default=10, help="release models listed in the summary")
    p.add_argument("--derive", metavar="DIR", help="also write a new release with your model added into DIR")
    p.add_argument("--modality", default="structure", help="your model's modality, for --derive (default structure)")


def resolve_release(spec: str) -> Path:
    from backend.release import releases_root, resolve_latest

    if spec == "latest":
        return resolve_latest()
    p = Path(spec)
    return p if p.is_dir() else releases_root() / spec


def summary_lines(result, top: int) -> list[str]:
    """The nearest release models by CKNNA(your model -> model) at the largest scored k <= 10."""
    t = result.table
    k = max([k for k in result.ks_knn if k <= 10] or [min(result.ks_knn)])
    ck = t[(t.metric == "cknna") & (t.k == k) & (t.model_a == result.name)].sort_values("value", ascending=False)
    lines = [f"{result.name} on {result.dataset_id} (N = {result.n}): nearest release models by CKNNA at k = {k}"]
    for i, r in enumerate(ck.head(top).itertuples(), 1):
        above = (
            ""
            if r.null_q95 is None or r.null_q95 != r.null_q95
            else ("  above null q95" if r.value > r.null_q95 else "  NOT above null q95")
        )
        p = (
            ""
            if r.p_value is None or r.p_value != r.p_value  # --permutations 0: no null
            else f"  p = {r.p_value:.3g}"
            + (f" (p < 1/{int(r.n_permutations) + 1}: the floor)" if r.p_value <= 1 / (r.n_permutations + 1) else "")
        )
        cal = "" if r.calibrated is None or r.calibrated != r.calibrated else f"  calibrated {r.calibrated:.3f}"
        ci = "" if r.ci_low is None or r.ci_low != r.ci_low else f"  [{r.ci_low:.4f}, {r.ci_high:.4f}]"
        lines.append(f"  {i:2d}. {r.model_b:32s} {r.value:7.4f}{ci}{cal}{p}{above}")  # fmt: skip
    has_ci = t.ci_low.notna()
    with_ci = sorted({int(x) for x in t.loc[has_ci & (t.metric != "info_imbalance"), "k"]})
    ii_ci = sorted({int(x) for x in t.loc[has_ci & (t.metric == "info_imbalance"), "k"]})
    lines.append(f"95% half-sampling intervals (equal to the analysis'): CKNNA and mutual kNN at k = {with_ci}"
                 if with_ci else "no confidence intervals: " + str(ck.note.iloc[0] if len(ck) else "none scored"))  # fmt: skip
    ii = t[(t.metric == "info_imbalance") & t.value.notna()]
    if len(ii):
        lines.append(f"  information imbalance model -> {result.name} at k = {ii_ci}" if ii_ci
                     else f"  information imbalance: {ii.note.iloc[0]}")  # fmt: skip
    lines.append("not computable from a release (need the release models' embeddings): CKA, unbiased CKA, IDCor, "
                 "information imbalance your model -> model; intervals at larger k (the note column says why)")  # fmt: skip
    if result.n_duplicates:
        lines.append(f"note: {result.n_duplicates} of your rows repeat an earlier row; ties go to the lower position, "
                     "as in the analysis")  # fmt: skip
    return lines


def run(args: argparse.Namespace) -> int:
    from backend import Release
    from backend.scoring import SCORING_TABLES, ScoringDataError, ScoringInputError, read_embeddings, score_embeddings
    from precompute.release.derive import derive_release, user_model_id

    try:
        # every file is checked against the manifest; only the scoring tables' rows of this dataset are loaded and
        # value-checked (the whole release is loaded for --derive, which copies every table)
        part = {} if args.derive else {"only": SCORING_TABLES, "dataset": args.dataset}
        release = Release.open(resolve_release(args.release), **part)
        mid = user_model_id(args.name)
        X, ids = read_embeddings(args.embeddings)
        result = score_embeddings(release, args.dataset, X, mid, sample_ids=ids, label=str(args.embeddings),
                                  permutations=args.permutations, seed=args.seed)  # fmt: skip
    except (ScoringInputError, ScoringDataError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print("\n".join(summary_lines(result, args.top)))
    t = result.table
    n_models = t.loc[t.model_a == result.name, "model_b"].dropna().nunique()
    print(f"scored against {n_models} release models in {result.seconds:.2f} s")
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.tmp")
        if out.suffix == ".parquet":
            result.table.to_parquet(tmp, index=False)
        else:
            result.table.to_csv(tmp, index=False)
        tmp.replace(out)  # atomic: never a half-written table
        print(f"table: {out} ({len(result.table)} rows)")
    if args.derive:
        sha = hashlib.sha256(Path(args.embeddings).read_bytes()).hexdigest()
        try:
            folder = derive_release(release, result, Path(args.derive), upload_sha256=sha, modality=args.modality,
                                    display_name=args.name)  # fmt: skip
        except ValueError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        print(f"derived release: {folder} (parent {release.release_id}, untouched)")
    return 0
