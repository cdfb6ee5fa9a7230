"""`superionic analyze` and `superionic arrhenius` end to end on known answers.

Real H5MD files of Li random walks with D(T) = D0 exp(−Ea / k_B T) at three temperatures, inside
a framework that recoils so the centre of mass is fixed (the reader's drift removal then returns
the walks exactly). For independent walkers the analytic answers are: D; σ = σ_NE = n q² D / (k_B T)
with n = N_Li / V and q the charge stored in the file; Haven ratio 1; Ea and D, σ at 300 K from the
Arrhenius law. The CLI must report each within its own stated interval. The temperature comes from
`run.json` beside the file (as `superionic md` writes it) or, when that is absent, from the command
line.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from ase.data import atomic_masses, atomic_numbers

from superionic.analysis.units import (
    BOLTZMANN_EV_PER_K,
    CM2_PER_S_PER_A2_PER_PS,
    nernst_einstein_factor_S_s_per_cm3,
)
from superionic.cli import main

from ._h5md import write_h5md
from ._synthetic import random_walk

TEMPERATURES_K = (700.0, 850.0, 1000.0)
EA_EV = 0.30
D_1000K_A2_PER_PS = 0.08
N_LI, N_S = 48, 32
N_FRAMES = 1501
TIMESTEP_PS = 0.1  # 150 ps per temperature
CELL = np.array([[14.0, 0.0, 0.0], [0.0, 14.0, 0.0], [0.0, 0.0, 16.0]])
VOLUME_A3 = float(np.linalg.det(CELL))
FILE_CHARGE = 0.8  # a partial charge, so the file's value is told apart from the formal +1
SYMBOLS = ["Li"] * N_LI + ["S"] * N_S
MASSES = np.array([atomic_masses[atomic_numbers[s]] for s in SYMBOLS])
# A single seeded draw per quantity: each estimate is required within 4 of its own stated standard
# errors (false alarm 6e-5 per check, ~1e-3 over the ~20 checks), and the 95 % intervals must hold the
# truth in at least all but one of the 3 × 3 per-temperature checks (≥ 8 of 9: P ≈ 93 % by chance).
N_SIGMA = 4.0


def diffusion_A2_per_ps(temperature: float) -> float:
    return D_1000K_A2_PER_PS * np.exp(-EA_EV / BOLTZMANN_EV_PER_K * (1 / temperature - 1 / 1000.0))


def sigma_S_per_cm(temperature: float, charge: float) -> float:
    d = diffusion_A2_per_ps(temperature) * CM2_PER_S_PER_A2_PER_PS
    return nernst_einstein_factor_S_s_per_cm3(N_LI, VOLUME_A3, temperature, charge) * d


def walk_in_framework(seed: int, temperature: float) -> np.ndarray:
    rng = np.random.default_rng([seed, int(temperature)])
    li = random_walk(rng, N_LI, N_FRAMES - 1, TIMESTEP_PS, diffusion_A2_per_ps(temperature))
    framework = rng.uniform(0.0, 14.0, size=(1, N_S, 3)) + rng.normal(scale=0.1, size=(N_FRAMES, N_S, 3))
    system = np.concatenate([li, framework], axis=1)
    moved = np.tensordot(MASSES, system - system[:1], axes=(0, 1))
    system[:, N_LI:] -= (moved / MASSES[N_LI:].sum())[:, None, :]  # recoil: centre of mass fixed
    return system


def write_runs(root: Path, with_run_json: bool) -> list[Path]:
    paths = []
    for k, temperature in enumerate(TEMPERATURES_K):
        # Folder names without a temperature in them: the value must come from run.json or the CLI.
        directory = root / f"run_{'abc'[k]}"
        directory.mkdir(parents=True)
        charges = np.full(len(SYMBOLS), FILE_CHARGE) if with_run_json else None
        if charges is not None:
            charges[N_LI:] = -FILE_CHARGE * N_LI / N_S
        path = write_h5md(
            directory / "traj.h5", walk_in_framework(11, temperature), CELL, SYMBOLS, TIMESTEP_PS, charges
        )
        if with_run_json:
            (directory / "run.json").write_text(
                json.dumps({"temperature_K": temperature, "timestep_ps": 0.002})
            )
        paths.append(path)
    return paths


def within(value: float, truth: float, stderr: float) -> bool:
    return abs(value - truth) <= N_SIGMA * stderr


def check_transport(report: dict, temperature: float, charge: float) -> int:
    """Exact bookkeeping, then each estimate against the truth; returns how many 95 % CIs hold it."""
    assert report["temperature_K"] == temperature
    assert report["n_ions"] == N_LI and report["charge_e"] == charge
    assert report["volume_A3"] == pytest.approx(VOLUME_A3, rel=1e-12)
    assert report["duration_ps"] == pytest.approx((N_FRAMES - 1) * TIMESTEP_PS, rel=1e-12)
    assert report["unwrapped_by"] == "images"
    d, ne, sigma, haven = report["tracer"], report["nernst_einstein"], report["conductivity"], report["haven"]
    d_true = diffusion_A2_per_ps(temperature) * CM2_PER_S_PER_A2_PER_PS
    s_true = sigma_S_per_cm(temperature, charge)
    # σ_NE is the tracer D times n q²/(k_B T) exactly: temperature, charge and volume all enter here.
    factor = nernst_einstein_factor_S_s_per_cm3(N_LI, VOLUME_A3, temperature, charge)
    assert ne["conductivity_S_per_cm"] == pytest.approx(factor * d["diffusion_cm2_per_s"], rel=1e-12)
    assert within(d["diffusion_cm2_per_s"], d_true, d["stderr_cm2_per_s"]), (temperature, d)
    assert within(ne["conductivity_S_per_cm"], s_true, ne["stderr_S_per_cm"])
    assert within(sigma["conductivity_S_per_cm"], s_true, sigma["stderr_S_per_cm"]), (temperature, sigma)
    assert within(haven["haven_ratio"], 1.0, haven["stderr"]), (temperature, haven)
    # The stated errors are informative, not so wide that the checks above are empty. The tracer D
    # averages 48 atoms (~7 % error); the collective σ is one charge MSD in 10 blocks of 15 ps (its
    # error measured 23–48 % on these walks), so its check is loose and σ_NE carries the precision.
    assert d["stderr_cm2_per_s"] < 0.1 * d_true and sigma["stderr_S_per_cm"] < 0.6 * s_true
    hits = int(d["ci95_cm2_per_s"][0] <= d_true <= d["ci95_cm2_per_s"][1])
    hits += int(sigma["ci95_S_per_cm"][0] <= s_true <= sigma["ci95_S_per_cm"][1])
    hits += int(haven["ci95"][0] <= 1.0 <= haven["ci95"][1])
    return hits


def check_arrhenius(result: dict, charge: float) -> None:
    assert result["temperatures_K"] == list(TEMPERATURES_K)
    assert within(result["activation_energy_eV"], EA_EV, result["activation_energy_stderr_eV"]), result
    low, high = result["activation_energy_ci95_eV"]
    assert low <= EA_EV <= high
    assert result["activation_energy_stderr_eV"] < 0.1 * EA_EV
    # 300 K lies far outside the fitted range: compared on the log scale of the stated interval.
    d300 = diffusion_A2_per_ps(300.0) * CM2_PER_S_PER_A2_PER_PS
    d_low, d_high = result["diffusion_300K_ci95_cm2_per_s"]
    assert d_low <= d300 <= d_high
    s300 = sigma_S_per_cm(300.0, charge)
    s_low, s_high = result["conductivity_300K_ci95_S_per_cm"]
    assert s_low <= s300 <= s_high
    ln_half = np.log(s_high / s_low) / 2
    assert abs(np.log(result["conductivity_300K_S_per_cm"] / s300)) < N_SIGMA / 1.96 * ln_half


@pytest.mark.slow  # ~20–35 s each on 2 cores: six analyses with 1000 bootstrap resamples and plots
@pytest.mark.parametrize("with_run_json", [True, False], ids=["run.json", "no-run.json"])
def test_analyze_and_arrhenius_report_the_known_answers(
    tmp_path: Path, capsys: pytest.CaptureFixture, with_run_json: bool
) -> None:
    paths = write_runs(tmp_path / "md", with_run_json)
    charge = FILE_CHARGE if with_run_json else 1.0  # absent from the file: Li's formal charge
    hits = 0
    for path, temperature in zip(paths, TEMPERATURES_K, strict=True):
        out = tmp_path / "analysis" / path.parent.name
        extra = [] if with_run_json else ["--temperature", f"{temperature:g}"]
        assert main(["analyze", str(path), "--ion", "Li", "-o", str(out), *extra]) == 0
        printed = capsys.readouterr().out
        assert f"Li at {temperature:g} K: D = " in printed
        assert ("formal charge" in printed) == (not with_run_json)
        report = json.loads((out / "transport_Li.json").read_text())
        hits += check_transport(report, temperature, charge)
        assert Path(report["msd_png"]).stat().st_size > 0
    assert hits >= 8, f"{hits} of 9 per-temperature 95 % intervals hold the truth"

    out = tmp_path / "arrhenius"
    extra = [] if with_run_json else ["--temperatures", *(f"{t:g}" for t in TEMPERATURES_K)]
    assert main(["arrhenius", *map(str, paths), "--ion", "Li", "-o", str(out), *extra]) == 0
    printed = capsys.readouterr().out
    result = json.loads((out / "arrhenius_Li.json").read_text())
    assert f"Ea = {result['activation_energy_eV']:.3f}" in printed
    check_arrhenius(result, charge)
    # The precision line against the default targets, from the fit's own intervals: a shortfall f
    # needs f² × the run length (errors fall as 1/√t).
    lo, hi = result["activation_energy_ci95_eV"]
    slo, shi = result["conductivity_300K_ci95_S_per_cm"]
    half, factor = (hi - lo) / 2, shi / slo
    assert f"precision: Ea ± {half:.3f} eV (target 0.03), σ(300 K) factor {factor:.3g} (target 3)" in printed
    shortfall = max(half / 0.03, np.log(factor) / np.log(3.0))
    assert (f"about {shortfall**2:.2g}× as long" in printed) == (shortfall > 1)
    assert ("both met" in printed) == (shortfall <= 1)
    # The per-temperature reports the arrhenius verb wrote agree with the single analyses.
    for path, temperature in zip(paths, TEMPERATURES_K, strict=True):
        again = json.loads((out / path.parent.name / "transport_Li.json").read_text())
        assert again["temperature_K"] == temperature


def test_missing_temperature_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = write_runs(tmp_path / "md", with_run_json=False)[0]
    assert main(["analyze", str(path), "--ion", "Li", "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--temperature" in err and str(path) in err
