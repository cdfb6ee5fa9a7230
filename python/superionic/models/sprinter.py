"""The sprinter: a fast, strictly local descriptor model in the spirit of NEP and DeePMD-se.

Per atom i, with x = r/rc, radial basis f_k(x) = cos(kπx)·(1 − x²)³ and learnable species-pair
coefficients c:

- radial descriptors      q⁰_{i,n} = Σ_j g_n(r_ij),     g_n = Σ_k c_{s_i s_j n k} f_k
- angular descriptors     qˡ_{i,n} = Σ_{j,k} h_n(r_ij) h_n(r_ik) P_l(cos θ_jik),  l = 1 … l_max (≤ 4)

The angular sums are three-body but evaluated in O(edges): the neighbour sums of the moment
tensors Mˡ = Σ_j h_n(r_ij) û_ij^{⊗l} come first, their contractions second (|Mˡ|² gives
Σ h h cosˡθ; the Legendre combinations follow from those). Descriptors are standardised with
statistics taken once from the training data, fed to a small MLP per species, scaled by the force
RMS and shifted by per-species reference energies from a linear fit.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
from torch import Tensor

from superionic.models.contract import ContractModel
from superionic.models.reference import smooth_cutoff

MAX_L = 4


class SpeciesLinear(torch.nn.Module):
    """A linear layer with separate weights per species, applied atom by atom."""

    def __init__(self, weight: torch.Tensor, dtype: torch.dtype) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(weight.to(dtype))  # [S, in, out]
        self.bias = torch.nn.Parameter(torch.zeros(weight.shape[0], weight.shape[2], dtype=dtype))

    def forward(self, h: Tensor, species: Tensor) -> Tensor:
        return torch.bmm(h[:, None, :], self.weight[species]).squeeze(1) + self.bias[species]


class Sprinter(ContractModel):
    model_kind = "sprinter"

    def __init__(
        self,
        species: Sequence[str],
        cutoff: float = 5.0,
        n_basis: int = 8,
        radial_channels: int = 8,
        angular_channels: int = 4,
        l_max: int = 4,
        hidden: Sequence[int] = (32, 32),
        seed: int = 0,
        dtype: torch.dtype = torch.float64,
    ) -> None:
        super().__init__()
        if not 0 <= l_max <= MAX_L:
            raise ValueError(f"l_max={l_max} unsupported; choose 0 to {MAX_L}")
        self.species_names = list(species)
        self.cutoff = float(cutoff)
        self.receptive_field = float(cutoff)
        self.l_max = l_max
        self.angular_channels = angular_channels
        n_species = len(self.species_names)
        gen = torch.Generator().manual_seed(seed)

        def param(*shape: int, scale: float) -> torch.nn.Parameter:
            values = scale * torch.randn(*shape, generator=gen, dtype=torch.float64)
            return torch.nn.Parameter(values.to(dtype))

        self.radial_coeff = param(n_species, n_species, radial_channels, n_basis, scale=n_basis**-0.5)
        self.angular_coeff = param(n_species, n_species, angular_channels, n_basis, scale=n_basis**-0.5)
        n_descriptors = radial_channels + l_max * angular_channels
        widths = [n_descriptors, *hidden, 1]
        self.layers = torch.nn.ModuleList(
            [
                SpeciesLinear(
                    a**-0.5 * torch.randn(n_species, a, b, generator=gen, dtype=torch.float64), dtype
                )
                for a, b in itertools.pairwise(widths)
            ]
        )
        self.register_buffer("basis_freq", (torch.pi * torch.arange(n_basis)).to(dtype))
        self.register_buffer("cutoff_t", torch.tensor(cutoff, dtype=dtype))
        self.register_buffer("cutoff_sq", torch.tensor(cutoff**2, dtype=dtype))
        self.register_buffer("descriptor_mean", torch.zeros(n_descriptors, dtype=dtype))
        self.register_buffer("descriptor_std", torch.ones(n_descriptors, dtype=dtype))
        self.register_buffer("energy_shift", torch.zeros(n_species, dtype=dtype))
        self.register_buffer("energy_scale", torch.ones((), dtype=dtype))

    def descriptors(self, edge_vec: Tensor, edge_src: Tensor, edge_dst: Tensor, species: Tensor) -> Tensor:
        n_atoms = species.shape[0]
        r2 = (edge_vec * edge_vec).sum(-1)
        r = r2.pow(0.5)
        x = r / self.cutoff_t
        basis = torch.cos(x[:, None] * self.basis_freq) * smooth_cutoff(r2, self.cutoff_sq)[:, None]
        s_src = species[edge_src]
        s_dst = species[edge_dst]
        radial = (self.radial_coeff[s_src, s_dst] * basis[:, None, :]).sum(-1)
        q0 = edge_vec.new_zeros((n_atoms, radial.shape[1])).index_add(0, edge_src, radial)
        features = [q0]
        if self.l_max > 0:
            h = (self.angular_coeff[s_src, s_dst] * basis[:, None, :]).sum(-1)  # [E, C]
            unit = edge_vec / r[:, None]
            c = self.angular_channels
            # |Mˡ|² = Σ_jk h_j h_k cosˡθ_jk for the moment tensors Mˡ = Σ_j h_j û_j^{⊗l}.
            norms = [(edge_vec.new_zeros((n_atoms, c)).index_add(0, edge_src, h)).pow(2)]
            moment_edge = h[:, :, None]
            for _ in range(self.l_max):
                moment_edge = (moment_edge[:, :, :, None] * unit[:, None, None, :]).reshape(h.shape[0], c, -1)
                moment = edge_vec.new_zeros((n_atoms, c, moment_edge.shape[2])).index_add(
                    0, edge_src, moment_edge
                )
                norms.append((moment * moment).sum(-1))
            # Legendre polynomials P_l(cos θ) written in powers of cos θ.
            features.append(norms[1])
            if self.l_max >= 2:
                features.append(1.5 * norms[2] - 0.5 * norms[0])
            if self.l_max >= 3:
                features.append(2.5 * norms[3] - 1.5 * norms[1])
            if self.l_max >= 4:
                features.append((35.0 * norms[4] - 30.0 * norms[2] + 3.0 * norms[0]) / 8.0)
        return torch.cat(features, dim=1)

    def node_energy(self, edge_vec: Tensor, edge_src: Tensor, edge_dst: Tensor, species: Tensor) -> Tensor:
        q = self.descriptors(edge_vec, edge_src, edge_dst, species)
        h = (q - self.descriptor_mean) / self.descriptor_std
        last = len(self.layers) - 1
        for k, layer in enumerate(self.layers):
            h = layer(h, species)
            if k < last:
                h = torch.nn.functional.silu(h)
        return self.energy_shift[species] + self.energy_scale * h.squeeze(1)
