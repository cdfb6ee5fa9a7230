"""Neighbour graphs in the layout of the model contract, built from ASE ``Atoms``.

The edge list is ordered pairs (i, j) with |r_j + S·cell − r_i| < cutoff over all periodic images
S, found with vesin (see ``neighbors.py``; it handles cells smaller than twice the cutoff).
In Python every atom is owned (n_local = N): periodic images are folded onto their owners, which
is exactly what LAMMPS's ghost atoms plus reverse communication do.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from ase import Atoms

from superionic.data.neighbors import neighbor_list

MIN_DISTANCE = 0.1  # Å; closer pairs are unphysical and make any model blow up


class GraphError(ValueError):
    """The structure cannot be turned into a model input (overlap, unknown element)."""


@dataclass(frozen=True)
class Graph:
    edge_vec: np.ndarray  # [E, 3] float64, r_j − r_i (Å)
    edge_src: np.ndarray  # [E] int64, i
    edge_dst: np.ndarray  # [E] int64, j
    species: np.ndarray  # [N] int64, index into the model's species list
    n_local: int
    volume: float  # Å³, 0 for a non-periodic structure

    @property
    def n_atoms(self) -> int:
        return int(self.species.shape[0])


def species_indices(symbols: Sequence[str], species_names: Sequence[str], source: str) -> np.ndarray:
    index = {name: k for k, name in enumerate(species_names)}
    unknown = sorted(set(symbols) - set(index))
    if unknown:
        raise GraphError(
            f"{source}: element(s) {', '.join(unknown)} not in the model's species "
            f"[{', '.join(species_names)}]; train a model that includes them."
        )
    return np.array([index[s] for s in symbols], dtype=np.int64)


def build_graph(
    atoms: Atoms, cutoff: float, species_names: Sequence[str], source: str = "structure"
) -> Graph:
    species = species_indices(atoms.get_chemical_symbols(), species_names, source)
    pairs = neighbor_list(atoms, cutoff)
    src, dst, vec = pairs.src, pairs.dst, pairs.vectors
    if len(vec):
        dist = np.linalg.norm(vec, axis=1)
        worst = int(np.argmin(dist))
        if dist[worst] < MIN_DISTANCE:
            raise GraphError(
                f"{source}: atoms {src[worst]} and {dst[worst]} are {dist[worst]:.3g} Å apart "
                f"(minimum {MIN_DISTANCE} Å); fix the overlapping positions."
            )
    volume = float(abs(atoms.cell.volume)) if atoms.pbc.all() else 0.0
    return Graph(
        edge_vec=np.ascontiguousarray(vec, dtype=np.float64),
        edge_src=src.astype(np.int64),
        edge_dst=dst.astype(np.int64),
        species=species,
        n_local=len(atoms),
        volume=volume,
    )
