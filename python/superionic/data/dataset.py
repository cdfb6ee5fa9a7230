"""Labelled reference data: reading (anything ase.io reads), validation, splits and batching.

Every problem is reported as a one-line ``DataError`` that names the file, the frame and the fix.
Neighbour lists are built once per frame: positions do not change during training, so the edge
vectors are fixed inputs and forces come from the gradient with respect to them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from ase import Atoms
from ase.io import read

from superionic.data.file_faults import file_fault
from superionic.data.neighbors import neighbor_list

MIN_TRAINING_DISTANCE = 0.5  # Å: closer pairs in reference data are broken frames, not physics
# Per-atom energies of one material (MD, strain) or of mixed compositions on one reference stay within
# a few eV/atom of each other; a frame in kcal/mol or Hartree lands tens of eV/atom away. The relative
# part keeps all-electron totals (thousands of eV/atom) from tripping it.
MAX_ENERGY_SPREAD = 10.0  # eV/atom
MAX_ENERGY_SPREAD_RELATIVE = 0.1
MAX_FORCE = 1000.0  # eV/Å: beyond it, forces are not in eV/Å
METAL_UNIT_NAMES = {"ev", "metal", "ev/a", "ev/angstrom"}


class DataError(ValueError):
    """Reference data that cannot be trained on; the message names file, frame and fix."""


@dataclass(frozen=True)
class LabelKeys:
    """Where each frame's labels are: ASE's calculator keys by default (extxyz ``energy=``,
    ``forces`` column, ``stress=``); other programs' names (MACE and nequip write ``REF_energy``,
    ``REF_forces``, ``REF_stress``) are read from the frame's info and per-atom arrays."""

    energy: str = "energy"
    forces: str = "forces"
    stress: str = "stress"

    def options(self) -> str:
        return f"energy_key={self.energy}, forces_key={self.forces}, stress_key={self.stress}"


DEFAULT_KEYS = LabelKeys()
# The keys load_frames uses when it is given none: a caller that cannot pass them through (a verb
# whose option names them) sets them for the duration of a call with ``label_keys``.
_CURRENT_KEYS: ContextVar[LabelKeys] = ContextVar("superionic_label_keys", default=DEFAULT_KEYS)


@contextmanager
def label_keys(keys: LabelKeys) -> Iterator[None]:
    """Read labels under ``keys`` inside the ``with`` block (``superionic evaluate --energy-key``)."""
    token = _CURRENT_KEYS.set(keys)
    try:
        yield
    finally:
        _CURRENT_KEYS.reset(token)


def _calculator_results(atoms: Atoms) -> dict:
    calc = atoms.calc
    return getattr(calc, "results", {}) if calc is not None else {}


def _energy(atoms: Atoms, keys: LabelKeys) -> float | None:
    results = _calculator_results(atoms)
    if keys.energy == "energy":
        value = results.get("energy", results.get("free_energy", atoms.info.get("energy")))
    else:
        value = results.get(keys.energy, atoms.info.get(keys.energy))
    return None if value is None else float(np.asarray(value).reshape(()))


def _forces(atoms: Atoms, keys: LabelKeys) -> np.ndarray | None:
    value = _calculator_results(atoms).get(keys.forces, atoms.arrays.get(keys.forces))
    return None if value is None else np.asarray(value, dtype=np.float64)


def _stress(atoms: Atoms, keys: LabelKeys) -> np.ndarray | None:
    value = _calculator_results(atoms).get(keys.stress, atoms.info.get(keys.stress))
    return None if value is None else np.asarray(value, dtype=np.float64)


def _candidates(atoms: Atoms, word: str, per_atom: bool) -> list[str]:
    """Keys of a frame that look like ``word`` labels, for the message when none is where asked."""
    names = list(atoms.arrays) if per_atom else list(atoms.info)
    names += [k for k in _calculator_results(atoms) if k not in names]
    return [k for k in names if word in k.lower() and k not in ("numbers", "positions")]


def _missing(where: str, atoms: Atoms, word: str, key: str, per_atom: bool) -> DataError:
    found = _candidates(atoms, word, per_atom)
    option = f"{'forces' if word == 'force' else word}_key"
    hint = (
        f"the frame has {', '.join(repr(k) for k in found)}: name it with data.{option} in the training "
        f"config (superionic evaluate --{option.replace('_', '-')})"
        if found
        else f"label every frame (extxyz '{key}' {'column' if per_atom else 'key'}) or drop it"
    )
    return DataError(f"{where}: no {word if word != 'force' else 'forces'} under '{key}'; {hint}")


@dataclass(frozen=True)
class Frame:
    """One labelled structure in model-ready form (float64; cast per batch)."""

    source: str
    species: torch.Tensor  # [N] int64
    edge_src: torch.Tensor  # [E] int64
    edge_dst: torch.Tensor  # [E] int64
    edge_vec: torch.Tensor  # [E, 3]
    energy: float  # eV
    forces: torch.Tensor  # [N, 3] eV/Å
    stress: torch.Tensor | None  # [3, 3] eV/Å³, ASE sign (tensile positive)
    volume: float  # Å³, 0 if not periodic
    symbols: tuple[str, ...]

    @property
    def n_atoms(self) -> int:
        return int(self.species.shape[0])


def read_structures(path: str | Path, index: str = ":") -> list[Atoms]:
    source = Path(path)
    if not source.exists():
        raise DataError(f"{source}: no such file; check the path in the config")
    if source.is_dir():
        raise DataError(f"{source}: is a directory; give a labelled file (extxyz, ...)")
    if source.stat().st_size == 0:
        raise DataError(f"{source}: the file is empty; give a labelled file (extxyz, ...)")
    try:
        frames = read(str(source), index=index)
    except Exception as err:  # ase raises many types; all mean "not readable as this format"
        fault = file_fault(source)
        if fault:
            raise DataError(f"{source}: {fault}") from err
        what = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise DataError(
            f"{source}: ase.io cannot read it as labelled frames ({type(err).__name__}: {what}); "
            "give an extxyz file (or another format ase.io reads) with energies and forces"
        ) from err
    return frames if isinstance(frames, list) else [frames]


def _declared_units(atoms: Atoms) -> str | None:
    for key in ("units", "energy_units", "energy_unit"):
        if key in atoms.info:
            return str(atoms.info[key])
    return None


def validate(
    frames: Sequence[Atoms],
    source: str,
    species: Sequence[str] | None = None,
    keys: LabelKeys | None = None,
) -> None:
    """Refuse frames without labels, with NaN, in other units, with unknown elements or overlaps."""
    keys = keys or _CURRENT_KEYS.get()
    per_atom = []
    for k, atoms in enumerate(frames):
        where = f"{source}: frame {k}"
        energy = _energy(atoms, keys)
        if energy is None:
            raise _missing(where, atoms, "energy", keys.energy, per_atom=False)
        forces = _forces(atoms, keys)
        if forces is None:
            raise _missing(where, atoms, "force", keys.forces, per_atom=True)
        if forces.shape != (len(atoms), 3):
            raise DataError(
                f"{where}: '{keys.forces}' has shape {list(forces.shape)}, not [{len(atoms)}, 3]; "
                "name the per-atom forces with forces_key"
            )
        if not np.isfinite(energy) or not np.all(np.isfinite(forces)):
            raise DataError(f"{where}: energy or forces contain NaN/inf; remove the frame or relabel it")
        stress = _stress(atoms, keys)
        if stress is not None and stress.size not in (6, 9):
            raise DataError(
                f"{where}: '{keys.stress}' has {stress.size} values, not 6 (Voigt) or 9 (3x3); "
                "name the stress with stress_key"
            )
        if stress is not None and not np.all(np.isfinite(stress)):
            raise DataError(f"{where}: stress contains NaN/inf; remove the frame or relabel it")
        units = _declared_units(atoms)
        if units is not None and units.lower() not in METAL_UNIT_NAMES:
            raise DataError(f"{where}: declares units '{units}'; convert energies to eV and forces to eV/Å")
        if np.abs(forces).max(initial=0.0) > MAX_FORCE:
            raise DataError(
                f"{where}: a force component of {np.abs(forces).max():.3g} exceeds {MAX_FORCE} eV/Å; "
                "forces must be in eV/Å (mixed units?)"
            )
        if species is not None:
            unknown = sorted(set(atoms.get_chemical_symbols()) - set(species))
            if unknown:
                raise DataError(
                    f"{where}: element(s) {', '.join(unknown)} not in the model's species "
                    f"[{', '.join(species)}]; add them to 'species' or drop the frame"
                )
        if len(atoms) > 1:
            pairs = neighbor_list(atoms, MIN_TRAINING_DISTANCE)
            if len(pairs.src):
                i, j = int(pairs.src[0]), int(pairs.dst[0])
                dist = float(np.linalg.norm(pairs.vectors[0]))
                raise DataError(
                    f"{where}: atoms {i} and {j} are {dist:.3g} Å apart (< {MIN_TRAINING_DISTANCE} Å); "
                    "the frame is broken, remove it"
                )
        per_atom.append(energy / len(atoms))
    if per_atom:
        median = float(np.median(per_atom))
        worst = int(np.argmax(np.abs(np.array(per_atom) - median)))
        limit = MAX_ENERGY_SPREAD + MAX_ENERGY_SPREAD_RELATIVE * abs(median)
        if abs(per_atom[worst] - median) > limit:
            raise DataError(
                f"{source}: frame {worst}: energy {per_atom[worst]:.4g} eV/atom is more than "
                f"{limit:.3g} eV/atom from the file's median {median:.4g}; mixed units or "
                "energy references, convert everything to eV on one reference"
            )


def to_frame(
    atoms: Atoms, cutoff: float, species: Sequence[str], source: str, keys: LabelKeys | None = None
) -> Frame:
    keys = keys or _CURRENT_KEYS.get()
    index = {name: k for k, name in enumerate(species)}
    symbols = tuple(atoms.get_chemical_symbols())
    pairs = neighbor_list(atoms, cutoff)
    energy, forces, raw_stress = _energy(atoms, keys), _forces(atoms, keys), _stress(atoms, keys)
    if energy is None or forces is None:
        raise DataError(f"{source}: no energy or forces under {keys.options()}; validate the frames first")
    stress = None
    periodic = bool(atoms.pbc.all())
    if periodic and raw_stress is not None:
        voigt = raw_stress.ravel()
        stress = torch.tensor(_voigt_to_matrix(voigt) if voigt.shape == (6,) else voigt.reshape(3, 3))
    return Frame(
        source=source,
        species=torch.tensor([index[s] for s in symbols], dtype=torch.int64),
        edge_src=torch.from_numpy(pairs.src),
        edge_dst=torch.from_numpy(pairs.dst),
        edge_vec=torch.from_numpy(pairs.vectors),
        energy=energy,
        forces=torch.tensor(forces, dtype=torch.float64),
        stress=stress,
        volume=float(abs(atoms.cell.volume)) if periodic else 0.0,
        symbols=symbols,
    )


def _voigt_to_matrix(v: np.ndarray) -> np.ndarray:
    # ASE's Voigt order: xx yy zz yz xz xy
    xx, yy, zz, yz, xz, xy = v
    return np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])


def load_frames(
    paths: Sequence[str | Path],
    cutoff: float,
    species: Sequence[str] | None = None,
    keys: LabelKeys | None = None,
) -> tuple[list[Frame], list[str]]:
    """Read, validate and convert every frame of every file; species default to those present.
    ``keys``: where the labels are (default: ASE's own keys, or those ``label_keys`` set)."""
    keys = keys or _CURRENT_KEYS.get()
    structures: list[tuple[str, Atoms]] = []
    for path in paths:
        frames = read_structures(path)
        validate(frames, str(path), species, keys)
        structures += [(f"{path}:{k}", atoms) for k, atoms in enumerate(frames)]
    if not structures:
        raise DataError(f"{', '.join(map(str, paths))}: no frames; point 'data' at labelled files")
    if species is None:
        present = {s for _, atoms in structures for s in atoms.get_chemical_symbols()}
        species = sorted(present, key=_atomic_number)
    return [to_frame(atoms, cutoff, species, where, keys) for where, atoms in structures], list(species)


def _atomic_number(symbol: str) -> int:
    from ase.data import atomic_numbers

    return atomic_numbers[symbol]


def split_indices(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A seeded permutation split; the same (n, fraction, seed) always gives the same split."""
    if not 0.0 < val_fraction < 1.0:
        raise DataError(f"val_fraction must lie in (0, 1), got {val_fraction}")
    order = np.random.default_rng(seed).permutation(n)
    n_val = max(1, round(val_fraction * n))
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def data_hash(paths: Sequence[str | Path]) -> str:
    digest = hashlib.sha256()
    for path in sorted(map(str, paths)):
        digest.update(Path(path).read_bytes())
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class Batch:
    """Several frames as one disjoint graph; ``node_frame``/``edge_frame`` map back to frames."""

    species: torch.Tensor
    edge_src: torch.Tensor
    edge_dst: torch.Tensor
    edge_vec: torch.Tensor
    node_frame: torch.Tensor  # [N] frame of each atom
    edge_frame: torch.Tensor  # [E] frame of each edge
    n_atoms: torch.Tensor  # [B]
    energy: torch.Tensor  # [B]
    forces: torch.Tensor  # [N, 3]
    stress: torch.Tensor  # [B, 3, 3] (zeros where absent)
    has_stress: torch.Tensor  # [B] bool
    volume: torch.Tensor  # [B]

    @property
    def n_frames(self) -> int:
        return int(self.n_atoms.shape[0])


def collate(frames: Sequence[Frame], dtype: torch.dtype = torch.float64) -> Batch:
    offsets = np.cumsum([0] + [f.n_atoms for f in frames[:-1]])
    zero = torch.zeros(3, 3, dtype=dtype)
    return Batch(
        species=torch.cat([f.species for f in frames]),
        edge_src=torch.cat([f.edge_src + int(o) for f, o in zip(frames, offsets, strict=True)]),
        edge_dst=torch.cat([f.edge_dst + int(o) for f, o in zip(frames, offsets, strict=True)]),
        edge_vec=torch.cat([f.edge_vec for f in frames]).to(dtype),
        node_frame=torch.cat([torch.full((f.n_atoms,), k, dtype=torch.int64) for k, f in enumerate(frames)]),
        edge_frame=torch.cat(
            [torch.full((f.edge_src.shape[0],), k, dtype=torch.int64) for k, f in enumerate(frames)]
        ),
        n_atoms=torch.tensor([f.n_atoms for f in frames], dtype=torch.int64),
        energy=torch.tensor([f.energy for f in frames], dtype=dtype),
        forces=torch.cat([f.forces for f in frames]).to(dtype),
        stress=torch.stack([f.stress.to(dtype) if f.stress is not None else zero for f in frames]),
        has_stress=torch.tensor([f.stress is not None for f in frames]),
        volume=torch.tensor([f.volume for f in frames], dtype=dtype),
    )
