"""Predictors: the non-learned baseline, the learned models and their registry."""

from .base import MEAN_GRID, Prediction, Predictor, snap
from .cnnp import CNNP
from .interp import Interp, coding_steps, interp_prediction, interpolate, lead_channel
from .learned import LearnedPredictor
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
from .unet import UNetLikeLite

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
