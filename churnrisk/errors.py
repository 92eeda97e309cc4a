"""One error hierarchy for churnrisk.

Every error says what was wrong, where, and what to do about it, in one line. Each
subclass also subclasses the builtin a caller would naturally catch, the way
scikit-learn's ``NotFittedError`` is both a ``ValueError`` and an ``AttributeError``.
"""

from __future__ import annotations


class ChurnRiskError(Exception):
    """Base class of every error churnrisk raises on purpose."""


class DataError(ChurnRiskError, ValueError):
    """The input data cannot be used at all (missing required table, unreadable file)."""


class ConfigError(ChurnRiskError, ValueError):
    """A setting, a configuration file or a command-line argument is not valid."""


class UnknownFeatureError(ChurnRiskError, KeyError):
    """A feature name that the registry does not know."""

    def __str__(self) -> str:
        # KeyError quotes its argument; our messages are sentences.
        return str(self.args[0]) if self.args else ""


class SchemaError(ChurnRiskError, ValueError):
    """A frame does not have the columns, order or types a stage or model expects."""


class NotFittedError(ChurnRiskError, ValueError, AttributeError):
    """A model was used before ``fit`` (or ``load``)."""


class MetricError(ChurnRiskError, ValueError):
    """A metric is undefined on its input (empty, one class only, constant scores)."""
