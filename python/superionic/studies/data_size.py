"""Lesson 1, data size: the same training config on growing, nested subsets of the data.

Every size trains from the same seed and is validated on the same held-out frames (the split is
fixed by data.split_seed; max_frames takes a seeded prefix of one permutation of the remaining
frames, so smaller sets are subsets of larger ones). The learning curve tells how many frames a
material needs before validation errors stop improving.
"""

from __future__ import annotations

import copy
import csv
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from superionic.train.config import TrainConfig
from superionic.train.trainer import Trainer


@dataclass(frozen=True)
class LearningCurvePoint:
    frames: int
    val_force_rmse_eV_per_A: float
    val_energy_rmse_meV_per_atom: float
    val_stress_rmse_GPa: float
    epochs_run: int
    wall_s: float
    checkpoint: str


def learning_curve(
    config: TrainConfig,
    sizes: Sequence[int],
    output: str | Path,
    on_size: Callable[[int], None] | None = None,
) -> list[LearningCurvePoint]:
    out = Path(output)
    points = []
    for size in sorted(sizes):
        if on_size:
            on_size(size)
        run = copy.deepcopy(config)
        run.data.max_frames = size
        run.output = str(out / f"frames_{size}")
        result = Trainer(run, overwrite=True).run()
        m = result.val_metrics
        points.append(
            LearningCurvePoint(
                frames=size,
                val_force_rmse_eV_per_A=m["force_rmse_eV_per_A"],
                val_energy_rmse_meV_per_atom=1000 * m["energy_rmse_eV_per_atom"],
                val_stress_rmse_GPa=m.get("stress_rmse_GPa", float("nan")),
                epochs_run=result.epochs_run,
                wall_s=result.wall_s,
                checkpoint=result.checkpoint,
            )
        )
    write_outputs(points, out)
    return points


def write_outputs(points: Sequence[LearningCurvePoint], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    rows = [asdict(p) for p in points]
    (out / "learning_curve.json").write_text(json.dumps(rows, indent=2))
    with (out / "learning_curve.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    plot_learning_curve(points, out / "learning_curve.png")


def plot_learning_curve(points: Sequence[LearningCurvePoint], path: Path) -> Path:
    """Validation force and energy RMSE against training frames, log-log (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    fig, ax = plt.subplots(figsize=(5, 4))
    frames = [p.frames for p in points]
    ax.loglog(frames, [p.val_force_rmse_eV_per_A for p in points], "o-", label="force (eV/Å)")
    ax.loglog(frames, [p.val_energy_rmse_meV_per_atom / 1000 for p in points], "s-", label="energy (eV/atom)")
    ax.set_xlabel("training frames")
    # Label the sizes studied, not log decades (whose minor labels collide on a short axis).
    ax.set_xticks(frames, [str(f) for f in frames])
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_ylabel("validation RMSE")
    ax.set_title("data-size study")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
