"""The deviation band calibrated on the committee itself (docs/active_learning.md, "Calibrated band").

A fixed band (0.05–0.30 eV/Å) means different things for different materials and committees: a
committee whose members disagree by 0.1 eV/Å on frames like its training data would put every
production step above 0.05 and could never be called trusted, however good it is. The band is
therefore set per job from the committee's own spread on labelled frames that none of its members
trained on (the held-out calibration frames, drawn from the same labeller MD as the training data):

- LO = the ``LO_QUANTILE`` quantile of max_devi_f over those frames: the spread the committee shows
  where its data are. An MD that stays where the data are puts about 1 − LO_QUANTILE of its steps
  above it, well under the 5 % target fraction; an MD that leaves the data puts many more.
- HI = ``HI_FACTOR`` × LO (DP-GEN's examples use the same ratio, 0.05 / 0.15).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from ase import Atoms

from superionic.md.committee import force_deviation, load_members

LO_QUANTILE = 0.99
HI_FACTOR = 3.0


@dataclass(frozen=True)
class CalibratedBand:
    lo: float  # eV/Å
    hi: float
    frames: int
    median_eV_per_A: float
    max_eV_per_A: float
    rule: str

    def to_dict(self) -> dict:
        return asdict(self)


def calibrate_band(members: Sequence[str | Path], frames: Sequence[Atoms]) -> CalibratedBand:
    """LO and HI from the committee's max_devi_f on ``frames`` (see the module docstring)."""
    if len(frames) < 5:
        raise ValueError(
            f"{len(frames)} calibration frames: the band needs at least 5 held-out labelled frames"
        )
    loaded = load_members(members)
    values = np.array([force_deviation(loaded, atoms).max for atoms in frames])
    lo = float(np.quantile(values, LO_QUANTILE))
    return CalibratedBand(
        lo=lo,
        hi=HI_FACTOR * lo,
        frames=len(frames),
        median_eV_per_A=float(np.median(values)),
        max_eV_per_A=float(values.max()),
        rule=f"LO = {LO_QUANTILE:g} quantile of max_devi_f over {len(frames)} held-out labelled frames, "
        f"HI = {HI_FACTOR:g} × LO",
    )
