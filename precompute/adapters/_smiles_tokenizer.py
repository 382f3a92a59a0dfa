"""SMILES tokenisation for the rxnfp BERTs and the rxnmapper ALBERT: the regex of the RXN papers, then a lookup of
each WHOLE token in the model's vocab.txt.

Why not transformers' tokenizer: in transformers 5 `BertTokenizer` is the fast (Rust) WordPiece tokenizer, which
splits bracket atoms such as `[C@@H]` or `[NH3+]` into characters and maps them to `[UNK]` even with
`do_basic_tokenize=False`. rxnfp's own `SmilesTokenizer` overrides the slow tokenizer's `_tokenize` with the regex
below, which transformers 5 no longer calls. So we reproduce exactly what rxnfp/rxnmapper did under transformers 2-4:
regex tokens -> vocab ids, wrapped as `[CLS] tokens [SEP]`.

The two regexes are copied verbatim from the installed packages (MIT licence, IBM RXN for Chemistry):
`rxnfp/tokenization.py::SMI_REGEX_PATTERN` and `rxnmapper/smiles_utils.py::SMI_REGEX_PATTERN`. rxnfp's adds
three-digit ring closures `%(123)` and the `|` of CXSMILES; for molecule SMILES from RDKit they tokenise identically.
tests/test_adapters_sequence.py checks that these strings equal the ones in the installed packages.

Only the standard library here: no model library is imported.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

RXNFP_REGEX = (
    r"(\%\([0-9]{3}\)|\[[^\]]+]|Br?|Cl?|N|O|S|P|F|I|b|c|n|o|s|p|\||\(|\)|\.|=|#|-|\+|\\|\/|:|~|@|\?|>>?|\*|\$"
    r"|\%[0-9]{2}|[0-9])"
)
RXNMAPPER_REGEX = (
    r"(\[[^\]]+]|Br?|Cl?|N|O|S|P|F|I|b|c|n|o|s|p|\(|\)|\.|=|#|-|\+|\\|\/|:|~|@|\?|>>?|\*|\$|\%[0-9]{2}|[0-9])"
)
REGEXES = {"rxnfp": RXNFP_REGEX, "rxnmapper": RXNMAPPER_REGEX}

CLS, SEP, PAD, UNK = "[CLS]", "[SEP]", "[PAD]", "[UNK]"


class SmilesTokenError(ValueError):
    """The regex does not cover the whole string (a character no SMILES token can start with)."""


@dataclass(frozen=True)
class Encoded:
    """One SMILES as model input: ids = [CLS] + token ids + [SEP]; `n_unk` counts tokens not in the vocab."""

    tokens: list[str]
    ids: list[int]
    n_unk: int


class RegexSmilesTokenizer:
    """Regex split + whole-token vocab lookup, with `[CLS]`/`[SEP]` around every SMILES (as rxnfp and rxnmapper).

    vocab_file: a BERT vocab.txt (one token per line; the id is the line number).
    regex: "rxnfp" or "rxnmapper" (a key of REGEXES) or a pattern string.
    """

    def __init__(self, vocab_file: str | Path, regex: str = "rxnfp"):
        self.pattern = REGEXES.get(regex, regex)
        self._regex = re.compile(self.pattern)
        lines = Path(vocab_file).read_text(encoding="utf-8").splitlines()
        self.vocab: dict[str, int] = {}
        for i, tok in enumerate(lines):
            self.vocab.setdefault(tok.strip(), i)
        for special in (CLS, SEP, PAD, UNK):
            if special not in self.vocab:
                raise ValueError(f"{vocab_file}: vocab has no {special} token")
        self.cls_id, self.sep_id = self.vocab[CLS], self.vocab[SEP]
        self.pad_id, self.unk_id = self.vocab[PAD], self.vocab[UNK]

    def tokenize(self, smiles: str) -> list[str]:
        """Regex tokens; raises SmilesTokenError when they do not reassemble to the input (nothing is skipped)."""
        tokens = self._regex.findall(smiles)
        if "".join(tokens) != smiles:
            covered = 0
            for m in self._regex.finditer(smiles):
                if m.start() != covered:
                    break
                covered = m.end()
            raise SmilesTokenError(
                f"character {smiles[covered : covered + 1]!r} at position {covered} of {smiles!r} "
                "starts no SMILES token"
            )
        return tokens

    def encode(self, smiles: str) -> Encoded:
        tokens = self.tokenize(smiles)
        body = [self.vocab.get(t, self.unk_id) for t in tokens]
        n_unk = sum(1 for i in body if i == self.unk_id)
        return Encoded(tokens=tokens, ids=[self.cls_id, *body, self.sep_id], n_unk=n_unk)

    def pad(self, encoded: Sequence[Encoded]) -> tuple[list[list[int]], list[list[int]]]:
        """Right-pad a batch with [PAD]; returns (input_ids, attention_mask) as nested lists."""
        width = max(len(e.ids) for e in encoded)
        ids = [e.ids + [self.pad_id] * (width - len(e.ids)) for e in encoded]
        mask = [[1] * len(e.ids) + [0] * (width - len(e.ids)) for e in encoded]
        return ids, mask
