"""Measured room-temperature conductivities and activation energies, to show beside a prediction.

A small table of values as the cited papers give them (the numbers were gathered for this project
and checked against the papers' abstracts where those were reachable; see docs/experiments.md).
When the reduced composition of a job's cell matches an entry, the report and the figure show it,
labelled as experiment: it is the number a battery modeller compares with, not a check of the model,
whose teacher (a PBE-level universal potential) is expected to soften barriers (higher D, lower Ea).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from pymatgen.core import Composition


@dataclass(frozen=True)
class Measurement:
    material: str
    formula: str  # reduced formula the cell is matched by (pymatgen's reduced_formula)
    sigma_mS_per_cm: float  # at about 300 K, as measured
    temperature_K: float  # where σ was measured
    ea_eV: float | None  # activation energy of σ, where the paper gives one
    doi: str
    note: str = ""

    def headline(self) -> dict[str, Any]:
        """The demo's `experiment` block: {sigma_300K_mS_per_cm, Ea_eV, doi}."""
        return {"sigma_300K_mS_per_cm": self.sigma_mS_per_cm, "Ea_eV": self.ea_eV, "doi": self.doi}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


MEASUREMENTS: tuple[Measurement, ...] = (
    Measurement(
        "Li10GeP2S12 (LGPS)", "Li10GeP2S12", 12.0, 300.0, 0.25, "10.1038/nmat3066",
        "Kamaya et al., Nat. Mater. 10, 682 (2011); 12 mS/cm at 27 °C, 24 kJ/mol. Kuhn et al. (Energy "
        "Environ. Sci. 6, 3548 (2013)) give Ea ≈ 0.22 eV for bulk Li hopping",
    ),
    Measurement(
        "Li6PS5Cl (argyrodite)", "Li6PS5Cl", 0.537, 298.6, None, "10.1016/j.ssi.2012.06.008",
        "0.537 mS/cm at 25.4 °C (1.32 at 50.5 °C, 21.4 at 150.6 °C)",
    ),
    Measurement(
        "Li7La3Zr2O12 (cubic, Ta-doped)", "Li7La3Zr2O12", 1.0, 298.0, None, "10.1039/c2jm31413d",
        "Ta-doped cubic LLZO, about 1 mS/cm; undoped cubic LLZO 0.51 mS/cm (doi 10.1002/anie.200701144)",
    ),
    Measurement(
        "Li3YCl6", "Li3YCl6", 0.54, 298.0, None, "10.1002/adma.201803075", "Asano et al., Adv. Mater. 2018"
    ),
    Measurement(
        "β-Li3PS4 (nanoporous)", "Li3PS4", 0.16, 298.0, 0.40, "10.1021/ja3110895",
        "nanoporous β phase; bulk β-Li3PS4 conducts about 1000 times less",
    ),
    Measurement(
        "Li7P3S11 (glass-ceramic)", "Li7P3S11", 17.0, 298.0, 0.18, "10.1039/c3ee41655k",
        "Seino et al., Energy Environ. Sci. 7, 627 (2014): 1.7e-2 S/cm, 17 kJ/mol",
    ),
    Measurement(
        "Na3PS4 (cubic)", "Na3PS4", 0.2, 298.0, 0.28, "10.1038/ncomms1843",
        "Hayashi et al., Nat. Commun. 3, 856 (2012), glass-ceramic; 27 kJ/mol",
    ),
)  # fmt: skip


def reduced_formula(formula: str) -> str:
    return Composition(formula).reduced_formula


def matching(formula: str) -> list[Measurement]:
    """The measurements whose reduced composition equals the cell's (``formula`` in any form)."""
    target = reduced_formula(formula)
    return [m for m in MEASUREMENTS if reduced_formula(m.formula) == target]
