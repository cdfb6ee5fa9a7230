"""`superionic export --format nequip`: a strictly local model as a pair_allegro `.nequip.pt2`.

Checked three ways against superionic's Python evaluation of the eager model (float64, 1e-8):
nequip's own compiled-model loader (in a separate environment named by SUPERIONIC_NEQUIP_PYTHON,
see docs/nequip.md) on pair_allegro-style inputs, and pair_style superionic reading the package on
1 and 2 MPI ranks.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.neighborlist import neighbor_list

from superionic.calculator import evaluate
from superionic.export import ExportError
from superionic.nequip_export import OUTPUTS, export_nequip
from tests.conftest import SPECIES, make_model, structure
from tests.lammps.singlepoint import single_point

# float64 on both sides; the export's own check already holds the package to 1e-10 of the eager model.
TOL = 1e-8
NEQUIP_PYTHON = os.environ.get("SUPERIONIC_NEQUIP_PYTHON")

# Run by nequip's Python: its loader, its input/output wrapper, nothing from superionic.
LOADER = """
import json, sys
import numpy as np, torch
from nequip.model.inference_models import load_compiled_model
model, meta = load_compiled_model(sys.argv[1], "cpu")
data = np.load(sys.argv[2])
out = model({"pos": torch.from_numpy(data["pos"]), "edge_index": torch.from_numpy(data["edge_index"]),
             "atom_types": torch.from_numpy(data["atom_types"])})
np.savez(sys.argv[3], **{k: v.detach().numpy() for k, v in out.items()})
print(json.dumps({"r_max": meta["r_max"], "type_names": meta["type_names"]}))
"""


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("nequip") / "reference_local.nequip.pt2"
    export_nequip(make_model("local"), path)
    return path


def pair_allegro_inputs(atoms: Atoms, cutoff: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """What pair_allegro builds: owned atoms, then periodic images as ghosts, edges of owned atoms only."""
    i, j, shift = neighbor_list("ijS", atoms, cutoff)
    n = len(atoms)
    images: dict[tuple[int, int, int, int], int] = {}
    owner = list(range(n))
    pos = list(atoms.positions)
    dst = np.empty(len(i), dtype=np.int64)
    for e, (jj, s) in enumerate(zip(j, shift, strict=True)):
        if not s.any():
            dst[e] = jj
            continue
        key = (int(jj), *map(int, s))
        if key not in images:
            images[key] = len(pos)
            pos.append(atoms.positions[jj] + s @ atoms.cell.array)
            owner.append(int(jj))
        dst[e] = images[key]
    types = np.array([SPECIES.index(s) for s in atoms.get_chemical_symbols()], dtype=np.int64)
    return np.array(pos), np.stack([i.astype(np.int64), dst]), types[owner], np.array(owner)


@pytest.mark.slow
@pytest.mark.skipif(
    not NEQUIP_PYTHON, reason="SUPERIONIC_NEQUIP_PYTHON (a Python with nequip 0.19.1, docs/nequip.md) unset"
)
def test_nequip_loader_matches_python(tmp_path: Path, package: Path) -> None:
    model = make_model("local")
    atoms = structure("small")  # below twice the cutoff: atoms meet several images of each other
    pos, edge_index, types, owner = pair_allegro_inputs(atoms, model.cutoff)
    np.savez(tmp_path / "in.npz", pos=pos, edge_index=edge_index, atom_types=types)
    run = subprocess.run(
        [NEQUIP_PYTHON, "-c", LOADER, str(package), str(tmp_path / "in.npz"), str(tmp_path / "out.npz")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    meta = json.loads(run.stdout.strip().splitlines()[-1])
    assert meta == {"r_max": model.cutoff, "type_names": SPECIES}
    out = np.load(tmp_path / "out.npz")
    assert set(out.files) == set(OUTPUTS)
    n = len(atoms)
    # pair_allegro sums atomic_energy over owned atoms and folds ghost forces onto their owners.
    energy = out["atomic_energy"][:n, 0].sum()
    forces = np.zeros((n, 3))
    np.add.at(forces, owner, out["forces"])
    ref = evaluate(model, atoms, model.cutoff, SPECIES, torch.float64)
    assert energy == pytest.approx(ref.energy, rel=TOL, abs=TOL)
    np.testing.assert_allclose(out["atomic_energy"][:n, 0], ref.atom_energy, rtol=0, atol=TOL)
    np.testing.assert_allclose(forces, ref.forces, rtol=0, atol=TOL * max(1.0, np.abs(ref.forces).max()))
    total = ref.virial_lammps()
    virial = out["virial"][0]
    got = np.array([virial[0, 0], virial[1, 1], virial[2, 2], virial[0, 1], virial[0, 2], virial[1, 2]])
    np.testing.assert_allclose(got, total, rtol=0, atol=TOL * max(1.0, np.abs(total).max()))


@pytest.mark.slow
@pytest.mark.parametrize("nprocs", [1, 2])
def test_pair_superionic_runs_exported_package(tmp_path: Path, package: Path, nprocs: int) -> None:
    model = make_model("local")
    atoms = structure("triclinic")
    lmp = single_point(tmp_path, atoms, package, nprocs=nprocs)
    ref = evaluate(model, atoms, model.cutoff, SPECIES, torch.float64)
    assert lmp.energy == pytest.approx(ref.energy, rel=TOL, abs=TOL)
    np.testing.assert_allclose(lmp.atom_energy, ref.atom_energy, rtol=0, atol=TOL)
    np.testing.assert_allclose(lmp.forces, ref.forces, rtol=0, atol=TOL * max(1.0, np.abs(ref.forces).max()))
    assert "nequip-allegro" in lmp.output


def test_message_passing_model_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="only strictly local models export to nequip"):
        export_nequip(make_model("mp"), tmp_path / "mp.nequip.pt2")


def test_suffix_is_required(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match=r"named \*\.nequip\.pt2"):
        export_nequip(make_model("local"), tmp_path / "model.pt2")
