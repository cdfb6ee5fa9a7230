"""From trajectory files to transport numbers: what `superionic analyze` and `arrhenius` run.

One trajectory gives the tracer D of an ion (bootstrap over atoms), the Nernst–Einstein
conductivity from it, the collective conductivity of that ion from its charge MSD (block
averaging; the framework is treated as immobile, so σ is the ion's contribution) and the Haven
ratio. Several temperatures give the Arrhenius activation energy and D, σ at 300 K with intervals.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from superionic.analysis.arrhenius import fit_arrhenius
from superionic.analysis.conductivity import haven_ratio, ionic_conductivity, nernst_einstein_conductivity
from superionic.analysis.diffusion import WindowRule, tracer_diffusion
from superionic.analysis.errors import AnalysisError
from superionic.analysis.integrity import (
    BrokenDynamicsError,
    IntegrityReport,
    PrefixReader,
    check_integrity,
    floors_for,
)
from superionic.analysis.msd import msd_fft
from superionic.analysis.readers import Reader, TrajectoryError, load_ion_positions, open_trajectory

# Formal charges (e) used when neither the file nor the user gives one.
FORMAL_CHARGES = {
    "Li": 1.0,
    "Na": 1.0,
    "K": 1.0,
    "Ag": 1.0,
    "Cu": 1.0,
    "Mg": 2.0,
    "Ca": 2.0,
    "Zn": 2.0,
    "F": -1.0,
    "Cl": -1.0,
    "Br": -1.0,
    "I": -1.0,
    "O": -2.0,
    "S": -2.0,
}


@dataclass
class TransportReport:
    trajectory: str
    ion: str
    temperature_K: float
    n_ions: int
    charge_e: float
    volume_A3: float
    duration_ps: float
    unwrapped_by: str
    drift_removed: str
    tracer: dict[str, Any]
    nernst_einstein: dict[str, Any]
    conductivity: dict[str, Any] | None
    haven: dict[str, Any] | None
    msd_png: str
    notes: list[str] = field(default_factory=list)
    # The framework check (analysis.integrity): None when no floors were known for the file.
    integrity: dict[str, Any] | None = None


def find_temperature(trajectory: Path) -> float | None:
    """The run's temperature: `superionic md`'s run.json beside the file, the labeller reference
    summary (``name.json`` for ``name.extxyz.gz``), or a T<value>K folder."""
    info = trajectory.parent / "run.json"
    if info.exists():
        return float(json.loads(info.read_text())["temperature_K"])
    stem = trajectory.name.split(".")[0]
    summary = trajectory.with_name(stem + ".json")
    if summary.exists():
        value = json.loads(summary.read_text()).get("temperature_K")
        if value is not None:
            return float(value)
    match = re.search(r"T(\d+(?:\.\d+)?)K", str(trajectory.parent.name))
    return float(match.group(1)) if match else None


def analyze_trajectory(
    path: str | Path,
    ion: str,
    output: str | Path,
    temperature_K: float | None = None,
    type_names: Sequence[str] | None = None,
    timestep_ps: float | None = None,
    charge_e: float | None = None,
    n_bootstrap: int = 1000,
    rule: WindowRule | None = None,
    structure: str | Path | None = None,
    fmt: str | None = None,
    fit: str = "ols",
    floors: str | Path | None = None,
) -> TransportReport:
    """Transport of ``ion`` from the intact part of one trajectory.

    The framework is checked first (``analysis.integrity``) against the floors of ``floors`` (a
    model file, or a reference trajectory or labelled frames), else of the model `superionic md`
    ran it with: frames from the first one with a pair below its floor on are left out, and a
    trajectory broken from its start is refused.
    """
    from superionic.analysis.plots import plot_msd

    source = Path(path)
    # The file first: a damaged or truncated file is named as such, not as a missing temperature.
    reader = open_trajectory(
        source, type_names=type_names, timestep_ps=timestep_ps, fmt=fmt, structure=structure
    )
    temperature = temperature_K if temperature_K is not None else find_temperature(source)
    if temperature is None:
        raise TrajectoryError(f"{source}: temperature unknown; pass --temperature (K)")
    notes: list[str] = list(reader.header.notes)
    integrity = intact_part(source, reader, floors, notes, ion)
    if integrity is not None and not integrity.intact:
        reader = PrefixReader(reader, integrity.first_broken_frame or 0)
    ions = load_ion_positions(reader, ion)
    try:
        charges = ions.charges
        if charge_e is not None:
            charge = charge_e
        elif charges is not None:
            charge = float(charges[0])
        elif ion in FORMAL_CHARGES:
            charge = FORMAL_CHARGES[ion]
            notes.append(f"charge of {ion} taken as its formal charge {charge:+g} e")
        else:
            raise TrajectoryError(f"{source}: no charge known for {ion}; pass --charge")
        positions, times = ions.positions, ions.times_ps
        msd = msd_fft(positions)  # once: the window rule, the fit and the plot all use it
        try:
            tracer = tracer_diffusion(
                positions,
                times,
                n_bootstrap=n_bootstrap,
                rule=rule,
                mean_msd_A2=msd,
                fit=fit,  # type: ignore[arg-type]
            )
        except AnalysisError as err:
            if integrity is None or integrity.intact:
                raise
            raise BrokenDynamicsError(
                f"{source}: {integrity.summary()}; the intact first {times[-1] - times[0]:.3g} ps give "
                f"no D ({err})"
            ) from err
        n_ions = positions.shape[1]
        ne = nernst_einstein_conductivity(tracer, n_ions, ions.mean_volume_A3, temperature, charge)
        try:
            sigma = ionic_conductivity(
                positions,
                np.full(n_ions, charge),
                times,
                ions.mean_volume_A3,
                temperature,
                window_ps=tracer.window_ps,
                fit=fit,
            )
            haven = haven_ratio(tracer, sigma, n_ions, charge)
        except AnalysisError as err:
            sigma = haven = None
            notes.append(f"collective conductivity not determined: {err}")
        out = Path(output)
        out.mkdir(parents=True, exist_ok=True)
        png = plot_msd(
            times - times[0],
            msd,
            tracer,
            out / f"msd_{ion}.png",
            components=True,
            title=f"{ion} in {source.name}, {temperature:g} K",
        )
        report = TransportReport(
            trajectory=str(source),
            ion=ion,
            temperature_K=temperature,
            n_ions=n_ions,
            charge_e=charge,
            volume_A3=ions.mean_volume_A3,
            duration_ps=float(times[-1] - times[0]),
            unwrapped_by=ions.unwrapped_by,
            drift_removed=ions.drift_removed,
            tracer=tracer.to_dict(),
            nernst_einstein=ne.to_dict(),
            conductivity=sigma.to_dict() if sigma else None,
            haven=haven.to_dict() if haven else None,
            msd_png=str(png),
            notes=notes,
            integrity=integrity.to_dict() if integrity is not None else None,
        )
    finally:
        ions.close()
    (Path(output) / f"transport_{ion}.json").write_text(json.dumps(asdict(report), indent=2, default=_plain))
    return report


FLOORS_OFF = "off"  # --floors off: the user has decided the framework need not be checked


def intact_part(
    source: Path, reader: Reader, floors: str | Path | None, notes: list[str], ion: str | None = None
) -> IntegrityReport | None:
    """The framework check of one trajectory, with what it means for the analysis in ``notes``;
    raises when no intact frames are left to analyse."""
    if str(floors) == FLOORS_OFF:
        notes.append("framework not checked (--floors off): D and σ are reported even if the framework broke")
        return None
    known = floors_for(source, floors)
    if known is None:
        notes.append(
            "framework not checked: no distance floors are known for this file (it did not come from "
            "superionic md with a model that carries them); pass --floors MODEL_OR_REFERENCE"
        )
        return None
    report = check_integrity(reader, known, ion)
    if report.intact:
        return report
    first = report.first_broken_frame or 0
    if first < 2:
        raise BrokenDynamicsError(
            f"{source}: {report.summary()}; no intact frames to analyse: the model left its training "
            "data at once (retrain with data there, or check the structure)"
        )
    notes.append(
        f"{report.summary()}; D and σ come from the intact first {report.first_broken_time_ps:.3g} ps only"
    )
    return report


@dataclass
class ArrheniusReport:
    ion: str
    temperatures_K: list[float]
    diffusion_cm2_per_s: list[float]
    diffusion_stderr_cm2_per_s: list[float]
    activation_energy_eV: float
    activation_energy_stderr_eV: float
    activation_energy_ci95_eV: tuple[float, float]
    diffusion_300K_cm2_per_s: float
    diffusion_300K_ci95_cm2_per_s: tuple[float, float]
    conductivity_300K_S_per_cm: float
    conductivity_300K_ci95_S_per_cm: tuple[float, float]
    conductivity_source: str
    plot_png: str


def arrhenius_report(reports: Sequence[TransportReport], output: str | Path) -> ArrheniusReport:
    from superionic.analysis.plots import plot_arrhenius

    if len({r.ion for r in reports}) != 1:
        raise AnalysisError("arrhenius: the trajectories analyse different ions; give one ion")
    if len(reports) < 2:
        raise AnalysisError("arrhenius: needs trajectories at two or more temperatures")
    ordered = sorted(reports, key=lambda r: r.temperature_K)
    temps = np.array([r.temperature_K for r in ordered])
    d = np.array([r.tracer["diffusion_cm2_per_s"] for r in ordered])
    d_err = np.array([r.tracer["stderr_cm2_per_s"] for r in ordered])
    fit = fit_arrhenius(temps, d, d_err, quantity="diffusion")
    d300 = fit.extrapolate(300.0)
    # σ(300 K) from the Nernst–Einstein conductivities: the tracer D is far less noisy than the charge MSD.
    sigma = np.array([r.nernst_einstein["conductivity_S_per_cm"] for r in ordered])
    sigma_err = np.array([r.nernst_einstein["stderr_S_per_cm"] for r in ordered])
    sigma_fit = fit_arrhenius(temps, sigma, sigma_err, quantity="conductivity")
    s300 = sigma_fit.extrapolate(300.0)
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    png = plot_arrhenius(
        temps,
        d,
        d_err,
        fit,
        out / f"arrhenius_{ordered[0].ion}.png",
        title=f"{ordered[0].ion} tracer diffusion",
    )
    report = ArrheniusReport(
        ion=ordered[0].ion,
        temperatures_K=temps.tolist(),
        diffusion_cm2_per_s=d.tolist(),
        diffusion_stderr_cm2_per_s=d_err.tolist(),
        activation_energy_eV=fit.activation_energy_eV,
        activation_energy_stderr_eV=fit.activation_energy_stderr_eV,
        activation_energy_ci95_eV=tuple(fit.activation_energy_ci95_eV),
        diffusion_300K_cm2_per_s=d300.value,
        diffusion_300K_ci95_cm2_per_s=tuple(d300.ci95),
        conductivity_300K_S_per_cm=s300.value,
        conductivity_300K_ci95_S_per_cm=tuple(s300.ci95),
        conductivity_source="Nernst–Einstein from tracer D, Arrhenius in σT",
        plot_png=str(png),
    )
    (out / f"arrhenius_{report.ion}.json").write_text(json.dumps(asdict(report), indent=2, default=_plain))
    return report


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(type(value))
