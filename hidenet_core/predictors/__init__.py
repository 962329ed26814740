"""Predictors: the non-learned baseline, the learned models and their registry."""

from .base import MEAN_GRID, Prediction, Predictor, snap
from .interp import Interp, coding_steps, interp_prediction, interpolate, lead_channel
from .registry import (
    ARCHITECTURES,
    ModelLoadError,
    build,
    default_weights_path,
    load_checkpoint,
    load_model,
    model_names,
    register,
    save_checkpoint,
)
from .learned import LearnedPredictor
from .unet import UNetLikeLite
from .cnnp import CNNP

__all__ = [
    "MEAN_GRID",
    "Prediction",
    "Predictor",
    "snap",
    "Interp",
    "coding_steps",
    "interp_prediction",
    "interpolate",
    "lead_channel",
    "ARCHITECTURES",
    "ModelLoadError",
    "build",
    "default_weights_path",
    "load_checkpoint",
    "load_model",
    "model_names",
    "register",
    "save_checkpoint",
    "LearnedPredictor",
    "UNetLikeLite",
    "CNNP",
]
