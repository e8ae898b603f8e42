"""The logged classifier's code (MLflow models-from-code): MLflow copies this file into the model folder and
runs it to load the model, which imports the installed ltsoups; nothing of the model is pickled."""

from mlflow.models import set_model

from ltsoups.tracking.served_model import ServedClassifier

set_model(ServedClassifier())
