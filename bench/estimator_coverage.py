"""Coverage of the 95 % interval of a tracer D: our OLS and GLS fits with a bootstrap over atoms or
block averaging, beside kinisi 2.1, on the same seeded trajectories with a known D.

Two kinds of trajectory, frames every 50 fs (the demo's and the reference runs' sampling):

* ``gaussian``: independent Gaussian random walks (``tests/analysis/_synthetic.random_walk``), D =
  0.5 Å²/ps; the MSD is 6 D t at every lag, so the window rule starts at the first lag.
* ``hops``: ions that vibrate in a cage and hop on a cubic lattice (a = 2.5 Å) at a Poisson rate with
  D = Γ a² / 6 = 0.5 Å²/ps, plus back-jumps: at a tenth of that rate an ion leaves its site and
  returns after an exponential time of mean 3 ps, a bounded excursion that adds to the MSD at short
  lags but not to D. The vibration is a sum of 4 random-phase modes per component (rms 0.2 Å,
  frequencies N(6 THz, (1.8 THz)²)), ballistic below ~0.05 ps. The expected MSD
  (``expected_msd``) bends over the first few ps, as a Li MSD in a sulfide does: the window rule
  starts where the log–log slope is within tolerance of 1, not where the curvature has gone, so the
  fit over the window decides how much of the short-time excess reaches D.

Estimators: ``tracer_diffusion`` with ``fit`` ols | gls and ``uncertainty`` bootstrap_atoms (1000
resamples, the default percentile interval; ``ols_expanded`` its expanded percentile interval) |
block_average (5 blocks), window by ``WindowRule`` (0.1, the CLI's default, unless the setting says
0.2, the demo's); the collective σ (``sigma_ols``, ``sigma_gls``); kinisi
2.1 ``DiffusionAnalyzer`` (its MSD, covariance model and emcee posterior with the default 1000 × 32
samples, 500 burn-in, thinning 10) from our window's start to a third of the run, on at most
``--kinisi-lags`` lags evenly spaced (kinisi's covariance loop is O(K²) in Python); its point estimate
is the posterior median, its interval the 2.5–97.5 % posterior percentiles. kinisi is imported from
the main ``.venv`` (kinisi 2.1.0 installs there with the project's pins). Times go to kinisi in fs, so
that its ``int(dt / time_step)`` lag indices are exact (docs/conventions.md, "Peers").

Per estimator and setting: coverage of the truth by the 95 % interval with its binomial band, bias
(mean D̂/D − 1), spread (standard deviation of D̂/D), median relative half-width ((high − low) / 2D),
the width over the width an honest interval of that spread has (2 · 1.96 · spread), and how many
trials gave no estimate (window rule or fit refused).

    nice -n 10 .venv/bin/python bench/estimator_coverage.py            # the table in docs/results
    .venv/bin/python bench/estimator_coverage.py --trials 20 --settings gaussian:20:20 --no-kinisi
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from superionic import __version__
from superionic.analysis.conductivity import ionic_conductivity, nernst_einstein_conductivity_S_per_cm
from superionic.analysis.diffusion import WindowRule, tracer_diffusion
from superionic.analysis.errors import AnalysisError
from superionic.analysis.units import CM2_PER_S_PER_A2_PER_PS

FRAME_PS = 0.05
D_A2_PER_PS = 0.5  # 5e-5 cm²/s, a Li D in a sulfide at ~1200 K
NOMINAL = 0.95
# fit_uncertainty: "bootstrap" is the bootstrap's default percentile interval, "expanded" its
# expanded percentile interval (bootstrap_interval="expanded").
ESTIMATORS = ("ols_bootstrap", "ols_expanded", "gls_bootstrap", "ols_block", "gls_block", "kinisi")
# The collective σ (charge MSD, 5 blocks, the tracer's window as `superionic analyze` passes it) by
# each fit; the ions are independent, so its truth is the Nernst–Einstein σ of the true D.
SIGMA_ESTIMATORS = ("sigma_ols", "sigma_gls")
VOLUME_A3 = 1000.0
TEMPERATURE_K = 1000.0

# The hop model (see the module docstring).
LATTICE_A = 2.5
BACKJUMP_FRACTION = 0.1  # excursion rate over hop rate
BACKJUMP_MEAN_PS = 3.0
VIBRATION_RMS_A = 0.2  # per component
VIBRATION_THZ = 6.0
VIBRATION_SPREAD = 0.3  # standard deviation of the mode frequencies over their mean
VIBRATION_MODES = 4
_DIRECTIONS = np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]], dtype=float)


def gaussian_walk(rng: np.random.Generator, n_ions: int, n_frames: int) -> np.ndarray:
    """Gaussian random walks [n_frames, n_ions, 3] (Å), D = ``D_A2_PER_PS`` (the tests' ``random_walk``)."""
    steps = rng.normal(scale=math.sqrt(2.0 * D_A2_PER_PS * FRAME_PS), size=(n_frames - 1, n_ions, 3))
    start = rng.uniform(0.0, 10.0, size=(1, n_ions, 3))
    return start + np.concatenate([np.zeros((1, n_ions, 3)), np.cumsum(steps, axis=0)])


def _hop_rates() -> tuple[float, float, float]:
    """Per frame: mean hops λ_s, mean excursion starts λ_f, and q = P(an excursion lasts one more frame)."""
    hop_rate = 6.0 * D_A2_PER_PS / LATTICE_A**2  # per ps: MSD = Γ a² t = 6 D t
    return (
        hop_rate * FRAME_PS,
        BACKJUMP_FRACTION * hop_rate * FRAME_PS,
        math.exp(-FRAME_PS / BACKJUMP_MEAN_PS),
    )


def _scatter_unit_steps(rng: np.random.Generator, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Frame and ion index of every event in ``counts`` [T', N], and a random lattice direction for each."""
    frame, ion = np.nonzero(counts)
    repeats = counts[frame, ion]
    return np.stack([np.repeat(frame, repeats), np.repeat(ion, repeats)]), _DIRECTIONS[
        rng.integers(0, 6, size=int(repeats.sum()))
    ]


def lattice_hops(rng: np.random.Generator, n_ions: int, n_frames: int) -> np.ndarray:
    """Caged, hopping ions [n_frames, n_ions, 3] (Å) with D = ``D_A2_PER_PS`` (module docstring)."""
    hops_per_frame, excursions_per_frame, stay = _hop_rates()
    # Hops: Poisson counts per frame interval, each a lattice vector; the walk is their running sum.
    steps = np.zeros((n_frames - 1, n_ions, 3))
    where, vectors = _scatter_unit_steps(rng, rng.poisson(hops_per_frame, (n_frames - 1, n_ions)))
    np.add.at(steps, (where[0], where[1]), LATTICE_A * vectors)
    sites = np.concatenate([np.zeros((1, n_ions, 3)), np.cumsum(steps, axis=0)])
    # Excursions: one starting in interval k is away for frames k+1 … k+m, m ~ Geometric(1 − q) ≥ 1.
    change = np.zeros((n_frames + 1, n_ions, 3))
    where, vectors = _scatter_unit_steps(rng, rng.poisson(excursions_per_frame, (n_frames - 1, n_ions)))
    length = rng.geometric(1.0 - stay, size=where.shape[1])
    np.add.at(change, (where[0] + 1, where[1]), LATTICE_A * vectors)
    np.add.at(change, (np.minimum(where[0] + 1 + length, n_frames), where[1]), -LATTICE_A * vectors)
    away = np.cumsum(change, axis=0)[:n_frames]
    # Vibration: random-phase modes, ω ~ N(ω0, (0.3 ω0)²) per ion, component and mode.
    omega0 = 2.0 * math.pi * VIBRATION_THZ
    t = (np.arange(n_frames) * FRAME_PS)[:, None, None]
    vibration = np.zeros((n_frames, n_ions, 3))
    amplitude = VIBRATION_RMS_A * math.sqrt(2.0 / VIBRATION_MODES)
    for _ in range(VIBRATION_MODES):
        omega = rng.normal(omega0, VIBRATION_SPREAD * omega0, size=(1, n_ions, 3))
        phase = rng.uniform(0.0, 2.0 * math.pi, size=(1, n_ions, 3))
        vibration += amplitude * np.cos(omega * t + phase)
    start = rng.uniform(0.0, 10.0, size=(1, n_ions, 3))
    return start + sites + away + vibration


def expected_msd(model: str, lag_frames: np.ndarray) -> np.ndarray:
    """E[MSD] (3D, Å²) at integer frame lags: exact for both models (the hop model's three parts are
    independent: lattice walk a² λ_s L, excursions 2 a² λ_f (1 − q^L) / (1 − q), vibration
    6 σ² (1 − cos(ω₀ t) exp(−(0.3 ω₀ t)² / 2)))."""
    lags = np.asarray(lag_frames, dtype=np.float64)
    if model == "gaussian":
        return 6.0 * D_A2_PER_PS * FRAME_PS * lags
    hops_per_frame, excursions_per_frame, stay = _hop_rates()
    t = lags * FRAME_PS
    omega0 = 2.0 * math.pi * VIBRATION_THZ
    correlation = np.cos(omega0 * t) * np.exp(-0.5 * (VIBRATION_SPREAD * omega0 * t) ** 2)
    return (
        LATTICE_A**2 * hops_per_frame * lags
        + 2.0 * LATTICE_A**2 * excursions_per_frame * (1.0 - stay**lags) / (1.0 - stay)
        + 6.0 * VIBRATION_RMS_A**2 * (1.0 - correlation)
    )


MODELS = {"gaussian": gaussian_walk, "hops": lattice_hops}


@dataclass(frozen=True)
class Setting:
    model: str
    n_ions: int
    duration_ps: float
    slope_tolerance: float = 0.1  # the window rule's (WindowRule's default; the demo uses 0.2)

    @property
    def n_frames(self) -> int:
        return round(self.duration_ps / FRAME_PS) + 1

    @property
    def label(self) -> str:
        return f"{self.model}:{self.n_ions}:{self.duration_ps:g}:{self.slope_tolerance:g}"

    @property
    def rule(self) -> WindowRule:
        return WindowRule(slope_tolerance=self.slope_tolerance)


def parse_setting(text: str) -> Setting:
    """MODEL:IONS:PS[:SLOPE_TOLERANCE]."""
    model, ions, duration, *tolerance = text.split(":")
    if model not in MODELS:
        raise argparse.ArgumentTypeError(f"model {model!r}: use one of {sorted(MODELS)}")
    return Setting(model, int(ions), float(duration), *(float(t) for t in tolerance))


def kinisi_estimate(
    positions: np.ndarray, start_ps: float, max_lags: int, seed: int
) -> tuple[float, float, float]:
    """kinisi 2.1's D (cm²/s): posterior median and 2.5/97.5 % percentiles, lags from ``start_ps`` to a
    third of the run (at most ``max_lags`` of them, evenly spaced), on the positions as they are."""
    import scipp as sc
    from kinisi.diffusion_analyzer import DiffusionAnalyzer
    from kinisi.displacement import calculate_msd
    from kinisi.parser import Parser

    n_frames, n_ions, _ = positions.shape
    box = 10.0 * (float(np.ptp(positions)) + 10.0)  # no image is ever crossed: a plain walk in a big box
    frame_fs = round(FRAME_PS * 1000)
    first, last = round(start_ps / FRAME_PS), (n_frames - 1) // 3
    stride = max(1, math.ceil((last - first + 1) / max_lags))
    lags_fs = np.arange(first, last + 1, stride) * frame_fs
    parser = Parser(
        coords=sc.array(dims=["time", "particle", "dimension"], values=positions / box),
        latt=sc.array(
            dims=["time", "row", "column"],
            values=np.broadcast_to(box * np.eye(3), (n_frames, 3, 3)).copy(),
            unit="angstrom",
        ),
        time_step=sc.scalar(float(frame_fs), unit="fs"),
        step_skip=sc.scalar(1),
        dt=sc.array(dims=["time interval"], values=lags_fs.astype(float), unit="fs"),
        specie_indices=sc.array(dims=["particle"], values=np.arange(n_ions)),
    )
    analyzer = DiffusionAnalyzer(parser)
    analyzer._dg = calculate_msd(parser, progress=False)
    analyzer.diffusion(
        start_dt=sc.scalar(float(lags_fs[0]), unit="fs"),
        progress=False,
        random_state=np.random.RandomState(seed),
    )
    samples = np.asarray(analyzer.D.values, dtype=np.float64)  # cm²/s
    low, high = np.percentile(samples, [2.5, 97.5])
    return float(np.median(samples)), float(low), float(high)


Interval = tuple[float, float, float]  # (D, low, high) in cm²/s


def run_trial(setting: Setting, trial: int, seed: int, kinisi: bool, kinisi_lags: int) -> dict[str, Any]:
    """One seeded trajectory through every estimator: {estimator: (D, low, high), or None when the
    window rule or the fit refused}. kinisi starts where our rule starts on the whole run."""
    rng = np.random.default_rng(
        [seed, list(MODELS).index(setting.model), setting.n_ions, setting.n_frames, trial]
    )
    positions = MODELS[setting.model](rng, setting.n_ions, setting.n_frames)
    times = np.arange(setting.n_frames) * FRAME_PS
    out: dict[str, Any] = {}
    start: float | None = None
    window: tuple[float, float] | None = None
    for name in ESTIMATORS[:-1]:
        fit, uncertainty = name.split("_")
        try:
            result = tracer_diffusion(
                positions,
                times,
                fit=fit,  # type: ignore[arg-type]
                uncertainty="block_average" if uncertainty == "block" else "bootstrap_atoms",
                bootstrap_interval="expanded" if uncertainty == "expanded" else "percentile",
                rule=setting.rule,
                seed=trial,
            )
        except AnalysisError:
            out[name] = None
            continue
        out[name] = (result.diffusion_cm2_per_s, *result.ci95_cm2_per_s)
        if name == "ols_bootstrap":
            window = result.window_ps
            start = result.window_ps[0]
            out["window_start_ps"] = start
            out["fit_difference_z"] = result.fit_difference_z
    for name in SIGMA_ESTIMATORS:
        out[name] = None
        if window is None:
            continue
        try:
            sigma = ionic_conductivity(
                positions,
                np.ones(setting.n_ions),
                times,
                VOLUME_A3,
                TEMPERATURE_K,
                window_ps=window,
                fit=name.split("_")[1],
            )
        except AnalysisError:
            continue
        out[name] = (sigma.conductivity_S_per_cm, *sigma.ci95_S_per_cm)
    if kinisi:
        out["kinisi"] = None if start is None else kinisi_estimate(positions, start, kinisi_lags, trial)
    return out


def summarise(values: Sequence[Interval | None], truth: float) -> dict[str, Any]:
    """Coverage, bias, spread and width of the intervals in ``values`` against ``truth`` (cm²/s)."""
    ok = np.array([v for v in values if v is not None], dtype=np.float64).reshape(-1, 3)
    n = ok.shape[0]
    summary: dict[str, Any] = {"trials": len(values), "failed": len(values) - n}
    if n < 2:
        return summary
    estimate, low, high = ok[:, 0] / truth, ok[:, 1] / truth, ok[:, 2] / truth
    hits = int(np.sum((low <= 1.0) & (1.0 <= high)))
    spread = float(np.std(estimate, ddof=1))
    band = (int(stats.binom.ppf(0.006, n, NOMINAL)), int(stats.binom.isf(0.006, n, NOMINAL)))
    summary.update(
        hits=hits,
        coverage=hits / n,
        coverage_band=[band[0] / n, band[1] / n],
        bias=float(np.mean(estimate) - 1.0),
        bias_stderr=spread / math.sqrt(n),
        spread=spread,
        median_relative_half_width=float(np.median((high - low) / 2.0)),
        width_over_honest=float(np.mean(high - low) / (2.0 * 1.959964 * spread)),
        rmse=float(np.sqrt(np.mean((estimate - 1.0) ** 2))),
    )
    return summary


def run_setting(
    setting: Setting,
    n_trials: int,
    *,
    seed: int = 2024,
    kinisi: bool = True,
    kinisi_lags: int = 150,
    kinisi_done: Sequence[Interval | None] | None = None,
    jobs: int = 1,
) -> dict[str, Any]:
    """Every estimator over ``n_trials`` seeded trajectories of ``setting``: summaries and per-trial
    values. ``kinisi_done``: kinisi's per-trial values from an earlier run of the same trials (its
    posterior sampling is the slow part), used instead of running it again."""
    began = time.perf_counter()
    run_kinisi = kinisi and kinisi_done is None
    arguments = [(setting, trial, seed, run_kinisi, kinisi_lags) for trial in range(n_trials)]
    if jobs > 1:
        with ProcessPoolExecutor(jobs) as pool:
            trials = list(pool.map(_run_trial_star, arguments, chunksize=max(1, n_trials // (8 * jobs))))
    else:
        trials = [run_trial(*a) for a in arguments]
    if kinisi and kinisi_done is not None:
        for trial, value in zip(trials, kinisi_done, strict=True):
            trial["kinisi"] = None if value is None else tuple(value)
    truth = D_A2_PER_PS * CM2_PER_S_PER_A2_PER_PS
    sigma_truth = nernst_einstein_conductivity_S_per_cm(truth, setting.n_ions, VOLUME_A3, TEMPERATURE_K)
    names = [name for name in (*ESTIMATORS, *SIGMA_ESTIMATORS) if name != "kinisi" or kinisi]
    z = np.array([t.get("fit_difference_z", np.nan) for t in trials], dtype=np.float64)
    starts = np.array([t.get("window_start_ps", np.nan) for t in trials], dtype=np.float64)
    return {
        "setting": asdict(setting) | {"n_frames": setting.n_frames, "frame_ps": FRAME_PS},
        "label": setting.label,
        "seed": seed,
        "true_D_cm2_per_s": truth,
        "true_sigma_S_per_cm": sigma_truth,
        "wall_s": time.perf_counter() - began,
        "estimators": {
            name: summarise([t[name] for t in trials], sigma_truth if name.startswith("sigma") else truth)
            for name in names
        },
        # The GLS − OLS check of DiffusionResult.fit_difference_z (OLS, bootstrap): how often |z| > 3.
        "fit_difference_z_over_3": float(np.mean(np.abs(z[np.isfinite(z)]) > 3))
        if np.isfinite(z).any()
        else None,
        "window_start_ps_median": float(np.nanmedian(starts)) if np.isfinite(starts).any() else None,
        "per_trial": {name: [t[name] for t in trials] for name in names}
        | {"fit_difference_z": z.tolist(), "window_start_ps": starts.tolist()},
    }


def _run_trial_star(arguments: tuple[Setting, int, int, bool, int]) -> dict[str, Any]:
    return run_trial(*arguments)


def markdown_table(results: Sequence[dict[str, Any]], names: Sequence[str] | None = None) -> str:
    """The rows of ``names`` (default: every estimator) for each setting, as a Markdown table."""
    lines = [
        "| trajectories | ions | run (ps) | β tolerance | estimator | coverage (band) | bias "
        "| median half-width | width / honest | no result |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for result in results:
        setting = result["setting"]
        head = (
            f"{setting['model']} | {setting['n_ions']} | {setting['duration_ps']:g} "
            f"| {setting['slope_tolerance']:g}"
        )
        for name, s in result["estimators"].items():
            if names is not None and name not in names:
                continue
            if "coverage" not in s:
                lines.append(f"| {head} | {name} | – | – | – | – | {s['failed']}/{s['trials']} |")
                continue
            low, high = s["coverage_band"]
            lines.append(
                f"| {head} | {name} "
                f"| {s['coverage']:.1%} ({low:.1%}–{high:.1%}) | {s['bias']:+.1%} ± {s['bias_stderr']:.1%} "
                f"| {s['median_relative_half_width']:.1%} | {s['width_over_honest']:.2f} "
                f"| {s['failed']}/{s['trials']} |"
            )
    return "\n".join(lines)


DEFAULT_SETTINGS = (
    "gaussian:20:20",
    "gaussian:80:100",
    "gaussian:160:200",
    "gaussian:20:1000",
    "hops:20:20",
    "hops:20:20:0.2",
    "hops:80:100",
    "hops:80:100:0.2",
    "hops:160:200",
    "hops:20:1000",
    "hops:20:1000:0.2",
)


def _kinisi_from(paths: Sequence[Path], seed: int, n_trials: int) -> dict[str, list[Interval | None]]:
    """kinisi's per-trial values by setting label from earlier JSONs of this script (same seed)."""
    found: dict[str, list[Interval | None]] = {}
    for path in paths:
        for r in json.loads(path.read_text())["results"]:
            if r.get("seed") == seed and len(r["per_trial"].get("kinisi", [])) >= n_trials:
                found[r["label"]] = r["per_trial"]["kinisi"][:n_trials]
    return found


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument(
        "--settings",
        nargs="+",
        type=parse_setting,
        default=[parse_setting(s) for s in DEFAULT_SETTINGS],
        help="MODEL:IONS:PS[:SLOPE_TOLERANCE], MODEL gaussian or hops (default: the table in docs/results)",
    )
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--no-kinisi", action="store_true")
    parser.add_argument("--kinisi-lags", type=int, default=150)
    parser.add_argument(
        "--kinisi-from",
        type=Path,
        nargs="+",
        default=[],
        help="kinisi's per-trial values from these earlier JSONs (same seed and trials) instead of running "
        "it; settings they lack get no kinisi row",
    )
    parser.add_argument("--jobs", type=int, default=1, help="worker processes")
    parser.add_argument("--json", type=Path, default=Path("bench/results/estimator_coverage.json"))
    args = parser.parse_args(argv)

    versions: dict[str, str] = {
        "superionic": __version__,
        "numpy": np.__version__,
        "python": sys.version.split()[0],
    }
    if not args.no_kinisi:
        import emcee
        import kinisi

        versions |= {"kinisi": kinisi.__version__, "emcee": emcee.__version__}
    reuse = _kinisi_from(args.kinisi_from, args.seed, args.trials)
    # With --kinisi-from, kinisi's values come from those files only: a setting they lack has no kinisi row.
    report: dict[str, Any] = {
        "what": __doc__.split("\n")[0],
        "trials": args.trials,
        "seed": args.seed,
        "frame_ps": FRAME_PS,
        "true_D_A2_per_ps": D_A2_PER_PS,
        "kinisi_lags": None if args.no_kinisi else args.kinisi_lags,
        "versions": versions,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f} at start",
        "command": " ".join([Path(sys.argv[0]).as_posix(), *(argv if argv is not None else sys.argv[1:])]),
        "results": [],
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    for setting in args.settings:
        cached = reuse.get(setting.label)
        result = run_setting(
            setting,
            args.trials,
            seed=args.seed,
            kinisi=not args.no_kinisi and (not args.kinisi_from or cached is not None),
            kinisi_lags=args.kinisi_lags,
            kinisi_done=cached,
            jobs=args.jobs,
        )
        report["results"].append(result)
        print(markdown_table([result]).split("\n", 2)[2], f"  ({result['wall_s']:.0f} s)", flush=True)
        args.json.write_text(
            json.dumps(report, indent=1)
        )  # after every setting: a stopped run keeps its rows
    print(markdown_table(report["results"]))


if __name__ == "__main__":
    main()
