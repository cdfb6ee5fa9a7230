"""Lesson about architecture: model families trained on the same data, judged on errors, transport and cost.

Each training config names a model (the sprinter, the marathon, any other ``model.kind``); all must
share one ``data`` section, so every model sees the same frames and is validated on the same
held-out ones. For each: validation energy/force/stress RMSE, D per temperature and Ea against the
teacher's MD (``superionic validate``), MD speed in LAMMPS on one cell (CPU-time atom-steps/s,
robust on a shared machine) on one rank and per core on two, and the training wall time. On one
rank a message-passing model runs on the folded periodic graph, on two on the ghost shell as thick
as its receptive field (docs/conventions.md), so the two figures are its cost both ways. The first
config is the baseline the others are stated against: "B costs N× A per atom-step and changes D by
x ± y %".
"""

from __future__ import annotations

import copy
import csv
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from ase import Atoms

from superionic.md.speed import MdSpeed, measure_md_speed
from superionic.studies.transport_score import (
    TransportRow,
    check_references,
    export_checkpoint,
    score_transport,
)
from superionic.train.checkpoint import model_from_checkpoint
from superionic.train.config import ConfigError, TrainConfig
from superionic.train.trainer import Trainer, TrainResult
from superionic.validation.statistics import log_sigma


class ArchitectureError(ConfigError):
    """An architecture study whose configs cannot be compared."""


@dataclass(frozen=True)
class ArchitectureRow:
    name: str
    kind: str
    parameters: int
    val_force_rmse_eV_per_A: float
    val_energy_rmse_meV_per_atom: float
    val_stress_rmse_GPa: float
    epochs_run: int
    train_wall_s: float
    model: str
    speed: MdSpeed  # one rank
    transport: TransportRow
    speed_2ranks: MdSpeed | None = None  # two ranks (a message-passing model's ghost shell)


@dataclass(frozen=True)
class ArchitectureResult:
    rows: list[ArchitectureRow]
    timing_cell_atoms: int
    verdict: str
    outputs: dict[str, str]


def check_same_data(configs: Sequence[tuple[str, TrainConfig]]) -> None:
    first_name, first = configs[0]
    for name, config in configs[1:]:
        mine, theirs = asdict(config.data), asdict(first.data)
        differing = [key for key in mine if mine[key] != theirs[key]]
        if differing:
            raise ArchitectureError(
                f"{name}: data.{differing[0]} differs from {first_name}'s; the architecture study compares "
                "models trained on the same frames, so give every config the same data section"
            )


def d_change(baseline: TransportRow, other: TransportRow, k: int) -> tuple[float, float] | None:
    """D(other)/D(baseline) − 1 at temperature k, and its standard error, in per cent (log scale)."""
    a, b = baseline.D_cm2_per_s[k], other.D_cm2_per_s[k]
    ai, bi = baseline.D_ci95_cm2_per_s[k], other.D_ci95_cm2_per_s[k]
    if a is None or b is None or not ai or not bi:
        return None
    # The intervals are bootstrap percentiles: their log width / 3.92 is the log standard error.
    s = math.hypot(log_sigma(a, tuple(ai), 0.0), log_sigma(b, tuple(bi), 0.0))
    ratio = b / a
    return 100 * (ratio - 1), 100 * ratio * s


# The two-rank timing runs as many steps as about this long at the one-rank speed (a message-passing
# model's ghost shell makes each step several times slower, and a shared machine slower still).
TWO_RANK_TIMING_S = 15.0


def per_core(speed: MdSpeed) -> float:
    """CPU-time atom-steps per core-second: the ranks' CPU-time rate shared between them."""
    return speed.cpu_atom_steps_per_s / speed.ranks


def two_rank_steps(one_rank: MdSpeed, timing_steps: int) -> int:
    seconds_per_step = one_rank.wall_s / max(one_rank.steps, 1)
    return max(min(10, timing_steps), min(timing_steps, math.ceil(TWO_RANK_TIMING_S / seconds_per_step)))


def verdict(rows: Sequence[ArchitectureRow]) -> str:
    base = rows[0]
    sentences = []
    for row in rows[1:]:
        cost = base.speed.cpu_atom_steps_per_s / row.speed.cpu_atom_steps_per_s
        two = ""
        if base.speed_2ranks is not None and row.speed_2ranks is not None:
            two = f", {per_core(base.speed_2ranks) / per_core(row.speed_2ranks):.1f}× per core on 2 ranks"
        changes = []
        for k, temperature in enumerate(base.transport.temperatures_K):
            change = d_change(base.transport, row.transport, k)
            changes.append(
                f"{change[0]:+.0f} ± {change[1]:.0f} % at {temperature:g} K"
                if change
                else f"no D at {temperature:g} K"
            )
        ea_a, ea_b = base.transport.Ea_eV, row.transport.Ea_eV
        ea = f"; Ea {ea_b:.3f} vs {ea_a:.3f} eV" if ea_a is not None and ea_b is not None else ""
        sentences.append(
            f"The {row.name} costs {cost:.1f}× the {base.name} per atom-step (CPU time, "
            f"{base.speed.atoms} atoms, 1 rank{two}) and changes D by {', '.join(changes)}{ea}; force RMSE "
            f"{row.val_force_rmse_eV_per_A:.3f} vs {base.val_force_rmse_eV_per_A:.3f} eV/Å, training "
            f"{row.train_wall_s / 60:.0f} vs {base.train_wall_s / 60:.0f} min."
        )
    return " ".join(sentences)


def _finished_training(directory: Path) -> TrainResult | None:
    """The result of a training that finished in an earlier run (its metrics.json is written last)."""
    metrics = directory / "metrics.json"
    if not metrics.exists():
        return None
    result = TrainResult(**json.loads(metrics.read_text()))
    return result if Path(result.checkpoint).exists() else None


def architecture_study(
    configs: Sequence[tuple[str, TrainConfig]],
    references: Sequence[str | Path],
    timing_cell: Atoms,
    output: str | Path,
    *,
    production_ps: float | None = None,
    parallel: int = 1,
    timing_steps: int = 200,
    on_stage: Callable[[str], None] = lambda stage: None,
) -> ArchitectureResult:
    """Train, validate and time every config; a rerun reuses the rows already finished."""
    if len(configs) < 2:
        raise ArchitectureError("the architecture study compares at least two training configs")
    check_same_data(configs)
    check_references(references)
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    elements = sorted(set(timing_cell.get_chemical_symbols()))
    rows = []
    for name, config in configs:
        done = out / name / "row.json"
        if done.exists():
            saved = json.loads(done.read_text())
            saved["speed"] = MdSpeed(**saved["speed"])
            if saved.get("speed_2ranks"):
                saved["speed_2ranks"] = MdSpeed(**saved["speed_2ranks"])
            saved["transport"] = TransportRow(**saved["transport"])
            rows.append(ArchitectureRow(**saved))
            continue
        trained = _finished_training(out / name / "train")
        if trained is None:
            on_stage(f"train {name}")
            run = copy.deepcopy(config)
            run.output = str(out / name / "train")
            trained = Trainer(run, overwrite=True).run()
        model = export_checkpoint(trained.checkpoint, out / name / "model.pt")
        parameters = sum(p.numel() for p in model_from_checkpoint(trained.checkpoint)[0].parameters())
        on_stage(f"time {name} in LAMMPS")
        speed = measure_md_speed(model, timing_cell, elements, steps=timing_steps)
        on_stage(f"time {name} in LAMMPS on 2 ranks")
        steps = two_rank_steps(speed, timing_steps)
        speed_2ranks = measure_md_speed(
            model, timing_cell, elements, steps=steps, warmup_steps=min(20, steps), ranks=2
        )
        on_stage(f"validate {name} against the reference MD")
        transport = score_transport(
            model,
            references,
            out / name / "validate",
            production_ps=production_ps,
            parallel=parallel,
            overwrite=True,
        )
        m = trained.val_metrics
        row = ArchitectureRow(
            name=name,
            kind=config.model.kind,
            parameters=int(parameters),
            val_force_rmse_eV_per_A=m["force_rmse_eV_per_A"],
            val_energy_rmse_meV_per_atom=1000 * m["energy_rmse_eV_per_atom"],
            val_stress_rmse_GPa=m.get("stress_rmse_GPa", float("nan")),
            epochs_run=trained.epochs_run,
            train_wall_s=trained.wall_s,
            model=str(model),
            speed=speed,
            transport=transport,
            speed_2ranks=speed_2ranks,
        )
        done.write_text(json.dumps(asdict(row), indent=2, default=str))
        rows.append(row)
    paths = {k: str(out / f"architecture.{k}") for k in ("json", "csv", "png")}
    result = ArchitectureResult(rows, len(timing_cell), verdict(rows), paths)
    Path(paths["json"]).write_text(json.dumps(asdict(result), indent=2, default=str))
    _write_csv(result, Path(paths["csv"]))
    plot_architecture(result, Path(paths["png"]))
    return result


def _write_csv(result: ArchitectureResult, path: Path) -> None:
    temperatures = result.rows[0].transport.temperatures_K
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            [
                "name",
                "kind",
                "parameters",
                "val_force_rmse_eV_per_A",
                "val_energy_rmse_meV_per_atom",
                "val_stress_rmse_GPa",
                "cpu_atom_steps_per_s",
                "cpu_atom_steps_per_s_per_core_2ranks",
                "train_wall_s",
                "Ea_eV",
                *[f"D_{t:g}K_cm2_per_s" for t in temperatures],
                *[f"D_ratio_to_reference_{t:g}K" for t in temperatures],
            ]
        )
        for r in result.rows:
            writer.writerow(
                [
                    r.name,
                    r.kind,
                    r.parameters,
                    r.val_force_rmse_eV_per_A,
                    r.val_energy_rmse_meV_per_atom,
                    r.val_stress_rmse_GPa,
                    r.speed.cpu_atom_steps_per_s,
                    per_core(r.speed_2ranks) if r.speed_2ranks else None,
                    r.train_wall_s,
                    r.transport.Ea_eV,
                    *r.transport.D_cm2_per_s,
                    *r.transport.D_ratio,
                ]
            )


def plot_architecture(result: ArchitectureResult, path: Path) -> Path:
    """Left: D against 1000/T with the reference; right: force RMSE against MD cost per atom-step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    first = result.rows[0].transport
    inverse_t = [1000 / t for t in first.temperatures_K]
    series = [("reference MD", first.reference_D_cm2_per_s, first.reference_D_ci95_cm2_per_s, "k")]
    series += [
        (r.name, r.transport.D_cm2_per_s, r.transport.D_ci95_cm2_per_s, f"C{k}")
        for k, r in enumerate(result.rows)
    ]
    for offset, (label, values, intervals, colour) in enumerate(series):
        points = [
            (x, v, ci) for x, v, ci in zip(inverse_t, values, intervals, strict=True) if v is not None and ci
        ]
        if points:
            xs, vs, cis = zip(*points, strict=True)
            shift = 0.004 * (offset - len(series) / 2)  # side by side, not on top of each other
            left.errorbar(
                [x + shift for x in xs],
                vs,
                yerr=[
                    [v - c[0] for v, c in zip(vs, cis, strict=True)],
                    [c[1] - v for v, c in zip(vs, cis, strict=True)],
                ],
                fmt="o",
                color=colour,
                capsize=3,
                label=label,
            )
    left.set_yscale("log")
    left.set_xlabel("1000 / T (1/K)")
    left.set_ylabel("Li D (cm²/s), 95 % intervals")
    left.legend(fontsize=8)
    for k, r in enumerate(result.rows):
        cost = 1e6 / r.speed.cpu_atom_steps_per_s
        right.scatter(
            cost, r.val_force_rmse_eV_per_A, color=f"C{k}", s=60, label="1 rank" if k == 0 else None
        )
        right.annotate(r.name, (cost, r.val_force_rmse_eV_per_A), textcoords="offset points", xytext=(6, 4))
        if r.speed_2ranks is not None:
            right.scatter(
                1e6 / per_core(r.speed_2ranks),
                r.val_force_rmse_eV_per_A,
                facecolors="none",
                edgecolors=f"C{k}",
                s=60,
                label="2 ranks (per core)" if k == 0 else None,
            )
    right.set_xscale("log")
    right.legend(fontsize=8)
    right.set_xlabel(f"MD cost, CPU µs per atom-step ({result.timing_cell_atoms} atoms)")
    right.set_ylabel("validation force RMSE (eV/Å)")
    fig.suptitle("architecture study: same data, same validation frames")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
