"""Score your own model: place any embedding of a release's samples against every model of the release.

`score_embeddings(release, dataset, X, name)` returns one row per (release model, metric, k) with the columns of the
release's `pairwise` table plus the permutation null, computed exactly as the analysis would for one more model
(same preprocessing, same ties rule) from the neighbour lists the release carries. No torch, nothing written.
"""

from .compute import COLUMNS, NOT_COMPUTABLE, ScoreResult, dataset_samples, score_embeddings
from .inputs import FORMATS, MAX_UPLOAD_BYTES, ScoringInputError, read_embeddings
from .samples_export import SAMPLE_FORMATS, sample_formats, samples_file
from .views import intrinsic_dim_with_user, matrix_with_user, p_text, ranked, scorable_datasets, tree_with_user
from .zoo import SCORING_TABLES, ScoringDataError, ZooLists, warm, zoo_lists

__all__ = [
    "COLUMNS",
    "FORMATS",
    "SAMPLE_FORMATS",
    "SCORING_TABLES",
    "MAX_UPLOAD_BYTES",
    "NOT_COMPUTABLE",
    "ScoreResult",
    "ScoringDataError",
    "ScoringInputError",
    "ZooLists",
    "dataset_samples",
    "intrinsic_dim_with_user",
    "matrix_with_user",
    "p_text",
    "ranked",
    "sample_formats",
    "samples_file",
    "scorable_datasets",
    "tree_with_user",
    "read_embeddings",
    "warm",
    "score_embeddings",
    "zoo_lists",
]
