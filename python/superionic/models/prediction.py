"""Energies, forces and stresses of a batch, differentiable for training.

The same algebra as the pair style (docs/conventions.md): forces from ∂E/∂edge_vec scattered to
both ends of each edge, stress σ = (1/V) Σ_e edge_vec ⊗ ∂E/∂edge_vec (ASE sign).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from superionic.data.dataset import Batch
from superionic.models.contract import ContractModel


@dataclass(frozen=True)
class Prediction:
    energy: torch.Tensor  # [B] eV
    forces: torch.Tensor  # [N, 3] eV/Å
    stress: torch.Tensor  # [B, 3, 3] eV/Å³ (zero for non-periodic frames)
    atom_energy: torch.Tensor  # [N]


def predict(model: ContractModel, batch: Batch, create_graph: bool) -> Prediction:
    edge_vec = batch.edge_vec.detach().requires_grad_(True)
    atom_energy = model.node_energy(edge_vec, batch.edge_src, batch.edge_dst, batch.species)
    energy = atom_energy.new_zeros(batch.n_frames).index_add(0, batch.node_frame, atom_energy)
    (edge_grad,) = torch.autograd.grad(energy.sum(), edge_vec, create_graph=create_graph)
    forces = edge_grad.new_zeros((atom_energy.shape[0], 3))
    forces = forces.index_add(0, batch.edge_src, edge_grad).index_add(0, batch.edge_dst, -edge_grad)
    virial = edge_vec[:, :, None] * edge_grad[:, None, :]
    stress = virial.new_zeros((batch.n_frames, 3, 3)).index_add(0, batch.edge_frame, virial)
    volume = torch.where(batch.volume > 0, batch.volume, torch.ones_like(batch.volume))
    return Prediction(
        energy=energy, forces=forces, stress=stress / volume[:, None, None], atom_energy=atom_energy
    )
