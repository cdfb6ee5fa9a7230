"""A LAMMPS `run 0` with everything the parity tests compare, read back in full precision."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase import Atoms

from superionic.md.lammps_data import write_lammps_data
from superionic.md.runner import LammpsRun, run_lammps

NKTV2P_METAL = 1.6021765e6  # LAMMPS metal units: eV/A^3 -> bar


@dataclass(frozen=True)
class SinglePoint:
    energy: float
    forces: np.ndarray  # [N, 3], ordered by atom id
    atom_energy: np.ndarray  # [N]
    atom_virial: np.ndarray  # [N, 6] eV, LAMMPS order xx yy zz xy xz yz
    virial: np.ndarray  # [6] eV, from compute pressure NULL virial
    nlocal_min: int
    output: str


def single_point(
    workdir: Path,
    atoms: Atoms,
    model: Path,
    type_names: Sequence[str] = ("Li", "Ge", "P", "S"),
    pair_names: Sequence[str] | None = None,
    nprocs: int = 1,
    processors: str | None = None,
    pair_style: str = "superionic",
    pair_coeffs: Sequence[str] | None = None,
) -> SinglePoint:
    """``pair_coeffs`` replaces the default ``pair_coeff * * model names`` line (hybrid styles)."""
    write_single_point_input(
        workdir, atoms, model, type_names, pair_names, processors, pair_style, pair_coeffs
    )
    run = run_lammps("in.lmp", workdir, nprocs=nprocs)
    return read_single_point(workdir, run, periodic=atoms.pbc.all())


def write_single_point_input(
    workdir: Path,
    atoms: Atoms,
    model: Path,
    type_names: Sequence[str] = ("Li", "Ge", "P", "S"),
    pair_names: Sequence[str] | None = None,
    processors: str | None = None,
    pair_style: str = "superionic",
    pair_coeffs: Sequence[str] | None = None,
) -> None:
    """single_point's ``in.lmp`` and ``structure.data`` in ``workdir``, for runs with other lmp options."""
    workdir.mkdir(parents=True, exist_ok=True)
    write_lammps_data(workdir / "structure.data", atoms, type_names)
    periodic = atoms.pbc.all()
    names = " ".join(pair_names or type_names)
    lines = [
        "units metal",
        "atom_style atomic",
        "atom_modify map yes",
        f"boundary {'p p p' if periodic else 'f f f'}",
        f"processors {processors}" if processors else "",
        "read_data structure.data",
        f"pair_style {pair_style}",
        *(pair_coeffs or [f"pair_coeff * * {model} {names}"]),
        "compute pe_atom all pe/atom",
        "compute virial_atom all stress/atom NULL virial",
        "compute press all pressure NULL virial",
        "thermo_style custom step pe c_press[1] c_press[2] c_press[3] c_press[4] c_press[5] c_press[6] vol",
        "thermo_modify format float %.17g",
        "dump out all custom 1 atoms.dump id fx fy fz c_pe_atom c_virial_atom[*]",
        "dump_modify out format float %.17g sort id",
        "run 0",
    ]
    (workdir / "in.lmp").write_text("\n".join(lines) + "\n")


def read_single_point(workdir: Path, run: LammpsRun, periodic: bool = True) -> SinglePoint:
    """The figures of a finished run of write_single_point_input's input."""
    row = run.thermo()[-1]
    volume = row["Volume"]
    pressure = np.array([row[f"c_press[{k}]"] for k in range(1, 7)])
    table = np.loadtxt(workdir / "atoms.dump", skiprows=9, ndmin=2)
    nlocal_min = int(re.search(r"Nlocal:\s+\S+ ave\s+\S+ max\s+(\S+) min", run.output).group(1))
    return SinglePoint(
        energy=row["PotEng"],
        forces=table[:, 1:4],
        atom_energy=table[:, 4],
        # stress/atom reports -W_i in pressure*volume units
        atom_virial=-table[:, 5:11] / NKTV2P_METAL,
        # the virial pressure is W / V in bar; non-periodic boxes report no meaningful volume
        virial=pressure * volume / NKTV2P_METAL if periodic else np.full(6, np.nan),
        nlocal_min=nlocal_min,
        output=run.output,
    )
