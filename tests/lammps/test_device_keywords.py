"""The device keywords of ``pair_style superionic`` in the real ``lmp`` on a machine without a GPU.

The rule itself is tested in tests/unit/test_device_placement.py; here the pair style must apply it:
a GPU request fails with one ERROR line that names the fix, ``device auto`` falls back to the CPU
and gives the same energy as ``device cpu``, and malformed values are refused while parsing.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from superionic.data.examples import jittered_lattice
from superionic.export import export_model
from superionic.md.lammps_data import write_lammps_data
from superionic.md.runner import LammpsRun, run_lammps
from superionic.models import ReferencePotential

SPECIES = ["Li", "Ge", "P", "S"]
TIMEOUT_S = 120.0

pytestmark = pytest.mark.skipif(torch.cuda.is_available(), reason="these cases need a machine without a GPU")


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("device_keywords")
    write_lammps_data(root / "d.data", jittered_lattice((3, 3, 3), spacing=2.6, seed=0), SPECIES)
    export_model(ReferencePotential(SPECIES), root / "m.pt")
    return root / "m.pt", root / "d.data"


def run(files: tuple[Path, Path], workdir: Path, style: str) -> LammpsRun:
    model, data = files
    deck = "\n".join(
        [
            "units metal",
            "atom_style atomic",
            f"read_data {data}",
            f"pair_style {style}",
            f"pair_coeff * * {model} {' '.join(SPECIES)}",
            "thermo_modify format float %.17g",
            "run 0",
            "",
        ]
    )
    (workdir / "in.lmp").write_text(deck)
    return run_lammps(workdir / "in.lmp", workdir, nprocs=1, timeout=TIMEOUT_S, check=False)


def the_error(result: LammpsRun) -> str:
    errors = [line.strip() for line in result.output.splitlines() if line.startswith("ERROR")]
    assert result.returncode != 0 and len(errors) == 1, result.output[-2000:]
    return errors[0]


@pytest.mark.parametrize("device", ["cuda", "cuda:1"])
def test_gpu_request_without_gpu(files: tuple[Path, Path], tmp_path: Path, device: str) -> None:
    error = the_error(run(files, tmp_path, f"superionic device {device}"))
    assert f"device {device} requested but libtorch sees no GPU" in error
    assert "use device cpu or auto" in error


@pytest.mark.parametrize(
    ("style", "words"),
    [
        ("superionic device cuda:x", "device must be cpu, cuda or auto, or cuda:N for GPU N, not 'cuda:x'"),
        ("superionic gpus_per_node -1", "gpus_per_node must be >= 0"),
        ("superionic allow_oversubscribe maybe", "maybe"),
    ],
    ids=["bad_index", "negative_gpus_per_node", "not_a_boolean"],
)
def test_malformed_values(files: tuple[Path, Path], tmp_path: Path, style: str, words: str) -> None:
    assert words in the_error(run(files, tmp_path, style))


def test_auto_falls_back_to_the_cpu(files: tuple[Path, Path], tmp_path: Path) -> None:
    (tmp_path / "auto").mkdir()
    (tmp_path / "cpu").mkdir()
    auto = run(files, tmp_path / "auto", "superionic device auto gpus_per_node 2 allow_oversubscribe yes")
    cpu = run(files, tmp_path / "cpu", "superionic device cpu")
    assert auto.returncode == 0 and cpu.returncode == 0, auto.output[-2000:] + cpu.output[-2000:]
    assert "device cpu" in auto.output, auto.output[-2000:]
    # Same device, same model, same input: the energies agree to the last digit.
    assert auto.thermo()[-1]["E_pair"] == cpu.thermo()[-1]["E_pair"]
