"""`superionic learn`: active learning with a committee, built in and resumable.

Round r (directory ``OUTPUT/round_<r>``), each stage recorded in ``state.json`` when it finishes:

1. trained   a committee of K members (round 0 from scratch, or the committee given; later rounds
             warm-started from the previous round's members, see ``learn_train``) on the starting
             data plus every frame labelled in rounds < r;
2. exported  the members to TorchScript (``export/committee.json``);
3. md        committee MD at each temperature (member 0 drives; every ``devi_every`` steps all
             members are evaluated and the deviation written to ``model_devi.out``);
4. analysed  the deviation statistics per temperature, the uncertain fraction (``learn_selection``), Li D
             from the trajectory and, with references, the validation verdicts; if every
             temperature's uncertain fraction is at or below the target, or this is the last
             round, the run stops here;
5. selected  at most ``max_frames`` trajectory frames with ``lo <= max_devi_f <= hi``, spaced in time;
6. labelled  those frames labelled by the labeller (``round_<r>/labelled.extxyz``).

``learn.json``, ``learn.csv`` and ``learn.png`` (uncertain fraction per round) are rewritten after
every round. Rerunning the same command continues where a kill stopped it.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from superionic.analysis.errors import AnalysisError
from superionic.train.config import load_config
from superionic.workflows.learn_config import LearnConfig, LearnError
from superionic.workflows.learn_frames import finished_file, label_and_write, read_frames, trajectory_steps
from superionic.workflows.learn_report import write_report
from superionic.workflows.learn_selection import (
    Band,
    Candidate,
    DeviationSeries,
    band_candidates,
    deviation_statistics,
    onset_candidates,
    select_frames,
)
from superionic.workflows.learn_state import EventLog, RoundState, write_json_atomic
from superionic.workflows.learn_train import round_train_config, train_round

log = logging.getLogger("superionic.learn")

Hook = Callable[[int, str, str], None]


@dataclass
class LearnProgress:
    """What a display is told; every callback is optional."""

    stage: Callable[[int, str, str], None] | None = None  # round, stage, description
    train: Callable[[Any], None] | None = None  # MemberProgress
    md_step: Callable[[float, int, int], None] | None = None  # temperature, step, total
    label: Callable[[int, int], None] | None = None  # done, total

    def say(self, round_index: int, stage: str, text: str) -> None:
        if self.stage is not None:
            self.stage(round_index, stage, text)


@dataclass
class LearnResult:
    output: str
    rounds: list[dict[str, Any]]
    stopped: str  # converged | rounds
    final_committee: str  # the best round's committee (round_score), not necessarily the last
    best_round: int
    worse_rounds: list[str]  # one sentence per round that made the committee worse than its predecessor
    report_json: str
    report_csv: str
    figure: str


def round_directory(output: Path, r: int) -> Path:
    return output / f"round_{r:03d}"


def _check_same_run(config: LearnConfig, output: Path) -> None:
    """A rerun must continue the run it finds, not mix two configs in one output."""
    path = output / "learn_config.json"
    current = {"fingerprint": config.fingerprint(), "config": config.to_dict()}
    if path.exists():
        stored = json.loads(path.read_text())
        if stored.get("fingerprint") != current["fingerprint"]:
            old, new = stored.get("config", {}), current["config"]
            keys = [k for k in new if k not in ("rounds", "target_fraction") and old.get(k) != new[k]]
            raise LearnError(
                f"{config.source}: {output} holds an active-learning run made with other "
                f"{', '.join(keys) or 'settings'}; restore them to continue it, or set another output"
            )
    write_json_atomic(path, current)


class _Run:
    def __init__(self, config: LearnConfig, progress: LearnProgress, hook: Hook | None) -> None:
        self.config = config
        self.output = Path(config.output)
        self.progress = progress
        self.hook = hook
        self.band = Band(config.lo, config.hi, config.threshold)
        self.base_train = load_config(config.training)
        if self.base_train.data.max_frames is not None:
            # The trainer draws a seeded subset of all training files: the frames learn adds
            # would be dropped from it at random.
            raise LearnError(
                f"{config.training}: data.max_frames = {self.base_train.data.max_frames}: learn adds frames "
                "to the training data and a subset would drop them; remove max_frames (cut the starting "
                "file instead)"
            )
        self._labeller = None
        self.events = EventLog(self.output / "events.jsonl")

    # --- one stage, resumable -------------------------------------------------------------------

    def stage(self, state: RoundState, name: str, work: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        if state.done(name):
            self.events.add(state.round, name, "skipped")
            return state.result(name)
        self.events.add(state.round, name, "started")
        start = time.perf_counter()
        result = work()
        result["wall_s"] = round(time.perf_counter() - start, 2)
        if self.hook:
            self.hook(state.round, name, "before_mark")
        state.mark(name, result)
        self.events.add(state.round, name, "finished", wall_s=result["wall_s"])
        if self.hook:
            self.hook(state.round, name, "after_mark")
        return state.result(name)

    # --- stages ---------------------------------------------------------------------------------

    def train(self, r: int, directory: Path, previous: list[RoundState]) -> dict[str, Any]:
        config = self.config
        if r == 0 and config.committee is not None:
            self.progress.say(r, "trained", f"round {r}: committee given ({config.committee})")
            from superionic.train.committee import read_manifest

            trained = read_manifest(config.committee)
            return {
                "manifest": str(trained.manifest),
                "given": True,
                "warm_start": False,
                "val_force_rmse_eV_per_A": [m.get("force_rmse_eV_per_A") for m in trained.val_metrics],
                "data": list(self.base_train.data.train),
            }
        extra = [Path(s.result("labelled")["file"]) for s in previous if s.result("labelled")["frames"]]
        train = round_train_config(self.base_train, config, r, extra, directory / "train")
        warm = r > 0 and config.finetune.epochs is not None
        previous_manifest = Path(previous[-1].result("trained")["manifest"]) if warm else None
        how = f"warm-started from round {r - 1}, {train.training.epochs} epochs" if warm else "from scratch"
        self.progress.say(r, "trained", f"round {r}: training {config.members} members ({how})")
        result = train_round(train, config.members, previous_manifest, on_progress=self.progress.train)
        return {
            "manifest": str(result.manifest),
            "given": False,
            "warm_start": warm,
            "epochs": train.training.epochs,
            "lr": train.training.lr,
            "val_force_rmse_eV_per_A": result.val_force_rmse,
            "data": list(train.data.train),
        }

    def export(self, r: int, directory: Path, trained: dict[str, Any]) -> dict[str, Any]:
        from superionic.export import export_committee
        from superionic.md.committee import read_committee

        self.progress.say(r, "exported", f"round {r}: exporting the committee")
        exported = export_committee(Path(trained["manifest"]), directory / "export")
        return {"committee": str(exported), "members": [str(p) for p in read_committee(exported)]}

    def md(self, r: int, directory: Path, exported: dict[str, Any]) -> dict[str, Any]:
        from superionic.md.driver import run_md

        config, md = self.config, self.config.md
        output = directory / "md"
        pending = [
            t for t in config.temperatures if not (output / f"T{t:g}K" / "restart.final.lammps").exists()
        ]
        self.progress.say(
            r, "md", f"round {r}: committee MD at {', '.join(f'{t:g}' for t in config.temperatures)} K"
        )
        for t in pending:
            _forget_unresumable(output / f"T{t:g}K")
        if pending:
            run_md(self._md_config(r, exported, output, pending), on_step=self.progress.md_step)
        runs = {}
        for t in config.temperatures:
            run_dir = output / f"T{t:g}K"
            runs[f"{t:g}"] = {
                "directory": str(run_dir),
                "trajectory": str(run_dir / "traj.h5"),
                "devi_file": str(run_dir / "model_devi.out"),
            }
        return {"runs": runs, "seed": md.seed + r}

    def _md_config(self, r: int, exported: dict[str, Any], output: Path, temperatures: list[float]):
        from superionic.md.driver import MdConfig

        config, md = self.config, self.config.md
        settings: dict[str, Any] = {
            "structure": config.structure,
            "model": exported["committee"],
            "temperatures": temperatures,
            "steps": md.steps,
            "eq_steps": md.eq_steps,
            "timestep_ps": md.timestep_ps,
            "dump_every": md.dump_every,
            "restart_every": md.restart_every,
            "nprocs": md.nprocs,
            "parallel": min(md.parallel, len(temperatures)),
            "seed": md.seed + r,  # a new trajectory each round, not the last one retraced
            "output": str(output),
            "supercell": tuple(config.supercell) if config.supercell else None,
            "min_width": config.min_width,
            "ordering_seed": config.ordering_seed,
            "allow_small_cell": config.allow_small_cell,
            "devi_every": md.devi_every,
            "devi_threshold": self.band.uncertain_above,
            "devi_stop": md.devi_stop,
        }
        known = {f.name for f in fields(MdConfig)}
        missing = [k for k in ("devi_every", "devi_threshold") if k not in known]
        if missing:
            raise LearnError(
                f"this superionic's md has no committee MD ({', '.join(missing)}); update superionic"
            )
        return MdConfig(**{k: v for k, v in settings.items() if k in known})

    def series(self, run: dict[str, Any]) -> DeviationSeries:
        from superionic.md.committee import read_devi_file

        raw = read_devi_file(run["devi_file"])
        return DeviationSeries.from_columns(
            raw.step, raw.max_devi_f, raw.min_devi_f, raw.avg_devi_f, raw.devi_e
        )

    def analyse(
        self, r: int, directory: Path, md_result: dict[str, Any], exported: dict[str, Any]
    ) -> dict[str, Any]:
        config = self.config
        self.progress.say(r, "analysed", f"round {r}: deviation statistics, D per temperature")
        per_t: dict[str, Any] = {}
        for t in config.temperatures:
            run = md_result["runs"][f"{t:g}"]
            production = self.series(run).production(config.md.eq_steps)
            stats = deviation_statistics(production, self.band)
            stats.update(self._framework(run))
            stats.update(self._diffusion(run, directory / "analysis" / f"T{t:g}K"))
            stats["stopped_at_step"] = self._stopped_at(run)
            per_t[f"{t:g}"] = stats
        fractions = [s.get("uncertain_fraction", float("nan")) for s in per_t.values()]
        pooled = _pooled_fraction(per_t)
        result: dict[str, Any] = {
            "temperatures": per_t,
            "uncertain_fraction_max": float(np.nanmax(fractions)) if np.isfinite(fractions).any() else None,
            "uncertain_fraction_pooled": pooled,
            "threshold": self.band.uncertain_above,
        }
        if config.validation.references:
            result["validation"] = self._validate(r, directory, md_result, exported)
        return _finite(result)

    def _framework(self, run: dict[str, Any]) -> dict[str, Any]:
        """The framework check of the run (docs/guard.md) against member 0's floors."""
        from superionic.analysis.integrity import check_integrity, floors_for
        from superionic.analysis.readers import open_trajectory

        trajectory = Path(run["trajectory"])
        floors = floors_for(trajectory)
        if floors is None:
            return {"broken_fraction": None, "first_broken_ps": None, "first_breach": None}
        report = check_integrity(open_trajectory(trajectory), floors, self.config.ion)
        return {
            "broken_fraction": report.broken_fraction,
            "first_broken_ps": report.first_broken_time_ps,
            "first_breach": report.summary() if not report.intact else None,
        }

    def _stopped_at(self, run: dict[str, Any]) -> int | None:
        """The step at which devi_stop ended the run (superionic md's stopped.json), else None."""
        stopped = Path(run["directory"]) / "stopped.json"
        return int(json.loads(stopped.read_text())["step"]) if stopped.exists() else None

    def _diffusion(self, run: dict[str, Any], out: Path) -> dict[str, Any]:
        from superionic.analysis.diffusion import WindowRule
        from superionic.analysis.report import analyze_trajectory

        try:
            report = analyze_trajectory(
                run["trajectory"], self.config.ion, out, rule=WindowRule(slope_tolerance=0.2), n_bootstrap=200
            )
        except AnalysisError as err:
            return {"D_cm2_per_s": None, "D_ci95_cm2_per_s": None, "D_not_determined": str(err)}
        tracer = report.tracer
        return {
            "D_cm2_per_s": tracer["diffusion_cm2_per_s"],
            "D_ci95_cm2_per_s": list(tracer["ci95_cm2_per_s"]),
        }

    def _validate(
        self, r: int, directory: Path, md_result: dict[str, Any], exported: dict[str, Any]
    ) -> dict[str, Any]:
        from superionic.validation import ValidationRequest, validate
        from superionic.validation.runner import load_reference

        refs, trajectories, notes = [], {}, []
        for text in self.config.validation.references:
            path, _, at = text.rpartition("@") if "@" in text else (text, "", "")
            ref = load_reference(path, float(at) if at else None)
            match = next((t for t in self.config.temperatures if abs(t - ref.temperature_K) <= 1.0), None)
            if match is None:
                notes.append(f"{path}: no learn run at {ref.temperature_K:g} K; not compared")
                continue
            refs.append(text)
            trajectories[ref.temperature_K] = md_result["runs"][f"{match:g}"]["trajectory"]
        if not refs:
            return {"verdicts": [], "notes": notes}
        request = ValidationRequest(
            model=exported["members"][0],
            references=refs,
            model_trajectories=trajectories,
            ion=self.config.ion,
            output=str(directory / "validation"),
            slope_tolerance=self.config.validation.slope_tolerance,
        )
        try:
            report = validate(request)
        except AnalysisError as err:
            return {"verdicts": [], "notes": [*notes, f"validation not possible: {err}"]}
        verdicts = [
            {k: v for k, v in verdict.items() if k in ("temperature_K", "quantity", "label", "statistic")}
            for verdict in report.verdicts
        ]
        return {"verdicts": verdicts, "figure": report.figure, "notes": notes + report.notes}

    def select(self, r: int, directory: Path, md_result: dict[str, Any]) -> dict[str, Any]:
        config = self.config
        self.progress.say(r, "selected", f"round {r}: choosing frames in [{config.lo:g}, {config.hi:g}] eV/Å")
        per_t: list[list[Candidate]] = []
        series: dict[float, DeviationSeries] = {}
        for t in config.temperatures:
            run = md_result["runs"][f"{t:g}"]
            production = self.series(run).production(config.md.eq_steps)
            series[t] = production
            steps = trajectory_steps(run["trajectory"])
            onsets = onset_candidates(production, steps, self.band, t)
            taken = {c.step for c in onsets}
            per_t.append(
                onsets + [c for c in band_candidates(production, steps, self.band, t) if c.step not in taken]
            )
        chosen = select_frames(per_t, config.max_frames, config.gap_steps)
        frames = []
        for c in chosen:
            frames.append(
                {
                    "temperature_K": c.temperature_K,
                    "step": c.step,
                    "onset": c.onset,
                    **series[c.temperature_K].row(c.step),
                }
            )
        write_json_atomic(directory / "selected.json", frames)
        return {
            "candidates": {f"{t:g}": len(c) for t, c in zip(config.temperatures, per_t, strict=True)},
            "onsets": {
                f"{t:g}": sum(c.onset for c in cs) for t, cs in zip(config.temperatures, per_t, strict=True)
            },
            "selected": len(frames),
            "selected_onsets": sum(1 for f in frames if f["onset"]),
            "file": str(directory / "selected.json"),
        }

    def label(
        self, r: int, directory: Path, md_result: dict[str, Any], selected: dict[str, Any]
    ) -> dict[str, Any]:
        chosen = json.loads(Path(selected["file"]).read_text())
        output = directory / "labelled.extxyz"
        if not chosen:
            return {"file": str(output), "frames": 0}
        self.progress.say(
            r, "labelled", f"round {r}: labelling {len(chosen)} frames with {self.config.labeller}"
        )
        if finished_file(output, len(chosen)):  # labelled by a run killed before its marker
            return {"file": str(output), "frames": len(chosen)}
        frames, infos = [], []
        for t in self.config.temperatures:
            mine = [c for c in chosen if c["temperature_K"] == t]
            if not mine:
                continue
            run = md_result["runs"][f"{t:g}"]
            frames += read_frames(run["trajectory"], [c["step"] for c in mine])
            for c in mine:
                infos.append(
                    {
                        "sampling": "active_learning",
                        "learn_round": r,
                        "temperature_K": float(t),
                        "md_step": int(c["step"]),
                        "md_trajectory": run["trajectory"],
                        "max_devi_f": c["max_devi_f"],
                        "excursion_onset": bool(c.get("onset", False)),
                        "min_devi_f": c["min_devi_f"],
                        "avg_devi_f": c["avg_devi_f"],
                        "devi_e": c["devi_e"],
                        "ordering_seed": int(self.config.ordering_seed),
                        "strain": "none",
                    }
                )
        labeller = self.labeller(frames[0])
        label_and_write(
            frames,
            infos,
            labeller,
            output,
            self._structure_info(),
            seed=self.config.ordering_seed,
            on_frame=self.progress.label,
        )
        return {"file": str(output), "frames": len(frames), "labeller": labeller.version}

    def labeller(self, sample):
        if self._labeller is None:
            from superionic.data.labellers import make_labeller

            self._labeller = make_labeller(self.config.labeller, device=self.config.device)
            self._labeller.check_elements(set(sample.get_chemical_symbols()), self.config.structure)
        return self._labeller

    def _structure_info(self) -> dict[str, Any]:
        from superionic.data.generate import structure_info
        from superionic.data.materials import build_cell

        atoms, report = build_cell(
            self.config.structure,
            seed=self.config.ordering_seed,
            supercell=tuple(self.config.supercell) if self.config.supercell else None,
            min_width=self.config.min_width,
        )
        return structure_info(atoms, report)

    # --- the loop -------------------------------------------------------------------------------

    def run(self) -> LearnResult:
        config = self.config
        self.output.mkdir(parents=True, exist_ok=True)
        _check_same_run(config, self.output)
        states: list[RoundState] = []
        stopped = "rounds"
        for r in range(config.rounds):
            directory = round_directory(self.output, r)
            state = RoundState.load(directory, r)
            trained = self.stage(state, "trained", partial(self.train, r, directory, list(states)))
            exported = self.stage(state, "exported", partial(self.export, r, directory, trained))
            md_result = self.stage(state, "md", partial(self.md, r, directory, exported))
            analysed = self.stage(state, "analysed", partial(self.analyse, r, directory, md_result, exported))
            states.append(state)
            converged = _converged(analysed, config.target_fraction)
            if converged or r == config.rounds - 1:
                stopped = "converged" if converged else "rounds"
                break
            selected = self.stage(state, "selected", partial(self.select, r, directory, md_result))
            self.stage(state, "labelled", partial(self.label, r, directory, md_result, selected))
            self._report(states, None)
        return self._report(states, stopped)

    def _report(self, states: list[RoundState], stopped: str | None) -> LearnResult:
        rounds = [_round_record(s) for s in states]
        best, worse = best_round(rounds)
        paths = write_report(self.output, rounds, self.config, stopped, best, worse)
        final = states[best].result("exported")["committee"] if states else ""
        return LearnResult(
            output=str(self.output),
            rounds=rounds,
            stopped=stopped or "running",
            final_committee=final,
            best_round=best,
            worse_rounds=worse,
            report_json=str(paths[0]),
            report_csv=str(paths[1]),
            figure=str(paths[2]),
        )


def round_score(record: dict[str, Any]) -> tuple[float, float]:
    """What makes a round better (smaller): first the largest fraction of broken frames over its
    temperatures (a framework that breaks makes every other number meaningless), then its largest
    uncertain fraction. A round not yet analysed scores worst."""
    temps = record.get("temperatures")
    if not temps:
        return (math.inf, math.inf)
    broken = max((t.get("broken_fraction") or 0.0) for t in temps.values())
    uncertain = [t.get("uncertain_fraction") for t in temps.values()]
    worst = max((u if u is not None else math.inf) for u in uncertain)
    return (broken, worst)


def best_round(rounds: list[dict[str, Any]]) -> tuple[int, list[str]]:
    """The round whose committee is kept (smallest round_score; the later round on a tie, it has
    more data) and a sentence for every round that scored worse than the round before it."""
    if not rounds:
        return 0, []
    scores = [round_score(r) for r in rounds]
    best = min(range(len(rounds)), key=lambda k: (scores[k], -k))
    worse = []
    for k in range(1, len(rounds)):
        if scores[k] > scores[k - 1] and math.isfinite(scores[k][1]):
            (b0, u0), (b1, u1) = scores[k - 1], scores[k]
            worse.append(
                f"round {k} made the committee worse than round {k - 1}: broken frames "
                f"{100 * b0:.3g} % → {100 * b1:.3g} %, largest uncertain fraction "
                f"{100 * u0:.3g} % → {100 * u1:.3g} %"
            )
    return best, worse


def _forget_unresumable(directory: Path) -> None:
    """A run killed before its first restart file cannot be resumed (superionic md refuses a
    trajectory without one): it starts again from step 0, so what it wrote goes."""
    from superionic.md.driver import newest_restart

    if directory.exists() and newest_restart(directory) is None:
        for name in ("traj.h5", "model_devi.out", "model_devi.csv"):
            (directory / name).unlink(missing_ok=True)


def _converged(analysed: dict[str, Any], target: float) -> bool:
    fractions = [s.get("uncertain_fraction") for s in analysed["temperatures"].values()]
    return all(f is not None and f <= target for f in fractions)


def _pooled_fraction(per_t: dict[str, Any]) -> float | None:
    steps = sum(s.get("deviation_steps", 0) for s in per_t.values())
    if not steps:
        return None
    return (
        sum(
            s["uncertain_fraction"] * s["deviation_steps"] for s in per_t.values() if s.get("deviation_steps")
        )
        / steps
    )


def _round_record(state: RoundState) -> dict[str, Any]:
    record: dict[str, Any] = {"round": state.round, "stages": [s for s in state.stages]}
    if state.done("trained"):
        t = state.result("trained")
        record["training"] = {
            k: t.get(k) for k in ("warm_start", "epochs", "val_force_rmse_eV_per_A", "given")
        }
        record["training_files"] = len(t.get("data", []))
    if state.done("analysed"):
        a = state.result("analysed")
        record.update(
            {
                "uncertain_fraction_max": a.get("uncertain_fraction_max"),
                "uncertain_fraction_pooled": a.get("uncertain_fraction_pooled"),
                "threshold": a.get("threshold"),
                "temperatures": a["temperatures"],
            }
        )
        if "validation" in a:
            record["validation"] = a["validation"]
    if state.done("selected"):
        record["candidates"] = state.result("selected")["candidates"]
    record["frames_added"] = state.result("labelled")["frames"] if state.done("labelled") else 0
    return record


def _finite(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    if isinstance(value, float | np.floating):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def learn(
    config: LearnConfig, progress: LearnProgress | None = None, hook: Hook | None = None
) -> LearnResult:
    """Run (or continue) active learning as ``config`` says; ``hook(round, stage, phase)`` is called
    before and after each stage's marker is written (tests use it to simulate a kill there)."""
    return _Run(copy.deepcopy(config), progress or LearnProgress(), hook).run()


__all__ = ["LearnProgress", "LearnResult", "learn", "round_directory"]
