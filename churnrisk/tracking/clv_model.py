"""churnrisk's clv model, as MLflow logs it: a model from code, no pickle.

:class:`~churnrisk.tracking.runs.RunLogger` logs this file as ``python_model``; MLflow
copies it into the model and runs it whenever the model loads (in this process, a fresh
one or a Spark executor, which therefore needs churnrisk installed). ``load_context``
then loads the ``bundle`` artifact (JSON and LightGBM text files written by
``ChurnRiskModels.save``). One file per kind, as the kind cannot travel in the model's
configuration: MLflow would log that as the training run's parameters.
"""

import mlflow

from churnrisk.tracking.pyfunc import ChurnRiskPyfunc

mlflow.models.set_model(ChurnRiskPyfunc("clv"))
