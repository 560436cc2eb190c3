"""Method names and building a method's predictor by name: the one module above both
:mod:`amodal3d.pipeline` (A3D and its ablations) and :mod:`amodal3d.evaluation` (the baselines and the
harness that scores them). ``amodal3d evaluate --method NAME`` and the benchmarks go through
:func:`build_predictor`; the ablations of A3D are reachable here only.
"""

from __future__ import annotations

from pathlib import Path

from amodal3d.errors import Amodal3dError, WeightsError
from amodal3d.evaluation.baselines import ConvexHullOf, VisibleAsAmodal
from amodal3d.evaluation.harness import EVAL_SCORE_THRESHOLD
from amodal3d.structures import Predictor

# Every method name, in table order.
METHODS = ("visible", "convex-hull", "maskrcnn-amodal", "orcnn", "a3d", "a3d-no-fit", "a3d-no-prior",
           "a3d-unconstrained", "a3d-no-refine", "a3d-steps-2-5", "prior-only")
_DETECTOR_METHODS = ("maskrcnn-amodal", "orcnn")
# A3D and its ablations: the :class:`~amodal3d.pipeline.PipelineOptions` fields each method sets (the
# others stay the defaults, beside what the evaluation sets for every method: device, crop head, score
# threshold, mirrored detections, objects kept by objectness).
PIPELINE_METHODS: dict[str, dict] = {
    "a3d": {},
    "a3d-no-fit": {"fit_steps": 0},  # the priors as predicted: predict --fit-steps 0, the fast setting
    "a3d-no-prior": {"mode": "a3d-no-prior"},
    "a3d-unconstrained": {"occluder_constraint": False},
    "a3d-no-refine": {"mode": "a3d-no-refine"},
    "a3d-steps-2-5": {"detector_amodal": False},
    "prior-only": {"mode": "prior-only"},
}
# Shipped weights (inside the package) used when --weights is not given. The
# shipped step-1 detector is the ORCNN model (visible + amodal heads): A3D uses its visible head.
_SHIPPED_STEM = {"visible": "detector", "convex-hull": "detector", "maskrcnn-amodal": "maskrcnn_amodal",
                 "orcnn": "detector"}


def shipped_weights(name: str) -> Path | None:
    """The package's own weights for method ``name`` (None when not shipped)."""
    from amodal3d.pipeline import BUILTIN

    path = BUILTIN["cpu-small"] / f"{_SHIPPED_STEM.get(name, '')}.safetensors"
    return path if name in _SHIPPED_STEM and path.is_file() else None


# Detector heads each method needs (``DetectorConfig.heads`` of the weights).
_HEADS = {"visible": ("visible", "both"), "convex-hull": ("visible", "both"), "maskrcnn-amodal": ("amodal",),
          "orcnn": ("both",)}


def _load_detector(name: str, weights: str | Path | None, device: str, crop_head: bool,
                   score_threshold: float, mirrored_detections: bool = True) -> Predictor:
    """``DetectorPredictor`` of the detector exported at ``weights`` (a ``.safetensors`` file beside its
    ``.json``, or a run folder), imported lazily from ``amodal3d.models.detector``; its heads must suit
    method ``name``. With ``crop_head``, a ``crop_head.safetensors`` in the same folder (the crop head) is
    applied to its detections: every detector-based method of one folder shares it."""
    if weights is None:
        raise WeightsError(f"method {name!r} needs --weights (a trained detector's .safetensors file)")
    path = Path(weights)
    if not path.exists():
        raise WeightsError(f"{path}: weights file not found (method {name!r})")
    try:
        from amodal3d.models.detector import load_detector
        from amodal3d.models.detector_predict import DetectorPredictor
    except ImportError as error:
        raise Amodal3dError(f"method {name!r}: the detector model is not available ({error})") from None
    model = load_detector(path, device=device)
    heads = getattr(model, "heads", None)
    if heads not in _HEADS[name]:
        raise WeightsError(f"{path}: a detector with heads={heads!r}; method {name!r} needs heads "
                           f"{' or '.join(map(repr, _HEADS[name]))}")
    from amodal3d.models.crop_head import crop_head_beside

    head = crop_head_beside(path if path.is_dir() else path.parent, device) if crop_head else None
    return DetectorPredictor(model, name=None if name in ("visible", "convex-hull") else name,
                             score_threshold=score_threshold, crop_head=head,
                             mirrored_detections=mirrored_detections)


def build_predictor(name: str, weights: str | Path | None = None, device: str = "cpu",
                    crop_head: bool = True, score_threshold: float = EVAL_SCORE_THRESHOLD,
                    mirrored_detections: bool = True) -> Predictor:
    """The predictor of method ``name`` (see :data:`METHODS`).

    ``visible`` and ``convex-hull`` need no model under given-visible; with a detector (``weights``,
    default the shipped one) they also run end-to-end, post-processing its visible masks.
    ``maskrcnn-amodal`` (heads=amodal) and ``orcnn`` (heads=both) load a trained detector from
    ``weights`` (default: shipped). ``a3d`` and its ablations load a pipeline folder (default: the
    built-in ``cpu-small``). ``crop_head=False`` leaves out the crop head for every method (the detector's
    own labels and masks); ``mirrored_detections=False`` lets step 1 detect in the image only, not also
    in its mirror image. Methods that detect keep detections scoring at least ``score_threshold``
    (in [0, 1]). Unknown names and thresholds outside [0, 1] raise :class:`Amodal3dError`."""
    if not 0.0 <= score_threshold <= 1.0:
        raise Amodal3dError(f"score threshold must lie in [0, 1], got {score_threshold}")
    if name in PIPELINE_METHODS:
        from amodal3d.pipeline import AmodalSegmenter, PipelineOptions

        options = PipelineOptions(device=device, score_threshold=score_threshold, crop_head=crop_head,
                                  mirrored_detections=mirrored_detections, keep_by="objectness",
                                  **PIPELINE_METHODS[name])
        segmenter = AmodalSegmenter.from_pretrained(weights or "cpu-small", options)
        segmenter.name = name
        return segmenter
    weights = weights if weights is not None else shipped_weights(name)
    if name in ("visible", "convex-hull"):
        detector = (_load_detector(name, weights, device, crop_head, score_threshold, mirrored_detections)
                    if weights is not None else None)
        return VisibleAsAmodal(detector) if name == "visible" else ConvexHullOf(detector)
    if name in _DETECTOR_METHODS:
        return _load_detector(name, weights, device, crop_head, score_threshold, mirrored_detections)
    raise Amodal3dError(f"unknown method {name!r}; available methods: {', '.join(METHODS)}")
