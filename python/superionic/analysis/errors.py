"""Errors raised by the transport analysis, each message one line that names the fix.

All are ``ValueError`` subclasses, so callers that already catch ``ValueError`` keep working, and
callers that care can catch the specific case.
"""

from __future__ import annotations


class AnalysisError(ValueError):
    """Base class: the input cannot give a meaningful transport result."""


class TrajectoryTooShortError(AnalysisError):
    """Too few frames (or lags in the fit window) for the requested analysis."""


class NonFiniteInputError(AnalysisError):
    """NaN or infinite positions, times, charges or values."""


class NonUniformTimeError(AnalysisError):
    """Frames are not equally spaced in time (the windowed MSD assumes a constant frame interval)."""


class EmptySelectionError(AnalysisError):
    """No atoms (or no temperatures) were passed."""


class NoDiffusiveRegimeError(AnalysisError):
    """The MSD never settles on a slope of one on a log–log plot within the usable lags."""
