"""Data-derived starting values: per-species energy shifts, energy scale, descriptor statistics."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from superionic.data.dataset import Frame, collate
from superionic.models.contract import ContractModel
from superionic.models.marathon import Marathon
from superionic.models.sprinter import Sprinter


def fit_energy_shifts(frames: Sequence[Frame], n_species: int) -> np.ndarray:
    """Least-squares per-species energies: E ≈ Σ_s count_s · shift_s (minimum norm if degenerate)."""
    counts = np.stack([np.bincount(f.species.numpy(), minlength=n_species) for f in frames]).astype(float)
    energies = np.array([f.energy for f in frames])
    shifts, *_ = np.linalg.lstsq(counts, energies, rcond=None)
    return shifts


def closest_pair_distances(frames: Sequence[Frame], n_species: int) -> np.ndarray:
    """[S, S] shortest distance of each species pair within the frames' cutoff; inf for a pair
    never seen within it."""
    shortest = np.full((n_species, n_species), np.inf)
    for f in frames:
        if not len(f.edge_src):
            continue
        dist = f.edge_vec.norm(dim=1).numpy()
        a, b = f.species[f.edge_src].numpy(), f.species[f.edge_dst].numpy()
        np.minimum.at(shortest, (a, b), dist)
    return shortest


def pair_closest_record(closest: np.ndarray) -> list[list[float | None]]:
    """``closest_pair_distances`` as a checkpoint stores it: plain floats, None for an unseen pair."""
    return [[float(d) if np.isfinite(d) else None for d in row] for row in closest]


def shortest_pair_distances(frames: Sequence[Frame], n_species: int) -> np.ndarray:
    """[S, S] shortest distance of each species pair in the frames; pairs never seen within the
    cutoff get the shortest distance of any pair (the wall then only guards against collapse)."""
    shortest = closest_pair_distances(frames, n_species)
    finite = shortest[np.isfinite(shortest)]
    fallback = finite.min() if finite.size else 0.0
    return np.where(np.isfinite(shortest), shortest, fallback)


def initialise_sprinter(model: Sprinter, frames: Sequence[Frame], max_frames: int = 64) -> None:
    dtype = model.energy_shift.dtype
    shifts = fit_energy_shifts(frames, len(model.species_names))
    forces = torch.cat([f.forces for f in frames])
    with torch.no_grad():
        model.energy_shift.copy_(torch.tensor(shifts, dtype=dtype))
        model.energy_scale.copy_(forces.pow(2).mean().sqrt().to(dtype).clamp(min=1e-3))
        sample = collate(list(frames[:max_frames]), dtype)
        q = model.descriptors(sample.edge_vec, sample.edge_src, sample.edge_dst, sample.species)
        model.descriptor_mean.copy_(q.mean(0))
        model.descriptor_std.copy_(q.std(0).clamp(min=1e-6))
        shortest = shortest_pair_distances(frames, len(model.species_names))
        model.core_radius_sq.copy_(torch.tensor(shortest**2, dtype=dtype))


def initialise_marathon(model: Marathon, frames: Sequence[Frame]) -> None:
    """Energy shifts and scale as the sprinter's; messages divided by √(mean neighbour count)."""
    dtype = model.energy_shift.dtype
    shifts = fit_energy_shifts(frames, len(model.species_names))
    forces = torch.cat([f.forces for f in frames])
    neighbours = sum(len(f.edge_src) for f in frames) / max(1, sum(len(f.species) for f in frames))
    with torch.no_grad():
        model.energy_shift.copy_(torch.tensor(shifts, dtype=dtype))
        model.energy_scale.copy_(forces.pow(2).mean().sqrt().to(dtype).clamp(min=1e-3))
        model.neighbour_norm.fill_(max(neighbours, 1.0) ** -0.5)
        shortest = shortest_pair_distances(frames, len(model.species_names))
        model.core_radius_sq.copy_(torch.tensor(shortest**2, dtype=dtype))


def initialise_model(model: ContractModel, frames: Sequence[Frame]) -> None:
    """The data-derived starting values of a trainable model (analytic models have none)."""
    if isinstance(model, Sprinter):
        initialise_sprinter(model, frames)
    elif isinstance(model, Marathon):
        initialise_marathon(model, frames)
