"""Where a labelling run stood after its last written frame, so a killed run continues from there.

The labeller's MD is the slowest stage of the product on a CPU (hours for a few hundred frames), so
a kill must not cost more than the frame in progress. After every frame appended to the
``<output>.partial`` file, the run writes ``<output>.partial.state.json`` (atomically: a temporary
file renamed over the old one) with the number of frames in the partial file, the phase (which
temperature's MD, or the strained frames), the MD step, positions, momenta and cell of the
running MD, and the state of the one random generator the run draws from. A rerun with the same
settings keeps the frames, drops a frame written after the state (the kill fell between the two
writes) or cut off mid-write, restores the generator and the MD, and goes on: every later frame is
the one the uninterrupted run would have made.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms


def state_path(partial: Path) -> Path:
    return partial.with_name(partial.name + ".state.json")


def fingerprint(settings: dict[str, Any]) -> str:
    """What decides the frames; a state written under other settings is not resumed."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass
class RunState:
    fingerprint: str
    frames: int  # frames in the partial file when this state was written
    phase: str  # "md" or "strain"
    index: int  # md: the temperature's index; strain: strained frames done
    step: int  # md: the MD step of the last frame
    rng: dict[str, Any]  # numpy bit generator state
    positions: list[list[float]] | None = None
    momenta: list[list[float]] | None = None
    cell: list[list[float]] | None = None
    extra: dict[str, Any] | None = None  # what else a run needs (the reference MD's unwrapping, thermostat)

    @classmethod
    def capture(
        cls,
        fingerprint: str,
        frames: int,
        phase: str,
        index: int,
        rng: np.random.Generator,
        atoms: Atoms | None = None,
        step: int = 0,
    ) -> RunState:
        return cls(
            fingerprint=fingerprint,
            frames=frames,
            phase=phase,
            index=index,
            step=step,
            rng=rng.bit_generator.state,
            positions=atoms.get_positions().tolist() if atoms is not None else None,
            momenta=atoms.get_momenta().tolist() if atoms is not None else None,
            cell=atoms.cell.array.tolist() if atoms is not None else None,
        )

    def save(self, path: Path) -> None:
        tmp = path.with_name(path.name + ".tmp")
        # repr-exact floats (json writes the shortest round-trip form), so positions come back bit for bit
        tmp.write_text(json.dumps(asdict(self)))
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> RunState | None:
        if not path.is_file():
            return None
        try:
            return cls(**json.loads(path.read_text()))
        except (json.JSONDecodeError, TypeError):
            return None

    def restore_rng(self, rng: np.random.Generator) -> None:
        rng.bit_generator.state = self.rng

    def restore_atoms(self, atoms: Atoms) -> None:
        assert self.positions is not None and self.momenta is not None and self.cell is not None
        atoms.set_cell(np.array(self.cell))
        atoms.set_positions(np.array(self.positions))
        atoms.set_momenta(np.array(self.momenta))


def read_complete_frames(partial: Path, keep: int) -> list[Atoms]:
    """The first ``keep`` frames of an extxyz partial file, which is rewritten to hold exactly them
    (a frame written after the state, or one cut off by the kill, goes)."""
    from ase.io import iread, write

    frames: list[Atoms] = []
    try:
        for atoms in iread(partial, index=":", format="extxyz"):
            frames.append(atoms)
            if len(frames) == keep:
                break
    except Exception:  # a frame cut off mid-write: what came before it is kept
        pass
    if len(frames) < keep:
        return frames
    tmp = partial.with_name(partial.name + ".tmp")
    tmp.unlink(missing_ok=True)
    for atoms in frames:
        write(tmp, atoms, format="extxyz", append=True)
    if not frames:
        tmp.write_text("")
    os.replace(tmp, partial)
    return frames
