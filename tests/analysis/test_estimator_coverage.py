"""The coverage bench (bench/estimator_coverage.py) against analytic answers on small settings.

Gaussian walks: the spread of the OLS and GLS estimates of D over seeded trials equals the exact
variance of those linear fits of the windowed MSD of a discrete Gaussian walk (below), and the
bootstrap intervals are as wide as that spread says. The hop model: the simulated mean MSD equals
its closed form at every lag, so the bench's "true D" and curvature are what it states.
"""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from superionic.analysis.msd import msd_per_atom_fft
from superionic.analysis.statistics import line_weights
from superionic.analysis.units import CM2_PER_S_PER_A2_PER_PS

from ._coverage import assert_coverage

BENCH = Path(__file__).resolve().parents[2] / "bench" / "estimator_coverage.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("estimator_coverage", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["estimator_coverage"] = module  # dataclasses look their module up while being built
    spec.loader.exec_module(module)
    return module


def exact_msd_covariance(lags: np.ndarray, n_steps: int, step_variance: float) -> np.ndarray:
    """Covariance of the windowed (all-origin) MSD of one coordinate of a discrete Gaussian walk of
    ``n_steps`` i.i.d. N(0, v) steps, at integer ``lags``; exact, no large-T approximation.

    MSD_s = (1/M_s) Σ_k Δ_k², Δ_k = x_{k+s} − x_k, M_s = T − s + 1 origins. The Δ are jointly Gaussian
    with Cov(Δ_k^s, Δ_l^t) = v · |[k, k+s) ∩ [l, l+t)|, and Cov(X², Y²) = 2 Cov(X, Y)² for centred
    Gaussians, so Cov(MSD_s, MSD_t) = 2 v² / (M_s M_t) Σ_d count(d) overlap(d)², d = l − k.
    """
    k = lags.shape[0]
    out = np.empty((k, k))
    for i, s in enumerate(lags):
        for j, t in enumerate(lags):
            d = np.arange(-int(t) + 1, int(s))
            overlap = np.minimum(s, d + t) - np.maximum(0, d)
            m_s, m_t = n_steps - s + 1, n_steps - t + 1
            count = np.minimum(m_s - 1, m_t - 1 - d) - np.maximum(0, -d) + 1
            out[i, j] = 2.0 * step_variance**2 * np.sum(np.maximum(count, 0) * overlap**2) / (m_s * m_t)
    return out


def test_exact_msd_covariance_matches_a_simulation() -> None:
    # The reference itself, against 4000 simulated 1D walks of 30 steps: each entry within 4 of its
    # Monte Carlo standard errors (relative error of a variance estimate ~ √(2/4000) · 1–2 ≈ 3–5 %).
    rng = np.random.default_rng(3)
    walks = np.concatenate([np.zeros((1, 4000)), np.cumsum(rng.normal(size=(30, 4000)), axis=0)])
    lags = np.array([1, 3, 7, 10])
    msd = np.stack([((walks[s:] - walks[:-s]) ** 2).mean(axis=0) for s in lags])  # [K, walks]
    exact = exact_msd_covariance(lags, 30, 1.0)
    np.testing.assert_allclose(np.cov(msd), exact, rtol=0.12)


def test_bench_on_gaussian_walks_matches_the_exact_variance(bench: ModuleType) -> None:
    """96 walkers, 10 ps at 50 fs (201 frames), 200 seeded trials through the bench's core: both fits
    are unbiased, the standard deviation of their D over the trials equals √(wᵀ C w / (12 N)) for the
    exact MSD covariance C and each fit's weights w over the window the rule picks (lag 1 to a third
    of the run; C per coordinate, 3 coordinates and N atoms averaged, slope / 2 per coordinate), and
    the bootstrap intervals cover at 95 % with the width that spread implies.
    The relative standard error of a standard deviation from 200 trials is 5 %: ±15 % is 3 of them."""
    setting = bench.Setting("gaussian", 96, 10.0)
    result = bench.run_setting(setting, 200, seed=11, kinisi=False)
    truth_A2 = bench.D_A2_PER_PS
    n_steps = setting.n_frames - 1
    lags = np.arange(1, n_steps // 3 + 1)
    covariance = exact_msd_covariance(lags, n_steps, 2.0 * truth_A2 * bench.FRAME_PS)
    x = lags * bench.FRAME_PS
    for name, covariance_model in (("ols_bootstrap", None), ("gls_bootstrap", "brownian")):
        weights, _ = line_weights(x, covariance_model)
        exact_relative_sd = math.sqrt(weights @ covariance @ weights / (12 * setting.n_ions)) / truth_A2
        summary = result["estimators"][name]
        print(
            f"\n[bench] {name}: spread {summary['spread']:.4f} vs exact {exact_relative_sd:.4f}, "
            f"half-width {summary['median_relative_half_width']:.4f}, coverage {summary['coverage']:.3f}, "
            f"bias {summary['bias']:+.4f}"
        )
        assert summary["failed"] == 0
        assert summary["spread"] == pytest.approx(exact_relative_sd, rel=0.15)
        assert abs(summary["bias"]) < 3 * summary["bias_stderr"]
        assert summary["median_relative_half_width"] == pytest.approx(1.96 * exact_relative_sd, rel=0.15)
        assert_coverage(summary["hits"], 200, f"bench {name}")
    # GLS is the minimum-variance linear fit under C's Brownian shape: here ~4.5× narrower than OLS.
    assert (
        result["estimators"]["gls_bootstrap"]["spread"]
        < 0.5 * result["estimators"]["ols_bootstrap"]["spread"]
    )
    assert result["true_D_cm2_per_s"] == pytest.approx(truth_A2 * CM2_PER_S_PER_A2_PER_PS)


def test_hop_model_mean_msd_equals_its_closed_form(bench: ModuleType) -> None:
    """600 caged, hopping ions over 20 ps: the mean MSD at each lag within 4 standard errors (from
    the spread over ions, which are independent) of ``expected_msd``; its long-lag slope is 6 D."""
    positions = bench.lattice_hops(np.random.default_rng(5), 600, 401)
    per_ion = msd_per_atom_fft(positions)  # [N, T]
    lags = np.array([1, 2, 3, 5, 10, 20, 40, 80, 133])
    mean = per_ion[:, lags].mean(axis=0)
    stderr = per_ion[:, lags].std(axis=0, ddof=1) / math.sqrt(per_ion.shape[0])
    expected = bench.expected_msd("hops", lags)
    assert np.all(np.abs(mean - expected) < 4 * stderr), (mean, expected, stderr)
    far = bench.expected_msd("hops", np.array([20000, 40000]))
    assert (far[1] - far[0]) / (20000 * bench.FRAME_PS) == pytest.approx(6 * bench.D_A2_PER_PS, rel=1e-9)
    # The curvature the window rule meets: at 1 ps the local slope is still ~14 % above 6 D.
    local = (
        bench.expected_msd("hops", np.array([21]))[0] - bench.expected_msd("hops", np.array([19]))[0]
    ) / (2 * bench.FRAME_PS)
    assert local / (6 * bench.D_A2_PER_PS) == pytest.approx(1 + 0.2 * math.exp(-1.0 / 3.0), rel=0.01)
