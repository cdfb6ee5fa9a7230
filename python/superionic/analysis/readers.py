"""Trajectory readers: unwrapped, drift-corrected positions of one ion species, streamed.

Formats: H5MD (this project's fix superionic/h5md, LAMMPS's `dump h5md`, MDAnalysis and any H5MD 1.1
writer: `reader_h5md`), VASP vasprun.xml (`reader_vasprun`), DCD/XTC/TRR with a topology
(`reader_mdanalysis`), LAMMPS `dump custom` text, and anything ASE reads as a trajectory (extxyz,
.traj, XDATCAR). Every reader yields
frame blocks of wrapped-or-unwrapped positions; `load_ion_positions` then unwraps (images, or
minimum-image jumps between consecutive frames when a format has none), removes the drift of the
whole system's centre of mass, and keeps the chosen ion, frame block by frame block. Large
trajectories go to a disk-backed array, never wholly into memory.
"""

from __future__ import annotations

import os
import re
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase.data import atomic_masses, atomic_numbers

from superionic.analysis.reader_base import (
    FRAME_BLOCK,
    Block,
    Reader,
    TrajectoryError,
    TrajectoryHeader,
    check_elements,
    resolve_symbols,
)
from superionic.analysis.reader_h5md import H5mdReader
from superionic.analysis.reader_mdanalysis import EXTENSIONS as MDA_EXTENSIONS
from superionic.analysis.reader_mdanalysis import MdaReader
from superionic.analysis.reader_vasprun import VasprunReader
from superionic.analysis.trajectory import _JUMP_WARNING_FRACTION, unwrap
from superionic.data.file_faults import file_fault

MEMMAP_BYTES = 256 * 2**20  # beyond this the ion positions live in a temporary file

__all__ = [
    "Block",
    "IonTrajectory",
    "Reader",
    "TrajectoryError",
    "TrajectoryHeader",
    "load_ion_positions",
    "open_trajectory",
]


# --- LAMMPS dump custom text -------------------------------------------------------------------


class DumpCustomReader(Reader):
    """Columns id, type and xu yu zu, or x y z with ix iy iz (or without: unwrapped by jumps)."""

    def __init__(
        self,
        path: Path,
        type_names: Sequence[str] | None,
        timestep_ps: float | None,
        structure: str | Path | None = None,
    ) -> None:
        if not type_names and structure is None:
            raise TrajectoryError(
                f"{path}: a dump custom file has types, not elements; pass --types Li Ge P S "
                "(or --structure FILE with the same atoms)"
            )
        if timestep_ps is None:
            raise TrajectoryError(f"{path}: a dump custom file has steps, not times; pass --timestep-ps")
        self.path, self.dt = path, timestep_ps
        first = next(self._frames(), None)
        if first is None:
            raise TrajectoryError(
                f"{path}: no complete frame (no 'ITEM: TIMESTEP'); not a LAMMPS dump custom file"
            )
        _, _, table, columns = first
        missing = [c for c in ("id", "type") if c not in columns]
        if missing:
            raise TrajectoryError(
                f"{path}: dump columns {' '.join(columns)} lack {' '.join(missing)}; "
                "dump id type x y z ix iy iz"
            )
        order = np.argsort(table[:, columns.index("id")])
        types = table[order, columns.index("type")].astype(int)
        n_frames = sum(1 for _ in self._frames())
        notes: list[str] = []
        symbols = resolve_symbols(
            path, len(types), types=types, type_names=type_names, structure=structure, notes=notes
        )
        self.header = TrajectoryHeader(str(path), "lammps-dump-custom", n_frames, symbols, notes=notes)

    def _frames(self) -> Iterator[tuple[int, np.ndarray, np.ndarray, list[str]]]:
        with open(self.path) as handle:
            lines = iter(handle)
            for line in lines:
                if not line.startswith("ITEM: TIMESTEP"):
                    continue
                try:
                    step = int(next(lines))
                    next(lines)
                    n = int(next(lines))
                    box_header = next(lines)
                    bounds = np.array([[float(v) for v in next(lines).split()] for _ in range(3)])
                    columns = next(lines).split()[2:]
                    rows = [next(lines) for _ in range(n)]
                except (StopIteration, ValueError) as err:
                    raise TrajectoryError(
                        f"{self.path}: truncated or malformed frame after step line '{line.strip()}' "
                        f"({type(err).__name__}); cut the file at the last complete frame"
                    ) from err
                table = np.loadtxt(rows, ndmin=2)
                if table.shape[0] != n:
                    raise TrajectoryError(
                        f"{self.path}: frame at step {step} has {table.shape[0]} of {n} atoms"
                    )
                yield step, _dump_cell(bounds, "xy" in box_header), table, columns

    def blocks(self, size: int = FRAME_BLOCK) -> Iterator[Block]:
        times, positions, images, cells = [], [], [], []
        for step, cell, table, columns in self._frames():
            table = table[np.argsort(table[:, columns.index("id")])]
            if {"xu", "yu", "zu"} <= set(columns):
                pos = table[:, [columns.index(c) for c in ("xu", "yu", "zu")]]
                img = np.zeros_like(pos, dtype=np.int64)
            elif {"x", "y", "z"} <= set(columns):
                pos = table[:, [columns.index(c) for c in ("x", "y", "z")]]
                img = (
                    table[:, [columns.index(c) for c in ("ix", "iy", "iz")]].astype(np.int64)
                    if {"ix", "iy", "iz"} <= set(columns)
                    else None
                )
            else:
                raise TrajectoryError(f"{self.path}: needs columns xu yu zu, or x y z (with ix iy iz)")
            times.append(step * self.dt)
            positions.append(pos)
            images.append(img)
            cells.append(cell)
            if len(times) == size:
                yield _block(times, positions, images, cells)
                times, positions, images, cells = [], [], [], []
        if times:
            yield _block(times, positions, images, cells)


def _block(times, positions, images, cells) -> Block:
    return Block(
        times_ps=np.array(times),
        positions=np.array(positions),
        images=None if any(i is None for i in images) else np.array(images),
        cells=np.array(cells),
    )


def _dump_cell(bounds: np.ndarray, tilted: bool) -> np.ndarray:
    if not tilted:
        return np.diag(bounds[:, 1] - bounds[:, 0])
    (xlo_b, xhi_b, xy), (ylo_b, yhi_b, xz), (zlo, zhi, yz) = bounds
    lx = (xhi_b - max(0.0, xy, xz, xy + xz)) - (xlo_b - min(0.0, xy, xz, xy + xz))
    ly = (yhi_b - max(0.0, yz)) - (ylo_b - min(0.0, yz))
    return np.array([[lx, 0, 0], [xy, ly, 0], [xz, yz, zhi - zlo]])


# --- ASE-readable trajectories (extxyz, .traj, XDATCAR) ------------------------------------------


class AseReader(Reader):
    def __init__(self, path: Path, fmt: str | None, timestep_ps: float | None) -> None:
        from ase.io import iread

        self.path, self.fmt = path, fmt
        self._iread = iread
        n_frames = 0
        first = None
        for atoms in self._frames():
            first = first if first is not None else atoms
            n_frames += 1
        if first is None:
            raise TrajectoryError(f"{path}: no frame; the file is empty or not a {fmt or 'trajectory'}")
        self.dt = timestep_ps
        times = first.info.get("time_ps")
        if times is None and timestep_ps is None:
            raise TrajectoryError(
                f"{path}: frames carry no time (info 'time_ps'); pass --timestep-ps, the time between frames"
            )
        if not first.pbc.all() or abs(first.cell.volume) < 1e-9:
            raise TrajectoryError(
                f"{path}: frames have no periodic cell (pbc {first.pbc.tolist()}); transport in a bulk "
                "electrolyte needs a box periodic in all three directions"
            )
        kind = "vasp-xdatcar" if (fmt == "vasp-xdatcar" or "XDATCAR" in path.name) else (fmt or "ase")
        self.header = TrajectoryHeader(str(path), kind, n_frames, first.get_chemical_symbols())

    def _frames(self):
        """Frames as ase.io reads them; any failure of ase.io becomes one line naming the frame."""
        k = 0
        try:
            for atoms in self._iread(str(self.path), index=":", format=self.fmt):
                yield atoms
                k += 1
        except TrajectoryError:
            raise
        except Exception as err:  # ase.io raises many exception types for unreadable input
            fault = file_fault(self.path)
            if fault:
                after = f" (after {k} complete frame{'s' if k != 1 else ''})" if k else ""
                raise TrajectoryError(f"{self.path}: {fault}{after}") from err
            what = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            where = "" if k == 0 else f" after frame {k} (truncated?)"
            raise TrajectoryError(
                f"{self.path}: ase.io cannot read it as {self.fmt or 'a trajectory'}{where} ({what}); "
                "check the file, or name its format with --format"
            ) from err

    def blocks(self, size: int = FRAME_BLOCK) -> Iterator[Block]:
        times, positions, cells = [], [], []
        for k, atoms in enumerate(self._frames()):
            if k >= self.header.n_frames:
                break
            times.append(float(atoms.info["time_ps"]) if "time_ps" in atoms.info else k * self.dt)
            positions.append(atoms.positions.copy())
            cells.append(atoms.cell.array.copy())
            if len(times) == size:
                yield Block(np.array(times), np.array(positions), None, np.array(cells))
                times, positions, cells = [], [], []
        if times:
            yield Block(np.array(times), np.array(positions), None, np.array(cells))


# Names accepted by --format, beyond any ase.io format name.
FORMATS = {
    "h5md": "h5md",
    "lammps-dump": "lammps-dump",
    "vasprun": "vasprun",
    "vasp-xml": "vasprun",
    "xdatcar": "vasp-xdatcar",
    "vasp-xdatcar": "vasp-xdatcar",
    "extxyz": "extxyz",
    "traj": "traj",
    "dcd": "mdanalysis",
    "xtc": "mdanalysis",
    "trr": "mdanalysis",
}


def _guess_format(source: Path) -> str | None:
    """The format a file's name or first bytes say it is; None to let ase.io decide."""
    name = source.name.lower()
    if name.endswith((".h5", ".h5md", ".hdf5", ".hdf")):
        return "h5md"
    if re.search(r"\.(dump|lammpstrj)$", name):
        return "lammps-dump"
    if "xdatcar" in name:
        return "vasp-xdatcar"
    if name.endswith(MDA_EXTENSIONS):
        return "mdanalysis"
    with open(source, "rb") as handle:
        head = handle.read(4096)
    if head.startswith(b"\x89HDF\r\n\x1a\n"):
        return "h5md"
    if name.endswith(".xml") and b"<modeling" in head:
        return "vasprun"
    if name.endswith(".xml"):
        return "vasprun" if "vasprun" in name else None
    if head.startswith(b"ITEM: TIMESTEP"):
        return "lammps-dump"
    return None


def open_trajectory(
    path: str | Path,
    type_names: Sequence[str] | None = None,
    timestep_ps: float | None = None,
    fmt: str | None = None,
    structure: str | Path | None = None,
) -> Reader:
    """A reader for ``path``: H5MD, LAMMPS dump custom, vasprun.xml, XDATCAR, DCD/XTC/TRR (with a
    topology), or anything ase.io reads.

    ``type_names`` (--types): elements of the file's atom types, or of each atom for files that
    store none; ``structure`` (--structure): a structure file with the same atoms in the same order,
    for files without elements; ``timestep_ps`` (--timestep-ps): time between frames (or MD steps,
    for formats that store steps) when the file stores none; ``fmt`` (--format): the format, when
    the name does not tell.
    """
    source = Path(path)
    if not source.exists():
        raise TrajectoryError(f"{source}: no such trajectory file")
    if source.is_dir():
        raise TrajectoryError(f"{source}: is a directory; give the trajectory file inside it")
    if source.stat().st_size == 0:
        raise TrajectoryError(f"{source}: empty file; the run wrote nothing, or the copy failed")
    if type_names is not None:
        check_elements(source, type_names, "--types")
    if fmt:
        from ase.io.formats import ioformats

        if fmt.lower() not in FORMATS and fmt not in ioformats:
            raise TrajectoryError(
                f"{source}: unknown --format '{fmt}'; use h5md, lammps-dump, vasprun, xdatcar, extxyz, traj, "
                "dcd, xtc, trr, or an ase.io format name"
            )
    kind = FORMATS.get(fmt.lower(), fmt) if fmt else _guess_format(source)
    if kind == "h5md":
        return H5mdReader(source, type_names, structure, timestep_ps)
    if kind == "lammps-dump":
        return DumpCustomReader(source, type_names, timestep_ps, structure)
    if kind == "vasprun":
        return _names_own_elements(VasprunReader(source, timestep_ps), type_names, structure)
    if kind == "mdanalysis":
        return MdaReader(source, structure, type_names, timestep_ps)
    if kind is None:
        from ase.io.formats import UnknownFileTypeError, filetype

        try:
            filetype(str(source), guess=False)
        except Exception as err:  # ase.io reads the first bytes, through any decompressor
            fault = file_fault(source)
            if fault:
                raise TrajectoryError(f"{source}: {fault}") from err
            if not isinstance(err, UnknownFileTypeError | OSError | ValueError):
                raise
            raise TrajectoryError(
                f"{source}: unknown trajectory format; pass --format (h5md, lammps-dump, vasprun, xdatcar, "
                "extxyz, traj, or an ase.io format name)"
            ) from err
    return _names_own_elements(AseReader(source, kind, timestep_ps), type_names, structure)


def _names_own_elements(
    reader: Reader, type_names: Sequence[str] | None, structure: str | Path | None
) -> Reader:
    """Formats that store each atom's element: --types/--structure are not used, and the notes say so."""
    if type_names or structure is not None:
        reader.header.notes.append("--types/--structure not used: the file names each atom's element")
    return reader


# --- unwrapping, drift removal, ion selection ----------------------------------------------------


@dataclass
class IonTrajectory:
    """Unwrapped positions of one ion species, centre-of-mass drift of the whole system removed."""

    path: str
    ion: str
    times_ps: np.ndarray  # [T]
    positions: np.ndarray  # [T, n_ion, 3] view, float64 (float32 np.memmap for large files), time-contiguous
    mean_volume_A3: float
    n_atoms_total: int
    charges: np.ndarray | None  # of the ions, if the file stores charges
    unwrapped_by: str  # "images" | "unwrapped coordinates" | "minimum-image jumps"
    drift_removed: str = "centre of mass of all atoms (atomic masses)"

    def close(self) -> None:
        base = self.positions.base if self.positions.base is not None else self.positions
        if isinstance(base, np.memmap):
            filename = base.filename
            del base
            del self.positions
            if filename and os.path.exists(filename):
                os.remove(filename)


def load_ion_positions(reader: Reader, ion: str, scratch: str | Path | None = None) -> IonTrajectory:
    header = reader.header
    symbols = np.array(header.symbols)
    selected = np.nonzero(symbols == ion)[0]
    if len(selected) == 0:
        present = ", ".join(sorted(set(header.symbols)))
        raise TrajectoryError(f"{header.path}: no {ion} atoms; the trajectory holds {present}")
    if header.n_frames < 2:
        raise TrajectoryError(
            f"{header.path}: {header.n_frames} frame(s); transport needs a trajectory of many frames"
        )
    check_elements(header.path, sorted(set(header.symbols)), "the trajectory")
    masses = np.array([atomic_masses[atomic_numbers[s]] for s in header.symbols])
    total_mass = masses.sum()
    nbytes = header.n_frames * len(selected) * 3 * 8
    shape = (len(selected), 3, header.n_frames)
    if nbytes > MEMMAP_BYTES:
        # Large: float32 in a temporary file (half the bytes; 1e-5 Å resolution at 100 Å, far below
        # thermal motion), cast to float64 chunk by chunk in the analysis.
        handle = tempfile.NamedTemporaryFile(
            dir=scratch, prefix="superionic_ions_", suffix=".f32", delete=False
        )
        handle.close()
        storage = np.memmap(handle.name, dtype=np.float32, mode="w+", shape=shape)
    else:
        storage = np.empty(shape)
    # Stored time-last ([ion, xyz, frame]) and handed out as a [frame, ion, xyz] view: the FFTs run
    # along time over chunks of ions, which then read contiguous memory.
    out = storage.transpose(2, 0, 1)
    times = np.empty(header.n_frames)
    volumes = []
    previous = None  # last unwrapped frame of all atoms and its cell (for jump unwrapping)
    com0 = None
    method = None
    frame = 0
    for block in reader.blocks():
        if not np.all(np.isfinite(block.positions)):
            raise TrajectoryError(
                f"{header.path}: NaN or infinite positions near frame {frame}; the run blew up"
            )
        if block.images is not None:
            unwrapped = block.positions + np.matmul(block.images.astype(np.float64), block.cells)
            method = "images"
        else:
            unwrapped, previous = _unwrap_jumps(block.positions, block.cells, previous, header.path, frame)
            method = "minimum-image jumps"
        com = np.matmul(masses, unwrapped) / total_mass  # [f, 3]; BLAS, unlike einsum here
        if com0 is None:
            com0 = com[0].copy()
        n = len(block.times_ps)
        out[frame : frame + n] = unwrapped[:, selected, :] - (com - com0)[:, None, :]
        times[frame : frame + n] = block.times_ps
        volumes.extend(abs(np.linalg.det(block.cells)))
        frame += n
    steps = np.diff(times)
    if np.any(steps <= 0) or not np.allclose(steps, steps[0], rtol=1e-6, atol=1e-9):
        raise TrajectoryError(
            f"{header.path}: frames are not evenly spaced in time (intervals {steps.min():.6g} to "
            f"{steps.max():.6g} ps); analyse one evenly sampled run at a time"
        )
    charges = header.charges[selected] if header.charges is not None else None
    return IonTrajectory(
        header.path, ion, times, out, float(np.mean(volumes)), len(symbols), charges, method or "images"
    )


def _unwrap_jumps(
    positions: np.ndarray,
    cells: np.ndarray,
    previous: tuple[np.ndarray, np.ndarray] | None,
    path: str,
    first_frame: int,
) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """Unwrap one block of wrapped positions by minimum-image jumps, continuing from the previous block.

    ``previous`` is the previous block's last unwrapped frame and its cell, so jumps across block
    boundaries are unwrapped too. A fixed cell uses `trajectory.unwrap`; a cell that changes
    (NPT) is unwrapped in fractional coordinates, s(t) = r(t) · C(t)⁻¹, with the same rule on Δs,
    and turned back with each frame's own cell: the result equals position + image · C(t), what
    image flags would give. Where an atom moves nearly half a cell between frames the image is a
    guess: refused, not warned about. Already-unwrapped coordinates pass through unchanged.
    """
    if previous is not None:
        positions = np.concatenate([previous[0][None], positions])
        cells = np.concatenate([previous[1][None], cells])
    if np.allclose(cells, cells[0], rtol=0, atol=1e-9):
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)
            try:
                out = unwrap(positions, cells[0])
            except RuntimeWarning as err:
                raise TrajectoryError(
                    f"{path}: frames {first_frame}+: {err}; "
                    "or write image flags (ix iy iz) or unwrapped coordinates"
                ) from err
    else:
        if np.any(np.abs(np.linalg.det(cells)) < 1e-9):
            raise TrajectoryError(
                f"{path}: frames {first_frame}+ include a cell of zero volume; the file is damaged"
            )
        fractional = np.einsum("fni,fij->fnj", positions, np.linalg.inv(cells))
        steps = np.diff(fractional, axis=0)
        steps -= np.round(steps)
        if steps.size and np.abs(steps).max() > _JUMP_WARNING_FRACTION:
            raise TrajectoryError(
                f"{path}: frames {first_frame}+: an atom moves almost half a cell between frames; "
                "unwrapping may pick the wrong image: save frames more often, or write image flags "
                "(ix iy iz) or unwrapped coordinates"
            )
        fractional = np.concatenate([fractional[:1], fractional[:1] + np.cumsum(steps, axis=0)])
        out = np.einsum("fni,fij->fnj", fractional, cells)
    if previous is not None:
        out, cells = out[1:], cells[1:]
    return out, (out[-1].copy(), cells[-1].copy())
