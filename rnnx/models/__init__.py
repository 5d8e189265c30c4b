"""Networks and scikit-learn style estimators."""

from .estimators import (
    ClusterLostError,
    DataConversionWarning,
    NotFittedError,
    RNNClassifier,
    RNNRegressor,
    ScratchSimpleRNNClassifier,
    TrainingDivergedError,
)
from .io import ModelFileError, load_model, save_model
from .network import SequenceNetwork, make_recurrent, register_cell

__all__ = [
    "ClusterLostError",
    "DataConversionWarning",
    "ModelFileError",
    "NotFittedError",
    "RNNClassifier",
    "RNNRegressor",
    "ScratchSimpleRNNClassifier",
    "SequenceNetwork",
    "TrainingDivergedError",
    "load_model",
    "make_recurrent",
    "register_cell",
    "save_model",
]
