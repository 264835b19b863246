"""Neural shape model (ShapeMedKnee NSM) stage: latent fit of the femur, BScore, reconstruction, ASSD.

Import cost: this package and ``bscore``/``stage``/``files`` do not import torch; ``decoder``, ``fit``, ``model`` and
``meshing`` do, and are loaded only when a model is actually built or fitted.
"""

from .bscore import BScoreModel, bscore, resolve_bscore_folder
from .files import PUBLISHED_MODELS, find_model_files
from .stage import ShapeModelResult, ShapeOptions, run_shape_model, shape_stage

__all__ = [
    "PUBLISHED_MODELS",
    "BScoreModel",
    "ShapeModelResult",
    "ShapeOptions",
    "bscore",
    "find_model_files",
    "resolve_bscore_folder",
    "run_shape_model",
    "shape_stage",
]
