"""Model against reference transport: D, MSD at equal lags, RDFs and Ea, each with a stated verdict.

Layer: above ``analysis`` and ``md`` (it runs the model's MD through ``md.driver`` and measures
both runs with ``analysis``); nothing below imports it.
"""

from __future__ import annotations

from superionic.validation.compare import (
    TemperatureComparison,
    ValidationSettings,
    compare_activation_energy,
    compare_temperature,
)
from superionic.validation.errors import ValidationError
from superionic.validation.runner import ValidationReport, ValidationRequest, validate, verdict_table
from superionic.validation.statistics import Verdict, compare_log, log_verdict
from superionic.validation.transport import RdfSettings, RunTransport

__all__ = [
    "RdfSettings",
    "RunTransport",
    "TemperatureComparison",
    "ValidationError",
    "ValidationReport",
    "ValidationRequest",
    "ValidationSettings",
    "Verdict",
    "compare_activation_energy",
    "compare_log",
    "compare_temperature",
    "log_verdict",
    "validate",
    "verdict_table",
]
