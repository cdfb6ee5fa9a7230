"""The model contract shared by every exportable model (see docs/conventions.md).

Inputs are the edges of the neighbour graph over owned and ghost atoms; outputs are the energy of
each owned atom and the gradient of the owned-atom energy with respect to every edge vector. The
gradient is taken inside ``forward`` so that TorchScript and AOTInductor artefacts behave the same
and the C++ side never calls autograd.
"""

from __future__ import annotations

import torch
from torch import Tensor

CONTRACT_INPUTS = ("edge_vec", "edge_src", "edge_dst", "species", "n_local")
CONTRACT_OUTPUTS = ("atom_energy", "edge_grad")


@torch.jit.unused
def _traced_local_count(n_local: Tensor) -> int:
    # torch.export sees a data-dependent size here; the checks bound it for the compiler.
    count = n_local.item()
    torch._check(count >= 0)
    return count


def _local_count(n_local: Tensor, n_atoms: int) -> int:
    if torch.jit.is_scripting():
        return int(n_local.item())
    count = _traced_local_count(n_local)
    torch._check(count <= n_atoms)
    return count


class ContractModel(torch.nn.Module):
    """Base class: subclasses implement ``node_energy`` and declare their geometry.

    Attributes every subclass sets (they become the exported metadata):
    ``species_names``, ``cutoff`` (Å), ``receptive_field`` (Å, >= cutoff), ``model_kind``.

    Implementation rule for AOTInductor export: use operations whose backward formula reuses the
    *input* (pow, silu, softplus, sin/cos, log1p, polynomials, matmul, index_add). Operations whose
    backward reuses their *output* (exp, tanh, sigmoid, sqrt, reciprocal) are mis-traced by
    ``torch.export`` around ``torch.autograd.grad`` in torch 2.13 (pytorch issue 146719 / PR 185496).
    ``superionic.export`` checks every artefact numerically, so a violation is caught at export.
    """

    def node_energy(self, edge_vec: Tensor, edge_src: Tensor, edge_dst: Tensor, species: Tensor) -> Tensor:
        """Energy of every node (owned and ghost), shape [N]. Only owned entries are used."""
        raise NotImplementedError

    def forward(
        self,
        edge_vec: Tensor,
        edge_src: Tensor,
        edge_dst: Tensor,
        species: Tensor,
        n_local: Tensor,
    ) -> tuple[Tensor, Tensor]:
        edge_vec = edge_vec.detach().requires_grad_(True)
        node_energy = self.node_energy(edge_vec, edge_src, edge_dst, species)
        count = _local_count(n_local, species.shape[0])
        atom_energy = node_energy[:count]
        grads = torch.autograd.grad([atom_energy.sum()], [edge_vec], allow_unused=True)
        edge_grad = grads[0]
        if edge_grad is None:
            edge_grad = torch.zeros_like(edge_vec)
        return atom_energy.detach(), edge_grad
