"""From the contract's outputs to energies, forces and virials, the way the pair style does it.

edge_vec = r_j − r_i and F = −∂E/∂r give F_i += edge_grad and F_j −= edge_grad. The virial is
W = −Σ_e edge_vec ⊗ edge_grad (LAMMPS's Σ r_ij ⊗ f_i with r_ij = r_i − r_j), each edge's share split
half to i and half to j for the per-atom virial. ASE's stress is −W / V. See docs/conventions.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from superionic.data.graph import Graph

VOIGT_LAMMPS = ((0, 0), (1, 1), (2, 2), (0, 1), (0, 2), (1, 2))  # xx yy zz xy xz yz
VOIGT_ASE = ((0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1))  # xx yy zz yz xz xy


@dataclass(frozen=True)
class Evaluation:
    energy: float  # eV
    atom_energy: np.ndarray  # [N] eV
    forces: np.ndarray  # [N, 3] eV/Å
    virial: np.ndarray  # [3, 3] eV, LAMMPS sign (positive = pushes the box outwards)
    atom_virial: np.ndarray  # [N, 3, 3] eV

    def stress_ase(self, volume: float) -> np.ndarray:
        """ASE's 6-vector stress in eV/Å³ (xx yy zz yz xz xy), −W/V."""
        sigma = -self.virial / volume
        return np.array([sigma[a, b] for a, b in VOIGT_ASE])

    def virial_lammps(self) -> np.ndarray:
        """The global virial as LAMMPS orders it (xx yy zz xy xz yz), eV."""
        return np.array([self.virial[a, b] for a, b in VOIGT_LAMMPS])


def assemble(graph: Graph, atom_energy: np.ndarray, edge_grad: np.ndarray) -> Evaluation:
    atom_energy = np.asarray(atom_energy, dtype=np.float64)
    edge_grad = np.asarray(edge_grad, dtype=np.float64)
    n = graph.n_atoms
    if atom_energy.shape != (graph.n_local,) or edge_grad.shape != graph.edge_vec.shape:
        raise ValueError(
            f"model outputs have shapes {atom_energy.shape} and {edge_grad.shape}; the contract "
            f"expects ({graph.n_local},) and {graph.edge_vec.shape}"
        )
    forces = np.zeros((n, 3))
    np.add.at(forces, graph.edge_src, edge_grad)
    np.subtract.at(forces, graph.edge_dst, edge_grad)
    edge_virial = -graph.edge_vec[:, :, None] * edge_grad[:, None, :]
    atom_virial = np.zeros((n, 3, 3))
    np.add.at(atom_virial, graph.edge_src, 0.5 * edge_virial)
    np.add.at(atom_virial, graph.edge_dst, 0.5 * edge_virial)
    return Evaluation(
        energy=float(atom_energy.sum()),
        atom_energy=atom_energy,
        forces=forces,
        virial=edge_virial.sum(axis=0),
        atom_virial=atom_virial,
    )
