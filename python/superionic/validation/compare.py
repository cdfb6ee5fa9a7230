"""Model against reference at one temperature (D, MSD at equal lags, RDFs) and across them (Ea).

Every verdict comes from ``validation.statistics`` and states its statistic and nominal false-alarm
rate. A run whose MSD never turns diffusive under the window rule gives no D: the D (and Ea)
verdicts are then "undetermined: run longer" with the length the window rule would need, estimated
from that run's own MSD (``diffusive_onset_estimate``); the MSD and RDF comparisons still run.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from superionic.analysis.arrhenius import fit_arrhenius
from superionic.analysis.integrity import IntegrityReport
from superionic.analysis.statistics import Z95, bootstrap_mean_interval
from superionic.validation.errors import ValidationError
from superionic.validation.statistics import (
    Verdict,
    bonferroni_quantile,
    compare_log,
    linear_verdict,
    log_sigma,
    log_verdict,
    welch_dof,
)
from superionic.validation.transport import RunTransport

# Fractions of the longest comparable lag at which the MSDs are compared.
MSD_LAG_FRACTIONS = (0.125, 0.25, 0.5, 1.0)
RDF_STATISTICS = ("peak_position", "peak_height", "coordination")


@dataclass
class ValidationSettings:
    resolution: float = 2.0  # ratio of D (or MSD) an "agree" must be able to resolve at 80 % power
    ea_resolution_eV: float = 0.05  # the same for Ea, in eV
    level: float = 0.05  # nominal false-alarm rate of each verdict (family-wise where several tests)
    n_bootstrap: int = 1000
    seed: int = 0


@dataclass
class TemperatureComparison:
    temperature_K: float
    model: dict[str, Any]
    reference: dict[str, Any]
    verdicts: list[Verdict]
    msd_lags: list[dict[str, Any]]
    rdf: dict[str, dict[str, Any]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    framework: dict[str, Any] = field(default_factory=dict)  # framework RDFs, closest approach, integrity

    def verdict(self, quantity: str) -> Verdict | None:
        return next((v for v in self.verdicts if v.quantity == quantity), None)


def run_summary(run: RunTransport) -> dict[str, Any]:
    """The numbers of one run that go into validation.json."""
    d = run.diffusion
    return {
        "source": run.source,
        "temperature_K": run.temperature_K,
        "ion": run.ion,
        "n_ions": int(run.per_atom_msd_A2.shape[0]),
        "n_atoms": run.n_atoms,
        "composition": run.composition,
        "volume_A3": run.volume_A3,
        "duration_ps": run.duration_ps,
        "frame_interval_ps": float(run.times_ps[1] - run.times_ps[0]) if run.times_ps.size > 1 else None,
        "window_rule": vars(run.rule),
        "D_cm2_per_s": d.diffusion_cm2_per_s if d else None,
        "D_ci95_cm2_per_s": list(d.ci95_cm2_per_s) if d else None,
        "D_stderr_cm2_per_s": d.stderr_cm2_per_s if d else None,
        "D_components_cm2_per_s": list(d.components_cm2_per_s) if d else None,
        "fit_window_ps": list(d.window_ps) if d else None,
        "D_method": d.method if d else None,
        "D_not_determined": run.not_diffusive,
        "diffusive_onset_estimate": run.onset,
    }


def _d_verdict(model: RunTransport, reference: RunTransport, settings: ValidationSettings) -> Verdict:
    quantity = f"D_{model.ion}"
    if model.broken_at_once:
        return Verdict(
            quantity,
            "undetermined",
            "no D: the model's framework broke in its first frames",
            model.not_diffusive or "",
            None,
            None,
            "retrain with data where the framework broke (see framework)",
        )
    missing = [r for r in (model, reference) if r.diffusion is None]
    if missing:
        parts, factors, noisy = [], [], 0
        for run in missing:
            needed = (run.onset or {}).get("duration_needed_ps")
            if needed is not None and needed > run.duration_ps:
                factors.append(needed / run.duration_ps)
                parts.append(
                    f"{run.label} run not diffusive ({run.not_diffusive}); from its late MSD slope the "
                    f"window rule needs about {needed:.3g} ps instead of {run.duration_ps:.3g} ps"
                )
            elif needed is not None:
                noisy += 1
                parts.append(
                    f"{run.label} run not diffusive ({run.not_diffusive}); its late MSD is already close "
                    f"to linear (the rule would need only {needed:.3g} ps of its {run.duration_ps:.3g} "
                    "ps), so noise in the slope, not the length, stops the window rule: more atoms or runs"
                )
            else:
                parts.append(
                    f"{run.label} run not diffusive ({run.not_diffusive}); its MSD does not grow at late "
                    "lags, so no run length can be estimated from it"
                )
        factor = max(factors) if len(factors) == len(missing) else None
        advice = "more atoms or runs (noisy MSD slope)" if noisy == len(missing) else None
        return Verdict(
            quantity, "undetermined", "no D for one or both runs", "; ".join(parts), factor, None, advice
        )
    dm, dr = model.diffusion, reference.diffusion
    assert dm is not None and dr is not None
    sm = log_sigma(dm.diffusion_cm2_per_s, dm.ci95_cm2_per_s, dm.stderr_cm2_per_s)
    sr = log_sigma(dr.diffusion_cm2_per_s, dr.ci95_cm2_per_s, dr.stderr_cm2_per_s)
    if dm.diffusion_cm2_per_s <= 0 or dr.diffusion_cm2_per_s <= 0 or not (math.isfinite(sm + sr)):
        return Verdict(
            quantity, "undetermined", "D ≤ 0", "a fitted D is not positive: run longer", None, None
        )
    comparison = compare_log(
        dm.diffusion_cm2_per_s,
        sm,
        dr.diffusion_cm2_per_s,
        sr,
        quantile=bonferroni_quantile(1, settings.level, welch_dof(sm, dm.n_atoms, sr, dr.n_atoms)),
    )
    verdict = log_verdict(quantity, comparison, settings.resolution, settings.level)
    detail = (
        f"model D = {dm.diffusion_cm2_per_s:.3g} cm²/s (95 % {dm.ci95_cm2_per_s[0]:.3g}–"
        f"{dm.ci95_cm2_per_s[1]:.3g}), reference D = {dr.diffusion_cm2_per_s:.3g} "
        f"(95 % {dr.ci95_cm2_per_s[0]:.3g}–{dr.ci95_cm2_per_s[1]:.3g}); {verdict.detail}"
    )
    return replace(verdict, detail=detail)


def _msd_at(run: RunTransport, lag_ps: float, rng: np.random.Generator, n_bootstrap: int) -> dict[str, Any]:
    """Atom-averaged MSD at ``lag_ps`` (linear interpolation between saved lags) with a bootstrap over
    atoms (percentile 95 %), as the D intervals are made."""
    per_atom = run.per_atom_msd_A2.sum(axis=2)  # [N, T]
    curves = np.array([np.interp(lag_ps, run.times_ps, row) for row in per_atom])  # [N]
    _, stderr, interval = bootstrap_mean_interval(curves[:, None], n_bootstrap, rng)
    value = float(curves.mean())
    return {
        "msd_A2": value,
        "ci95_A2": [float(interval[0, 0]), float(interval[1, 0])],
        "stderr_A2": float(stderr[0]),
        "sigma_ln": log_sigma(value, (float(interval[0, 0]), float(interval[1, 0])), float(stderr[0])),
    }


def _msd_verdict(
    model: RunTransport, reference: RunTransport, settings: ValidationSettings
) -> tuple[Verdict, list[dict[str, Any]]]:
    """MSDs at equal lags up to end_fraction of the shorter run; Bonferroni over the lags."""
    longest = min(
        model.rule.end_fraction * model.duration_ps, reference.rule.end_fraction * reference.duration_ps
    )
    coarsest = max(model.times_ps[1], reference.times_ps[1])
    lags = sorted({math.floor(f * longest / coarsest + 1e-9) * coarsest for f in MSD_LAG_FRACTIONS} - {0.0})
    if not lags:
        raise ValidationError(
            f"the runs at {model.temperature_K:g} K are too short to compare MSDs (longest usable lag "
            f"{longest:.3g} ps): give trajectories of at least a few ps"
        )
    n_model, n_reference = model.per_atom_msd_A2.shape[0], reference.per_atom_msd_A2.shape[0]
    rng = np.random.default_rng(settings.seed)
    rows, comparisons = [], []
    for lag in lags:
        m = _msd_at(model, lag, rng, settings.n_bootstrap)
        r = _msd_at(reference, lag, rng, settings.n_bootstrap)
        dof = welch_dof(m["sigma_ln"], n_model, r["sigma_ln"], n_reference)
        c = compare_log(
            m["msd_A2"],
            m["sigma_ln"],
            r["msd_A2"],
            r["sigma_ln"],
            bonferroni_quantile(len(lags), settings.level, dof),
        )
        comparisons.append(c)
        rows.append({"lag_ps": float(lag), "model": m, "reference": r, **c.to_dict()})
    worst = max(comparisons, key=lambda c: abs(c.z) / c.quantile)
    quantile = worst.quantile
    longest_lag = comparisons[-1]
    quantity = f"MSD_{model.ion}"
    statistic = (
        f"max |z| = {abs(worst.z):.2f} over {len(lags)} lags ({', '.join(f'{lag:.3g}' for lag in lags)} ps), "
        f"Bonferroni threshold {quantile:.2f}"
    )
    detail = (
        f"at {lags[-1]:.3g} ps model/reference = {longest_lag.ratio:.3g} "
        f"(95 % {longest_lag.ratio_ci95[0]:.3g}–{longest_lag.ratio_ci95[1]:.3g}); largest deviation at "
        f"{lags[comparisons.index(worst)]:.3g} ps: {worst.ratio:.3g}"
    )
    if abs(worst.z) > quantile:
        return Verdict(quantity, "disagree", statistic, detail, None, settings.level), rows
    powered = log_verdict(quantity, longest_lag, settings.resolution, settings.level)
    if powered.outcome == "undetermined":
        return (
            replace(powered, statistic=statistic, detail=detail + "; " + powered.detail),
            rows,
        )
    return Verdict(quantity, "agree", statistic, detail, None, settings.level), rows


def _rdf_table(
    name: str, model: RunTransport, reference: RunTransport, level: float
) -> tuple[str, tuple[float, str], dict[str, Any]] | None:
    """One pair's first-peak position and height and coordination number within the reference's
    first minimum, each a Welch t test at ``level`` over block standard errors: the pair's outcome,
    its worst |t| with the statistic, and the table; None when the model run lacks the pair."""
    ref_rdf, model_rdf = reference.rdfs[name], model.rdfs.get(name)
    if model_rdf is None:
        return None
    r_cut = ref_rdf.first_minimum_after_peak()
    rows: dict[str, Any] = {}
    worst: tuple[float, str] = (0.0, "")
    outcome = "agree"
    for statistic in RDF_STATISTICS:
        vm, sm, nm = model_rdf.block_stat(statistic, r_cut)
        vr, sr, nr = ref_rdf.block_stat(statistic, r_cut)
        variance = sm**2 + sr**2
        dof = variance**2 / (sm**4 / max(1, nm - 1) + sr**4 / max(1, nr - 1)) if variance > 0 else math.inf
        single = linear_verdict(f"{name} {statistic}", vm - vr, math.sqrt(variance), dof, 1.0 - level / 2.0)
        rows[statistic] = {
            "model": vm,
            "model_stderr": sm,
            "reference": vr,
            "reference_stderr": sr,
            "welch_dof": dof,
            "verdict": single.to_dict(),
        }
        if single.outcome == "disagree":
            outcome = "disagree"
        elif single.outcome == "undetermined" and outcome == "agree":
            outcome = "undetermined"
        score = abs(vm - vr) / math.sqrt(variance) if variance > 0 else math.inf
        if score >= worst[0]:
            worst = (score, statistic)
    rows["r_cut_A"] = r_cut
    return outcome, worst, rows


def _is_ion_pair(name: str, ion: str) -> bool:
    return ion in name.split("-")


def _rdf_verdicts(
    model: RunTransport, reference: RunTransport, settings: ValidationSettings
) -> tuple[list[Verdict], dict[str, dict[str, Any]]]:
    """Per pair with the ion: first-peak position and height, coordination number within the
    reference's first minimum; block standard errors, Welch t, Bonferroni over the three statistics.
    Framework pairs (without the ion) are tabulated here and judged together by _framework_verdict."""
    verdicts, tables = [], {}
    level = settings.level / len(RDF_STATISTICS)
    for name in reference.rdfs:
        if not _is_ion_pair(name, model.ion):
            continue
        found = _rdf_table(name, model, reference, level)
        if found is None:
            continue
        outcome, worst, rows = found
        r_cut = rows["r_cut_A"]
        tables[name] = rows
        detail = (
            "; ".join(
                f"{s.replace('_', ' ')} {rows[s]['model']:.3g} vs {rows[s]['reference']:.3g}"
                for s in RDF_STATISTICS
            )
            + f" (coordination within {r_cut:.2f} Å, the reference's first minimum)"
        )
        verdicts.append(
            Verdict(
                f"RDF {name}",
                outcome,  # type: ignore[arg-type]
                f"Welch t per statistic over {reference.rdfs[name].block_g.shape[0]} time blocks, "
                f"Bonferroni over {len(RDF_STATISTICS)}; largest |t| = {worst[0]:.2f} ({worst[1]})",
                detail,
                None,
                settings.level,
            )
        )
    return verdicts, tables


def _breach_statistic(integrity: IntegrityReport) -> str:
    b = integrity.first_breach or {}
    return (
        f"{b.get('pair')} {b.get('distance_A', math.nan):.2f} Å < floor {b.get('floor_A', math.nan):.2f} Å "
        f"({integrity.floors.factor:g} × the reference's closest) at {integrity.first_broken_time_ps:.3g} "
        f"ps; {100 * integrity.broken_fraction:.1f} % of frames broken"
    )


def _framework_verdict(
    model: RunTransport, reference: RunTransport, settings: ValidationSettings
) -> tuple[Verdict, dict[str, Any]]:
    """The framework the ion moves through: the model's closest approach of every pair against the
    reference's floors (a broken frame is a disagreement, no statistics needed), then every
    framework pair's RDF (first peak position, height, coordination), Bonferroni over all of them."""
    names = [n for n in reference.rdfs if not _is_ion_pair(n, model.ion) and n in model.rdfs]
    tables: dict[str, Any] = {}
    level = settings.level / max(1, len(names) * len(RDF_STATISTICS))
    worst: tuple[float, str] = (0.0, "")
    outcome = "agree"
    for name in names:
        found = _rdf_table(name, model, reference, level)
        assert found is not None
        pair_outcome, pair_worst, rows = found
        tables[name] = rows
        if pair_outcome == "disagree":
            outcome = "disagree"
        elif pair_outcome == "undetermined" and outcome == "agree":
            outcome = "undetermined"
        if pair_worst[0] >= worst[0]:
            worst = (pair_worst[0], f"{name} {pair_worst[1]}")
    closest = {
        pair: {"model_A": model.closest_A.get(pair), "reference_A": value}
        for pair, value in sorted(reference.closest_A.items())
    }
    integrity = model.integrity
    quantity = "framework"
    if integrity is not None and not integrity.intact:
        verdict = Verdict(
            quantity,
            "disagree",
            _breach_statistic(integrity),
            integrity.summary()
            + (
                "; no intact frames: nothing else compared"
                if model.broken_at_once
                else f"; D, MSD and RDFs from the intact first {integrity.first_broken_time_ps:.3g} ps"
            ),
            None,
            None,
        )
        return verdict, {"rdf": tables, "closest": closest, "integrity": integrity.to_dict()}
    checked = (
        f"no pair closer than {integrity.floors.factor:g} × the reference's closest in {integrity.n_frames} "
        "frames; "
        if integrity is not None
        else "closest approach not checked; "
    )
    detail = checked + (
        f"RDFs of {len(names)} framework pairs, largest |t| = {worst[0]:.2f} ({worst[1]})"
        if names
        else "no framework pair (the ion is the only element besides one other)"
    )
    verdict = Verdict(
        quantity,
        outcome,  # type: ignore[arg-type]
        f"Welch t per RDF statistic over time blocks, Bonferroni over {len(names)} pairs × "
        f"{len(RDF_STATISTICS)} statistics",
        detail,
        None,
        settings.level,
    )
    return verdict, {
        "rdf": tables,
        "closest": closest,
        "integrity": integrity.to_dict() if integrity is not None else None,
    }


def compare_temperature(
    model: RunTransport, reference: RunTransport, settings: ValidationSettings | None = None
) -> TemperatureComparison:
    """Every per-temperature verdict for one model run against one reference run."""
    settings = settings or ValidationSettings()
    if model.ion != reference.ion:
        raise ValidationError(f"model run analyses {model.ion}, reference {reference.ion}: use one --ion")
    notes = []
    if abs(model.temperature_K - reference.temperature_K) > 1.0:
        raise ValidationError(
            f"{model.source} is at {model.temperature_K:g} K, {reference.source} at "
            f"{reference.temperature_K:g} K: compare runs at the same temperature"
        )
    if model.composition and reference.composition and model.composition != reference.composition:
        notes.append(
            f"the cells differ: model {model.composition}, reference {reference.composition}; finite-size "
            "effects then enter the comparison"
        )
    if math.isfinite(model.volume_A3) and math.isfinite(reference.volume_A3):
        relative = abs(model.volume_A3 / reference.volume_A3 - 1.0)
        if relative > 1e-3:
            notes.append(f"mean volumes differ by {100 * relative:.2g} %")
    verdicts = [_d_verdict(model, reference, settings)]
    if model.broken_at_once:
        # No intact frame: nothing to compare but the breach itself.
        lags: list[dict[str, Any]] = []
        rdf_tables: dict[str, Any] = {}
    else:
        msd, lags = _msd_verdict(model, reference, settings)
        verdicts.append(msd)
        rdf_verdicts, rdf_tables = _rdf_verdicts(model, reference, settings)
        verdicts += rdf_verdicts
    framework_verdict, framework = _framework_verdict(model, reference, settings)
    verdicts.append(framework_verdict)
    rdf_curves = {
        name: {"r_A": rdf.r_A.tolist(), "model_g": model.rdfs[name].g.tolist(), "reference_g": rdf.g.tolist()}
        for name, rdf in reference.rdfs.items()
        if name in model.rdfs
    }
    for name, table in (rdf_tables | framework["rdf"]).items():
        table["curves"] = rdf_curves[name]
    return TemperatureComparison(
        temperature_K=reference.temperature_K,
        model=run_summary(model),
        reference=run_summary(reference),
        verdicts=verdicts,
        msd_lags=lags,
        rdf=rdf_tables,
        notes=notes,
        framework=framework,
    )


def _arrhenius(runs: Sequence[RunTransport]):
    temps = [r.temperature_K for r in runs]
    d = [r.diffusion.diffusion_cm2_per_s for r in runs]  # type: ignore[union-attr]
    err = [r.diffusion.stderr_cm2_per_s for r in runs]  # type: ignore[union-attr]
    return fit_arrhenius(temps, d, err, quantity="diffusion")


def compare_activation_energy(
    models: Sequence[RunTransport],
    references: Sequence[RunTransport],
    settings: ValidationSettings | None = None,
) -> tuple[Verdict, dict[str, Any]]:
    """Ea of the model against Ea of the reference from the temperatures where both give a D."""
    settings = settings or ValidationSettings()
    pairs = [(m, r) for m, r in zip(models, references, strict=True)]
    usable = [(m, r) for m, r in pairs if m.diffusion is not None and r.diffusion is not None]
    dropped = [f"{r.temperature_K:g} K" for m, r in pairs if (m, r) not in usable]
    quantity = "Ea"
    if len({r.temperature_K for _, r in usable}) < 2:
        factors = []
        for m, r in pairs:
            for run in (m, r):
                needed = (run.onset or {}).get("duration_needed_ps")
                if run.diffusion is None and needed is not None and needed > run.duration_ps:
                    factors.append(needed / run.duration_ps)
        detail = (
            f"needs D of both model and reference at ≥ 2 temperatures; D undetermined at "
            f"{', '.join(dropped) or 'none'} and {len(usable)} usable temperature(s)"
        )
        factor = max(factors) if factors else None
        # Too few temperatures given at all: more references, not longer runs, settle it.
        advice = "needs ≥ 2 temperatures" if len({r.temperature_K for _, r in pairs}) < 2 else None
        verdict = Verdict(quantity, "undetermined", "fewer than 2 temperatures", detail, factor, None, advice)
        return verdict, {
            "temperatures_K": [r.temperature_K for _, r in usable],
            "dropped": dropped,
        }
    fm = _arrhenius([m for m, _ in usable])
    fr = _arrhenius([r for _, r in usable])
    difference = fm.activation_energy_eV - fr.activation_energy_eV
    sigma = math.hypot(fm.activation_energy_stderr_eV, fr.activation_energy_stderr_eV)
    verdict = linear_verdict(
        quantity, difference, sigma, math.inf, 1.0 - settings.level / 2.0, settings.ea_resolution_eV, "eV"
    )
    detail = (
        f"model Ea = {fm.activation_energy_eV:.3f} ± {fm.activation_energy_stderr_eV:.3f} eV, reference "
        f"{fr.activation_energy_eV:.3f} ± {fr.activation_energy_stderr_eV:.3f} eV; {verdict.detail}"
    )
    table = {
        "temperatures_K": [r.temperature_K for _, r in usable],
        "dropped": dropped,
        "model_Ea_eV": fm.activation_energy_eV,
        "model_Ea_stderr_eV": fm.activation_energy_stderr_eV,
        "model_Ea_ci95_eV": list(fm.activation_energy_ci95_eV),
        "reference_Ea_eV": fr.activation_energy_eV,
        "reference_Ea_stderr_eV": fr.activation_energy_stderr_eV,
        "reference_Ea_ci95_eV": list(fr.activation_energy_ci95_eV),
        "difference_eV": difference,
        "difference_ci95_eV": [difference - Z95 * sigma, difference + Z95 * sigma],
        "model_fit": {"ln_prefactor": fm.ln_prefactor, "method": fm.method},
        "reference_fit": {"ln_prefactor": fr.ln_prefactor, "method": fr.method},
    }
    return (
        replace(verdict, detail=detail),
        table,
    )
