"""Build the `models` and `datasets` release tables from the cards, so nothing is typed by hand.

`models_table(cards)` takes model cards as returned by `precompute.registry.load_cards()` (or load_card);
`datasets_table(cards, n_samples)` takes dataset cards from `precompute.datasets.dataset_card(...)` and the number of
samples analysed per dataset. In- vs out-of-distribution is then derived in the backend from the models'
`training_sets` and the datasets' `in_distribution_for`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

import pandas as pd

from .schema import TABLES


def models_table(cards: Iterable[Mapping] | Mapping[str, Mapping], card_hash: Callable[[Mapping], str] | None = None):
    """One row per card with exactly the `models` columns (extra card fields such as adapter are dropped).

    card_hash: e.g. `precompute.registry.card_hash`, stored in `card_hash` when given.
    """
    if isinstance(cards, Mapping):
        cards = cards.values()
    cols = TABLES["models"].column_names
    rows = []
    for card in cards:
        row = {c: card.get(c) for c in cols if c != "card_hash"}
        row["training_sets"] = list(card.get("training_sets") or [])
        row["card_hash"] = card_hash(card) if card_hash is not None else None
        rows.append(row)
    return pd.DataFrame(rows, columns=cols).sort_values("model_id", kind="stable").reset_index(drop=True)


def datasets_table(cards: Iterable[Mapping], n_samples: Mapping[str, int]) -> pd.DataFrame:
    """One row per dataset card; n_samples[dataset_id] = samples analysed (required for every card)."""
    cols = TABLES["datasets"].column_names
    rows = []
    for card in cards:
        did = card["dataset_id"]
        if did not in n_samples:
            raise ValueError(f"datasets_table: no n_samples for dataset {did!r}")
        row = {c: card.get(c) for c in cols}
        row["n_samples"] = int(n_samples[did])
        row["in_distribution_for"] = list(card.get("in_distribution_for") or [])
        rows.append(row)
    return pd.DataFrame(rows, columns=cols)
