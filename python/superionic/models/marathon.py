"""The marathon: an E(3)-equivariant message-passing model with NequIP-like interaction blocks.

Built on e3nn (the tensor-product library NequIP and SevenNet use). Per atom, node features are
``channels`` copies of each irrep l = 0 … l_max with natural parity (0e, 1o, 2e). Each of the
``n_layers`` interaction blocks

1. mixes the features linearly (``o3.Linear``),
2. convolves them with the spherical harmonics of every edge, ``o3.TensorProduct`` in "uvu"
   mode, its weights produced per edge by an MLP of a Bessel radial basis
   sin(nπr/rc)/r · u(r/rc) (u the p = 6 polynomial envelope of DimeNet, zero with two derivatives
   at rc),
3. sums the messages onto the receiving atom, divided by √(mean neighbour count),
4. adds a species-dependent self-connection (``o3.FullyConnectedTensorProduct`` with the one-hot
   species), and applies a gate: silu on scalars, the l ≥ 1 features multiplied by a smooth
   sigmoid of extra scalars,
5. adds the block's input (residual) when the shapes agree.

The scalars of the last block go through a small MLP to a per-atom energy, scaled by the force
RMS and shifted by per-species reference energies, as in the sprinter. The same core repulsion as
the sprinter guards distances shorter than any seen in training (zero on the training data).

Message passing makes the energy of atom i depend on atoms up to ``n_layers × cutoff`` away: that
is the declared receptive field, from which ``pair_style superionic`` builds its ghost shell
(docs/conventions.md).

Only export-safe operations (``ContractModel``): r = (r²)^½ by pow, sin, division, polynomials,
silu, and the smooth sigmoid ½(1 + x(1 + x²)^-½) instead of the logistic function, whose
backward reuses its output. e3nn's own code contracts with einsum and tensordot, which
``torch.export`` cannot trace through the gradient; ``for_torch_export`` returns the copy, with
those contractions rewritten as bmm, that the ``.pt2`` export traces (``models/e3nn_export.py``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from superionic.models.config import MARATHON_MAX_L as MAX_L
from superionic.models.contract import ContractModel

if TYPE_CHECKING:
    from e3nn import o3

# e3nn is imported where a marathon is built, not here: importing it costs seconds (its Wigner
# tables), which every command that only builds a sprinter would otherwise pay.


def hidden_irreps(channels: int, l_max: int) -> o3.Irreps:
    """``channels`` × (0e + 1o + 2e + …): the natural-parity irreps up to l_max."""
    from e3nn import o3

    return o3.Irreps([(channels, (order, (-1) ** order)) for order in range(l_max + 1)])


def polynomial_envelope(x: Tensor) -> Tensor:
    """1 − (p+1)(p+2)/2 xᵖ + p(p+2) xᵖ⁺¹ − p(p+1)/2 xᵖ⁺² for x = r/rc ≤ 1, zero beyond."""
    p = 6  # a literal: TorchScript cannot close over module constants
    x = x.clamp(max=1.0)
    xp = x.pow(p)
    return 1.0 - (p + 1) * (p + 2) / 2 * xp + p * (p + 2) * xp * x - p * (p + 1) / 2 * xp * x * x


class Gate(torch.nn.Module):
    """silu on the first ``channels`` scalars; each l ≥ 1 block times a smooth sigmoid of a gate scalar.

    Input layout (e3nn's, multiplicity-major): [channels·(1 + l_max) scalars | channels × 1o |
    channels × 2e …]; output: the hidden irreps.
    """

    def __init__(self, channels: int, l_max: int) -> None:
        super().__init__()
        self.channels = channels
        self.l_max = l_max

    def forward(self, x: Tensor) -> Tensor:
        c = self.channels
        out = [torch.nn.functional.silu(x[:, :c])]
        offset = c * (1 + self.l_max)
        for order in range(1, self.l_max + 1):
            g = x[:, order * c : (order + 1) * c]
            gate = 0.5 * (1.0 + g * (1.0 + g * g).pow(-0.5))
            width = 2 * order + 1
            block = x[:, offset : offset + c * width].reshape(-1, c, width)
            out.append((block * gate[:, :, None]).reshape(-1, c * width))
            offset += c * width
        return torch.cat(out, dim=1)


class Dense(torch.nn.Module):
    """x @ W + b with unit-variance W (as e3nn's layers), written as a matmul on purpose.

    ``torch.nn.Linear`` lowers to addmm, whose backward ``torch.export`` in torch 2.13 turns into a
    fake constant when the gradient is taken inside forward (the export fails with "fake tensor in
    the exported program constant's list"); matmul plus an add traces correctly.
    """

    def __init__(self, n_in: int, n_out: int) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.randn(n_in, n_out, dtype=torch.float64) * n_in**-0.5)
        self.bias = torch.nn.Parameter(torch.zeros(n_out, dtype=torch.float64))

    def forward(self, x: Tensor) -> Tensor:
        return x @ self.weight + self.bias


class RadialMLP(torch.nn.Module):
    def __init__(self, n_basis: int, hidden: int, n_out: int) -> None:
        super().__init__()
        self.layer1 = Dense(n_basis, hidden)
        self.layer2 = Dense(hidden, hidden)
        self.layer3 = Dense(hidden, n_out)

    def forward(self, basis: Tensor) -> Tensor:
        h = torch.nn.functional.silu(self.layer1(basis))
        h = torch.nn.functional.silu(self.layer2(h))
        return self.layer3(h)


class Interaction(torch.nn.Module):
    """One NequIP-like block: linear, edge convolution, self-connection, gate, residual."""

    def __init__(
        self,
        irreps_in: o3.Irreps,
        channels: int,
        l_max: int,
        n_basis: int,
        radial_hidden: int,
        n_species: int,
    ) -> None:
        from e3nn import o3

        super().__init__()
        irreps_out = hidden_irreps(channels, l_max)
        irreps_sh = o3.Irreps.spherical_harmonics(l_max)
        wanted = {ir for _, ir in irreps_out}
        mid: list[tuple[int, o3.Irrep]] = []
        instructions = []
        for i, (mul, ir_in) in enumerate(irreps_in):
            for j, (_, ir_sh) in enumerate(irreps_sh):
                for ir_out in ir_in * ir_sh:
                    if ir_out in wanted:
                        instructions.append((i, j, len(mid), "uvu", True))
                        mid.append((mul, ir_out))
        irreps_mid = o3.Irreps(mid)
        self.linear_up = o3.Linear(irreps_in, irreps_in)
        self.conv = o3.TensorProduct(
            irreps_in, irreps_sh, irreps_mid, instructions, shared_weights=False, internal_weights=False
        )
        self.radial = RadialMLP(n_basis, radial_hidden, self.conv.weight_numel)
        irreps_gate = o3.Irreps(f"{channels * (1 + l_max)}x0e") + irreps_out[1:]
        self.linear_down = o3.Linear(irreps_mid, irreps_gate)
        self.self_connection = o3.FullyConnectedTensorProduct(
            irreps_in, o3.Irreps(f"{n_species}x0e"), irreps_gate
        )
        self.gate = Gate(channels, l_max)
        self.residual = irreps_in == irreps_out

    def forward(
        self,
        h: Tensor,
        onehot: Tensor,
        sh: Tensor,
        basis: Tensor,
        edge_src: Tensor,
        edge_dst: Tensor,
        norm: Tensor,
    ) -> Tensor:
        x = self.linear_up(h)
        message = self.conv(x[edge_dst], sh, self.radial(basis))
        summed = message.new_zeros((h.shape[0], message.shape[1])).index_add(0, edge_src, message)
        out = self.gate(self.linear_down(summed * norm) + self.self_connection(h, onehot))
        if self.residual:
            out = out + h
        return out


class Marathon(ContractModel):
    model_kind = "marathon"

    def __init__(
        self,
        species: Sequence[str],
        cutoff: float = 5.0,
        n_basis: int = 8,
        channels: int = 16,
        l_max: int = 1,
        n_layers: int = 2,
        radial_hidden: int = 16,
        seed: int = 0,
        dtype: torch.dtype = torch.float64,
    ) -> None:
        from e3nn import o3

        super().__init__()
        if not 0 <= l_max <= MAX_L:
            raise ValueError(f"l_max={l_max} unsupported for the marathon; choose 0 to {MAX_L}")
        if n_layers < 1:
            raise ValueError(f"n_layers={n_layers}: the marathon needs at least one interaction block")
        self.species_names = list(species)
        self.cutoff = float(cutoff)
        self.receptive_field = float(n_layers) * float(cutoff)
        self.channels = channels
        n_species = len(self.species_names)
        # e3nn draws its weights from torch's global generator: seed it, without disturbing the caller's.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.embedding = torch.nn.Parameter(torch.randn(n_species, channels, dtype=torch.float64))
            self.sh = o3.SphericalHarmonics(
                o3.Irreps.spherical_harmonics(l_max), normalize=False, normalization="component"
            )
            blocks = []
            irreps = o3.Irreps(f"{channels}x0e")
            for _ in range(n_layers):
                blocks.append(Interaction(irreps, channels, l_max, n_basis, radial_hidden, n_species))
                irreps = hidden_irreps(channels, l_max)
            self.blocks = torch.nn.ModuleList(blocks)
            self.readout1 = Dense(channels, channels)
            self.readout2 = Dense(channels, 1)
        self.register_buffer("species_eye", torch.eye(n_species, dtype=torch.float64))
        self.register_buffer("bessel_freq", math.pi * torch.arange(1, n_basis + 1, dtype=torch.float64))
        self.register_buffer("bessel_prefactor", torch.tensor(math.sqrt(2.0 / cutoff), dtype=torch.float64))
        self.register_buffer("cutoff_t", torch.tensor(cutoff, dtype=torch.float64))
        # 1/√(mean number of neighbours), set from the training data by the trainer's initialisation.
        self.register_buffer("neighbour_norm", torch.tensor(1.0 / math.sqrt(30.0), dtype=torch.float64))
        self.register_buffer("energy_shift", torch.zeros(n_species, dtype=torch.float64))
        self.register_buffer("energy_scale", torch.ones((), dtype=torch.float64))
        self.register_buffer("core_radius_sq", torch.zeros(n_species, n_species, dtype=torch.float64))
        self.register_buffer("core_strength", torch.ones((), dtype=torch.float64))
        self.to(dtype)

    def for_torch_export(self) -> Marathon:
        """A copy whose e3nn code ``torch.export`` traces through the gradient (``e3nn_export``).

        ``superionic.export`` exports this copy to ``.pt2`` and checks the result against ``self``.
        """
        from superionic.models.e3nn_export import traceable_copy

        clone, _ = traceable_copy(self)
        return clone

    def radial_basis(self, r: Tensor) -> Tensor:
        x = r / self.cutoff_t
        bessel = self.bessel_prefactor * torch.sin(x[:, None] * self.bessel_freq) / r[:, None]
        return bessel * polynomial_envelope(x)[:, None]

    def node_energy(self, edge_vec: Tensor, edge_src: Tensor, edge_dst: Tensor, species: Tensor) -> Tensor:
        r2 = (edge_vec * edge_vec).sum(-1)
        r = r2.pow(0.5)
        sh = self.sh(edge_vec / r[:, None])
        basis = self.radial_basis(r)
        onehot = self.species_eye[species]
        h = self.embedding[species]
        for block in self.blocks:
            h = block(h, onehot, sh, basis, edge_src, edge_dst, self.neighbour_norm)
        scalars = h[:, : self.channels]
        out = self.readout2(torch.nn.functional.silu(self.readout1(scalars))).squeeze(1)
        energy = self.energy_shift[species] + self.energy_scale * out
        ratio = self.core_radius_sq[species[edge_src], species[edge_dst]] * r2.pow(-1)
        core = 0.5 * self.core_strength * (ratio - 1.0).clamp(min=0.0).pow(3)
        return energy.index_add(0, edge_src, core)
