"""Every way a model turns an image and a prompt into a mask, behind the one :class:`Predictor`.

- :mod:`~drywallqa.inference.core`: :class:`SegmentationResult`, :class:`Predictor`,
  :class:`BatchedPredictor` (the base of every runtime), the input checks and
  :func:`logits_to_result`;
- runtimes: :class:`ModelPredictor` (PyTorch, :mod:`~drywallqa.inference.torch_runtime`),
  :class:`OnnxPredictor` (:mod:`~drywallqa.inference.onnx_runtime`), :class:`TensorRTPredictor`
  (:mod:`~drywallqa.inference.tensorrt_runtime`), and :class:`FlipTTAPredictor` over any of them;
- what the exported runtimes read: :class:`PromptEmbeddings` and :mod:`~drywallqa.inference.graph_io`;
- :mod:`~drywallqa.inference.load`: :func:`load_predictor`, the one loader, with
  :func:`best_available` and the runtime factory :func:`load_runtime_predictor`;
- :mod:`~drywallqa.inference.calibration`: a model's calibrated per-class thresholds;
- :mod:`~drywallqa.inference.tiling`: large and elongated photos judged in tiles at the scale the
  model learned (:class:`TilePlan`, :func:`plan_tiles`, ``tile="auto"|"off"|PX``);
- what a prediction is once judged: :class:`Prediction` (mask, QA figures, verdict, ``plot``,
  ``save``, ``to_dict``, ``to_coco``; :mod:`~drywallqa.inference.prediction`), :class:`Predictions`
  (a photo's or a run's, and their tables) and :func:`predict`, a photo and its prompts in, its
  :class:`Predictions` out (:mod:`~drywallqa.inference.predictions`); overlays and mask PNGs in
  :mod:`~drywallqa.inference.render`.

Importing this package is cheap: torch, onnxruntime and tensorrt are imported on first use.

Example:
    >>> from drywallqa.inference import load_predictor, predict         # doctest: +SKIP
    >>> predictor = load_predictor()            # the shipped model, fastest runtime here
    >>> predictor.predict(image, "segment crack")                    # the mask
    >>> predict("wall.jpg", ["segment crack", "segment taping area"], predictor)  # masks judged: Predictions
"""

from drywallqa.inference.calibration import CALIBRATION_FILE, read_calibration, write_calibration
from drywallqa.inference.core import (
    BatchedPredictor,
    PhotoInputs,
    Predictor,
    SegmentationResult,
    check_image,
    check_prompt,
    logits_to_result,
)
from drywallqa.inference.graph_io import read_metadata
from drywallqa.inference.load import (
    RUNTIME_CHOICES,
    RUNTIMES,
    best_available,
    calibration_file,
    default_model_path,
    load_model,
    load_predictor,
    load_runtime,
    load_runtime_predictor,
    model_predictor,
    onnx_cache_dir,
    runtime_for_spec,
    weight_files,
    weights_digest,
)
from drywallqa.inference.onnx_runtime import OnnxPredictor, create_session
from drywallqa.inference.prediction import Prediction
from drywallqa.inference.predictions import Predictions, predict
from drywallqa.inference.prompt_store import PromptEmbeddings
from drywallqa.inference.tensorrt_runtime import (
    TensorRTPredictor,
    TensorRTUnavailable,
    build_tensorrt_engine,
    tensorrt_available,
    trtexec_command,
)
from drywallqa.inference.tiling import TILE_MODES, TilePlan, check_tile, plan_tiles
from drywallqa.inference.torch_runtime import PRECISIONS, ModelPredictor
from drywallqa.inference.tta import TTA_VIEWS, FlipTTAPredictor

__all__ = [
    "CALIBRATION_FILE",
    "PRECISIONS",
    "RUNTIMES",
    "RUNTIME_CHOICES",
    "TILE_MODES",
    "TTA_VIEWS",
    "BatchedPredictor",
    "FlipTTAPredictor",
    "ModelPredictor",
    "OnnxPredictor",
    "PhotoInputs",
    "Prediction",
    "Predictions",
    "Predictor",
    "PromptEmbeddings",
    "SegmentationResult",
    "TensorRTPredictor",
    "TensorRTUnavailable",
    "TilePlan",
    "best_available",
    "build_tensorrt_engine",
    "calibration_file",
    "check_image",
    "check_prompt",
    "check_tile",
    "create_session",
    "default_model_path",
    "load_model",
    "load_predictor",
    "load_runtime",
    "load_runtime_predictor",
    "logits_to_result",
    "model_predictor",
    "onnx_cache_dir",
    "predict",
    "plan_tiles",
    "read_calibration",
    "read_metadata",
    "runtime_for_spec",
    "tensorrt_available",
    "trtexec_command",
    "weight_files",
    "weights_digest",
    "write_calibration",
]
