"""crystals-real: the real crystal set from libavogadro-data (COD + IZA), ASE dcdft and pymatgen's AFLOW prototypes.

The full-set tests read the real files; the first run parses and matches them (about 30 s on 2 busy cores) and
caches the result under $MATTER_ALIGN_CACHE (default ~/.cache/matter-align), later runs read the cache (< 1 s).
The rule tests build small sets in tmp_path.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from precompute.datasets import DatasetError, dataset_card, load_dataset
from precompute.datasets import crystals_real as cr

HAVE_AVOGADRO = Path(cr.AVOGADRO_DIR).is_dir()
needs_avogadro = pytest.mark.skipif(
    not HAVE_AVOGADRO, reason="Debian libavogadro-data not installed (apt-get install libavogadro-data)"
)


@pytest.fixture(scope="module")
def full():
    skipped: dict[str, str] = {}
    samples = load_dataset("crystals-real", skipped=skipped)
    return samples, skipped


@needs_avogadro
def test_full_set_counts_and_sources(full):
    samples, skipped = full
    payload = cr.load_payload()
    # libavogadro-data 1.97.0-3 ships 312 non-zeolite CIFs and 198 zeolites; ASE 3.29 dcdft 71; pymatgen 288
    assert payload["counts"]["read"] == {"cod": 312, "iza": 198, "dcdft": 71, "aflow": 288}
    assert len(samples) + len(skipped) == 869
    assert len(samples) == payload["counts"]["kept"] == 656
    by_source = {s: sum(x.meta["source"] == s for x in samples) for s in cr.SOURCES}
    assert by_source == {"cod": 262, "iza": 139, "dcdft": 22, "aflow": 233}
    ids = [s.sample_id for s in samples]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)


@needs_avogadro
def test_full_set_is_finite_periodic_and_capped(full):
    samples, _ = full
    for s in samples:
        a = s.atoms
        assert a.pbc.all() and 0 < len(a) <= cr.DEFAULTS["max_atoms"], s.sample_id
        assert np.isfinite(a.positions).all() and abs(a.cell.volume) > 1.0, s.sample_id
        assert len(a) == s.meta["n_atoms"] and s.meta["n_atoms_primitive"] <= len(a)
        if len(a) > 1:
            d = a.get_all_distances(mic=True)
            assert d[~np.eye(len(a), dtype=bool)].min() >= cr.DEFAULTS["min_distance_A"], s.sample_id


@needs_avogadro
def test_full_set_licences_and_origin(full):
    samples, _ = full
    card = dataset_card("crystals-real")
    assert card["origin"] == "real" and card["domain"] == "materials"
    for s in samples:
        assert s.meta["license"] == cr.LICENSES[s.meta["source"]], s.sample_id
        assert s.meta["citation"] == cr.CITATIONS[s.meta["source"]]
        assert s.sample_id.startswith(f"crystals-real:{s.meta['source']}:")
    iza = [s for s in samples if s.meta["source"] == "iza"]
    assert all("public domain" in s.meta["license_statement"] for s in iza)
    cod = {s.sample_id: s for s in samples if s.meta["source"] == "cod"}
    assert "public domain" in cod["crystals-real:cod:halides/NaCl-Halite"].meta["license_statement"]
    assert cod["crystals-real:cod:halides/NaCl-Halite"].meta.get("cod_id")


@needs_avogadro
def test_full_set_skips_are_named(full):
    _, skipped = full
    assert skipped["crystals-real:cod:elements/Se-Selenium"].startswith("unreadable:")
    assert skipped["crystals-real:cod:other/YBa2Cu3O6.9-YBCO"].startswith("disordered:")
    assert skipped["crystals-real:iza:ZSM-5"].startswith("unreadable:")
    assert any(r.startswith("too large:") for r in skipped.values())
    # duplicates across sources: the COD entry is kept, dcdft and AFLOW copies point at it
    assert skipped["crystals-real:dcdft:Cu"] == "duplicate of crystals-real:cod:elements/Cu-Copper"
    assert skipped["crystals-real:aflow:A_cF4_225_a"] == "duplicate of crystals-real:cod:elements/Cu-Copper"
    assert skipped["crystals-real:aflow:AB_cF8_225_a_b"] == "duplicate of crystals-real:cod:halides/NaCl-Halite"
    assert sum(r.startswith("duplicate of") for r in skipped.values()) == 114


@needs_avogadro
def test_kept_structures_do_not_match_each_other(full):
    """Within every (formula, primitive size) bucket outside the SiO2 frameworks, no two kept structures match."""
    from pymatgen.analysis.structure_matcher import StructureMatcher
    from pymatgen.io.ase import AseAtomsAdaptor

    samples, _ = full
    m = StructureMatcher(primitive_cell=True, attempt_supercell=False, **cr.DEFAULTS["matcher"])
    buckets: dict[tuple, list] = {}
    for s in samples:
        if s.meta["formula"] != "SiO2" and s.meta["n_atoms"] <= 24:
            buckets.setdefault((s.meta["formula"], s.meta["n_atoms_primitive"]), []).append(s)
    pairs = 0
    for group in buckets.values():
        structs = [AseAtomsAdaptor.get_structure(s.atoms) for s in group]
        for i in range(len(structs)):
            for j in range(i):
                pairs += 1
                assert not m.fit(structs[i], structs[j]), (group[i].sample_id, group[j].sample_id)
    assert pairs > 0


@needs_avogadro
def test_sampling_is_a_seeded_prefix(full):
    samples, _ = full
    a = [s.sample_id for s in load_dataset("crystals-real", n=20, seed=3)]
    b = [s.sample_id for s in load_dataset("crystals-real", n=50, seed=3)]
    assert b[:20] == a and len(set(b)) == 50
    assert a != [s.sample_id for s in load_dataset("crystals-real", n=20, seed=4)]
    assert set(b) <= {s.sample_id for s in samples}
    with pytest.raises(DatasetError, match="n=100000"):
        load_dataset("crystals-real", n=100000)


# ---------------------------------------------------------------- rules on small inputs


def test_dcdft_alone_is_71_distinct_elements(tmp_path):
    samples = load_dataset("crystals-real", path=tmp_path, sources=["dcdft"])
    assert len(samples) == 71 and {s.meta["source"] for s in samples} == {"dcdft"}
    assert samples[0].meta["license"] == "ASE, LGPL-2.1-or-later"
    assert list((tmp_path / "real").glob("crystals-real-*.json"))  # cached
    again = load_dataset("crystals-real", path=tmp_path, sources=["dcdft"])
    assert [s.sample_id for s in again] == [s.sample_id for s in samples]
    np.testing.assert_array_equal(again[5].atoms.positions, samples[5].atoms.positions)


def test_rules_on_written_cifs(tmp_path, monkeypatch):
    """Ordered NaCl kept; its 2x1x1 supercell, strained by 2%, is a duplicate; a half-K site is disordered; two
    atoms 0.3 A apart are overlapping; a broken file is unreadable; a 64-atom cell is too large for max_atoms 20."""
    from pymatgen.core import Lattice, Structure
    from pymatgen.io.cif import CifWriter

    root = tmp_path / "crystals"
    (root / "halides").mkdir(parents=True)
    (root / "zeolites").mkdir()
    nacl = Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    CifWriter(nacl).write_file(root / "halides" / "A-NaCl.cif")
    sup = nacl.copy()
    sup.make_supercell([2, 1, 1])
    sup.scale_lattice(sup.volume * 1.02)
    CifWriter(sup).write_file(root / "halides" / "B-NaCl-super.cif")
    dis = nacl.copy()
    dis.replace(0, {"Na": 0.5, "K": 0.5})
    CifWriter(dis).write_file(root / "halides" / "C-NaKCl.cif")
    ov = Structure(Lattice.cubic(4.0), ["Cs", "Cl", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0.575]])
    CifWriter(ov).write_file(root / "halides" / "D-overlap.cif")
    (root / "halides" / "E-broken.cif").write_text("data_x\n_cell_length_a 3\nloop_\n_atom_site_label\n")
    big = nacl.copy()
    big.make_supercell([2, 2, 2])
    CifWriter(big).write_file(root / "halides" / "F-big.cif")
    monkeypatch.setattr(cr, "AVOGADRO_DIR", str(root))
    skipped: dict[str, str] = {}
    samples = cr.load_crystals_real(path=tmp_path / "cache", sources=["cod"], skipped=skipped, max_atoms=20)
    assert [s.sample_id for s in samples] == ["crystals-real:cod:halides/A-NaCl"]
    assert samples[0].meta["formula"] == "NaCl" and samples[0].meta["spacegroup"] == 225
    assert "no licence statement" in samples[0].meta["license_statement"]
    assert skipped["crystals-real:cod:halides/B-NaCl-super"] == "duplicate of crystals-real:cod:halides/A-NaCl"
    assert skipped["crystals-real:cod:halides/C-NaKCl"].startswith("disordered:")
    assert skipped["crystals-real:cod:halides/D-overlap"].startswith("overlapping sites: two atoms 0.300 A")
    assert skipped["crystals-real:cod:halides/E-broken"].startswith("unreadable:")
    assert skipped["crystals-real:cod:halides/F-big"].startswith("too large: 64 atoms")


def test_bad_options_are_named(tmp_path):
    with pytest.raises(DatasetError, match="unknown sources"):
        load_dataset("crystals-real", path=tmp_path, sources=["mp"])
    with pytest.raises(DatasetError, match="unknown options"):
        load_dataset("crystals-real", path=tmp_path, sources=["dcdft"], max_atom=5)
