"""Typed queries over a release: everything the dashboard shows, as pandas DataFrames.

Rules every function follows:
- Pure function of (release, arguments): no hidden state, so results may be cached on `release.cache_key` + args.
- Parameterised SQL only: user values are bound as parameters, never formatted into SQL; the only identifiers in
  SQL are fixed table names.
- Every name is checked first: an unknown model, dataset, metric, family, modality, training set, source,
  estimator, method or k raises `ValueError` naming it (never an empty result). A known model that has no value on
  the chosen dataset is simply absent (e.g. a protein model on QM9): model filters from the dashboard are sets of
  known ids.
- Model filters: `models=None` means all models; otherwise a list of model ids (e.g. from `list_models(...)`).

Modules, by view (every public name is re-exported here, so `from backend import queries as q; q.matrix(...)`):
- `catalogue`: models, datasets, families, metrics, filter options, release summary, samples
- `matrix`: square matrices, two datasets' difference, family blocks
- `intrinsic`: intrinsic dimension
- `energy`: energy MAE and alignment to the lowest-MAE model
- `ood`: in- vs out-of-distribution pairs and summaries
- `pairs`: information imbalance, CKNNA vs IDCor, permutation nulls, model profile, two-model comparison, a pair
  against k (raw or calibrated)
- `calibration`: raw or calibrated values with the null, p-value ("p < 1/(P+1)" at its floor) and interval;
  ranked partners with ties where intervals overlap; `calibration_note` where a release has no calibration
- `summary`: one row per model (mean alignment with an interval, nearest model with ties, ID, energy MAE)
- `trees`: stored and computed Newick trees
- `export`: CSV bytes and file names
- `_common`: vocabularies, argument checks, `k_values` (needed by the checks)
"""

from __future__ import annotations

from precompute.release.schema import METRICS

from ._common import ORDERS, k_values
from .calibration import (
    CALIBRATION_COLUMNS,
    SCALES,
    calibration_note,
    has_calibration,
    null_vs_width,
    p_value_text,
    ranked_partners,
    width_check,
)
from .catalogue import (
    ReleaseSummary,
    available_metrics,
    dataset_card,
    filter_options,
    list_datasets,
    list_families,
    list_models,
    list_samples,
    metric_definitions,
    model_card,
    model_counts,
    release_summary,
)
from .energy import alignment_vs_mae, energy
from .export import csv_filename, to_csv
from .intrinsic import intrinsic_dim
from .matrix import (
    LINKAGE_METHODS,
    MatrixDifference,
    MatrixResult,
    family_block_matrix,
    matrix,
    matrix_difference,
    matrix_table,
)
from .ood import PAIR_CLASSES, id_ood_pairs, id_ood_summary, id_vs_ood
from .pairs import (
    cknna_vs_idcor,
    compare_models,
    information_imbalance_pairs,
    model_profile,
    pair_vs_k,
    pairwise_null,
)
from .summary import model_summary
from .trees import list_trees, tree, tree_for_models

__all__ = [
    "CALIBRATION_COLUMNS",
    "SCALES",
    "calibration_note",
    "has_calibration",
    "null_vs_width",
    "p_value_text",
    "ranked_partners",
    "LINKAGE_METHODS",
    "METRICS",
    "ORDERS",
    "PAIR_CLASSES",
    "MatrixDifference",
    "MatrixResult",
    "ReleaseSummary",
    "alignment_vs_mae",
    "available_metrics",
    "cknna_vs_idcor",
    "compare_models",
    "csv_filename",
    "dataset_card",
    "energy",
    "family_block_matrix",
    "filter_options",
    "id_ood_pairs",
    "id_ood_summary",
    "id_vs_ood",
    "information_imbalance_pairs",
    "intrinsic_dim",
    "k_values",
    "list_datasets",
    "list_families",
    "list_models",
    "list_samples",
    "list_trees",
    "matrix",
    "matrix_difference",
    "matrix_table",
    "metric_definitions",
    "model_card",
    "model_counts",
    "model_profile",
    "model_summary",
    "pair_vs_k",
    "pairwise_null",
    "release_summary",
    "to_csv",
    "width_check",
    "tree",
    "tree_for_models",
]
