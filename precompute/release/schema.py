"""Explicit schemas of the release tables (their validation: validation.py).

Every table of a release is described here column by column (name, dtype, nullability, allowed values, finiteness)
and validated (precompute/release/validation.py) before anything is written. The backend reads the same definitions, so the writer and the reader
can never disagree about a column. `docs/RELEASE_FORMAT.md` documents every table and column in prose.

This module imports only numpy, pandas and pyarrow: the backend (no torch) uses it too.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd
import pyarrow as pa

FORMAT_VERSION = 1

# ----------------------------------------------------------------------------------------------------------------
# Vocabularies (contract: docs/notes/TEAM.md and ../shared/DESIGN.md)
# ----------------------------------------------------------------------------------------------------------------
# user: an embedding uploaded to `matter-align score --derive` (a derived release)
SOURCES = ("pretrained", "random_init", "trained_here", "descriptor", "user")
MODALITIES = ("structure", "smiles", "selfies", "sequence", "text", "descriptor", "graph", "composition")
INPUT_KINDS = ("molecule", "crystal", "protein_structure", "protein_sequence", "smiles")
EQUIVARIANCE = ("invariant", "equivariant", "none")
FORCE_HEADS = ("conservative", "direct", "none")
DOMAINS = ("molecules", "materials", "proteins")
ORIGINS = ("real", "generated")
TREE_METHODS = ("nj", "upgma")
ID_ESTIMATORS = ("twonn", "gride", "mle")


@dataclass(frozen=True)
class MetricDef:
    """One pairwise metric as stored in `pairwise.metric`.

    has_k: the metric has a neighbourhood size k (then `pairwise.k` is required, otherwise it must be null).
    symmetric: value(A, B) == value(B, A) exactly.
    mirror_fill: when only one orientation of a pair is stored, the backend may show it for the other orientation
        too (true for exactly symmetric metrics and for CKNNA, which is symmetric up to its neighbour masks).
    higher_is_aligned: True for similarities (CKNNA, CKA, ...), False for information imbalance (0 = A predicts B).
    value_min, value_max: the fixed colour range of the dashboard (values may leave it slightly, e.g. CKNNA < 0).
    """

    metric: str
    display_name: str
    has_k: bool
    symmetric: bool
    mirror_fill: bool
    higher_is_aligned: bool
    value_min: float
    value_max: float
    description: str


METRICS: dict[str, MetricDef] = {
    m.metric: m
    for m in (
        MetricDef(
            "cknna",
            "CKNNA",
            True,
            False,
            True,
            True,
            0.0,
            1.0,
            "Centered kernel nearest-neighbour alignment: unbiased HSIC of the cosine kernels restricted to pairs "
            "that are mutual k-nearest neighbours in both representations (Huh et al. 2024). ~0 unrelated, 1 identical "
            "neighbourhood geometry. Not exactly symmetric.",
        ),
        MetricDef(
            "mutual_knn",
            "Mutual kNN",
            True,
            True,
            True,
            True,
            0.0,
            1.0,
            "Mean fraction of the k nearest neighbours (cosine) shared by both representations; null level ~k/N.",
        ),
        MetricDef(
            "cka",
            "CKA (linear, biased)",
            False,
            True,
            True,
            True,
            0.0,
            1.0,
            "Linear centered kernel alignment (Kornblith et al. 2019), biased HSIC estimator, computed in feature space.",
        ),
        MetricDef(
            "cka_unbiased",
            "CKA (linear, unbiased)",
            False,
            True,
            True,
            True,
            0.0,
            1.0,
            "Linear CKA with the unbiased HSIC estimator (Song et al. 2012).",
        ),
        MetricDef(
            "idcor",
            "IDCor",
            False,
            True,
            True,
            True,
            0.0,
            1.0,
            "Intrinsic-dimension correlation: (ID(A) + ID(B) - ID([A|B])) / max(ID(A), ID(B)) with TwoNN on z-scored "
            "features; p_value from a row permutation of B.",
        ),
        MetricDef(
            "info_imbalance",
            "Information imbalance",
            True,
            False,
            False,
            False,
            0.0,
            1.0,
            "Delta(A->B; k) = 2/(N^2 k) * sum_i sum_{j in N_k^A(i)} rank_B(i, j): ~0 when A's neighbours predict B's, "
            "~1 when unrelated. Directional: model_a = A (the predictor), model_b = B.",
        ),
    )
}


# ----------------------------------------------------------------------------------------------------------------
# Column and table definitions
# ----------------------------------------------------------------------------------------------------------------
DTYPES = ("string", "int64", "float64", "float32", "bool", "list<string>")
_ARROW = {
    "string": pa.string(),
    "int64": pa.int64(),
    "float64": pa.float64(),
    "float32": pa.float32(),  # bulk values where float32 is enough (neighbour similarities)
    "bool": pa.bool_(),
    "list<string>": pa.list_(pa.string()),
}


@dataclass(frozen=True)
class Column:
    """One column: dtype in DTYPES; nullable; enum = allowed values; finite = no NaN/inf (float);
    min/max = inclusive bounds on non-null numeric values; optional = may be left out of the DataFrame (then
    written as all null; only for nullable columns)."""

    name: str
    dtype: str
    nullable: bool = False
    enum: tuple[str, ...] | None = None
    finite: bool = True
    min: float | None = None
    max: float | None = None
    doc: str = ""
    optional: bool = False


@dataclass(frozen=True)
class TableSchema:
    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    required: bool = True
    doc: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def arrow_schema(self) -> pa.Schema:
        return pa.schema([pa.field(c.name, _ARROW[c.dtype], nullable=c.nullable) for c in self.columns])


C = Column
TABLES: dict[str, TableSchema] = {
    t.name: t
    for t in (
        TableSchema(
            "models",
            (
                C("model_id", "string", doc="stable id, the model card's file name"),
                C("display_name", "string", doc="name shown in the dashboard"),
                C("family", "string", doc="model family, e.g. MACE, Orb, ChemBERTa"),
                C("architecture", "string", doc="short description of the architecture"),
                C("modality", "string", enum=MODALITIES, doc="what the model reads"),
                C("input_kind", "string", enum=INPUT_KINDS, doc="kind of input sample"),
                C("training_sets", "list<string>", doc="training-set tags (mptrj, omat24, qm9, ...); may be empty"),
                C("equivariance", "string", enum=EQUIVARIANCE, doc="rotational symmetry of the architecture"),
                C(
                    "force_head",
                    "string",
                    enum=FORCE_HEADS,
                    doc="forces as energy gradients, predicted directly, or none",
                ),
                C("params", "int64", nullable=True, min=0, doc="number of parameters (null: unknown / not a network)"),
                C("embedding_dim", "int64", nullable=True, min=1, doc="width of the extracted embedding"),
                C("layer", "string", doc="which layer the embedding is read from"),
                C("pooling", "string", doc="how per-atom/token/residue features become one vector"),
                C(
                    "source",
                    "string",
                    enum=SOURCES,
                    doc="pretrained weights, random initialisation of the real architecture (never presented as the pretrained model), trained here, or a fixed descriptor",
                ),
                C("checkpoint", "string", nullable=True, doc="hub id, URL or path a user would load"),
                C("citation", "string", nullable=True, doc="reference for the model"),
                C("license", "string", nullable=True, optional=True, doc="licence of the checkpoint/code"),
                C("card_hash", "string", nullable=True, optional=True, doc="registry.card_hash of the model card"),
            ),
            key=("model_id",),
            doc="one row per model (from the model cards)",
        ),
        TableSchema(
            "datasets",
            (
                C("dataset_id", "string"),
                C("display_name", "string", doc="name shown in the dashboard"),
                C("domain", "string", enum=DOMAINS, doc="kind of matter"),
                C("n_samples", "int64", min=1, doc="samples embedded and analysed"),
                C(
                    "origin",
                    "string",
                    enum=ORIGINS,
                    doc="real data, or generated by a recorded recipe (labelled as such)",
                ),
                C("recipe", "string", nullable=True, doc="how the set was drawn or generated (with seed)"),
                C("license", "string", nullable=True, doc="licence of the data"),
                C("citation", "string", nullable=True, doc="reference for the data"),
                C(
                    "in_distribution_for",
                    "list<string>",
                    doc="training-set tags for which this dataset is in-distribution; a model is in-distribution when "
                    "its training_sets intersect this list",
                ),
            ),
            key=("dataset_id",),
            doc="one row per dataset",
        ),
        TableSchema(
            "pairwise",
            (
                C("dataset_id", "string"),
                C("metric", "string", enum=tuple(METRICS)),
                C("k", "int64", nullable=True, min=1, doc="neighbourhood size; null for metrics without k"),
                C("model_a", "string", doc="first model (A; the predictor for information imbalance)"),
                C("model_b", "string", doc="second model (B)"),
                C("value", "float64", doc="the metric value, finite"),
                C(
                    "ci_low",
                    "float64",
                    nullable=True,
                    doc="lower end of the 95 % half-sampling interval (null: none computed; see docs/METRICS.md)",
                ),
                C("ci_high", "float64", nullable=True, doc="upper end of the confidence interval"),
                C(
                    "p_value",
                    "float64",
                    nullable=True,
                    min=0.0,
                    max=1.0,
                    doc="permutation p-value against the pair's null, (1 + #{null at least as aligned}) / (P + 1)",
                ),
                C("n", "int64", min=1, doc="samples the value was computed on"),
            ),
            key=("dataset_id", "metric", "k", "model_a", "model_b"),
            doc="one row per (dataset, metric, k, ordered model pair)",
        ),
        TableSchema(
            "intrinsic_dim",
            (
                C("dataset_id", "string"),
                C("model_id", "string"),
                C("estimator", "string", enum=ID_ESTIMATORS, doc="TwoNN (default), GRIDE or Levina-Bickel MLE"),
                C("value", "float64", min=0.0, doc="intrinsic dimension"),
                C("ci_low", "float64", nullable=True, doc="bootstrap (seeded) lower bound"),
                C("ci_high", "float64", nullable=True, doc="bootstrap upper bound"),
                C("n", "int64", min=1, doc="samples after duplicate removal"),
                C("n_duplicates", "int64", nullable=True, min=0, doc="duplicate rows removed before estimation"),
            ),
            key=("dataset_id", "model_id", "estimator"),
            doc="intrinsic dimension per (dataset, model, estimator), bootstrap CI",
        ),
        TableSchema(
            "energy",
            (
                C("dataset_id", "string"),
                C("model_id", "string"),
                C("mae_per_atom", "float64", min=0.0, doc="eV/atom on the held-out split"),
                C("n_test", "int64", min=1, doc="held-out samples the MAE is computed on"),
            ),
            key=("dataset_id", "model_id"),
            doc="per-atom energy MAE on the held-out split after fitting per-element reference energies on a train split",
        ),
        TableSchema(
            "trees",
            (
                C("dataset_id", "string"),
                C("metric", "string", enum=tuple(METRICS)),
                C("k", "int64", nullable=True, min=1),
                C("method", "string", enum=TREE_METHODS, doc="neighbour joining or UPGMA (Biopython)"),
                C("newick", "string", doc="the tree, leaves named by model_id"),
            ),
            key=("dataset_id", "metric", "k", "method"),
            doc="trees of models, distance 1 - symmetrised metric, Newick",
        ),
        # ---------------------------------------------------------------- optional tables
        TableSchema(
            "pairwise_null",
            (
                C("dataset_id", "string"),
                C("metric", "string", enum=tuple(METRICS)),
                C("k", "int64", nullable=True, min=1),
                C("model_a", "string"),
                C("model_b", "string"),
                C("null_mean", "float64", doc="mean of the metric over permutations (CKA: the exact permutation mean)"),
                C("null_std", "float64", min=0.0, doc="standard deviation over permutations (CKA: exact)"),
                C(
                    "null_q95",
                    "float64",
                    nullable=True,
                    doc="95th percentile over permutations (5th for information imbalance, where lower is aligned; "
                    "CKA with n_permutations = 0: of the moment-matched Pearson III)",
                ),
                C(
                    "n_permutations",
                    "int64",
                    min=0,
                    doc="permutations drawn; 0: exact permutation moments, fitted quantiles (CKA, docs/METRICS.md)",
                ),
                C("seed", "int64", doc="seed of the permutations"),
                C("n", "int64", min=1),
            ),
            key=("dataset_id", "metric", "k", "model_a", "model_b"),
            required=False,
            doc="permutation-null baseline per pair (rows of B permuted, seeded)",
        ),
        # a table of its own, not new pairwise / pairwise_null columns: releases written before it keep their exact
        # column lists (the backend refuses a Parquet file whose columns differ from the schema)
        TableSchema(
            "pairwise_calibration",
            (
                C("dataset_id", "string"),
                C("metric", "string", enum=tuple(METRICS)),
                C("k", "int64", nullable=True, min=1),
                C("model_a", "string"),
                C("model_b", "string"),
                C(
                    "calibrated",
                    "float64",
                    min=0.0,
                    doc="null-calibrated score (Gröger et al. 2026, Algorithm 1): 0 unless above the critical value; "
                    "at most 1 where the metric is normalised by s_max = 1, the unnormalised effect size s - tau (which "
                    "can exceed 1) for IDCor and for a CKNNA / unbiased CKA value above 1 (docs/METRICS.md)",
                ),
                C("tau", "float64", doc="critical value at level alpha from the observed value and the null"),
                C("alpha", "float64", min=0.0, max=1.0, doc="level of the critical value"),
                C("null_q99", "float64", doc="99th percentile of the null (1st for information imbalance)"),
                C("p_value", "float64", min=0.0, max=1.0, doc="(1 + #{null at least as aligned}) / (P + 1)"),
                C(
                    "closed_form_mean",
                    "float64",
                    nullable=True,
                    doc="the null mean in closed form where one exists (mutual kNN, CKA, information imbalance)",
                ),
                C(
                    "n_permutations",
                    "int64",
                    min=0,
                    doc="permutations drawn; p_value >= 1 / (n_permutations + 1); 0: exact moments, fitted quantiles "
                    "(CKA: tau, null_q99 and p_value from the moment-matched Pearson III, no permutation floor)",
                ),
                C("seed", "int64", doc="run seed (each pair's stream: SeedSequence([seed, crc32(a NUL b)]))"),
            ),
            key=("dataset_id", "metric", "k", "model_a", "model_b"),
            required=False,
            doc="calibrated score, critical value and p-value per ordered pair and k, next to pairwise.value",
        ),
        TableSchema(
            "samples",
            (
                C("dataset_id", "string"),
                C("position", "int64", min=0, doc="row index in every embedding matrix of this dataset"),
                C("sample_id", "string", doc="stable sample id (e.g. qm9:000001)"),
                C("formula", "string", nullable=True, doc="chemical formula where known"),
                C("smiles", "string", nullable=True, doc="SMILES where known"),
                C("n_atoms", "int64", nullable=True, min=0, doc="atoms in the structure"),
            ),
            key=("dataset_id", "position"),
            required=False,
            doc="the analysed samples of each dataset, in embedding order",
        ),
        TableSchema(
            "neighbours",
            (
                C("dataset_id", "string"),
                C("model_id", "string"),
                C("position", "int64", min=0, doc="the sample (samples.position)"),
                C("rank", "int64", min=1, doc="1 = nearest"),
                C("neighbour", "int64", min=0, doc="position of its rank-th nearest other sample"),
            ),
            key=("dataset_id", "model_id", "position", "rank"),
            required=False,
            doc="each sample's nearest neighbours by cosine similarity after the analysis preprocessing (the caches "
            "behind CKNNA and mutual kNN), up to k = 10: mutual kNN at k <= 10 can be recomputed from them",
        ),
        TableSchema(
            "neighbour_similarity",
            (
                C("dataset_id", "string"),
                C("model_id", "string"),
                C("position", "int64", min=0, doc="the sample (samples.position)"),
                C("rank", "int64", min=1, doc="1 = nearest; the same (position, rank) as in `neighbours`"),
                C(
                    "similarity",
                    "float32",
                    min=-1.0001,
                    max=1.0001,
                    doc="cosine similarity K_ij after the analysis "
                    "preprocessing (the kernel value CKNNA uses), float32",
                ),
            ),
            key=("dataset_id", "model_id", "position", "rank"),
            required=False,
            doc="the cosine similarity of each `neighbours` entry: with it, CKNNA of any new embedding against this "
            "model can be computed exactly without the model's embeddings (see docs/RELEASE_FORMAT.md, scoring)",
        ),
        TableSchema(
            "neighbours_euclidean",
            (
                C("dataset_id", "string"),
                C("model_id", "string"),
                C("position", "int64", min=0, doc="the sample (samples.position)"),
                C("rank", "int64", min=1, doc="1 = nearest"),
                C("neighbour", "int64", min=0, doc="position of its rank-th nearest other sample"),
            ),
            key=("dataset_id", "model_id", "position", "rank"),
            required=False,
            doc="each sample's nearest neighbours by Euclidean distance on the raw embeddings (the lists behind "
            "information imbalance, model -> other), up to k = 5: enough for Delta(model -> new embedding; k <= 5)",
        ),
        TableSchema(
            "neighbours_deep",
            (
                C("dataset_id", "string"),
                C("model_id", "string"),
                C("position", "int64", min=0, doc="the sample (samples.position)"),
                C("rank", "int64", min=1, doc="continues `neighbours` (ranks above its k), without gaps"),
                C("neighbour", "int64", min=0, doc="position of its rank-th nearest other sample (cosine)"),
                C("similarity", "float32", min=-1.0001, max=1.0001, doc="its cosine similarity K_ij, float32"),
            ),
            key=("dataset_id", "model_id", "position", "rank"),
            required=False,
            doc="each sample's cosine list beyond `neighbours`, exactly as deep as the analysis' seeded half-sampling "
            "subsets need at k <= 5 (N > 5,000) or 10: the confidence intervals of a new embedding's CKNNA and "
            "mutual kNN at those k then equal the analysis' (docs/RELEASE_FORMAT.md, scoring)",
        ),
        TableSchema(
            "neighbours_euclidean_deep",
            (
                C("dataset_id", "string"),
                C("model_id", "string"),
                C("position", "int64", min=0, doc="the sample (samples.position)"),
                C("rank", "int64", min=1, doc="continues `neighbours_euclidean` (ranks above its k), without gaps"),
                C("neighbour", "int64", min=0, doc="position of its rank-th nearest other sample (Euclidean, raw)"),
            ),
            key=("dataset_id", "model_id", "position", "rank"),
            required=False,
            doc="each sample's Euclidean list beyond `neighbours_euclidean`, exactly as deep as the analysis' seeded "
            "half-sampling subsets need at the largest analysed II k <= 5: the confidence intervals of a new embedding's information "
            "imbalance (model -> new) then equal the analysis' (docs/RELEASE_FORMAT.md, scoring)",
        ),
        TableSchema(
            "sample_structures",
            (
                C("dataset_id", "string"),
                C("position", "int64", min=0, doc="row index in every embedding matrix (samples.position)"),
                C("sample_id", "string", doc="stable sample id, also in the extxyz frame"),
                C("extxyz", "string", nullable=True, doc="one extended-XYZ frame (ASE; Å; cell and pbc for crystals)"),
                C("smiles", "string", nullable=True, doc="SMILES where the sample has one"),
                C("selfies", "string", nullable=True, doc="SELFIES of the SMILES (selfies package)"),
                C("sequence", "string", nullable=True, doc="one-letter amino-acid sequence of a protein chain"),
            ),
            key=("dataset_id", "position"),
            required=False,
            doc="every analysed sample in the field's formats, so a user can embed exactly these samples in this "
            "order (docs/SCORING.md)",
        ),
        TableSchema(
            "metric_definitions",
            (
                C("metric", "string", enum=tuple(METRICS)),
                C("display_name", "string"),
                C("has_k", "bool"),
                C("symmetric", "bool"),
                C("mirror_fill", "bool"),
                C("higher_is_aligned", "bool"),
                C("value_min", "float64"),
                C("value_max", "float64"),
                C("description", "string"),
            ),
            key=("metric",),
            required=False,
            doc="written by the writer from schema.METRICS; the dashboard's legend and colour ranges",
        ),
    )
}
REQUIRED_TABLES = tuple(n for n, t in TABLES.items() if t.required)


def metric_definitions_table() -> pd.DataFrame:
    """The `metric_definitions` table from METRICS."""
    rows = [
        {
            "metric": m.metric,
            "display_name": m.display_name,
            "has_k": m.has_k,
            "symmetric": m.symmetric,
            "mirror_fill": m.mirror_fill,
            "higher_is_aligned": m.higher_is_aligned,
            "value_min": m.value_min,
            "value_max": m.value_max,
            "description": m.description,
        }
        for m in METRICS.values()
    ]
    return pd.DataFrame(rows, columns=TABLES["metric_definitions"].column_names)
