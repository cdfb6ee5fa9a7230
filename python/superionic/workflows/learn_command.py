"""The `superionic learn` verb: the config, a rich progress display, and the per-round table."""

from __future__ import annotations

import argparse
from pathlib import Path

from superionic.progress import progress_display


def cmd_learn(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, TextColumn, TimeElapsedColumn

    from superionic.workflows.learn import LearnProgress, learn
    from superionic.workflows.learn_config import load_learn_config

    config = load_learn_config(args.config)
    console = Console(stderr=True)
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
    )
    with progress_display(*columns, console=console) as progress:
        overall = progress.add_task("active learning", total=config.rounds, status="")
        current: dict[str, int] = {}

        def task(name: str, total: float | None) -> int:
            if name not in current:
                current[name] = progress.add_task(name, total=total, status="")
            return current[name]

        def stage(r: int, name: str, text: str) -> None:
            for key in list(current):
                progress.remove_task(current.pop(key))
            progress.update(overall, completed=r, status=text)

        def train(p) -> None:
            t = task("training", p.members)
            fraction = min(1.0, (p.epoch + p.step_in_epoch / max(1, p.steps_per_epoch)) / max(1, p.epochs))
            val = f" val F-RMSE {p.val_force_rmse:.4f} eV/Å" if p.val_force_rmse is not None else ""
            progress.update(
                t, completed=p.member + fraction, status=f"member {p.member + 1}/{p.members}{val}"
            )

        def md_step(temperature: float, step: int, total: int) -> None:
            progress.update(task(f"MD {temperature:g} K", total), completed=step, status=f"step {step}")

        def label(done: int, total: int) -> None:
            progress.update(task("labelling", total), completed=done, status=f"{done}/{total} frames")

        result = learn(config, LearnProgress(stage=stage, train=train, md_step=md_step, label=label))
        progress.update(overall, completed=config.rounds, status=result.stopped)
    threshold = config.threshold if config.threshold is not None else config.lo
    print(f"round  T (K)   uncertain (> {threshold:g} eV/Å)  max devi_f mean  frames added  D (cm²/s)")
    for record in result.rounds:
        for t, stats in record.get("temperatures", {}).items():
            fraction = stats.get("uncertain_fraction")
            shown = "none" if fraction is None else f"{fraction:.3f}"
            mean = stats.get("max_devi_f_mean")
            mean_shown = "none" if mean is None else f"{mean:.4f}"
            d = stats.get("D_cm2_per_s")
            print(
                f"{record['round']:>5}  {t:>5}  {shown:>24}  {mean_shown:>15}  "
                f"{record.get('frames_added', 0):>12}  {'not determined' if d is None else f'{d:.3e}'}"
            )
    verdict = {"converged": "converged: every temperature at or below", "rounds": "stopped after"}[
        result.stopped
    ]
    detail = (
        f"target {config.target_fraction:g}" if result.stopped == "converged" else f"{config.rounds} rounds"
    )
    for sentence in result.worse_rounds:
        print(sentence)
    print(
        f"{verdict} {detail}; kept round {result.best_round} (docs/active_learning.md): "
        f"committee {result.final_committee}"
    )
    print(f"report {result.report_json}; table {result.report_csv}; figure {result.figure}")
    return 0


def add_learn_command(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``learn`` (active learning with a committee; docs/active_learning.md)."""
    parser = subparsers.add_parser(
        "learn",
        help="active learning: committee MD, label frames in the deviation band, retrain, repeat",
    )
    parser.add_argument(
        "config", type=Path, help="learn YAML (docs/active_learning.md); rerun the same command to resume"
    )
    parser.set_defaults(func=cmd_learn)
    return parser
