"""The active-learning record: ``learn.json`` (everything), ``learn.csv`` (one row per round and
temperature) and ``learn.png`` (uncertain fraction per round, one line per temperature)."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from superionic.workflows.learn_config import LearnConfig
from superionic.workflows.learn_state import write_json_atomic, write_text_atomic

CSV_FIELDS = [
    "round",
    "temperature_K",
    "training_files",
    "frames_added",
    "candidates",
    "deviation_steps",
    "max_devi_f_mean",
    "max_devi_f_max",
    "threshold",
    "uncertain_fraction",
    "fraction_above_hi",
    "D_cm2_per_s",
    "D_ci95_low",
    "D_ci95_high",
    "validation_D",
]


def _csv_rows(rounds: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for record in rounds:
        for t, stats in record.get("temperatures", {}).items():
            ci = stats.get("D_ci95_cm2_per_s") or [None, None]
            verdict = next(
                (
                    v["label"]
                    for v in record.get("validation", {}).get("verdicts", [])
                    if str(v.get("quantity", "")).split("_")[0] == "D"  # D_Li, D_Na, ...
                    and v.get("temperature_K") is not None
                    and abs(float(v["temperature_K"]) - float(t)) <= 1.0
                ),
                "",
            )
            rows.append(
                {
                    "round": record["round"],
                    "temperature_K": t,
                    "training_files": record.get("training_files"),
                    "frames_added": record.get("frames_added", 0),
                    "candidates": record.get("candidates", {}).get(t, ""),
                    "deviation_steps": stats.get("deviation_steps"),
                    "max_devi_f_mean": stats.get("max_devi_f_mean"),
                    "max_devi_f_max": stats.get("max_devi_f_max"),
                    "threshold": stats.get("threshold"),
                    "uncertain_fraction": stats.get("uncertain_fraction"),
                    "fraction_above_hi": stats.get("fraction_above_hi"),
                    "D_cm2_per_s": stats.get("D_cm2_per_s"),
                    "D_ci95_low": ci[0],
                    "D_ci95_high": ci[1],
                    "validation_D": verdict,
                }
            )
    return rows


def plot_rounds(rounds: list[dict[str, Any]], config: LearnConfig, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.8), dpi=120)
    for t in config.temperatures:
        key = f"{t:g}"
        xs = [r["round"] for r in rounds if key in r.get("temperatures", {})]
        ys = [
            r["temperatures"][key].get("uncertain_fraction")
            for r in rounds
            if key in r.get("temperatures", {})
        ]
        points = [(x, y) for x, y in zip(xs, ys, strict=True) if y is not None]
        if points:
            ax.plot(*zip(*points, strict=True), marker="o", label=f"{key} K")
    ax.axhline(
        config.target_fraction, color="grey", linestyle="--", label=f"target {config.target_fraction:g}"
    )
    threshold = config.threshold if config.threshold is not None else config.lo
    ax.set_xlabel("round")
    ax.set_ylabel(f"fraction of steps with max_devi_f > {threshold:g} eV/Å")
    ax.set_ylim(bottom=0)
    ax.set_xticks([r["round"] for r in rounds] or [0])
    ax.legend(fontsize=8)
    ax.set_title("active learning: uncertain fraction per round", fontsize=10)
    fig.tight_layout()
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(path)
    return path


def write_report(
    output: Path,
    rounds: list[dict[str, Any]],
    config: LearnConfig,
    stopped: str | None,
    best_round: int = 0,
    worse_rounds: list[str] | None = None,
) -> tuple[Path, Path, Path]:
    json_path, csv_path, png_path = output / "learn.json", output / "learn.csv", output / "learn.png"
    body = {
        "definition": {
            "uncertain_fraction": "fraction of production deviation steps (step >= md.eq_steps) with "
            "max_devi_f > threshold (threshold = lo unless set), per temperature",
            "band_eV_per_A": [config.lo, config.hi],
            "threshold_eV_per_A": config.threshold if config.threshold is not None else config.lo,
            "target_fraction": config.target_fraction,
            "converged_when": "every temperature's uncertain fraction <= target_fraction",
            "kept_round": "the round with the smallest (largest broken-frame fraction over its "
            "temperatures, then largest uncertain fraction); the later round on a tie",
        },
        "stopped": stopped or "running",
        "kept_round": best_round,
        "worse_rounds": worse_rounds or [],
        "rounds": rounds,
        "config": config.to_dict(),
    }
    write_json_atomic(json_path, body)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, CSV_FIELDS)
    writer.writeheader()
    writer.writerows(_csv_rows(rounds))
    write_text_atomic(csv_path, buffer.getvalue())
    plot_rounds(rounds, config, png_path)
    return json_path, csv_path, png_path
