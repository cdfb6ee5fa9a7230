"""A trained model's transport against the teacher's MD, reduced to one row of a study table.

Every study that asks "does this change move the transport?" (architecture, data quality, data
size) trains a model, exports it, and runs ``validate`` against the same reference trajectories.
This module does the last two steps and keeps what a table needs: D per temperature with its 95 %
interval, whether it lies inside the reference's, Ea against the reference's, every verdict, and
the MD speed the runs reached.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from superionic.export import checkpoint_export_args, export_model
from superionic.train.checkpoint import model_from_checkpoint
from superionic.validation.errors import ValidationError
from superionic.validation.runner import ValidationRequest, validate


@dataclass(frozen=True)
class TransportRow:
    """One model's transport next to the reference's, from one ``validate`` run."""

    model: str
    temperatures_K: list[float]
    D_cm2_per_s: list[float | None]
    D_ci95_cm2_per_s: list[list[float] | None]
    reference_D_cm2_per_s: list[float | None]
    reference_D_ci95_cm2_per_s: list[list[float] | None]
    D_ratio: list[float | None]  # model / reference
    D_inside_reference_ci95: list[bool | None]
    Ea_eV: float | None
    Ea_ci95_eV: list[float] | None
    reference_Ea_eV: float | None
    reference_Ea_ci95_eV: list[float] | None
    Ea_difference_eV: float | None
    verdicts: list[dict[str, Any]] = field(default_factory=list)  # temperature, quantity, label
    md_atom_steps_per_s: float | None = None  # median over the model's runs (wall time, shared cores)
    validation_json: str = ""


def reference_path(text: str | Path) -> Path:
    """The file of a ``--reference`` value: ``FILE`` or ``FILE@T``."""
    text = str(text)
    return Path(text.rpartition("@")[0] if "@" in text else text)


def check_references(references: Sequence[str | Path]) -> None:
    """Before hours of labelling and training: every reference file exists (FILE or FILE@T)."""
    if not references:
        raise ValidationError("--reference: give at least one teacher MD trajectory (one per temperature)")
    for text in map(str, references):
        if not reference_path(text).is_file():
            raise ValidationError(
                f"--reference {text}: no such file; give the teacher's MD trajectory "
                "(superionic data reference-md)"
            )


def export_checkpoint(checkpoint: str | Path, path: str | Path) -> Path:
    """The checkpoint's model as a TorchScript file (the EMA weights, as `superionic export`)."""
    model, config, payload = model_from_checkpoint(str(checkpoint))
    export_model(model, path, **checkpoint_export_args(payload, config))
    return Path(path)


def _at(summary: dict[str, Any] | None, key: str) -> Any:
    return None if not summary else summary.get(key)


def _md_speed(output: Path) -> float | None:
    summary = output / "md" / "md_summary.json"
    if not summary.exists():
        return None
    speeds = sorted(r["atom_steps_per_s"] for r in json.loads(summary.read_text())["runs"])
    return speeds[len(speeds) // 2] if speeds else None


def score_transport(
    model: str | Path,
    references: Sequence[str | Path],
    output: str | Path,
    *,
    production_ps: float | None = None,
    parallel: int = 1,
    seed: int = 4928459,
    slope_tolerance: float = 0.2,
    overwrite: bool = False,
) -> TransportRow:
    """Run the model's MD from each reference's first frame and compare (``superionic validate``)."""
    out = Path(output)
    report = validate(
        ValidationRequest(
            model=str(model),
            references=[str(r) for r in references],
            output=str(out),
            production_ps=production_ps,
            parallel=parallel,
            seed=seed,
            slope_tolerance=slope_tolerance,
            overwrite=overwrite,
        )
    )
    temperatures, d, d_ci, ref, ref_ci, ratio, inside = [], [], [], [], [], [], []
    for entry in report.temperatures:
        m, r = entry.get("model"), entry.get("reference")
        temperatures.append(float(entry["temperature_K"]))
        md, rd = _at(m, "D_cm2_per_s"), _at(r, "D_cm2_per_s")
        rci = _at(r, "D_ci95_cm2_per_s")
        d.append(md)
        d_ci.append(_at(m, "D_ci95_cm2_per_s"))
        ref.append(rd)
        ref_ci.append(rci)
        ratio.append(md / rd if md is not None and rd else None)
        inside.append(bool(rci[0] <= md <= rci[1]) if md is not None and rci else None)
    ea = report.activation_energy or {}
    verdicts = [
        {"temperature_K": v.get("temperature_K"), "quantity": v["quantity"], "label": v["label"]}
        for v in report.verdicts
    ]
    return TransportRow(
        model=str(model),
        temperatures_K=temperatures,
        D_cm2_per_s=d,
        D_ci95_cm2_per_s=d_ci,
        reference_D_cm2_per_s=ref,
        reference_D_ci95_cm2_per_s=ref_ci,
        D_ratio=ratio,
        D_inside_reference_ci95=inside,
        Ea_eV=ea.get("model_Ea_eV"),
        Ea_ci95_eV=ea.get("model_Ea_ci95_eV"),
        reference_Ea_eV=ea.get("reference_Ea_eV"),
        reference_Ea_ci95_eV=ea.get("reference_Ea_ci95_eV"),
        Ea_difference_eV=ea.get("difference_eV"),
        verdicts=verdicts,
        md_atom_steps_per_s=_md_speed(out),
        validation_json=str(out / "validation.json"),
    )


def d_verdict(row: TransportRow, temperature_K: float) -> str | None:
    """The ``validate`` verdict on D at one temperature ("agree", "disagree", "undetermined: ...")."""
    for v in row.verdicts:
        if v["quantity"].startswith("D_") and v["temperature_K"] == temperature_K:
            return v["label"]
    return None


def transport_disagrees(row: TransportRow) -> bool:
    """True when ``validate`` found D different from the teacher's at some temperature (95 %)."""
    return any(d_verdict(row, t) == "disagree" for t in row.temperatures_K)


def describe_d(row: TransportRow) -> str:
    """E.g. ``1200 K 1.07× (agree; inside the teacher's 95 %)``: D against the teacher per temperature."""
    parts = []
    for t, r, ok in zip(row.temperatures_K, row.D_ratio, row.D_inside_reference_ci95, strict=True):
        if r is None:
            parts.append(f"{t:g} K no D")
        else:
            where = "inside" if ok else "outside"
            parts.append(f"{t:g} K {r:.2f}× ({d_verdict(row, t)}; {where} the teacher's 95 %)")
    return ", ".join(parts)
