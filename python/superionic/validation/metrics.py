"""`superionic evaluate`: metrics, parity plots and JSON for any model file on labelled data."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from superionic.calculator import load_model
from superionic.data.dataset import load_frames
from superionic.data.graph import Graph
from superionic.models.assemble import assemble
from superionic.train.metrics import Predictions, compute_metrics
from superionic.train.plots import parity_plot


@dataclass(frozen=True)
class EvaluationReport:
    model: str
    data: list[str]
    metrics: dict[str, float]
    parity_png: str
    json_path: str


def evaluate_model(
    model_path: str | Path, data: Sequence[str | Path], output: str | Path
) -> EvaluationReport:
    loaded = load_model(model_path)
    frames, _ = load_frames(data, loaded.cutoff, loaded.species)
    collected = Predictions()
    for frame in frames:
        # Every atom is owned in a periodic Python graph: n_local = N.
        atom_energy, edge_grad = loaded.forward(
            frame.edge_vec.to(loaded.dtype),
            frame.edge_src,
            frame.edge_dst,
            frame.species,
            torch.tensor(frame.n_atoms),
        )
        graph = Graph(
            frame.edge_vec.numpy(),
            frame.edge_src.numpy(),
            frame.edge_dst.numpy(),
            frame.species.numpy(),
            frame.n_atoms,
            frame.volume,
        )
        result = assemble(graph, atom_energy.detach().double().numpy(), edge_grad.detach().double().numpy())
        collected.energy_per_atom.append((frame.energy / frame.n_atoms, result.energy / frame.n_atoms))
        collected.forces.append((frame.forces.numpy(), result.forces, frame.species.numpy()))
        if frame.stress is not None:
            collected.stress.append((frame.stress.numpy(), -result.virial / frame.volume))
    metrics = compute_metrics(collected, loaded.species)
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    png = parity_plot(collected, out / "parity.png", f"{Path(model_path).name} on {len(frames)} frames")
    report = EvaluationReport(
        str(model_path), [str(d) for d in data], metrics, str(png), str(out / "metrics.json")
    )
    Path(report.json_path).write_text(json.dumps(report.__dict__, indent=2, default=_jsonable))
    return report


def _jsonable(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(type(value))
