"""The full A3D pipeline: image in, every instance's visible and amodal masks, mesh and viewpoint out.

    segmenter = AmodalSegmenter.from_pretrained("cpu-small")      # shipped weights
    instances = segmenter.predict(image)                           # uint8 (H, W, 3) RGB
    segmenter = AmodalSegmenter.from_pretrained("cpu-small", PipelineOptions(fit_steps=10, device="cuda"))

Steps: (1) visible instance segmentation (:mod:`amodal3d.models.detector`, with the crop head of
:mod:`amodal3d.models.crop_head` when the weights have one, or masks the user brings: ``given``),
(2-4) shape + viewpoint + rendered prior (:mod:`amodal3d.models.shape`), its camera optionally fitted
to the visible mask by render-and-compare (``fit_steps``), (5) region-specific refinement
(:mod:`amodal3d.models.refine`); end to end, the amodal masks of the detector's own amodal head (when
it has one) are weighed against those of steps 2-5 (``detector_amodal``: the mean of the two
probabilities above ``DETECTOR_AMODAL_THRESHOLD``, :func:`~amodal3d.models.refine.weigh_detector_amodal`;
a step 1 that returns masks only has its masks joined).

Every inference setting is one field of :class:`PipelineOptions`. ``mode`` selects the method or one of
its ablations (evaluated by name through :mod:`amodal3d.methods`): ``a3d`` (all steps), ``a3d-no-prior``
(refinement trained without the prior), ``a3d-no-refine`` (prior ∪ visible), ``prior-only`` (the
rendered prior alone).
"""

from __future__ import annotations

import dataclasses
import numbers
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from amodal3d.categories import DEFAULT, Taxonomy
from amodal3d.engine.weights import load_taxonomy
from amodal3d.errors import DataError, WeightsError
from amodal3d.models.crop_head import STEM as CROP_HEAD_STEM
from amodal3d.models.crop_head import crop_head_beside
from amodal3d.models.detector_predict import KEEP_BY, check_resizable
from amodal3d.models.refine import (
    DETECTOR_AMODAL_THRESHOLD,
    RefineNet,
    hidden_under_occluders,
    load_refine,
    refine_inputs,
    weigh_detector_amodal,
)
from amodal3d.models.shape import ShapePrior, load_shape_prior, with_fit
from amodal3d.roi import image_tensor, mask_boxes, paste, roi_inputs
from amodal3d.structures import UNKNOWN_CATEGORY, GivenVisible, Instances

# the public API: the pipeline, its options and the result types it returns (from amodal3d.structures)
__all__ = ["AmodalSegmenter", "GivenVisible", "Instances", "PipelineOptions", "UNKNOWN_CATEGORY",
           "DEFAULT_SCORE_THRESHOLD", "MODES", "pipeline_taxonomy", "resolve_pipeline_dir"]

MODES = ("a3d", "a3d-no-prior", "a3d-no-refine", "prior-only")
REFINE_MODES = ("a3d", "a3d-no-prior")  # step 5 runs
# the score from which predict / from_pretrained keep an object (best F1 of step 1 on the validation
# split: benchmarks/predict_threshold.py)
DEFAULT_SCORE_THRESHOLD = 0.2
BUILTIN = {"cpu-small": Path(__file__).resolve().parent / "weights" / "cpu-small"}
# file stems inside a pipeline folder
FILES = {"detector": "detector", "crop-head": CROP_HEAD_STEM, "shape": "shape", "refine": "refine",
         "refine-no-prior": "refine_no_prior"}


MAX_CANVAS_MARGIN = 1024  # pixels past each image border (PipelineOptions.canvas_margin)


@dataclass(frozen=True)
class PipelineOptions:
    """Every inference setting of :class:`AmodalSegmenter`, checked when made (ValueError).

    ``mode``: the method or one of its ablations (:data:`MODES`). ``device``: where the models run.
    ``score_threshold``: objects are kept when their score reaches it (``keep_by="objectness"``: their
    objectness, as the evaluation harness keeps them). ``fit_steps``: render-and-compare steps fitting
    each prior's camera to its visible mask (:func:`~amodal3d.models.shape.fit_to_visible`) in the modes
    that use the prior; 0 skips the fit; None (:meth:`AmodalSegmenter.from_pretrained`): the steps the
    A3D refinement net was trained with (its config's ``prior_fit_steps``). ``occluder_constraint``
    (step 5 modes): hidden parts only under the other instances' visible masks
    (:func:`~amodal3d.models.refine.hidden_under_occluders`); turn it off for images whose occluders are
    not all detected. ``crop_head``: use the crop head beside the detector's weights (when there is one).
    ``detector_amodal``: end to end, weigh the detector's amodal head (when it has one) against steps 2-5.
    ``mirrored_detections=False``: step 1 detects in the image only, not also in its mirror image
    (faster; see :class:`~amodal3d.models.detector_predict.DetectorPredictor`). ``canvas_margin`` m > 0:
    the amodal masks are also continued past the image border (by the 3D prior, or step 5 where it
    reaches) on a canvas of (H + 2m, W + 2m) pixels, ``extras["amodal_canvas"]``, whose pixel
    ``extras["canvas_offset"]`` = (m, m) is image pixel (0, 0); its central crop is ``amodal_masks``.
    ``extras["amodal_probs"]`` (N, H, W) float16: steps 2-5's amodal probabilities before any threshold
    (what :func:`~amodal3d.occlusion.occlusion_pairs` orders pairs by when their masks do not meet)."""

    mode: str = "a3d"
    device: str = "cpu"
    score_threshold: float = DEFAULT_SCORE_THRESHOLD
    fit_steps: int | None = None
    occluder_constraint: bool = True
    crop_head: bool = True
    detector_amodal: bool = True
    mirrored_detections: bool = True
    keep_by: str = "score"
    canvas_margin: int = 0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"unknown mode {self.mode!r}; valid: {', '.join(MODES)}")
        value = self.score_threshold
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 <= float(value) <= 1.0:
            raise ValueError(f"score_threshold must be a number in [0, 1], got {value!r}")  # NaN too
        steps = self.fit_steps
        if steps is not None and (isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or steps < 0):
            raise ValueError(f"fit_steps must be a whole number >= 0, got {steps!r}")
        if self.keep_by not in KEEP_BY:
            raise ValueError(f"keep_by must be one of {', '.join(KEEP_BY)}, not {self.keep_by!r}")
        margin = self.canvas_margin
        if isinstance(margin, bool) or not isinstance(margin, numbers.Integral) or not 0 <= margin <= MAX_CANVAS_MARGIN:
            raise ValueError(f"canvas_margin must be a whole number in [0, {MAX_CANVAS_MARGIN}], got {margin!r}")

    def replace(self, **changes) -> PipelineOptions:
        """These options with ``changes`` (checked again)."""
        return dataclasses.replace(self, **changes)


def resolve_pipeline_dir(path_or_name: str | Path) -> Path:
    """A built-in name (``cpu-small``) or a folder holding ``detector``/``shape``/``refine`` weights."""
    folder = BUILTIN.get(str(path_or_name), Path(path_or_name))
    if not folder.is_dir():
        raise WeightsError(f"{path_or_name}: neither a built-in model ({', '.join(BUILTIN)}) nor a folder")
    return folder


def pipeline_taxonomy(path_or_name: str | Path) -> Taxonomy:
    """The categories of a pipeline (a built-in name or folder), read from its weights' JSON (no tensor
    is loaded): those of its detector, crop head and shape model, which must agree (WeightsError naming
    both otherwise); weights recording none are of the 13 default categories."""
    folder = resolve_pipeline_dir(path_or_name)
    found: list[tuple[Path, Taxonomy]] = []
    for stem in (FILES["detector"], FILES["crop-head"], FILES["shape"]):
        path = folder / f"{stem}.safetensors"
        if path.is_file():
            found.append((path, load_taxonomy(path)))
    if not found:
        return DEFAULT
    first, taxonomy = found[0]
    for path, other in found[1:]:
        if not other.same_as(taxonomy):
            raise WeightsError(f"{path}: its categories ({other.describe()}) are not those of {first} "
                               f"({taxonomy.describe()}): the weights of one pipeline must share their categories")
    return taxonomy


class AmodalSegmenter:
    """Steps 1-5 as one predictor (implements :class:`amodal3d.structures.Predictor`), set up by one
    :class:`PipelineOptions` (``options``; ``score_threshold``, ``crop_head``, ``mirrored_detections`` and
    ``keep_by`` are the detector's, applied when :meth:`from_pretrained` builds it).

    ``timings`` accumulates milliseconds per stage over calls (``detector``, ``rois``, ``shape``, ``fit``,
    ``refine``, ``paste``) with ``calls``; :meth:`stage_ms` averages them."""

    # end to end, the threshold on the mean of the detector's and steps 2-5's amodal probabilities
    detector_amodal_threshold = DETECTOR_AMODAL_THRESHOLD

    def __init__(self, detector, shape: ShapePrior, refine: RefineNet | None = None,
                 options: PipelineOptions | None = None, taxonomy: Taxonomy | None = None):
        options = options if options is not None else PipelineOptions()
        if not isinstance(options, PipelineOptions):
            raise TypeError(f"options must be PipelineOptions, not {type(options).__name__}")
        mode = options.mode
        if mode in REFINE_MODES and refine is None:
            raise WeightsError(f"mode {mode} needs refinement weights")
        self.options = options
        self.device = torch.device(options.device)
        self.detector = detector
        self.shape = shape.to(self.device).eval()
        self.refine = refine.to(self.device).eval() if refine is not None else None
        self.mode = mode
        self.occluder_constraint = options.occluder_constraint
        self.fit_steps = (options.fit_steps or 0) if mode != "a3d-no-prior" else 0
        # end to end, the step-1 detector's own amodal head (if it has one) is weighed against steps 2-5
        # (not in prior-only, which shows the prior alone)
        self.detector_amodal = options.detector_amodal and mode != "prior-only"
        self.name = mode if self.occluder_constraint or mode not in REFINE_MODES else f"{mode}-unconstrained"
        self.timings: dict[str, float] = defaultdict(float)
        # the categories of the labels it returns (label k = the k-th; ids and names for outputs)
        self.taxonomy = taxonomy or getattr(detector, "taxonomy", None) or DEFAULT

    @classmethod
    def from_pretrained(cls, path_or_name: str | Path = "cpu-small", options: PipelineOptions | None = None,
                        **changes) -> AmodalSegmenter:
        """Load the pipeline from a built-in name or a folder (``detector.safetensors`` + ``.json``,
        optional ``crop_head.*`` (used unless ``options.crop_head`` is False), ``shape.*``, ``refine.*``,
        ``refine_no_prior.*``); never unpickles. ``options`` (default :class:`PipelineOptions`) with any
        field given by keyword replaced (``from_pretrained("cpu-small", fit_steps=10)`` is
        ``from_pretrained("cpu-small", PipelineOptions(fit_steps=10))``). ``fit_steps=None`` becomes the
        steps the A3D refinement net was trained with (its config's ``prior_fit_steps``)."""
        from amodal3d.engine.distributed import resolve_device
        from amodal3d.models.detector import load_detector
        from amodal3d.models.detector_predict import DetectorPredictor

        options = (options if options is not None else PipelineOptions()).replace(**changes)
        mode = options.mode
        device = resolve_device(str(options.device))
        folder = resolve_pipeline_dir(path_or_name)
        detector_path = folder / f"{FILES['detector']}.safetensors"
        detector = None
        if detector_path.is_file():
            head = crop_head_beside(folder, device) if options.crop_head else None
            detector = DetectorPredictor(load_detector(detector_path, device=device), name="visible",
                                         score_threshold=options.score_threshold, crop_head=head,
                                         mirrored_detections=options.mirrored_detections, keep_by=options.keep_by)
        shape = load_shape_prior(folder / f"{FILES['shape']}.safetensors", device)
        refine = None
        if mode in REFINE_MODES:
            stem = FILES["refine"] if mode == "a3d" else FILES["refine-no-prior"]
            refine = load_refine(folder / f"{stem}.safetensors", device)
        fit_steps = options.fit_steps
        if fit_steps is None:  # the A3D refinement net's config says how its priors were fitted
            a3d_refine = folder / f"{FILES['refine']}.safetensors"
            if mode == "a3d":
                fit_steps = refine.config.prior_fit_steps
            else:
                fit_steps = load_refine(a3d_refine).config.prior_fit_steps if a3d_refine.is_file() else 0
        return cls(detector, shape, refine, options.replace(device=str(device), fit_steps=fit_steps),
                   taxonomy=pipeline_taxonomy(folder))

    def stage_ms(self) -> dict[str, float]:
        calls = max(self.timings.get("calls", 0), 1)
        return {k: round(v / calls, 2) for k, v in self.timings.items() if k != "calls"}

    def _tick(self, stage: str, start: float) -> float:
        if self.device.type == "cuda":  # kernels run asynchronously: charge each stage its own GPU time
            torch.cuda.synchronize(self.device)
        now = time.perf_counter()
        self.timings[stage] += (now - start) * 1000.0
        return now

    def check_image(self, image: np.ndarray, detect: bool = True) -> None:
        """ValueError unless ``image`` is a uint8 (H, W, 3) array with H, W >= 1; DataError when step 1
        must detect in it (``detect``) and its detector cannot resize it: torchvision's transform scales
        the long side to at most ``max_size`` pixels, so an image longer than ``max_size`` times its width
        (10000 x 10 for the 256-pixel cpu-small detector) would come out 0 pixels wide."""
        if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8 \
                or min(image.shape[:2]) < 1:
            shape = getattr(image, "shape", None)
            raise ValueError(f"expected a uint8 (H, W, 3) RGB image with H, W >= 1, got "
                             f"{getattr(image, 'dtype', type(image).__name__)} {shape}")
        transform = getattr(getattr(self.detector, "model", None), "transform", None)
        if detect and transform is not None:
            check_resizable(transform, *image.shape[:2])

    @torch.no_grad()
    def predict(self, image: np.ndarray, given: GivenVisible | None = None) -> Instances:
        """``image`` uint8 (H, W, 3) RGB; ``given``: visible masks to complete (steps 2-5 only; those of
        ``UNKNOWN_CATEGORY`` are named by step 1's crop head). Returns :class:`Instances` whose
        ``extras`` hold ``meshes`` (list of (verts (V, 3), faces (F, 3)) in the object frame),
        ``viewpoints`` (azimuth, elevation, distance per instance) and ``prior_masks`` (N, H, W) bool
        (with ``canvas_margin``, also ``amodal_canvas`` and ``canvas_offset``). Images step 1 cannot read
        are refused before the model (:meth:`check_image`)."""
        self.check_image(image, detect=given is None)
        start = time.perf_counter()
        height, width = image.shape[:2]
        if given is not None:
            n = len(given.labels)
            visible_np = np.asarray(given.visible_masks, bool).reshape(n, height, width)
            boxes = np.asarray(given.boxes, np.float32).reshape(n, 4)
            labels = np.asarray(given.labels, np.int64).reshape(n)
            if (labels == UNKNOWN_CATEGORY).any():  # step 1's crop head names them
                if self.detector is None:
                    raise WeightsError("given visible masks of unknown category: naming them takes step 1's "
                                       "crop head, and this pipeline has no detector weights")
                labels = self.detector.name_unknown(image, boxes, labels)
            detections = Instances(boxes, labels, np.ones(n, np.float32), visible_np, visible_np)
            known = self.shape.config.num_categories
            unknown = sorted({int(c) for c in detections.labels if not 1 <= c <= known})
            if unknown:
                raise DataError(f"given visible masks: category id(s) {unknown} unknown to this model "
                                f"(it knows 1..{known})")
        else:
            if self.detector is None:
                raise WeightsError("this pipeline has no detector weights: pass visible masks (given)")
            detections = self.detector.predict(image)
        start = self._tick("detector", start)
        self.timings["calls"] += 1
        n = len(detections.labels)
        margin = self.options.canvas_margin
        if n == 0:
            empty = Instances.empty(height, width)
            if margin:
                empty.extras.update(amodal_canvas=np.zeros((0, height + 2 * margin, width + 2 * margin), bool),
                                    canvas_offset=(margin, margin))
            return empty

        tensor = image_tensor(image, self.device)
        visible = torch.from_numpy(detections.visible_masks).to(self.device)
        labels = torch.from_numpy(detections.labels).to(self.device)
        cfg = self.shape.config
        roi, rois = roi_inputs(tensor, visible, cfg.roi_size, cfg.roi_enlarge)
        start = self._tick("rois", start)
        shape_out, _ = self.shape({"roi": roi, "labels": labels})
        start = self._tick("shape", start)
        if self.fit_steps:
            shape_out = with_fit(self.shape, shape_out, roi, self.fit_steps)
            start = self._tick("fit", start)
        if self.mode in REFINE_MODES:
            refined, _ = self.refine({"x": refine_inputs(roi, shape_out.prior)})
            roi_amodal = refined.amodal
            start = self._tick("refine", start)
        else:
            roi_amodal = shape_out.prior
        amodal = paste(roi_amodal, rois, height, width)
        probabilities = amodal.half().cpu().numpy()  # steps 2-5 before any threshold (the occlusion order reads it)
        weigh = given is None and self.detector_amodal
        detector_probs = detections.extras.get("amodal_probs") if weigh else None
        if detector_probs is not None:  # the detector's amodal head weighed against steps 2-5
            amodal = weigh_detector_amodal(amodal, torch.from_numpy(detector_probs).to(self.device).float(),
                                           self.detector_amodal_threshold)
        else:
            amodal = amodal > 0.5
        prior_masks = paste(shape_out.prior, rois, height, width) > 0.5
        if self.mode in REFINE_MODES and self.occluder_constraint:
            amodal = hidden_under_occluders(amodal, visible)
        elif self.mode != "prior-only":
            amodal = amodal | visible
        if given is None and self.detector_amodal and detector_probs is None:  # step 1's amodal masks only
            detector_masks = torch.from_numpy(detections.amodal_masks).to(self.device)  # (= visible without a head)
            if self.occluder_constraint:
                detector_masks = hidden_under_occluders(detector_masks, visible)
            amodal = amodal | detector_masks
        canvas_extras = {}
        if margin:  # continued past the border on the enlarged canvas; inside the frame, the masks above
            # step 5 learnt in-frame targets (it leaves the outside empty): out of frame the 3D prior continues it
            beyond = roi_amodal if self.mode == "a3d-no-prior" else torch.maximum(roi_amodal, shape_out.prior)
            canvas = paste(beyond, rois + margin, height + 2 * margin, width + 2 * margin) > 0.5
            canvas[:, margin:margin + height, margin:margin + width] = amodal
            canvas_extras = {"amodal_canvas": canvas.cpu().numpy(), "canvas_offset": (margin, margin)}
        self._tick("paste", start)
        cameras = shape_out.cameras
        viewpoints = [{"azimuth": float(a), "elevation": float(e), "distance": float(d)}
                      for a, e, d in zip(cameras.azimuth, cameras.elevation, cameras.distance)]
        faces = shape_out.faces.cpu().numpy()
        meshes = [(v.cpu().numpy(), faces) for v in shape_out.verts]
        return Instances(detections.boxes, detections.labels, detections.scores, detections.visible_masks,
                         amodal.cpu().numpy(),
                         extras={"meshes": meshes, "viewpoints": viewpoints, "prior_masks": prior_masks.cpu().numpy(),
                                 "amodal_boxes": mask_boxes(amodal).cpu().numpy(), "amodal_probs": probabilities,
                                 **canvas_extras})

    def predict_batch(self, images: list[np.ndarray]) -> list[Instances]:
        return [self.predict(image) for image in images]
