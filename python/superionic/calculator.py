"""Python evaluation of contract models, and an ASE calculator over exported files.

``evaluate`` runs any contract callable (an eager model, a loaded TorchScript module or an
AOTInductor package) on an ASE structure; it is the independent reference the LAMMPS tests compare
against.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes

from superionic.data.graph import Graph, build_graph
from superionic.export import read_metadata
from superionic.models.assemble import Evaluation, assemble

ContractCallable = Callable[..., tuple[torch.Tensor, torch.Tensor]]


def run_contract(
    model: ContractCallable, graph: Graph, dtype: torch.dtype, device: str = "cpu"
) -> Evaluation:
    inputs = (
        torch.tensor(graph.edge_vec, dtype=dtype, device=device),
        torch.tensor(graph.edge_src, device=device),
        torch.tensor(graph.edge_dst, device=device),
        torch.tensor(graph.species, device=device),
        torch.tensor(graph.n_local, device=device),
    )
    atom_energy, edge_grad = model(*inputs)
    return assemble(graph, atom_energy.detach().cpu().double().numpy(), edge_grad.cpu().double().numpy())


def evaluate(
    model: ContractCallable,
    atoms: Atoms,
    cutoff: float,
    species: Sequence[str],
    dtype: torch.dtype = torch.float64,
) -> Evaluation:
    return run_contract(model, build_graph(atoms, cutoff, species), dtype)


def load_exported(path: str | Path, device: str = "cpu") -> ContractCallable:
    path = Path(path)
    if path.suffix == ".pt":
        return torch.jit.load(str(path), map_location=device)
    return torch._inductor.aoti_load_package(str(path))


@dataclass(frozen=True)
class LoadedModel:
    """Any model file as a contract callable with what evaluating it needs."""

    forward: ContractCallable
    species: list[str]
    cutoff: float
    dtype: torch.dtype


def load_model(path: str | Path, device: str = "cpu") -> LoadedModel:
    """A training checkpoint (.ckpt, EMA weights) or an exported model (.pt, .pt2)."""
    from superionic.modelfile import Kind, require_exported

    path = Path(path)
    if require_exported(path, checkpoints_too=True).kind is Kind.CHECKPOINT:
        from superionic.train.checkpoint import model_from_checkpoint

        model, _, _ = model_from_checkpoint(path)
        dtype = next(model.parameters()).dtype
        return LoadedModel(model.to(device), list(model.species_names), model.cutoff, dtype)
    meta = read_metadata(path)
    dtype = torch.float64 if meta.dtype == "float64" else torch.float32
    return LoadedModel(load_exported(path, device), meta.species, meta.cutoff, dtype)


class SuperionicCalculator(Calculator):
    """ASE calculator over a checkpoint (.ckpt) or an exported model (.pt, .pt2)."""

    implemented_properties = ("energy", "energies", "forces", "stress", "free_energy")

    def __init__(self, model_path: str | Path, device: str = "cpu", **kwargs) -> None:
        super().__init__(**kwargs)
        self.loaded = load_model(model_path, device)
        self.source = str(model_path)

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes) -> None:
        super().calculate(atoms, properties, system_changes)
        loaded = self.loaded
        graph = build_graph(self.atoms, loaded.cutoff, loaded.species, source=self.source)
        result = run_contract(loaded.forward, graph, loaded.dtype)
        self.results = {
            "energy": result.energy,
            "free_energy": result.energy,
            "energies": result.atom_energy,
            "forces": result.forces,
        }
        if self.atoms.pbc.all():
            self.results["stress"] = result.stress_ase(graph.volume)
