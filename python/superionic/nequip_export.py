"""Export a strictly local superionic model as a nequip AOTInductor package for pair_allegro.

The package follows the contract of nequip's ``--target pair_allegro`` (docs/nequip.md): inputs
``pos`` [N, 3] float64, ``edge_index`` [2, E] int64 (row 0 the centre atom, row 1 its neighbour,
edge vector pos[1] - pos[0]) and ``atom_types`` [N] int64; outputs ``atomic_energy`` [N, 1],
``forces`` [N, 3] and ``virial`` [1, 3, 3] (LAMMPS's pair virial, eV), all float64. The metadata
is what pair_allegro and nequip's loader read: ``r_max``, ``num_types``, ``type_names``,
``allow_tf32``, ``model_dtype``, ``nequip_aoti_inputs`` and ``nequip_aoti_outputs``.

pair_allegro hands over every owned and ghost atom with the edges of the owned ones only, so only
strictly local models (receptive field = cutoff) can be exported this way.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch
from torch import Tensor

from superionic.export import ExportError, metadata_for, model_dtype, probe_inputs
from superionic.models.contract import ContractModel

SUFFIX = ".nequip.pt2"
INPUTS = ("pos", "edge_index", "atom_types")
OUTPUTS = ("atomic_energy", "forces", "virial")
# Beside nequip's keys, the superionic metadata of the source model, for provenance only.
SOURCE_KEY = "superionic.source_json"


class PairAllegroAdapter(torch.nn.Module):
    """pair_allegro's inputs and outputs around a contract model's node energies."""

    def __init__(self, model: ContractModel) -> None:
        super().__init__()
        self.model = model
        self.dtype = model_dtype(model)

    def forward(self, pos: Tensor, edge_index: Tensor, atom_types: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        src, dst = edge_index[0], edge_index[1]
        edge_vec = (pos.index_select(0, dst) - pos.index_select(0, src)).to(self.dtype)
        edge_vec = edge_vec.detach().requires_grad_(True)
        # Atoms that centre no edge (pair_allegro's ghosts) get a constant energy, as in nequip.
        node_energy = self.model.node_energy(edge_vec, src, dst, atom_types)
        grads = torch.autograd.grad([node_energy.sum()], [edge_vec], allow_unused=True)
        edge_grad = grads[0] if grads[0] is not None else torch.zeros_like(edge_vec)
        edge_grad = edge_grad.to(torch.float64)
        # F = -dE/dr with edge_vec = r_dst - r_src (docs/conventions.md)
        forces = torch.zeros(pos.shape[0], 3, dtype=torch.float64, device=pos.device)
        forces = forces.index_add(0, src, edge_grad).index_add(0, dst, -edge_grad)
        virial = -(edge_vec.detach().to(torch.float64).transpose(0, 1) @ edge_grad)
        return node_energy.detach().to(torch.float64).unsqueeze(-1), forces, virial.unsqueeze(0)


def probe_positions(
    n_species: int, cutoff: float, device: str, seed: int = 0
) -> tuple[Tensor, Tensor, Tensor]:
    """pair_allegro-style inputs over export.probe_inputs' cluster: edges of its 12 owned atoms only."""
    edge_vec, src, dst, species, n_local = probe_inputs(n_species, cutoff, torch.float64, device, seed)
    keep = src < n_local
    # Positions that reproduce the probe's edge vectors: the grid's own, rebuilt from atom 0 outwards.
    pos = torch.zeros(species.shape[0], 3, dtype=torch.float64, device=device)
    known = torch.zeros(species.shape[0], dtype=torch.bool, device=device)
    known[0] = True
    while not bool(known.all()):
        step = known[src] & ~known[dst]
        if not bool(step.any()):
            raise ExportError("internal: the probe cluster is not connected")
        pos[dst[step]] = pos[src[step]] + edge_vec[step]
        known[dst[step]] = True
    return pos, torch.stack([src[keep], dst[keep]]), species


def _check_reproduces(model: ContractModel, loaded, path: Path, device: str) -> None:
    """The package against the eager contract model: energies of the centres and all forces."""
    pos, edge_index, types = probe_positions(len(model.species_names), float(model.cutoff), device, seed=1)
    n_centres = int(edge_index[0].max()) + 1
    energy, forces, _ = loaded(pos, edge_index, types)
    src, dst = edge_index[0], edge_index[1]
    vec = (pos[dst] - pos[src]).to(model_dtype(model))
    ref_energy, ref_grad = model(vec, src, dst, types, torch.tensor(n_centres))
    ref_forces = (
        torch.zeros_like(pos).index_add(0, src, ref_grad.double()).index_add(0, dst, -ref_grad.double())
    )
    tol = 1e-10 if model_dtype(model) == torch.float64 else 1e-4
    for name, got, ref in (
        ("atomic_energy", energy[:n_centres, 0], ref_energy.double()),
        ("forces", forces, ref_forces),
    ):
        err = float((got - ref).abs().max())
        if not err <= tol * max(1.0, float(ref.abs().max())):
            raise ExportError(
                f"nequip export {path}: {name} differs from the eager model by {err:.3g} (tol {tol:g})"
            )


def export_nequip(
    model: ContractModel, path: str | os.PathLike, device: str = "cpu", data_hash: str = "none"
) -> dict[str, str]:
    """Write ``model`` as ``*.nequip.pt2``; returns the metadata compiled into it."""
    from torch.export import Dim

    target = Path(path)
    if not target.name.endswith(SUFFIX):
        raise ExportError(
            f"{target}: nequip packages are named *{SUFFIX} (pair_allegro and nequip require it)"
        )
    meta = metadata_for(model.to(device), device=device, data_hash=data_hash)
    if meta.receptive_field > meta.cutoff:
        raise ExportError(
            f"{target}: model receptive field {meta.receptive_field} A exceeds its cutoff {meta.cutoff} A "
            "(message passing); pair_allegro passes only the edges of owned atoms, so only strictly local "
            "models export to nequip. Export it as .pt or .pt2 for pair_style superionic instead."
        )
    compiled_metadata = {
        "r_max": repr(float(meta.cutoff)),
        "num_types": str(len(meta.species)),
        "type_names": " ".join(meta.species),
        "allow_tf32": "0",
        "model_dtype": meta.dtype,
        "nequip_aoti_inputs": " ".join(INPUTS),
        "nequip_aoti_outputs": " ".join(OUTPUTS),
        SOURCE_KEY: meta.to_json(),
    }
    adapter = PairAllegroAdapter(model.eval())
    inputs = probe_positions(len(meta.species), meta.cutoff, device)
    atoms, edges = Dim("num_nodes", min=2), Dim("num_edges", min=2)
    program = torch.export.export(
        adapter, inputs, dynamic_shapes=({0: atoms}, {1: edges}, {0: atoms}), strict=False
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=target.name + ".", suffix=SUFFIX, dir=target.parent)
    os.close(fd)
    try:
        torch._inductor.aoti_compile_and_package(
            program, package_path=tmp, inductor_configs={"aot_inductor.metadata": compiled_metadata}
        )
        _check_reproduces(model, torch._inductor.aoti_load_package(tmp), target, device)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return compiled_metadata
