"""Errors of the validation layer; subclasses of the analysis errors so callers catch one family."""

from __future__ import annotations

from superionic.analysis.errors import AnalysisError


class ValidationError(AnalysisError):
    """A validation request that cannot be carried out; the message names the file, field and fix."""
