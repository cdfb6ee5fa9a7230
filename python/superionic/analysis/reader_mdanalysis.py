"""Binary trajectories that MDAnalysis reads (DCD, XTC, TRR), with their topology from --structure.

These formats store coordinates and boxes only: the atoms' elements come from the topology
(a PDB or GRO with element columns, a PSF, a LAMMPS data file whose types --types names). DCD
stores its time step in the writer's own unit (LAMMPS: its timestep; CHARMM: AKMA), which
MDAnalysis reads as AKMA, so a DCD's times are not trusted: --timestep-ps is required. Positions
are whatever the writer wrote (LAMMPS `dump dcd` wraps unless `dump_modify unwrap yes`) and are
unwrapped by minimum-image jumps in `load_ion_positions`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from superionic.analysis.reader_base import (
    FRAME_BLOCK,
    Block,
    Reader,
    TrajectoryError,
    TrajectoryHeader,
    resolve_symbols,
)

EXTENSIONS = (".dcd", ".xtc", ".trr")


class MdaReader(Reader):
    def __init__(
        self,
        path: Path,
        structure: str | Path | None,
        type_names: Sequence[str] | None,
        timestep_ps: float | None,
    ) -> None:
        import warnings

        import MDAnalysis as mda

        kind = path.suffix.lower().lstrip(".")
        if structure is None:
            raise TrajectoryError(
                f"{path}: a {kind.upper()} file stores no atoms; pass its topology with --structure "
                "(PDB, GRO, PSF or LAMMPS data)"
            )
        topology = Path(structure)
        if not topology.exists():
            raise TrajectoryError(f"{path}: --structure {topology} does not exist")
        lammps_data = topology.suffix in (".data", ".lmp") or topology.name.startswith("data.")
        options = {"topology_format": "DATA", "atom_style": "id type x y z"} if lammps_data else {}
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # MDAnalysis warns about guessed attributes
                self.universe = mda.Universe(str(topology), str(path), **options)
        except Exception as err:  # MDAnalysis raises many exception types for unreadable input
            what = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise TrajectoryError(
                f"{path}: MDAnalysis cannot read it with topology {topology} ({what}); check that both "
                "files belong to one run"
            ) from err
        atoms = self.universe.atoms
        notes: list[str] = []
        elements = getattr(atoms, "elements", None) if hasattr(atoms, "elements") else None
        stored = [str(e).strip().capitalize() for e in elements] if elements is not None else []
        types = None
        if not stored or not all(stored):
            stored = []
            raw = [str(t) for t in atoms.types] if hasattr(atoms, "types") else []
            if raw and all(t.isdigit() for t in raw):
                types = np.array([int(t) for t in raw])
        symbols = resolve_symbols(
            path,
            len(atoms),
            stored_names=stored or None,
            types=types,
            type_names=type_names,
            structure=None if (stored or types is not None) else topology,
            notes=notes,
        )
        trajectory = self.universe.trajectory
        if kind == "dcd":
            if timestep_ps is None:
                raise TrajectoryError(
                    f"{path}: a DCD file's time step is in its writer's units; pass --timestep-ps, the time "
                    "between frames"
                )
            self.dt = timestep_ps
        else:
            self.dt = None
            if timestep_ps is not None and len(trajectory) > 1:
                stored_dt = float(trajectory.dt)
                if not np.isclose(stored_dt, timestep_ps, rtol=1e-6):
                    raise TrajectoryError(
                        f"{path}: the file's frames are {stored_dt:g} ps apart, --timestep-ps says "
                        f"{timestep_ps:g}; drop --timestep-ps or make them agree"
                    )
        notes.append(f"topology {topology}; positions unwrapped by minimum-image jumps")
        self.path = path
        self.header = TrajectoryHeader(str(path), kind, len(trajectory), symbols, None, notes)

    def blocks(self, size: int = FRAME_BLOCK) -> Iterator[Block]:
        times, positions, cells = [], [], []
        for k, ts in enumerate(self.universe.trajectory):
            if ts.dimensions is None or not np.all(ts.dimensions[:3] > 0):
                raise TrajectoryError(
                    f"{self.path}: frame {k} has no periodic box; transport in a bulk electrolyte needs one"
                )
            times.append(k * self.dt if self.dt is not None else float(ts.time))
            positions.append(np.asarray(ts.positions, dtype=np.float64))
            cells.append(np.asarray(ts.triclinic_dimensions, dtype=np.float64))
            if len(times) == size:
                yield Block(np.array(times), np.array(positions), None, np.array(cells))
                times, positions, cells = [], [], []
        if times:
            yield Block(np.array(times), np.array(positions), None, np.array(cells))
