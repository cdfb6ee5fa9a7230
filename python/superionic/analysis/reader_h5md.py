"""H5MD 1.1 trajectories: this project's fix superionic/h5md, LAMMPS's dump h5md, MDAnalysis's
H5MDWriter, and any writer that follows the specification.

What the specification allows and this reader handles: `box/edges` time-dependent (a group with
`value`, its own `step` or the positions') or fixed (a plain dataset); edges as a vector (the
diagonal of a cuboid) or a 3×3 matrix (box vectors as rows); `step`/`time` as arrays or as scalars
with an `offset` (fixed sampling); `time` absent (then step × time step); `unit` attributes on
positions, edges and time (Å, nm; ps, fs); `species` fixed or per frame, or absent (then the user
names the elements); `image` present or absent (then positions are unwrapped by minimum-image jumps
in `load_ion_positions`, which refuses when frames are too far apart for that).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from superionic.analysis.reader_base import (
    FRAME_BLOCK,
    LENGTH_UNITS,
    TIME_UNITS,
    Block,
    Reader,
    TrajectoryError,
    TrajectoryHeader,
    resolve_symbols,
    unit_factor,
)
from superionic.data.file_faults import compression_of, file_fault


def _release_stale_handles(path: Path) -> None:
    """Readers caught in reference cycles keep their file open until the garbage collector runs.
    HDF5 then hands a new open of the same file that old handle's cached view, so frames appended
    since (an extended run: `superionic md --extend`, the precision planner) are not seen. A
    collection first frees such handles; one still in use is shared, as HDF5 does."""
    import gc

    import h5py

    target = Path(path).resolve()
    for file_id in h5py.h5f.get_obj_ids(types=h5py.h5f.OBJ_FILE):
        try:
            name = Path(file_id.name.decode()).resolve()
        except (ValueError, OSError):
            continue
        if name == target:
            gc.collect()
            return


def _open(path: Path):
    import h5py

    _release_stale_handles(path)
    try:
        # No lock: a trajectory is often analysed while its run is still writing it; frames
        # count only once their step row exists, so a reader never sees a partial frame.
        return h5py.File(path, "r", locking=False)
    except OSError as err:
        if "locking flag" not in str(err):
            raise TrajectoryError(f"{path}: {_open_fault(path, str(err))}") from err
        # HDF5 refuses a second handle on a file this process already holds open (h5py,
        # MDAnalysis) with other locking flags; share that handle's setting instead.
        return h5py.File(path, "r")


def _open_fault(path: Path, message: str) -> str:
    """What HDF5's refusal to open a file means, with the fix."""
    truncated = re.search(
        r"truncated file: eof = (\d+), sblock->base_addr = \d+, stored_eof = (\d+)", message
    )
    if truncated:
        have, want = (int(x) for x in truncated.groups())
        return (
            f"the HDF5 file is truncated: {have} of its {want} bytes are there (a copy cut short?), and "
            "HDF5 cannot open it; copy it again from where the run wrote it"
        )
    if "signature" in message:
        packed = compression_of(path)
        if packed:
            fault = file_fault(path, text=False)
            if fault:
                return f"not an HDF5 file: it is {packed}-compressed, and {fault}"
            return f"not an HDF5 file: it is {packed}-compressed; decompress it, or pass --format"
        return "not an HDF5 file (no HDF5 signature); pass --format with its format"
    reason = message.split("(", 1)[-1].rstrip(")") if "(" in message else message
    return (
        f"the HDF5 file is damaged or truncated (HDF5: {reason}); copy it again from where the run wrote "
        "it, or pass --format if it is not HDF5"
    )


def _attr(obj, name: str):
    value = obj.attrs.get(name) if obj is not None else None
    return value


class H5mdReader(Reader):
    def __init__(
        self,
        path: Path,
        type_names: Sequence[str] | None,
        structure: str | Path | None = None,
        timestep_ps: float | None = None,
    ) -> None:
        import h5py

        self.path = path
        self.file = _open(path)
        notes: list[str] = []
        self.notes = notes
        try:
            self.group = self._particle_group(notes)
            position = self.group.get("position")
            if not isinstance(position, h5py.Group) or not isinstance(position.get("value"), h5py.Dataset):
                raise TrajectoryError(f"{path}: no particles/*/position/value; not an H5MD trajectory")
            self.value = position["value"]
            if self.value.ndim != 3 or self.value.shape[2] != 3:
                raise TrajectoryError(
                    f"{path}: position/value has shape {self.value.shape}, not [frames, atoms, 3]; "
                    "only 3-d trajectories can be analysed"
                )
            n_atoms = self.value.shape[1]
            self.length = unit_factor(path, "position/value", _attr(self.value, "unit"), LENGTH_UNITS)
            self.steps, self.times, n_frames = self._timeline(position, timestep_ps)
            self._box(n_frames)
            image = self.group.get("image")
            self.images = image["value"] if isinstance(image, h5py.Group) and "value" in image else None
            if self.images is not None and self.images.shape[1:] != self.value.shape[1:]:
                raise TrajectoryError(
                    f"{path}: image/value has shape {self.images.shape}; the file is damaged"
                )
            if self.images is not None:
                n_frames = min(n_frames, len(self.images))
            species, stored = self._species(), self._stored_type_names()
            if species is not None and species.dtype.kind in "SUO":  # element names, not type numbers
                stored = [x.decode() if isinstance(x, bytes) else str(x) for x in species.ravel()]
                species = None
            symbols = resolve_symbols(
                path,
                n_atoms,
                stored_names=stored,
                types=species,
                type_names=type_names,
                structure=structure,
                notes=notes,
            )
            charges = self._fixed("charge")
        except (KeyError, ValueError, OSError, TypeError, IndexError) as err:
            if isinstance(err, TrajectoryError):
                raise
            raise TrajectoryError(
                f"{path}: damaged or incomplete H5MD structure ({type(err).__name__}: {err}); "
                "check the writer, or cut the file at its last complete frame"
            ) from err
        if self.images is None:
            notes.append("no image flags: positions unwrapped by minimum-image jumps")
        self.header = TrajectoryHeader(
            str(path),
            "h5md",
            n_frames,
            symbols,
            None if charges is None else np.asarray(charges, dtype=np.float64),
            notes,
        )

    # --- structure ------------------------------------------------------------------------------

    def _particle_group(self, notes: list[str]):
        import h5py

        particles = self.file.get("particles")
        if not isinstance(particles, h5py.Group) or not len(particles):
            raise TrajectoryError(f"{self.path}: no /particles group; not an H5MD trajectory")
        groups = [k for k, g in particles.items() if isinstance(g, h5py.Group) and "position" in g]
        if not groups:
            raise TrajectoryError(f"{self.path}: no particles/*/position; not an H5MD trajectory")
        name = "all" if "all" in groups else groups[0]
        if len(groups) > 1:
            notes.append(
                f"read particles/{name}; the file also holds {', '.join(g for g in groups if g != name)}"
            )
        return particles[name]

    def _timeline(self, position, timestep_ps: float | None) -> tuple[np.ndarray, np.ndarray, int]:
        """Steps and times (ps) of every complete frame, and their count."""
        step = position.get("step")
        time = position.get("time")
        n = len(self.value)
        if step is None:
            raise TrajectoryError(f"{self.path}: position has no step dataset; not an H5MD trajectory")
        if step.shape == ():  # fixed sampling: step[i] = offset + i * step
            steps = float(_attr(step, "offset") or 0) + np.arange(n) * float(step[()])
        else:
            # A frame counts once its step is written (our writer extends step last).
            n = min(n, len(step))
            steps = np.asarray(step[:n], dtype=np.float64)
        if time is None:
            dt = timestep_ps
            params = self.file.get("parameters/superionic")
            if dt is None and params is not None and "timestep_ps" in params.attrs:
                dt = float(params.attrs["timestep_ps"])
            if dt is None:
                raise TrajectoryError(
                    f"{self.path}: position has steps but no time; pass --timestep-ps (ps per MD step)"
                )
            return steps, steps * dt, n
        factor = unit_factor(self.path, "position/time", _attr(time, "unit"), TIME_UNITS)
        if time.shape == ():
            times = float(_attr(time, "offset") or 0) + np.arange(n) * float(time[()])
        else:
            n = min(n, len(time))
            times, steps = np.asarray(time[:n], dtype=np.float64), steps[:n]
            if time.dtype.itemsize < 8:
                times = _exact_single_precision_times(times, steps, self.notes)
        return steps[:n], times[:n] * factor, n

    def _box(self, n_frames: int) -> None:
        import h5py

        box = self.group.get("box")
        if not isinstance(box, h5py.Group):
            raise TrajectoryError(f"{self.path}: no particles/*/box; H5MD requires one, the file is damaged")
        dimension = _attr(box, "dimension")
        if dimension is not None and int(np.asarray(dimension).ravel()[0]) != 3:
            raise TrajectoryError(
                f"{self.path}: box dimension is {dimension}; only 3-d trajectories can be analysed"
            )
        boundary = _attr(box, "boundary")
        if boundary is not None:
            kinds = [b.decode() if isinstance(b, bytes) else str(b) for b in np.asarray(boundary).ravel()]
            if any(k.strip().lower() != "periodic" for k in kinds):
                raise TrajectoryError(
                    f"{self.path}: box boundary is {kinds}; transport in a bulk electrolyte needs a box "
                    "periodic in all three directions"
                )
        edges = box.get("edges")
        if edges is None:
            raise TrajectoryError(f"{self.path}: box has no edges; the periodic cell is unknown")
        if isinstance(edges, h5py.Dataset):  # time-independent (H5MD 1.1 allows it)
            self.edge_value, self.edge_rows = edges, None
            factor = unit_factor(self.path, "box/edges", _attr(edges, "unit"), LENGTH_UNITS)
            self.fixed_cell = _cell(self.path, np.asarray(edges[()], dtype=np.float64) * factor)
        else:
            if "value" not in edges:
                raise TrajectoryError(f"{self.path}: box/edges has no value; the periodic cell is unknown")
            self.edge_value, self.fixed_cell = edges["value"], None
            self.edge_length = unit_factor(
                self.path, "box/edges/value", _attr(self.edge_value, "unit"), LENGTH_UNITS
            )
            self.edge_rows = self._edge_rows(edges, n_frames)

    def _edge_rows(self, edges, n_frames: int) -> np.ndarray:
        """Row of box/edges/value for each position frame (the two may be sampled differently)."""
        own = edges.get("step")
        rows = np.arange(n_frames)
        if own is not None and own.shape != () and own != self.group["position"].get("step"):
            edge_steps = np.asarray(own[: len(self.edge_value)], dtype=np.float64)
            rows = np.searchsorted(edge_steps, self.steps[:n_frames])
            bad = (rows >= len(edge_steps)) | (
                edge_steps[np.minimum(rows, len(edge_steps) - 1)] != self.steps[:n_frames]
            )
            if bad.any():
                first = int(np.argmax(bad))
                raise TrajectoryError(
                    f"{self.path}: no box/edges row for the positions at step {self.steps[first]:g}; "
                    "write the box at every frame that has positions"
                )
        if len(rows) and rows.max() >= len(self.edge_value):
            raise TrajectoryError(
                f"{self.path}: box/edges has {len(self.edge_value)} rows for {n_frames} frames; the file is "
                "truncated: cut it at its last complete frame"
            )
        return rows

    def _species(self) -> np.ndarray | None:
        import h5py

        species = self.group.get("species")
        if species is None:
            return None
        # Ours stores species once; LAMMPS's dump h5md may store it per frame (species/value).
        if isinstance(species, h5py.Group):
            return np.asarray(species["value"][0])
        return np.asarray(species[()])

    def _fixed(self, name: str) -> np.ndarray | None:
        import h5py

        item = self.group.get(name)
        if item is None:
            return None
        return np.asarray(item["value"][0] if isinstance(item, h5py.Group) else item[()])

    def _stored_type_names(self) -> list[str]:
        params = self.file.get("parameters/superionic")
        if params is not None and "type_names" in params.attrs:
            return [n.decode() if isinstance(n, bytes) else str(n) for n in params.attrs["type_names"]]
        return []

    # --- frames ---------------------------------------------------------------------------------

    def blocks(self, size: int = FRAME_BLOCK) -> Iterator[Block]:
        n = self.header.n_frames
        start = 0
        try:
            for start in range(0, n, size):
                stop = min(start + size, n)
                if self.fixed_cell is not None:
                    cells = np.broadcast_to(self.fixed_cell, (stop - start, 3, 3))
                else:
                    rows = self.edge_rows[start:stop]
                    if np.all(np.diff(rows) == 1):
                        raw = self.edge_value[int(rows[0]) : int(rows[-1]) + 1]
                    else:
                        raw = np.stack([self.edge_value[int(r)] for r in rows])
                    cells = _cells(self.path, np.asarray(raw, dtype=np.float64) * self.edge_length)
                yield Block(
                    times_ps=self.times[start:stop],
                    positions=np.asarray(self.value[start:stop], dtype=np.float64) * self.length,
                    images=None if self.images is None else np.asarray(self.images[start:stop]),
                    cells=np.ascontiguousarray(cells),
                )
        except (OSError, KeyError, ValueError) as err:
            if isinstance(err, TrajectoryError):
                raise
            raise TrajectoryError(
                f"{self.path}: frames {start}+ cannot be read ({type(err).__name__}); the file is damaged or "
                "truncated: cut it at its last complete frame"
            ) from err


def _exact_single_precision_times(times: np.ndarray, steps: np.ndarray, notes: list[str]) -> np.ndarray:
    """Times stored in float32 (MDAnalysis) rebuilt from the integer steps.

    0.002 ps × 10⁵ frames in float32 is off by ~1e-5 ps, a 0.5 % jitter in the frame interval that
    the even-spacing check would refuse. When the steps are evenly spaced and a straight line
    through them reproduces every stored time to float32 resolution, that line is the time;
    otherwise the stored times stay (and the check judges them).
    """
    if len(times) < 3 or np.any(np.diff(steps) <= 0):
        return times
    if not np.allclose(np.diff(steps), steps[1] - steps[0], rtol=0, atol=1e-9):
        return times
    slope, intercept = np.polyfit(steps - steps[0], times, 1)
    resolution = 4 * np.finfo(np.float32).eps * max(1.0, float(np.abs(times).max()))
    # float32 pins the interval down to ~1e-9 only; an input file's time step is a short decimal,
    # so the shortest one that still reproduces every stored time is taken.
    for digits in range(1, 18):
        step_time = float(f"{slope:.{digits}g}")
        start = 0.0 if abs(intercept) <= resolution else float(f"{intercept:.{digits}g}")
        line = start + (steps - steps[0]) * step_time
        if np.abs(line - times).max() <= resolution:
            notes.append(f"single-precision times rebuilt from the integer steps ({step_time:g} per step)")
            return line
    return times


def _cell(path: Path, edges: np.ndarray) -> np.ndarray:
    """A 3×3 cell (rows a, b, c) from a fixed box: a vector of 3 edge lengths or a 3×3 matrix."""
    if edges.shape == (3,):
        return np.diag(edges)
    if edges.shape == (3, 3):
        return edges
    raise TrajectoryError(
        f"{path}: box/edges has shape {edges.shape}; H5MD allows 3 edge lengths "
        "or a 3×3 matrix of box vectors"
    )


def _cells(path: Path, edges: np.ndarray) -> np.ndarray:
    """[F, 3, 3] cells from per-frame edges [F, 3] (cuboid) or [F, 3, 3]."""
    if edges.ndim == 2 and edges.shape[1] == 3:
        return np.stack([np.diag(v) for v in edges])
    if edges.ndim == 3 and edges.shape[1:] == (3, 3):
        return edges
    raise TrajectoryError(
        f"{path}: box/edges/value has shape {edges.shape}; H5MD allows [frames, 3] edge lengths or "
        "[frames, 3, 3] box vectors"
    )
