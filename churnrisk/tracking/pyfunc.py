"""The pyfunc model churnrisk logs: a stateless wrapper serving a bundle artifact.

This module imports mlflow, so nothing imports it when ``churnrisk.tracking`` is
imported: MLflow runs :mod:`churnrisk.tracking.churn_model` or
:mod:`churnrisk.tracking.clv_model` when it loads a logged model, and they import it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from mlflow.pyfunc import PythonModel

from churnrisk.errors import ConfigError, NotFittedError
from churnrisk.tracking.registry import PYFUNC_OUTPUTS

if TYPE_CHECKING:
    from churnrisk.models.bundle import ChurnRiskModels


class ChurnRiskPyfunc(PythonModel):
    """A stateless wrapper until ``load_context`` loads the bundle artifact.

    Parameters
    ----------
    kind
        ``"churn"`` or ``"clv"``: which of the bundle's outputs :meth:`predict` returns
        (:data:`~churnrisk.tracking.PYFUNC_OUTPUTS`).
    """

    def __init__(self, kind: str) -> None:
        if kind not in PYFUNC_OUTPUTS:
            raise ConfigError(f"unknown model kind {kind!r}; use 'churn' or 'clv'")
        self.kind = kind
        self.bundle: ChurnRiskModels | None = None

    def load_context(self, context: Any) -> None:
        """Load the bundle from the ``bundle`` artifact."""
        from churnrisk.models.bundle import ChurnRiskModels

        self.bundle = ChurnRiskModels.load(Path(context.artifacts["bundle"]))

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        """Return the bundle's scores of ``model_input``: the kind's columns, keyed rows."""
        if self.bundle is None:
            raise NotFittedError("the churnrisk pyfunc model has no bundle; load it first")
        scores = self.bundle.predict(model_input)
        return scores.loc[:, list(PYFUNC_OUTPUTS[self.kind])]
