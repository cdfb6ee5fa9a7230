"""The demo's headline block: exactly the keys README and issue 24 name, from the precision run's
fit, the experiment matched by composition, and validate's D verdicts."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from superionic.demo import headline

KEYS = {
    "temperatures_K",
    "atoms",
    "Ea_eV",
    "Ea_ci95_eV",
    "sigma_300K_mS_per_cm",
    "sigma_300K_ci95_mS_per_cm",
    "experiment",
    "teacher_checks",
}


def _validation(label_900: str, label_1200: str) -> dict:
    def row(t: float, label: str) -> dict:
        return {
            "temperature_K": t,
            "verdicts": [
                {"quantity": "D_Li", "label": label},
                {"quantity": "MSD_Li", "label": "agree"},
                {"quantity": "framework", "label": "agree"},
            ],
        }

    return {"temperatures": [row(900.0, label_900), row(1200.0, label_1200)]}


def test_headline_keys_values_and_experiment() -> None:
    fit = SimpleNamespace(
        activation_energy_eV=0.137,
        activation_energy_ci95_eV=(0.115, 0.159),
        conductivity_300K_S_per_cm=0.153,
        conductivity_300K_ci95_S_per_cm=(0.091, 0.258),
    )
    result = SimpleNamespace(arrhenius=fit, plan={"temperatures_K": [1000.0, 857.0, 750.0, 667.0, 600.0]})
    block = headline(result, 200, _validation("undetermined: run 2.1× longer", "agree"))
    assert set(block) == KEYS
    assert block["temperatures_K"] == [600.0, 667.0, 750.0, 857.0, 1000.0]  # ascending
    assert block["atoms"] == 200
    assert block["Ea_eV"] == 0.137 and block["Ea_ci95_eV"] == [0.115, 0.159]
    assert block["sigma_300K_mS_per_cm"] == pytest.approx(153.0)
    assert block["sigma_300K_ci95_mS_per_cm"] == pytest.approx([91.0, 258.0])
    # LGPS measured by Kamaya et al. 2011: 12 mS/cm at room temperature.
    assert block["experiment"]["doi"] == "10.1038/nmat3066"
    assert block["experiment"]["sigma_300K_mS_per_cm"] == 12.0
    assert block["teacher_checks"] == [
        {"temperature_K": 900.0, "D_verdict": "undetermined: run 2.1× longer"},
        {"temperature_K": 1200.0, "D_verdict": "agree"},
    ]


def test_headline_without_a_fit_says_none_not_a_number() -> None:
    result = SimpleNamespace(arrhenius=None, plan={"temperatures_K": [1000.0, 800.0]})
    block = headline(result, 200, None, formula="Li3YCl6")
    assert set(block) == KEYS
    assert block["Ea_eV"] is None and block["sigma_300K_ci95_mS_per_cm"] is None
    assert block["teacher_checks"] == [] and block["experiment"]["doi"]
    assert headline(result, 200, None, formula="NaCl")["experiment"] is None
