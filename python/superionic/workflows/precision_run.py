"""Reach the precision targets with MD: pilots, the plan, production, and extension until met.

1. **framework pilot** at 1.1 × the highest temperature, guard stop (docs/guard.md): if the model's
   framework breaks there, the highest temperature is lowered by a factor 1.1 and the pilot repeated
   (at most three times), so every temperature of the plan keeps a 10 % margin below breakage.
2. **D pilots** at the highest temperature and two lower ones (evenly in 1/T towards the floor):
   D, its standard error, and the MSD's cage plateau, which give a first Arrhenius guess.
3. **plan** (workflows.precision): ≥ 5 temperatures from the lowest that turns diffusive within the
   budget up to the highest, evenly in 1/T, and the length each needs.
4. **production**, then **extension**: every run whose ln D error exceeds what the targets need is
   continued from its restart files by (error / needed)² of its length, within the budget, up to
   three times. The result says which targets were met, and if not, which budget to raise by how much.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from superionic.analysis.diffusion import WindowRule
from superionic.analysis.errors import AnalysisError
from superionic.analysis.msd import msd_fft
from superionic.analysis.readers import load_ion_positions, open_trajectory
from superionic.analysis.report import ArrheniusReport, TransportReport, analyze_trajectory, arrhenius_report
from superionic.md.driver import MdConfig, MdError, run_md
from superionic.workflows.precision import (
    CAGE_PS,
    ArrheniusGuess,
    Plan,
    PrecisionError,
    Targets,
    guess_from_pilots,
    make_plan,
    needed_log_error,
    predicted_precision,
    spaced_in_inverse,
)

GUARD_MARGIN = 1.1
EXTENSION_ROUNDS = 3


@dataclass
class PrecisionRequest:
    md: MdConfig  # structure, model, cell, time step, frames; its temperatures and steps are the plan's
    ion: str
    output: str
    targets: Targets = field(default_factory=Targets)
    high_K: float = 1200.0
    floor_K: float = 500.0
    temperatures: list[float] | None = None  # given: the plan only sets the lengths
    pilot_ps: float = 40.0
    guard_pilot_ps: float = 50.0
    slope_tolerance: float = 0.2
    fit: str = "gls"


@dataclass
class PrecisionResult:
    plan: dict[str, Any]
    pilots: list[dict[str, Any]]
    framework_pilots: list[dict[str, Any]]
    transport: list[TransportReport]
    arrhenius: ArrheniusReport
    targets: dict[str, Any]
    rounds: list[dict[str, Any]]
    notes: list[str]
    wall_s: float


def _steps(md: MdConfig, ps: float) -> int:
    return md.eq_steps + math.ceil(ps / md.timestep_ps / md.dump_every) * md.dump_every


def _log_error(report: TransportReport) -> float:
    lo, hi = report.tracer["ci95_cm2_per_s"]
    return math.log(hi / lo) / (2 * 1.959963984540054)


def _cage_plateau(trajectory: str, ion: str) -> float:
    reader = open_trajectory(trajectory)
    ions = load_ion_positions(reader, ion)
    try:
        msd = msd_fft(np.asarray(ions.positions, dtype=np.float64))
        times = ions.times_ps - ions.times_ps[0]
    finally:
        ions.close()
    return float(np.interp(CAGE_PS, times, msd))


class _Runner:
    def __init__(self, request: PrecisionRequest, on_stage: Callable[[str], None]) -> None:
        self.request = request
        self.on_stage = on_stage
        self.notes: list[str] = []
        self.rule = WindowRule(slope_tolerance=request.slope_tolerance)

    def md(self, directory: str, temperatures: list[float], lengths_ps: list[float], **changes: Any):
        base = self.request.md
        steps = {t: _steps(base, ps) for t, ps in zip(temperatures, lengths_ps, strict=True)}
        config = replace(
            base,
            temperatures=temperatures,
            steps=max(steps.values()),
            steps_by_temperature=steps,
            output=str(Path(self.request.output) / directory),
            extend=True,
            **changes,
        )
        return run_md(config)

    def analyse(self, trajectory: str, out: str) -> TransportReport:
        return analyze_trajectory(
            trajectory,
            self.request.ion,
            Path(self.request.output) / out,
            rule=self.rule,
            fit=self.request.fit,
        )

    def framework(self, high: float) -> tuple[float, list[dict[str, Any]]]:
        """The highest temperature whose 1.1 × keeps the framework intact over the guard pilot."""
        records = []
        for _ in range(3):
            probe = round(GUARD_MARGIN * high)
            self.on_stage(f"framework pilot at {probe:g} K ({GUARD_MARGIN:g} × {high:g} K)")
            directory = Path(self.request.output) / "pilots" / "framework" / f"T{probe:g}K"
            if (directory / "stopped.json").exists():  # a rerun: this probe broke before
                guard = json.loads((directory / "run.json").read_text()).get("guard") or {}
            else:
                summary = self.md(
                    "pilots/framework", [probe], [self.request.guard_pilot_ps], guard_action="stop"
                )
                guard = summary.runs[0].guard or {}
            stopped = guard.get("stopped_at_step")
            records.append({"temperature_K": probe, "guard": guard})
            if stopped is None:
                return high, records
            self.notes.append(
                f"the framework broke at {probe:g} K ({guard.get('stop_detail')}): the highest temperature "
                f"is lowered from {high:g} to {round(high / GUARD_MARGIN):g} K"
            )
            high = float(round(high / GUARD_MARGIN))
        raise PrecisionError(
            f"the model's framework breaks at {GUARD_MARGIN:g} × every highest temperature tried, down to "
            f"{high * GUARD_MARGIN:g} K: retrain with data at those temperatures (docs/guard.md)"
        )

    def pilots(self, high: float) -> tuple[ArrheniusGuess, tuple[float, float, float], list[dict[str, Any]]]:
        request = self.request
        temperatures = spaced_in_inverse(max(request.floor_K, 0.7 * high), high, 3)
        self.on_stage(
            f"D pilots at {', '.join(f'{t:g}' for t in temperatures)} K, {request.pilot_ps:g} ps each"
        )
        summary = self.md("pilots/transport", temperatures, [request.pilot_ps] * 3)
        records, found = [], []
        for run in summary.runs:
            try:
                report = self.analyse(run.trajectory, f"pilots/analysis/T{run.temperature_K:g}K")
            except AnalysisError as err:
                records.append({"temperature_K": run.temperature_K, "D_cm2_per_s": None, "why": str(err)})
                continue
            cage = _cage_plateau(run.trajectory, request.ion)
            d, s = report.tracer["diffusion_cm2_per_s"], _log_error(report)
            records.append(
                {"temperature_K": run.temperature_K, "D_cm2_per_s": d, "log_error": s, "cage_msd_A2": cage}
            )
            found.append((run.temperature_K, d, s, cage, report.duration_ps))
        if len(found) < 2:
            raise PrecisionError(
                f"the pilots at {', '.join(f'{t:g}' for t in temperatures)} K gave a D at fewer than two "
                "temperatures: raise the highest temperature or --pilot-ps"
            )
        guess = guess_from_pilots([f[0] for f in found], [f[1] for f in found], min(f[3] for f in found))
        best = max(found, key=lambda f: f[0])
        return guess, (best[2], best[4], best[1]), records

    def run(self) -> PrecisionResult:
        start = time.perf_counter()
        request = self.request
        request.targets.check()
        high, framework = self.framework(request.high_K)
        guess, reference, pilots = self.pilots(high)
        if request.temperatures:
            plan = make_plan(
                guess, max(request.temperatures), min(request.temperatures), request.targets, reference
            )
            plan.temperatures_K = sorted(request.temperatures, reverse=True)
        else:
            plan = make_plan(guess, high, request.floor_K, request.targets, reference)
        lengths = dict(zip(plan.temperatures_K, plan.lengths_ps, strict=True))
        rounds: list[dict[str, Any]] = []
        budget = request.targets.max_md_ns * 1000.0
        for k in range(EXTENSION_ROUNDS + 1):
            self.on_stage(
                f"production {'' if k == 0 else f'extension {k} '}at "
                + ", ".join(f"{t:g} K {lengths[t]:.0f} ps" for t in plan.temperatures_K)
            )
            summary = self.md("production", plan.temperatures_K, [lengths[t] for t in plan.temperatures_K])
            reports = []
            for run in summary.runs:
                reports.append(self.analyse(run.trajectory, f"analysis/T{run.temperature_K:g}K"))
            errors = {r.temperature_K: _log_error(r) for r in reports}
            needed = needed_log_error(plan.temperatures_K, request.targets)
            ea_half, factor = predicted_precision(list(errors), list(errors.values()))
            rounds.append(
                {
                    "lengths_ps": dict(lengths),
                    "log_errors": errors,
                    "needed_log_error": needed,
                    "ea_half_width_eV": ea_half,
                    "sigma_factor": factor,
                }
            )
            short = {t: e for t, e in errors.items() if e > needed * 1.02 and lengths[t] < budget}
            if (
                ea_half <= request.targets.ea_half_width_eV and factor <= request.targets.sigma_factor
            ) or not short:
                break
            if k == EXTENSION_ROUNDS:
                break
            for t, e in short.items():
                lengths[t] = min(budget, lengths[t] * (e / needed) ** 2 * 1.1)
        arrhenius = arrhenius_report(reports, Path(request.output) / "analysis")
        targets = self._verdict(arrhenius, plan, lengths, rounds[-1], budget)
        return PrecisionResult(
            plan=asdict(plan),
            pilots=pilots,
            framework_pilots=framework,
            transport=reports,
            arrhenius=arrhenius,
            targets=targets,
            rounds=rounds,
            notes=self.notes,
            wall_s=time.perf_counter() - start,
        )

    def _verdict(self, arrhenius: ArrheniusReport, plan: Plan, lengths, last, budget) -> dict[str, Any]:
        t = self.request.targets
        lo, hi = arrhenius.activation_energy_ci95_eV
        ea_half = 0.5 * (hi - lo)
        slo, shi = arrhenius.conductivity_300K_ci95_S_per_cm
        factor = shi / slo if slo > 0 else math.inf
        met_ea, met_sigma = ea_half <= t.ea_half_width_eV, factor <= t.sigma_factor
        advice = None
        if not (met_ea and met_sigma):
            worst = max(last["log_errors"].values())
            needed = last["needed_log_error"]
            capped = [temp for temp, length in lengths.items() if length >= budget * 0.999]
            scale = (worst / needed) ** 2
            if capped:
                advice = (
                    f"raise --max-md-ns from {t.max_md_ns:g} to about "
                    f"{math.ceil(t.max_md_ns * scale * 10) / 10:g} "
                    f"(the runs at {', '.join(f'{c:g}' for c in sorted(capped))} K hit it), or a larger cell"
                )
            else:
                advice = f"the runs need about {scale:.2g}× their length; the same command extends them"
        return {
            "ea_half_width_eV": ea_half,
            "ea_target_eV": t.ea_half_width_eV,
            "ea_met": met_ea,
            "sigma_factor": factor,
            "sigma_target": t.sigma_factor,
            "sigma_met": met_sigma,
            "advice": advice,
        }


def run_to_precision(
    request: PrecisionRequest, on_stage: Callable[[str], None] = lambda text: None
) -> PrecisionResult:
    """Pilots, plan, production and extension for ``request`` (see the module docstring)."""
    try:
        result = _Runner(request, on_stage).run()
    except MdError:
        raise
    out = Path(request.output)
    out.mkdir(parents=True, exist_ok=True)
    body = asdict(result)
    (out / "precision.json").write_text(json.dumps(body, indent=2, default=str))
    return result
