"""Lesson 1, data size: the same training config on growing, nested subsets of the data.

Every size trains from the same seed and is validated on the same held-out frames (the split is
fixed by data.split_seed; max_frames takes a seeded prefix of one permutation of the remaining
frames, so smaller sets are subsets of larger ones). The learning curve tells how many frames a
material needs before validation errors stop improving. Given the teacher's reference MD, every
size is also judged on transport (D per temperature, Ea, through ``superionic validate``): the
paper's point is that the errors can stop improving long before, or long after, the transport does.
"""

from __future__ import annotations

import copy
import csv
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from superionic.studies.transport_score import (
    TransportRow,
    check_references,
    export_checkpoint,
    score_transport,
)
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
    transport: TransportRow | None = None


@dataclass(frozen=True)
class TransportSettings:
    """The teacher's MD every size is validated against, and the model MD's length."""

    references: Sequence[str | Path]
    production_ps: float | None = None
    parallel: int = 1


def learning_curve(
    config: TrainConfig,
    sizes: Sequence[int],
    output: str | Path,
    on_size: Callable[[int], None] | None = None,
    transport: TransportSettings | None = None,
) -> list[LearningCurvePoint]:
    out = Path(output)
    if transport is not None:
        check_references(transport.references)
    points = []
    for size in sorted(sizes):
        if on_size:
            on_size(size)
        run = copy.deepcopy(config)
        run.data.max_frames = size
        run.output = str(out / f"frames_{size}")
        result = Trainer(run, overwrite=True).run()
        m = result.val_metrics
        row = None
        if transport is not None and transport.references:
            model = export_checkpoint(result.checkpoint, out / f"frames_{size}" / "model.pt")
            row = score_transport(
                model,
                transport.references,
                out / f"frames_{size}" / "validate",
                production_ps=transport.production_ps,
                parallel=transport.parallel,
                overwrite=True,
            )
        points.append(
            LearningCurvePoint(
                frames=size,
                val_force_rmse_eV_per_A=m["force_rmse_eV_per_A"],
                val_energy_rmse_meV_per_atom=1000 * m["energy_rmse_eV_per_atom"],
                val_stress_rmse_GPa=m.get("stress_rmse_GPa", float("nan")),
                epochs_run=result.epochs_run,
                wall_s=result.wall_s,
                checkpoint=result.checkpoint,
                transport=row,
            )
        )
    write_outputs(points, out)
    return points


def _csv_row(point: LearningCurvePoint) -> dict:
    row = {k: v for k, v in asdict(point).items() if k != "transport"}
    if point.transport is not None:
        t = point.transport
        for temperature, d, ratio, inside in zip(
            t.temperatures_K, t.D_cm2_per_s, t.D_ratio, t.D_inside_reference_ci95, strict=True
        ):
            row[f"D_{temperature:g}K_cm2_per_s"] = d
            row[f"D_ratio_{temperature:g}K"] = ratio
            row[f"D_inside_reference_ci95_{temperature:g}K"] = inside
        row["Ea_eV"] = t.Ea_eV
        row["reference_Ea_eV"] = t.reference_Ea_eV
    return row


def write_outputs(points: Sequence[LearningCurvePoint], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "learning_curve.json").write_text(json.dumps([asdict(p) for p in points], indent=2, default=str))
    rows = [_csv_row(p) for p in points]
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

    with_transport = [p for p in points if p.transport is not None]
    fig, axes = plt.subplots(1, 2 if with_transport else 1, figsize=(10 if with_transport else 5, 4))
    ax = axes[0] if with_transport else axes
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
    if with_transport:
        _plot_transport(axes[1], with_transport)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _plot_transport(ax, points: Sequence[LearningCurvePoint]) -> None:
    """D of each size over the reference's D, with both 95 % intervals (the reference's as a band)."""
    from matplotlib.ticker import NullFormatter

    first = points[0].transport
    assert first is not None
    frames = [p.frames for p in points]
    plotted = 0
    for k, temperature in enumerate(first.temperatures_K):
        colour = f"C{k}"
        ref, ref_ci = first.reference_D_cm2_per_s[k], first.reference_D_ci95_cm2_per_s[k]
        if ref and ref_ci:
            ax.axhspan(ref_ci[0] / ref, ref_ci[1] / ref, color=colour, alpha=0.12)
        xs, ys, lo, hi = [], [], [], []
        for p in points:
            t = p.transport
            d, ci = t.D_cm2_per_s[k], t.D_ci95_cm2_per_s[k]
            if d is None or not ci or not ref:
                continue
            xs.append(p.frames)
            ys.append(d / ref)
            lo.append((d - ci[0]) / ref)
            hi.append((ci[1] - d) / ref)
        if xs:
            plotted += 1
            ax.errorbar(xs, ys, yerr=[lo, hi], fmt="o-", color=colour, capsize=3, label=f"{temperature:g} K")
    ax.axhline(1.0, color="k", lw=0.8)
    if not plotted:
        # Every size's run broke its framework or was not diffusive: say so instead of an empty axis.
        ax.text(
            0.5,
            0.5,
            "no size gave a D\n(see each size's validation.json)",
            ha="center",
            va="center",
            transform=ax.transAxes,
        )
        ax.set_title("transport against the teacher's MD")
        return
    ax.set_xscale("log")
    ax.set_xticks(frames, [str(f) for f in frames])
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("training frames")
    ax.set_ylabel("D(model) / D(reference)  (band: reference 95 %)")
    ax.set_title("transport against the teacher's MD")
    ax.legend(fontsize=8)
