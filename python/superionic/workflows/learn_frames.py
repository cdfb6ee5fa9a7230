"""Frames for active learning: read from this project's H5MD at chosen steps, labelled, written.

The labelled file has the format ``superionic data generate`` writes (extended XYZ, energy, forces
and stress in a single-point calculator, provenance in ``atoms.info``), with ``sampling =
active_learning`` and the round, temperature, MD step and the committee deviation of the frame.
Labelling is the slow part (a universal potential per frame), so frames are appended one by one to
a ``.partial`` file and a rerun after a kill labels only those not yet in it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.io import read, write

from superionic.data.generate import label_frame, provenance
from superionic.data.labellers import Labeller
from superionic.train.config import ConfigError


class FrameError(ConfigError):
    """A trajectory that does not hold the frames active learning needs."""


def trajectory_steps(path: str | Path) -> np.ndarray:
    """Steps of every complete frame of a superionic/h5md trajectory; none when the run wrote no
    trajectory (``devi_stop`` ended it during equilibration, before the trajectory starts)."""
    import h5py

    if not Path(path).exists():
        return np.zeros(0, dtype=np.int64)
    with h5py.File(path, "r", locking=False) as handle:
        group = _group(handle, path)
        return np.asarray(group["position/step"][()], dtype=np.int64)


def _group(handle, path: str | Path):
    particles = handle.get("particles")
    if particles is None or not len(particles):
        raise FrameError(f"{path}: no /particles group; not a superionic md trajectory")
    name = "all" if "all" in particles else next(iter(particles))
    return particles[name]


def read_frames(path: str | Path, steps: Sequence[int]) -> list[Atoms]:
    """The configurations at ``steps`` (each must be a frame), positions as stored (in the box),
    elements from the file's type names, atoms in ascending ID as in the data file."""
    import h5py

    with h5py.File(path, "r", locking=False) as handle:
        group = _group(handle, path)
        # A frame counts once its step row exists (the writer extends it last).
        stored = np.asarray(group["position/step"][()], dtype=np.int64)
        params = handle.get("parameters/superionic")
        if params is None or "type_names" not in params.attrs:
            raise FrameError(f"{path}: no parameters/superionic type_names; run MD with superionic md")
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in params.attrs["type_names"]]
        types = np.asarray(group["species"][()], dtype=np.int64)
        symbols = [names[t - 1] for t in types]
        frames = []
        for step in steps:
            hits = np.flatnonzero(stored == int(step))
            if not hits.size:
                raise FrameError(f"{path}: no frame at step {step}; dump_every must divide the step")
            k = int(hits[-1])
            positions = np.asarray(group["position/value"][k], dtype=np.float64)
            edges = group["box/edges"]
            cell = np.asarray(edges["value"][k] if "value" in edges else edges[()], dtype=np.float64)
            frames.append(Atoms(symbols, positions=positions, cell=cell.reshape(3, 3), pbc=True))
    return frames


def labelled_count(partial: Path) -> int:
    """Frames already complete in a partial file (a kill mid-write leaves a torn last frame, which
    is cut off: the file is rewritten with the complete ones)."""
    if not partial.exists() or partial.stat().st_size == 0:
        return 0
    try:
        frames = read(partial, ":", format="extxyz")
    except Exception:  # a torn last frame; keep what reads
        frames = _complete_prefix(partial)
        tmp = partial.with_name(partial.name + ".tmp")
        write(tmp, frames, format="extxyz") if frames else tmp.write_text("")
        os.replace(tmp, partial)
    return len(frames)


def _complete_prefix(partial: Path) -> list[Atoms]:
    lines = partial.read_text().splitlines(keepends=True)
    frames, k = [], 0
    while k < len(lines):
        try:
            n = int(lines[k].strip())
        except ValueError:
            break
        if k + 2 + n > len(lines):
            break
        chunk = "".join(lines[k : k + 2 + n])
        tmp = partial.with_name(partial.name + ".chunk")
        tmp.write_text(chunk)
        try:
            frames.append(read(tmp, format="extxyz"))
        except Exception:
            break
        finally:
            tmp.unlink(missing_ok=True)
        k += 2 + n
    return frames


def finished_file(output: Path, frames: int) -> bool:
    """True when ``output`` holds all ``frames`` (written by a run killed before it said so)."""
    partial = output.with_name(output.name + ".partial")
    return output.exists() and not partial.exists() and len(read(output, ":", format="extxyz")) == frames


def label_and_write(
    frames: Sequence[Atoms],
    infos: Sequence[dict[str, Any]],
    labeller: Labeller,
    output: Path,
    base_info: dict[str, Any],
    seed: int,
    on_frame: Callable[[int, int], None] | None = None,
) -> Path:
    """Label ``frames`` (those not yet in ``output.partial``), then move the file to ``output``."""
    partial = output.with_name(output.name + ".partial")
    if finished_file(output, len(frames)):
        return output
    done = labelled_count(partial)
    common = provenance(base_info, labeller, seed)
    for k in range(done, len(frames)):
        labelled = label_frame(frames[k].copy(), labeller, {**common, **infos[k]})
        write(partial, labelled, format="extxyz", append=True)
        if on_frame is not None:
            on_frame(k + 1, len(frames))
    if not partial.exists():
        partial.write_text("")
    os.replace(partial, output)
    return output
