"""`matter-align release`: one or more analysed datasets -> a versioned, checksummed release.

    matter-align release --analyses work-cache/analysis/qm9_n1000_seed0 [more ...] [--out data/releases]

The models and datasets tables come from the cards; nothing is typed by hand. An existing release is never
overwritten, and data/releases/latest is updated only after the new release is in place.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

HELP = "write a release (Parquet tables + manifest.json) from analysed datasets"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--analyses", nargs="+", required=True, help="analysis work folders (one per dataset)")
    p.add_argument("--out", default="data/releases", help="releases root")
    p.add_argument("--release-id", default=None, help="explicit release id (default: date + content hash)")
    p.add_argument("--no-latest", action="store_true", help="do not point data/releases/latest at this release")
    p.add_argument("--note", default=None, help="free text stored in the manifest")


def build_tables(analyses: list[Path]) -> tuple[dict, dict]:
    import pandas as pd

    from precompute.datasets import dataset_card
    from precompute.registry import card_hash, load_card
    from precompute.release.tables import datasets_table, models_table

    parts: dict[str, list] = {}
    models, dataset_cards, n_samples, inputs, settings = {}, [], {}, [], {}
    for a in analyses:
        meta = json.loads((a / "analysis.json").read_text())
        ds = meta["dataset_key"]["dataset_id"]
        if ds in n_samples:
            raise ValueError(f"dataset {ds!r} appears in two analyses; a release holds one analysis per dataset")
        n_samples[ds] = meta["n"]
        dataset_cards.append(dataset_card(ds))
        for m in meta["models"]:
            models[m] = load_card(m)
        inputs.extend(meta["inputs"])
        recipe = {**meta["dataset_key"], "limit": meta.get("limit")}
        inputs.append({"name": f"dataset:{ds}", "recipe": json.dumps(recipe, sort_keys=True)})
        settings[ds] = meta["settings"]
        if meta["dataset_key"].get("options"):  # loader keywords the samples were loaded with (e.g. a length filter)
            settings[ds] = {**settings[ds], "dataset_options": meta["dataset_key"]["options"]}
        if meta.get("energy"):  # which label the energy MAE is against, and its split
            settings[ds] = {**settings[ds], "energy": meta["energy"]}
        for f in sorted((a / "tables").glob("*.parquet")):
            df = pd.read_parquet(f)
            if len(df):
                parts.setdefault(f.stem, []).append(df)
    tables = {name: pd.concat(dfs, ignore_index=True) for name, dfs in parts.items()}
    tables["models"] = models_table(models, card_hash=card_hash)
    tables["datasets"] = datasets_table(dataset_cards, n_samples)
    for name in ("energy", "trees", "intrinsic_dim", "pairwise"):
        if name not in tables:
            from precompute.release.schema import TABLES

            tables[name] = pd.DataFrame(columns=TABLES[name].column_names)
    return tables, {"inputs": inputs, "settings": settings}


def run(args: argparse.Namespace) -> int:
    from precompute.release import write_release

    tables, extra = build_tables([Path(a) for a in args.analyses])
    if args.note:
        extra["notes"] = args.note
    path = write_release(tables, extra, Path(args.out), args.release_id, update_latest=not args.no_latest)
    print(f"release written: {path}")
    return 0
