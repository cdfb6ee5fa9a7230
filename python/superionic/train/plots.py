"""Parity plots (PNG) of predicted against reference energies, forces and stresses."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from superionic.train.metrics import EV_PER_A3_TO_GPA, Predictions


def parity_plot(predictions: Predictions, path: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    arr = predictions.arrays()
    panels = [
        ("energy (eV/atom)", arr["energy_ref"], arr["energy_pred"]),
        ("force component (eV/Å)", arr["force_ref"].ravel(), arr["force_pred"].ravel()),
    ]
    if "stress_ref" in arr:
        panels.append(
            (
                "stress (GPa)",
                EV_PER_A3_TO_GPA * arr["stress_ref"].ravel(),
                EV_PER_A3_TO_GPA * arr["stress_pred"].ravel(),
            )
        )
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4.2))
    for ax, (label, ref, pred) in zip(np.atleast_1d(axes), panels, strict=True):
        lo, hi = float(min(ref.min(), pred.min())), float(max(ref.max(), pred.max()))
        ax.plot([lo, hi], [lo, hi], color="0.6", lw=1)
        ax.scatter(ref, pred, s=3, alpha=0.4)
        rmse = float(np.sqrt(np.mean((pred - ref) ** 2)))
        ax.set_title(f"{label}\nRMSE {rmse:.3g}")
        ax.set_xlabel("reference")
        ax.set_ylabel("model")
        # Energies per atom span ~0.2 eV around −4 eV: default ticks carry 4 decimals and collide.
        ax.xaxis.set_major_locator(MaxNLocator(5))
        ax.yaxis.set_major_locator(MaxNLocator(5))
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
