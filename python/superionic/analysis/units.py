"""Unit conversions for transport, every factor built from CODATA constants (``scipy.constants``).

Inside: LAMMPS ``metal`` units (Å, ps, eV, charges in e). Reported: D in cm²/s, σ in S/cm.
Function names carry their units, after pymatgen's ``get_conversion_factor`` for the
Nernst–Einstein relation.
"""

from __future__ import annotations

import numpy as np
from scipy import constants

#: Boltzmann constant, eV/K.
BOLTZMANN_EV_PER_K: float = constants.k / constants.e
#: 1 Å²/ps = 1e-16 cm² / 1e-12 s = 1e-4 cm²/s.
CM2_PER_S_PER_A2_PER_PS: float = 1e-16 / 1e-12

_M3_PER_A3 = 1e-30
_M2_PER_A2 = 1e-20
_S_PER_PS = 1e-12
_M2_PER_CM2 = 1e-4
_S_PER_CM_PER_S_PER_M = 1e-2


def cm2_per_s_from_A2_per_ps(value_A2_per_ps: float) -> float:
    """Diffusion coefficient in cm²/s from Å²/ps (× 1e-4)."""
    return value_A2_per_ps * CM2_PER_S_PER_A2_PER_PS


def A2_per_ps_from_cm2_per_s(value_cm2_per_s: float) -> float:
    """Diffusion coefficient in Å²/ps from cm²/s (× 1e4)."""
    return value_cm2_per_s / CM2_PER_S_PER_A2_PER_PS


def nernst_einstein_factor_S_s_per_cm3(
    n_ions: float, volume_A3: float, temperature_K: float, charge_e: float = 1.0
) -> float:
    """σ/D of the Nernst–Einstein relation, in (S/cm) per (cm²/s) = S·s/cm³.

    σ_NE = n q² D / (k_B T) with n = n_ions / V the number density of the mobile ion and q = z e.
    In SI: n [m⁻³] = n_ions / (V [Å³] · 1e-30), D [m²/s] = D [cm²/s] · 1e-4, σ [S/cm] = σ [S/m] · 1e-2.
    Multiply a D in cm²/s by this factor to get σ_NE in S/cm.
    """
    density_per_m3 = n_ions / (volume_A3 * _M3_PER_A3)
    charge_C = charge_e * constants.e
    factor_S_s_per_m3 = density_per_m3 * charge_C**2 / (constants.k * temperature_K)
    return factor_S_s_per_m3 * _M2_PER_CM2 * _S_PER_CM_PER_S_PER_M


def conductivity_S_per_cm_from_charge_msd_slope(
    slope_e2_A2_per_ps: float | np.ndarray, volume_A3: float, temperature_K: float, dimensions: int = 3
) -> float | np.ndarray:
    """σ in S/cm from the slope of the charge MSD ⟨|Σ_i q_i Δr_i(t)|²⟩ in e²·Å²/ps.

    σ = slope / (2 d V k_B T), d = 3 for the total MSD (σ = slope / (6 V k_B T)) and d = 1 for one
    Cartesian component (σ_αα = slope_α / (2 V k_B T)). In SI the slope is e² · 1e-20 m² / 1e-12 s.
    """
    slope_SI = slope_e2_A2_per_ps * constants.e**2 * _M2_PER_A2 / _S_PER_PS
    sigma_S_per_m = slope_SI / (2 * dimensions * volume_A3 * _M3_PER_A3 * constants.k * temperature_K)
    return sigma_S_per_m * _S_PER_CM_PER_S_PER_M
