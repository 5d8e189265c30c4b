"""Networks and scikit-learn style estimators."""

from .estimators import (
    DataConversionWarning,
    NotFittedError,
    RNNClassifier,
    RNNRegressor,
    ScratchSimpleRNNClassifier,
    TrainingDivergedError,
)
from .io import ModelFileError, load_model, save_model
from .network import RECURRENT_LAYERS, SequenceNetwork, make_recurrent, register_cell

__all__ = [
    "RECURRENT_LAYERS",
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
