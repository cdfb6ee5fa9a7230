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

from superionic.analysis.arrhenius import fit_arrhenius
from superionic.analysis.diffusion import WindowRule
from superionic.analysis.errors import AnalysisError
from superionic.analysis.integrity import BrokenDynamicsError
from superionic.analysis.msd import msd_fft
from superionic.analysis.readers import load_ion_positions, open_trajectory
from superionic.analysis.report import ArrheniusReport, TransportReport, analyze_trajectory, arrhenius_report
from superionic.md.driver import MdConfig, MdError, run_md
from superionic.validation.statistics import compare_log, log_verdict
from superionic.workflows.precision import (
    CAGE_PS,
    ArrheniusGuess,
    Plan,
    PrecisionError,
    Targets,
    guess_from_pilots,
    make_plan,
    needed_log_error,
    plan_lengths,
    predicted_precision,
    reached_precision,
    shortfall,
    spaced_in_inverse,
)

GUARD_MARGIN = 1.1
PILOT_SLOPE_TOLERANCE = 0.2
# A finite-size effect smaller than this ratio of D is not worth a larger production cell.
FINITE_SIZE_RESOLUTION = 1.5
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
    pilot_ps: float = 40.0  # each D pilot, and the framework pilot
    slope_tolerance: float = 0.2
    fit: str = "ols"  # the analysis' default fit (analysis.diffusion), as every other report of the job uses
    # D at the highest temperature again in the cell doubled in each direction (8 × the atoms), the
    # same length, compared by validate's z test on ln D (docs/precision.md, "Finite size").
    finite_size: bool = True


@dataclass
class PrecisionResult:
    plan: dict[str, Any]
    pilots: list[dict[str, Any]]
    framework_pilots: list[dict[str, Any]]
    transport: list[TransportReport]
    arrhenius: ArrheniusReport | None  # None with fewer than two usable temperatures
    targets: dict[str, Any]
    rounds: list[dict[str, Any]]
    notes: list[str]
    wall_s: float
    finite_size: dict[str, Any] | None = None


def _steps(md: MdConfig, ps: float) -> int:
    return md.eq_steps + math.ceil(ps / md.timestep_ps / md.dump_every) * md.dump_every


def _log_error(report: TransportReport) -> float:
    lo, hi = report.tracer["ci95_cm2_per_s"]
    return math.log(hi / lo) / (2 * 1.959963984540054)


def _cage_plateau(trajectory: str, ion: str) -> float:
    reader = open_trajectory(trajectory)
    ions = load_ion_positions(reader, ion)
    try:
        msd = msd_fft(np.asarray(ions.positions, dtype=np.float64)).sum(axis=1)  # 3D, [T]
        times = ions.times_ps - ions.times_ps[0]
    finally:
        ions.close()
    return float(np.interp(CAGE_PS, times, msd))


class _Runner:
    def __init__(self, request: PrecisionRequest, on_stage: Callable[[str], None]) -> None:
        self.request = request
        self.on_stage = on_stage
        self.notes: list[str] = []
        self.framework_broke = False
        self.rule = WindowRule(slope_tolerance=request.slope_tolerance)
        # A pilot needs D to a few tens of per cent to plan with; a short run of caged ions rarely
        # meets the production rule (± 0.1), so pilots take at least ± 0.2 (docs/precision.md).
        self.pilot_rule = WindowRule(slope_tolerance=max(PILOT_SLOPE_TOLERANCE, request.slope_tolerance))

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

    def analyse(self, trajectory: str, out: str, rule: WindowRule | None = None) -> TransportReport:
        return analyze_trajectory(
            trajectory,
            self.request.ion,
            Path(self.request.output) / out,
            rule=rule or self.rule,
            fit=self.request.fit,
        )

    def framework(self, high: float, tries: int = 3) -> tuple[float, list[dict[str, Any]]]:
        """The highest temperature whose 1.1 × keeps the framework intact over the guard pilot
        (``tries`` = 1: only check the given one and say what broke)."""
        records = []
        for _ in range(tries):
            probe = round(GUARD_MARGIN * high)
            self.on_stage(f"framework pilot at {probe:g} K ({GUARD_MARGIN:g} × {high:g} K)")
            directory = Path(self.request.output) / "pilots" / "framework" / f"T{probe:g}K"
            if (directory / "stopped.json").exists():  # a rerun: this probe broke before
                guard = json.loads((directory / "run.json").read_text()).get("guard") or {}
            else:
                summary = self.md("pilots/framework", [probe], [self.request.pilot_ps], guard_action="stop")
                guard = summary.runs[0].guard or {}
            stopped = guard.get("stopped_at_step")
            records.append({"temperature_K": probe, "guard": guard})
            if stopped is None:
                return high, records
            if tries == 1:
                self.notes.append(
                    f"the framework broke at {probe:g} K, {GUARD_MARGIN:g} × the highest temperature asked "
                    f"for ({guard.get('stop_detail')}): the model may not hold {high:g} K either"
                )
                self.framework_broke = True
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
                report = self.analyse(
                    run.trajectory, f"pilots/analysis/T{run.temperature_K:g}K", rule=self.pilot_rule
                )
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
        budget = request.targets.max_md_ns * 1000.0
        if request.temperatures:
            # The user's temperatures are kept; the plan only sets how long each runs, and a plan
            # that cannot be made leaves each at the budget.
            given = sorted(request.temperatures, reverse=True)
            _, framework = self.framework(given[0], tries=1)
            try:
                guess, reference, pilots = self.pilots(given[0])
                plan = plan_lengths(given, guess, request.targets, reference)
            except PrecisionError as err:
                pilots = []
                plan = Plan(given, [budget] * len(given), math.nan, math.nan, math.nan, budget, list(given))
                self.notes.append(f"no precision plan ({err}); every temperature runs the budget")
        else:
            high, framework = self.framework(request.high_K)
            guess, reference, pilots = self.pilots(high)
            plan = make_plan(guess, high, request.floor_K, request.targets, reference)
        lengths = dict(zip(plan.temperatures_K, plan.lengths_ps, strict=True))
        rounds: list[dict[str, Any]] = []
        for k in range(EXTENSION_ROUNDS + 1):
            self.on_stage(
                f"production {'' if k == 0 else f'extension {k} '}at "
                + ", ".join(f"{t:g} K {lengths[t]:.0f} ps" for t in plan.temperatures_K)
            )
            summary = self.md("production", plan.temperatures_K, [lengths[t] for t in plan.temperatures_K])
            reports, failures = [], {}
            for run in summary.runs:
                try:
                    reports.append(self.analyse(run.trajectory, f"analysis/T{run.temperature_K:g}K"))
                except BrokenDynamicsError as err:
                    failures[run.temperature_K] = ("broken", str(err))
                except AnalysisError as err:
                    failures[run.temperature_K] = ("not diffusive", str(err))
            errors = {r.temperature_K: _log_error(r) for r in reports}
            needed = needed_log_error(plan.temperatures_K, request.targets)
            # The fit itself, as the report will make it: its covariance is scaled by χ²/dof when
            # the points scatter more than their errors say, which the errors alone do not predict.
            ea_half, factor = _fitted_precision(reports) if len(reports) >= 2 else (math.inf, math.inf)
            if math.isfinite(ea_half) and math.isfinite(factor):
                predicted = predicted_precision(list(errors), list(errors.values()))
                # Every point must be more precise by the factor the fit misses its targets by
                # (errors add in quadrature over the points, so the scale carries over).
                missed_by = max(shortfall(ea_half, factor, request.targets), 1.0)
                needed = min(needed, max(errors.values()) / missed_by) if missed_by > 1 else needed
            else:
                predicted = (math.inf, math.inf)
            rounds.append(
                {
                    "lengths_ps": dict(lengths),
                    "log_errors": errors,
                    "failures": {t: f"{kind}: {why}" for t, (kind, why) in failures.items()},
                    "needed_log_error": needed,
                    "ea_half_width_eV": ea_half,
                    "sigma_factor": factor,
                    "predicted_from_errors": {"ea_half_width_eV": predicted[0], "sigma_factor": predicted[1]},
                }
            )
            # Longer runs help a temperature that is too noisy or not yet diffusive; a broken one
            # only breaks for longer.
            short = {t: e for t, e in errors.items() if e > needed * 1.02 and lengths[t] < budget}
            short |= {
                t: 2.0 * needed
                for t, (kind, _) in failures.items()
                if kind == "not diffusive" and lengths[t] < budget
            }
            met = ea_half <= request.targets.ea_half_width_eV and factor <= request.targets.sigma_factor
            if met or not short or k == EXTENSION_ROUNDS:
                break
            for t, e in short.items():
                lengths[t] = min(budget, lengths[t] * (e / needed) ** 2 * 1.1)
        for t, (kind, why) in sorted(failures.items()):
            self.notes.append(f"{t:g} K left out of the fit, {kind}: {why}")
        finite = None
        if request.finite_size and reports:
            hottest = max(reports, key=lambda r: r.temperature_K)
            finite = self.finite_size(hottest, lengths[hottest.temperature_K])
        arrhenius = (
            arrhenius_report(reports, Path(request.output) / "analysis") if len(reports) >= 2 else None
        )
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
            finite_size=finite,
        )

    def finite_size(self, small: TransportReport, length_ps: float) -> dict[str, Any]:
        """D of ``small``'s temperature in the cell doubled along each axis, same length and rule,
        against ``small`` by the z test on ln D `superionic validate` uses."""
        t = small.temperature_K
        base = self.request.md
        self.on_stage(f"finite-size check at {t:g} K: the cell doubled along each axis, {length_ps:.0f} ps")
        # One temperature: all the ranks the production used side by side split this one cell.
        summary = self.md(
            "finite_size",
            [t],
            [length_ps],
            supercell=(2, 2, 2),
            nprocs=base.nprocs * base.parallel,
            parallel=1,
        )
        record: dict[str, Any] = {
            "temperature_K": t,
            "atoms": {"production": None, "doubled": summary.atoms},
            "length_ps": length_ps,
            "resolution": FINITE_SIZE_RESOLUTION,
        }
        try:
            large = self.analyse(summary.runs[0].trajectory, f"finite_size/analysis/T{t:g}K")
        except AnalysisError as err:
            record |= {"verdict": "undetermined", "detail": f"the doubled cell gave no D: {err}"}
            return record
        d_small, d_large = small.tracer["diffusion_cm2_per_s"], large.tracer["diffusion_cm2_per_s"]
        comparison = compare_log(d_large, _log_error(large), d_small, _log_error(small))
        verdict = log_verdict(
            "D(doubled cell) / D(production cell)", comparison, FINITE_SIZE_RESOLUTION, 0.05
        )
        record |= {
            "atoms": {"production": summary.atoms // 8, "doubled": summary.atoms},
            "D_production_cm2_per_s": d_small,
            "D_production_ci95_cm2_per_s": list(small.tracer["ci95_cm2_per_s"]),
            "D_doubled_cm2_per_s": d_large,
            "D_doubled_ci95_cm2_per_s": list(large.tracer["ci95_cm2_per_s"]),
            "ratio": comparison.ratio,
            "ratio_ci95": list(comparison.ratio_ci95),
            "z": comparison.z,
            "verdict": verdict.label,
            "detail": verdict.detail,
        }
        if verdict.outcome == "disagree":
            self.notes.append(
                f"finite size: D at {t:g} K changes by {comparison.ratio:.3g}× when the cell is doubled "
                f"(95 % {comparison.ratio_ci95[0]:.3g}–{comparison.ratio_ci95[1]:.3g}): use --min-ions larger"
            )
        return record

    def _verdict(
        self, arrhenius: ArrheniusReport | None, plan: Plan, lengths, last, budget
    ) -> dict[str, Any]:
        t = self.request.targets
        ea_half, factor = reached_precision(arrhenius) if arrhenius is not None else (math.inf, math.inf)
        met_ea, met_sigma = ea_half <= t.ea_half_width_eV, factor <= t.sigma_factor
        advice = None
        if not (met_ea and met_sigma) and not last["log_errors"]:
            advice = "no temperature gave a D: see the notes (a broken framework needs data, not longer runs)"
        elif not (met_ea and met_sigma):
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
            "framework_broke_above": self.framework_broke,
            "ea_half_width_eV": ea_half,
            "ea_target_eV": t.ea_half_width_eV,
            "ea_met": met_ea,
            "sigma_factor": factor,
            "sigma_target": t.sigma_factor,
            "sigma_met": met_sigma,
            "advice": advice,
        }


def _fitted_precision(reports: list[TransportReport]) -> tuple[float, float]:
    """(95 % half-width of Ea, upper/lower factor of D(300 K)'s 95 % interval) of the weighted
    Arrhenius fit of these D, as analysis.arrhenius makes it (σ(300 K) has the same factor: σ T ∝ D
    with the same relative errors)."""
    fit = fit_arrhenius(
        [r.temperature_K for r in reports],
        [r.tracer["diffusion_cm2_per_s"] for r in reports],
        [r.tracer["stderr_cm2_per_s"] for r in reports],
    )
    lo, hi = fit.activation_energy_ci95_eV
    low, high = fit.extrapolate(300.0).ci95
    return 0.5 * (hi - lo), (high / low if low > 0 else math.inf)


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
