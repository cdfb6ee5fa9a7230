"""Validation metrics: energy per atom, forces (overall and per species), stress."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

EV_PER_A3_TO_GPA = 160.21766208


@dataclass
class Predictions:
    """Reference and predicted values collected over frames, as flat numpy arrays."""

    energy_per_atom: list[tuple[float, float]] = field(default_factory=list)
    forces: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = field(
        default_factory=list
    )  # ref, pred, species
    stress: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)

    def arrays(self) -> dict[str, np.ndarray]:
        out = {
            "energy_ref": np.array([e[0] for e in self.energy_per_atom]),
            "energy_pred": np.array([e[1] for e in self.energy_per_atom]),
            "force_ref": np.concatenate([f[0] for f in self.forces]),
            "force_pred": np.concatenate([f[1] for f in self.forces]),
            "force_species": np.concatenate([f[2] for f in self.forces]),
        }
        if self.stress:
            out["stress_ref"] = np.stack([s[0] for s in self.stress])
            out["stress_pred"] = np.stack([s[1] for s in self.stress])
        return out


def _rmse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(np.mean((a - b) ** 2))) if a.size else float("nan")


def _mae(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(np.abs(a - b))) if a.size else float("nan")


def compute_metrics(predictions: Predictions, species: Sequence[str]) -> dict[str, float]:
    arr = predictions.arrays()
    metrics = {
        "frames": float(len(arr["energy_ref"])),
        "energy_rmse_eV_per_atom": _rmse(arr["energy_pred"], arr["energy_ref"]),
        "energy_mae_eV_per_atom": _mae(arr["energy_pred"], arr["energy_ref"]),
        "force_rmse_eV_per_A": _rmse(arr["force_pred"], arr["force_ref"]),
        "force_mae_eV_per_A": _mae(arr["force_pred"], arr["force_ref"]),
        "force_rms_reference_eV_per_A": float(np.sqrt(np.mean(arr["force_ref"] ** 2))),
    }
    for k, name in enumerate(species):
        mask = arr["force_species"] == k
        if mask.any():
            metrics[f"force_rmse_{name}_eV_per_A"] = _rmse(arr["force_pred"][mask], arr["force_ref"][mask])
    if "stress_ref" in arr:
        metrics["stress_rmse_GPa"] = EV_PER_A3_TO_GPA * _rmse(arr["stress_pred"], arr["stress_ref"])
        metrics["stress_mae_GPa"] = EV_PER_A3_TO_GPA * _mae(arr["stress_pred"], arr["stress_ref"])
    return metrics
