"""Lesson about data quality: the same model trained on the same frames labelled at two fidelities.

The frames of a training config (the high-fidelity labels, e.g. SevenNet-0) are labelled again by
a second labeller (e.g. CHGNet, a different and on sulfides less accurate universal potential).
The same model config then trains on each labelling with the same split, and the study asks
whether two ways of judging the models tell the same story:

* **RMSE on each model's own reference**: what a user sees who only has that labeller's data;
* **transport against the high-fidelity teacher's MD**: D per temperature and Ea from
  ``superionic validate``, the quantity the user wants.

It also measures the label gap itself (RMSE of the low-fidelity labels against the high-fidelity
ones on the same frames), which bounds how well the low-fidelity model can do on the truth.
"""

from __future__ import annotations

import copy
import csv
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.io import read, write

from superionic.data.dataset import split_indices
from superionic.data.generate import label_frame
from superionic.data.labellers import make_labeller
from superionic.studies.transport_score import (
    TransportRow,
    check_references,
    describe_d,
    export_checkpoint,
    score_transport,
    transport_disagrees,
)
from superionic.train.config import ConfigError, TrainConfig
from superionic.train.trainer import Trainer
from superionic.validation.metrics import evaluate_model

# Own-reference force RMSEs within this factor of each other count as "RMSE says they are equally
# good": training noise between seeds is about 10 % here, so 25 % is a difference a user would act on.
RMSE_EQUAL_FACTOR = 1.25


class DataQualityError(ConfigError):
    """A data-quality study that cannot run as asked."""


@dataclass(frozen=True)
class LabelGap:
    """Low- against high-fidelity labels of the same frames."""

    frames: int
    force_rmse_eV_per_A: float
    # Universal potentials have different energy zeros: the mean per-atom offset is removed first.
    energy_rmse_meV_per_atom: float
    energy_offset_eV_per_atom: float


@dataclass(frozen=True)
class FidelityRow:
    labels: str  # "high" or "low"
    labeller: str
    train_file: str
    own_val_force_rmse_eV_per_A: float
    own_val_energy_rmse_meV_per_atom: float
    high_val_force_rmse_eV_per_A: float  # the same validation frames, high-fidelity labels
    train_wall_s: float
    epochs_run: int
    model: str
    transport: TransportRow


@dataclass(frozen=True)
class DataQualityResult:
    high_labeller: str
    low_labeller: str
    label_gap: LabelGap
    rows: list[FidelityRow]
    verdict: str
    outputs: dict[str, str]


def _high_labeller(frames: Sequence[Atoms]) -> str:
    names = {str(f.info.get("labeller", "")) for f in frames}
    names.discard("")
    return ", ".join(sorted(names)) or "the given labels"


def collect_frames(config: TrainConfig, path: Path) -> list[Atoms]:
    """The config's training frames, in order, as one extxyz file (so both labellings split alike)."""
    if config.data.val:
        raise DataQualityError(
            "data.val: the data-quality study holds out data.val_fraction of the same frames for both "
            "labellings; remove data.val from the config"
        )
    frames: list[Atoms] = []
    for source in config.data.train:
        frames.extend(read(source, ":"))
    if not path.exists():
        tmp = path.with_name(path.name + ".tmp")
        write(tmp, frames, format="extxyz")
        os.replace(tmp, path)
    return frames


def relabel(
    frames: Sequence[Atoms],
    labeller_name: str,
    output: Path,
    on_frame: Callable[[int, int], None] | None = None,
) -> Path:
    """``frames`` labelled by ``labeller_name`` into ``output``; a killed run resumes at its last frame."""
    partial = output.with_name(output.name + ".partial")
    if output.exists():
        return output
    done = len(read(partial, ":", format="extxyz")) if partial.exists() and partial.stat().st_size else 0
    labeller = make_labeller(labeller_name)
    labeller.check_elements({s for f in frames for s in f.get_chemical_symbols()}, str(output))
    for k in range(done, len(frames)):
        info = {key: value for key, value in frames[k].info.items() if isinstance(value, str | int | float)}
        info.update(labeller=labeller.name, labeller_version=labeller.version)
        write(partial, label_frame(frames[k].copy(), labeller, info), format="extxyz", append=True)
        if on_frame is not None:
            on_frame(k + 1, len(frames))
    os.replace(partial, output)
    return output


def label_gap(high: Sequence[Atoms], low: Sequence[Atoms]) -> LabelGap:
    df = np.concatenate([lo.get_forces() - hi.get_forces() for hi, lo in zip(high, low, strict=True)])
    de = np.array(
        [
            lo.get_potential_energy() / len(lo) - hi.get_potential_energy() / len(hi)
            for hi, lo in zip(high, low, strict=True)
        ]
    )
    offset = float(de.mean())
    return LabelGap(
        frames=len(high),
        force_rmse_eV_per_A=float(np.sqrt(np.mean(df**2))),
        energy_rmse_meV_per_atom=1000 * float(np.sqrt(np.mean((de - offset) ** 2))),
        energy_offset_eV_per_atom=offset,
    )


def _verdict(rows: Sequence[FidelityRow], gap: LabelGap) -> str:
    high, low = rows
    ratio = low.own_val_force_rmse_eV_per_A / high.own_val_force_rmse_eV_per_A
    if ratio > RMSE_EQUAL_FACTOR:
        rmse_says = f"ranks the low-fidelity model worse ({ratio:.2f}× the force RMSE)"
    elif ratio < 1 / RMSE_EQUAL_FACTOR:
        rmse_says = f"ranks the low-fidelity model better ({ratio:.2f}× the force RMSE)"
    else:
        rmse_says = f"calls the two models equally good ({ratio:.2f}× the force RMSE)"

    high_ok, low_ok = not transport_disagrees(high.transport), not transport_disagrees(low.transport)
    ea = low.transport.Ea_difference_eV
    ea_text = f", ΔEa {ea:+.3f} eV" if ea is not None else ""
    transport_says = (
        "transport against the high-fidelity MD puts the low-fidelity model's D at "
        f"{describe_d(low.transport)}"
        f"{ea_text}, the high-fidelity model's at {describe_d(high.transport)}"
    )
    rmse_equal = 1 / RMSE_EQUAL_FACTOR <= ratio <= RMSE_EQUAL_FACTOR
    same_story = (rmse_equal and high_ok == low_ok) or (ratio > RMSE_EQUAL_FACTOR and high_ok and not low_ok)
    return (
        f"RMSE on each model's own reference {rmse_says}; {transport_says}. "
        f"The label gap itself is {gap.force_rmse_eV_per_A:.3f} eV/Å. "
        + (
            "The two measures tell the same story."
            if same_story
            else "The two measures do not tell the same story: judge a labeller by transport against a "
            "trusted reference, not by how well a model fits that labeller."
        )
    )


def data_quality_study(
    config: TrainConfig,
    low_labeller: str,
    references: Sequence[str | Path],
    output: str | Path,
    *,
    production_ps: float | None = None,
    parallel: int = 1,
    on_stage: Callable[[str], None] = lambda stage: None,
    on_frame: Callable[[int, int], None] | None = None,
) -> DataQualityResult:
    """Train ``config``'s model on its own labels and on ``low_labeller``'s labels of the same frames;
    compare RMSE and transport. Every stage keeps its files, so a rerun picks up where it stopped."""
    check_references(references)
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    high_file = out / "labels_high.extxyz"
    high_frames = collect_frames(config, high_file)
    high_name = _high_labeller(high_frames)
    on_stage(f"label {len(high_frames)} frames with {low_labeller}")
    low_file = relabel(high_frames, low_labeller, out / f"labels_{low_labeller}.extxyz", on_frame)
    low_frames = read(low_file, ":")
    gap = label_gap(high_frames, low_frames)

    _, val_idx = split_indices(len(high_frames), config.data.val_fraction, config.data.split_seed)
    val_high = out / "val_high.extxyz"
    write(val_high, [high_frames[i] for i in val_idx], format="extxyz")

    rows = []
    for labels, name, train_file in (("high", high_name, high_file), ("low", low_labeller, low_file)):
        done = out / f"row_{labels}.json"
        if done.exists():  # this labelling was trained and validated by an earlier run
            saved = json.loads(done.read_text())
            rows.append(FidelityRow(**{**saved, "transport": TransportRow(**saved["transport"])}))
            continue
        on_stage(f"train on the {labels}-fidelity labels ({name})")
        run = copy.deepcopy(config)
        run.data.train = [str(train_file)]
        run.output = str(out / f"train_{labels}")
        trained = Trainer(run, overwrite=True).run()
        model = export_checkpoint(trained.checkpoint, out / f"model_{labels}.pt")
        on_high = evaluate_model(model, [val_high], out / f"eval_{labels}_on_high")
        on_stage(f"validate the {labels}-fidelity model against the reference MD")
        transport = score_transport(
            model,
            references,
            out / f"validate_{labels}",
            production_ps=production_ps,
            parallel=parallel,
            overwrite=True,
        )
        m = trained.val_metrics
        row = FidelityRow(
            labels=labels,
            labeller=name,
            train_file=str(train_file),
            own_val_force_rmse_eV_per_A=m["force_rmse_eV_per_A"],
            own_val_energy_rmse_meV_per_atom=1000 * m["energy_rmse_eV_per_atom"],
            high_val_force_rmse_eV_per_A=on_high.metrics["force_rmse_eV_per_A"],
            train_wall_s=trained.wall_s,
            epochs_run=trained.epochs_run,
            model=str(model),
            transport=transport,
        )
        done.write_text(json.dumps(asdict(row), indent=2, default=str))
        rows.append(row)
    result = DataQualityResult(
        high_labeller=high_name,
        low_labeller=low_labeller,
        label_gap=gap,
        rows=rows,
        verdict=_verdict(rows, gap),
        outputs={},
    )
    return write_outputs(result, out)


def write_outputs(result: DataQualityResult, out: Path) -> DataQualityResult:
    paths = {
        "json": str(out / "data_quality.json"),
        "csv": str(out / "data_quality.csv"),
        "png": str(out / "data_quality.png"),
    }
    result = replace(result, outputs=paths)
    Path(paths["json"]).write_text(json.dumps(asdict(result), indent=2, default=str))
    with open(paths["csv"], "w", newline="") as handle:
        writer = csv.writer(handle)
        temperatures = result.rows[0].transport.temperatures_K
        writer.writerow(
            ["labels", "labeller", "own_val_force_rmse_eV_per_A", "high_val_force_rmse_eV_per_A", "Ea_eV"]
            + [f"D_{t:g}K_cm2_per_s" for t in temperatures]
            + [f"D_ratio_{t:g}K" for t in temperatures]
        )
        for row in result.rows:
            writer.writerow(
                [
                    row.labels,
                    row.labeller,
                    row.own_val_force_rmse_eV_per_A,
                    row.high_val_force_rmse_eV_per_A,
                    row.transport.Ea_eV,
                    *row.transport.D_cm2_per_s,
                    *row.transport.D_ratio,
                ]
            )
    plot_data_quality(result, Path(paths["png"]))
    return result


def plot_data_quality(result: DataQualityResult, path: Path) -> Path:
    """Left: force RMSE on the own and on the high-fidelity labels; right: D against the reference."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.8))
    x = np.arange(len(result.rows))
    left.bar(x - 0.2, [r.own_val_force_rmse_eV_per_A for r in result.rows], 0.4, label="own labels")
    left.bar(
        x + 0.2, [r.high_val_force_rmse_eV_per_A for r in result.rows], 0.4, label="high-fidelity labels"
    )
    left.set_xticks(x, [f"trained on\n{r.labeller}" for r in result.rows])
    left.set_ylabel("validation force RMSE (eV/Å)")
    left.legend(fontsize=8)
    first = result.rows[0].transport
    inverse_t = [1000 / t for t in first.temperatures_K]
    _errorbars(
        right, inverse_t, first.reference_D_cm2_per_s, first.reference_D_ci95_cm2_per_s, "k", "reference MD"
    )
    for row, colour in zip(result.rows, ("C0", "C1"), strict=False):
        tr = row.transport
        _errorbars(
            right, inverse_t, tr.D_cm2_per_s, tr.D_ci95_cm2_per_s, colour, f"trained on {row.labeller}"
        )
    right.set_yscale("log")
    right.set_xlabel("1000 / T (1/K)")
    right.set_ylabel("Li D (cm²/s)")
    right.legend(fontsize=8)
    fig.suptitle(f"data quality: {result.high_labeller} vs {result.low_labeller} labels of the same frames")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _errorbars(ax: Any, x: list[float], values: list, intervals: list, colour: str, label: str) -> None:
    points = [(xi, v, ci) for xi, v, ci in zip(x, values, intervals, strict=True) if v is not None and ci]
    if not points:
        return
    xs, vs, cis = zip(*points, strict=True)
    low = [v - ci[0] for v, ci in zip(vs, cis, strict=True)]
    high = [ci[1] - v for v, ci in zip(vs, cis, strict=True)]
    ax.errorbar(xs, vs, yerr=[low, high], fmt="o", color=colour, label=label, capsize=3)
