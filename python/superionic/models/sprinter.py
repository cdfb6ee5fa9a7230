"""The sprinter: a fast, strictly local descriptor model in the spirit of NEP and DeePMD-se.

Per atom i, with x = r/rc, radial basis f_k(x) = cos(kπx)·(1 − x²)³ and learnable species-pair
coefficients c:

- radial descriptors      q⁰_{i,n} = Σ_j g_n(r_ij),     g_n = Σ_k c_{s_i s_j n k} f_k
- angular descriptors     qˡ_{i,n} = Σ_{j,k} h_n(r_ij) h_n(r_ik) P_l(cos θ_jik),  l = 1 … l_max (≤ 4)

The angular sums are three-body but evaluated in O(edges): with real spherical harmonics in
Schmidt semi-normalisation, Σ_m Y_lm(û)Y_lm(v̂) = P_l(û·v̂) (addition theorem), so
qˡ = Σ_m (Σ_j h_j Y_lm(û_ij))²: neighbour sums first (2l+1 numbers per order), squares second.
Descriptors are standardised with statistics taken once from the training data, fed to a small
MLP per species, scaled by the force RMS and shifted by per-species reference energies from a
linear fit.

A core repulsion A·(r_min²/r² − 1)³ acts only below r_min, the shortest distance of each species
pair in the training data: zero (to second derivative) on every training geometry, so it does not
bias the fit, but it keeps MD from collapsing into distances the model has never seen.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
from torch import Tensor

from superionic.models.contract import ContractModel
from superionic.models.reference import smooth_cutoff

MAX_L = 4


def real_harmonics(unit: Tensor, l_max: int) -> list[Tensor]:
    """Schmidt semi-normalised real spherical harmonics of unit vectors, one [E, 2l+1] per l ≥ 1."""
    # Locals, not module constants: TorchScript cannot close over Python floats.
    SQ3, SQ5, SQ10, SQ15 = 1.7320508075688772, 2.23606797749979, 3.1622776601683795, 3.872983346207417
    SQ35, SQ70, SQ3_8, SQ5_8 = 5.916079783099616, 8.366600265340756, 0.6123724356957945, 0.7905694150420949
    x, y, z = unit[:, 0], unit[:, 1], unit[:, 2]
    out = [unit]
    if l_max >= 2:
        out.append(
            torch.stack(
                [(3 * z * z - 1) / 2, SQ3 * x * z, SQ3 * y * z, SQ3 / 2 * (x * x - y * y), SQ3 * x * y], dim=1
            )
        )
    if l_max >= 3:
        z2 = 5 * z * z
        out.append(
            torch.stack(
                [
                    z * (z2 - 3) / 2,
                    SQ3_8 * x * (z2 - 1),
                    SQ3_8 * y * (z2 - 1),
                    SQ15 / 2 * z * (x * x - y * y),
                    SQ15 * x * y * z,
                    SQ5_8 * x * (x * x - 3 * y * y),
                    SQ5_8 * y * (3 * x * x - y * y),
                ],
                dim=1,
            )
        )
    if l_max >= 4:
        z2 = 7 * z * z
        out.append(
            torch.stack(
                [
                    (35 * z**4 - 30 * z * z + 3) / 8,
                    SQ10 / 4 * x * z * (z2 - 3),
                    SQ10 / 4 * y * z * (z2 - 3),
                    SQ5 / 4 * (x * x - y * y) * (z2 - 1),
                    SQ5 / 2 * x * y * (z2 - 1),
                    SQ70 / 4 * x * z * (x * x - 3 * y * y),
                    SQ70 / 4 * y * z * (3 * x * x - y * y),
                    SQ35 / 8 * (x**4 - 6 * x * x * y * y + y**4),
                    SQ35 / 2 * x * y * (x * x - y * y),
                ],
                dim=1,
            )
        )
    return out[:l_max]


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
        # Core repulsion: squared onset radius per species pair (0 = off) and strength in eV.
        self.register_buffer("core_radius_sq", torch.zeros(n_species, n_species, dtype=dtype))
        self.register_buffer("core_strength", torch.ones((), dtype=dtype))

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
            for harmonic in real_harmonics(edge_vec / r[:, None], self.l_max):
                moment = edge_vec.new_zeros((n_atoms, h.shape[1], harmonic.shape[1])).index_add(
                    0, edge_src, h[:, :, None] * harmonic[:, None, :]
                )
                features.append((moment * moment).sum(-1))
        return torch.cat(features, dim=1)

    def node_energy(self, edge_vec: Tensor, edge_src: Tensor, edge_dst: Tensor, species: Tensor) -> Tensor:
        q = self.descriptors(edge_vec, edge_src, edge_dst, species)
        h = (q - self.descriptor_mean) / self.descriptor_std
        last = len(self.layers) - 1
        for k, layer in enumerate(self.layers):
            h = layer(h, species)
            if k < last:
                h = torch.nn.functional.silu(h)
        energy = self.energy_shift[species] + self.energy_scale * h.squeeze(1)
        ratio = self.core_radius_sq[species[edge_src], species[edge_dst]] * (edge_vec * edge_vec).sum(-1).pow(
            -1
        )
        core = 0.5 * self.core_strength * (ratio - 1.0).clamp(min=0.0).pow(3)
        return energy.index_add(0, edge_src, core)
