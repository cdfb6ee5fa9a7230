"""Bad input raises an AnalysisError (a ValueError) whose one-line message names the fix."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from superionic.analysis import (
    AnalysisError,
    EmptySelectionError,
    NonFiniteInputError,
    NonUniformTimeError,
    TrajectoryTooShortError,
    collective_msd_fft,
    fit_arrhenius,
    ionic_conductivity,
    msd_fft,
    remove_drift,
    tracer_diffusion,
    unwrap,
)

from ._synthetic import random_walk, times

WALK = random_walk(np.random.default_rng(0), 8, 100, 0.1, 0.1)
TIMES = times(101, 0.1)
NAN_WALK = WALK.copy()
NAN_WALK[40, 3, 1] = np.nan
UNEVEN = TIMES.copy()
UNEVEN[60:] += 0.1  # a dropped frame


def _expect(error: type[AnalysisError], call: Callable[[], object], fragment: str) -> None:
    with pytest.raises(error) as info:
        call()
    message = str(info.value)
    assert isinstance(info.value, ValueError)
    assert "\n" not in message and ":" in message  # one line: problem, then the fix after the colon
    assert fragment in message, message


@pytest.mark.parametrize(
    ("error", "call", "fragment"),
    [
        (TrajectoryTooShortError, lambda: msd_fft(WALK[:1]), "longer trajectory"),
        (TrajectoryTooShortError, lambda: tracer_diffusion(WALK[:1], TIMES[:1]), "longer trajectory"),
        (NonFiniteInputError, lambda: msd_fft(NAN_WALK), "frame 40"),
        (NonFiniteInputError, lambda: tracer_diffusion(NAN_WALK, TIMES), "repair"),
        (NonFiniteInputError, lambda: unwrap(NAN_WALK, [5.0, 5.0, 5.0]), "NaN"),
        (NonUniformTimeError, lambda: tracer_diffusion(WALK, UNEVEN), "constant interval"),
        (NonUniformTimeError, lambda: tracer_diffusion(WALK, TIMES[::-1]), "sort the frames"),
        (EmptySelectionError, lambda: msd_fft(WALK[:, :0]), "selection is empty"),
        (EmptySelectionError, lambda: tracer_diffusion(WALK[:, []], TIMES), "selection is empty"),
        (EmptySelectionError, lambda: collective_msd_fft(WALK[:, :0], []), "selection is empty"),
        (EmptySelectionError, lambda: remove_drift(np.zeros((5, 0, 3))), "selection is empty"),
        (EmptySelectionError, lambda: fit_arrhenius([], []), "one value per MD temperature"),
        (AnalysisError, lambda: msd_fft(WALK[:, 0]), "[frames, atoms, 3]"),
        (AnalysisError, lambda: tracer_diffusion(WALK, TIMES[:-1]), "one time per frame"),
        (AnalysisError, lambda: tracer_diffusion(WALK[:, :1], TIMES), "block_average"),
        (AnalysisError, lambda: tracer_diffusion(np.zeros((101, 4, 3)), TIMES), "do not move"),
        (AnalysisError, lambda: tracer_diffusion(WALK, TIMES, window_ps=(5.0, 5.1)), "widen the window"),
        (AnalysisError, lambda: collective_msd_fft(WALK, [1.0, 2.0]), "one charge per atom"),
        (AnalysisError, lambda: ionic_conductivity(WALK, 1.0, TIMES, -5.0, 600.0), "volume"),
        (AnalysisError, lambda: ionic_conductivity(WALK, 0.0, TIMES, 500.0, 600.0), "formal charges"),
        (
            TrajectoryTooShortError,
            lambda: ionic_conductivity(WALK, 1.0, TIMES, 500.0, 600.0, n_blocks=60),
            "blocks",
        ),
        (AnalysisError, lambda: fit_arrhenius([600.0], [1e-5], [1e-6]), "more temperatures"),
        (AnalysisError, lambda: fit_arrhenius([600.0, 700.0], [1e-5, -1e-5]), "drop failed runs"),
        (AnalysisError, lambda: fit_arrhenius([600.0, 700.0], [1e-5, 2e-5]), "add one or pass stderr"),
        (NonFiniteInputError, lambda: fit_arrhenius([600.0, 700.0], [1e-5, np.nan]), "drop the failed runs"),
    ],
)
def test_bad_input_raises_a_clear_error(
    error: type[AnalysisError], call: Callable[[], object], fragment: str
) -> None:
    _expect(error, call, fragment)
