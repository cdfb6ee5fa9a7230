"""Analytic reference models that exercise the model contract honestly.

``ReferencePotential`` is a smooth, species-dependent pair (8-4 Lennard-Jones-like) plus
three-body (angular) potential: a classical baseline, a test fixture and the yard-stick of the
speed benchmarks. ``ReferenceMessagePassing`` adds two rounds of neighbour aggregation on top of it,
so its receptive field is twice its cutoff and the ghost-shell path of the pair style is exercised.

Both work in squared distances where they can: no square roots means no singular derivative and
only export-safe operations (see ``ContractModel``). The three-body term is evaluated in O(edges)
by summing over neighbours first and contracting afterwards.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from superionic.models.contract import ContractModel


def smooth_cutoff(r2: Tensor, cutoff_sq: Tensor) -> Tensor:
    """(1 - r²/rc²)³ inside the cutoff, 0 outside: continuous up to its second derivative."""
    x = (r2 / cutoff_sq).clamp(max=1.0)
    return (1.0 - x).pow(3)


def _uniform(gen: torch.Generator, n: int, low: float, high: float) -> Tensor:
    return low + (high - low) * torch.rand(n, generator=gen, dtype=torch.float64)


class ReferencePotential(ContractModel):
    """E_i = e0[s_i] + ½ Σ_j φ_{s_i s_j}(r_ij) + λ_{s_i} (|q_i|² + |dev T_i|²).

    φ_ab(r) = ε_ab [(r0_ab/r)^8 − 2 (r0_ab/r)^4] f_c(r), minimum −ε_ab near r0_ab;
    q_i = Σ_j w_{s_j} g(r_ij) r_ij / a and T_i = Σ_j w_{s_j} g(r_ij) r_ij ⊗ r_ij / a² carry the
    angular information, g the same smooth cutoff at ``three_body_cutoff``.
    Per-species parameters are drawn from a seeded generator within physical ranges, so any list
    of element names gives a reproducible model.
    """

    model_kind = "reference-pair-threebody"

    def __init__(
        self,
        species: Sequence[str],
        cutoff: float = 5.0,
        three_body_cutoff: float = 3.5,
        seed: int = 0,
        dtype: torch.dtype = torch.float64,
    ) -> None:
        super().__init__()
        if three_body_cutoff > cutoff:
            raise ValueError(f"three_body_cutoff={three_body_cutoff} exceeds cutoff={cutoff}; lower it.")
        self.species_names = list(species)
        self.cutoff = float(cutoff)
        self.receptive_field = float(cutoff)
        n = len(self.species_names)
        gen = torch.Generator().manual_seed(seed)
        radius = _uniform(gen, n, 1.15, 1.40)
        depth = _uniform(gen, n, 0.05, 0.20)
        self.register_buffer("r0_sq", ((radius[:, None] + radius[None, :]) ** 2).to(dtype))
        self.register_buffer("eps", torch.sqrt(depth[:, None] * depth[None, :]).to(dtype))
        self.register_buffer("w3", _uniform(gen, n, 0.5, 1.5).to(dtype))
        self.register_buffer("lam", _uniform(gen, n, 0.005, 0.02).to(dtype))
        self.register_buffer("e0", _uniform(gen, n, -3.0, -1.0).to(dtype))
        self.register_buffer("cutoff_sq", torch.tensor(cutoff**2, dtype=dtype))
        self.register_buffer("cutoff3_sq", torch.tensor(three_body_cutoff**2, dtype=dtype))
        self.register_buffer("length_scale_sq", torch.tensor(2.5**2, dtype=dtype))
        self.register_buffer("eye3", torch.eye(3, dtype=dtype))

    def base_energy(self, edge_vec: Tensor, edge_src: Tensor, edge_dst: Tensor, species: Tensor) -> Tensor:
        n_atoms = species.shape[0]
        r2 = (edge_vec * edge_vec).sum(-1)
        s_src = species[edge_src]
        s_dst = species[edge_dst]
        ratio = self.r0_sq[s_src, s_dst] / r2
        pair = self.eps[s_src, s_dst] * (ratio.pow(4) - 2.0 * ratio.pow(2))
        pair = 0.5 * pair * smooth_cutoff(r2, self.cutoff_sq)

        weight = self.w3[s_dst] * smooth_cutoff(r2, self.cutoff3_sq)
        q_edge = weight[:, None] * edge_vec
        t_edge = q_edge[:, :, None] * edge_vec[:, None, :]
        q = edge_vec.new_zeros((n_atoms, 3)).index_add(0, edge_src, q_edge)
        t = edge_vec.new_zeros((n_atoms, 3, 3)).index_add(0, edge_src, t_edge)
        trace = t.diagonal(dim1=1, dim2=2).sum(-1)
        dev = t - trace[:, None, None] * self.eye3 / 3.0
        angular = (q * q).sum(-1) / self.length_scale_sq
        angular = angular + (dev * dev).sum((1, 2)) / (self.length_scale_sq * self.length_scale_sq)

        energy = self.e0[species] + self.lam[species] * angular
        return energy.index_add(0, edge_src, pair)

    def node_energy(self, edge_vec: Tensor, edge_src: Tensor, edge_dst: Tensor, species: Tensor) -> Tensor:
        return self.base_energy(edge_vec, edge_src, edge_dst, species)


class ReferenceMessagePassing(ReferencePotential):
    """ReferencePotential plus two rounds of smooth neighbour aggregation.

    h⁰ = embedding[s]; hᵏ = silu(mᵏ Uᵏ + hᵏ⁻¹) with mᵏ_i = Σ_j R(r_ij) ⊙ hᵏ⁻¹_j and R a cosine
    radial basis in r²/rc² times the smooth cutoff. The energy of atom i depends on atoms up to
    two cutoffs away: receptive_field = 2 × cutoff.
    """

    model_kind = "reference-message-passing"

    def __init__(
        self,
        species: Sequence[str],
        cutoff: float = 4.0,
        three_body_cutoff: float = 3.5,
        features: int = 8,
        n_basis: int = 6,
        seed: int = 0,
        dtype: torch.dtype = torch.float64,
    ) -> None:
        super().__init__(species, cutoff, three_body_cutoff, seed, dtype)
        self.receptive_field = 2.0 * float(cutoff)
        gen = torch.Generator().manual_seed(seed + 1)
        n = len(self.species_names)

        def randn(*shape: int, scale: float) -> Tensor:
            return (scale * torch.randn(*shape, generator=gen, dtype=torch.float64)).to(dtype)

        self.register_buffer("embedding", randn(n, features, scale=1.0))
        self.register_buffer("radial1", randn(n_basis, features, scale=0.3))
        self.register_buffer("radial2", randn(n_basis, features, scale=0.3))
        self.register_buffer("mix1", randn(features, features, scale=0.3))
        self.register_buffer("mix2", randn(features, features, scale=0.3))
        self.register_buffer("readout", randn(features, scale=0.05))
        self.register_buffer("basis_freq", (torch.pi * torch.arange(n_basis)).to(dtype))

    def _aggregate(
        self, h: Tensor, radial: Tensor, edge_src: Tensor, edge_dst: Tensor, mix: Tensor
    ) -> Tensor:
        message = radial * h[edge_dst]
        m = h.new_zeros(h.shape).index_add(0, edge_src, message)
        return torch.nn.functional.silu(m @ mix + h)

    def node_energy(self, edge_vec: Tensor, edge_src: Tensor, edge_dst: Tensor, species: Tensor) -> Tensor:
        energy = self.base_energy(edge_vec, edge_src, edge_dst, species)
        r2 = (edge_vec * edge_vec).sum(-1)
        x = (r2 / self.cutoff_sq).clamp(max=1.0)
        basis = torch.cos(x[:, None] * self.basis_freq) * smooth_cutoff(r2, self.cutoff_sq)[:, None]
        h = self.embedding[species]
        h = self._aggregate(h, basis @ self.radial1, edge_src, edge_dst, self.mix1)
        h = self._aggregate(h, basis @ self.radial2, edge_src, edge_dst, self.mix2)
        return energy + h @ self.readout
