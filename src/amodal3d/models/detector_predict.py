"""Step 1 at inference: detections of one image (:func:`detect_boxes`, masks on demand; :func:`detect`)
and :class:`DetectorPredictor`, the detector (with its crop head) as a
:class:`~amodal3d.structures.Predictor`."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import torch
from torchvision.models.detection.roi_heads import (
    paste_masks_in_image,
)
from torchvision.models.detection.transform import GeneralizedRCNNTransform, resize_boxes

from amodal3d.categories import DEFAULT
from amodal3d.engine.augment import flip_boxes
from amodal3d.errors import DataError, WeightsError
from amodal3d.models.crop_head import apply_crop_head, read_crops_averaged
from amodal3d.models.detector import AmodalDetector
from amodal3d.models.detector_parts import DetectorOutput
from amodal3d.roi import image_tensor
from amodal3d.structures import UNKNOWN_CATEGORY, GivenVisible, Instances

# the crop head reads each crop also at this crop side / box side (its own: 1.3) and averages the readings
# (chosen on the validation split: docs/results.md, "Step 1: where the detector loses objects")
CROP_HEAD_ENLARGEMENTS: tuple[float, ...] = (1.15,)
# with a crop head, step 1 also detects in the mirror image and adds those detections (chosen on the
# validation split: docs/results.md, "Step 1: where the detector loses objects")
MIRRORED_DETECTIONS = True
# what a crop head's objects are kept by: their objectness (every object proposed) or their score
KEEP_BY = ("objectness", "score")


@dataclass(frozen=True)
class PendingDetections:
    """Detections of one image whose masks the mask heads read on demand (:func:`detect_boxes`), so that
    step 1 with a crop head runs them only on the objects it keeps.

    ``output``: a DetectorOutput of one entry without masks; ``view`` (N,) 0 for a detection of the image,
    1 for one of its mirror image; ``view_boxes`` (N, 4) its box in that view's resized-image pixels."""

    output: DetectorOutput
    view: torch.Tensor
    view_boxes: torch.Tensor
    model: AmodalDetector
    features: dict
    image_sizes: list[tuple[int, int]]   # resized size of each view
    original_size: tuple[int, int]       # (H, W)

    @torch.no_grad()
    def masks(self, kind: str, index: torch.Tensor | None = None) -> torch.Tensor:
        """(len(index), H, W) ``kind`` mask probabilities of the detections ``index`` (default: all) at
        the image's resolution, each of its label."""
        index = torch.arange(len(self.view), device=self.view.device) if index is None else index
        views = range(len(self.image_sizes))
        chosen = [index[self.view[index] == v] for v in views]
        probs = self.model.mask_probs(kind, self.features, [self.view_boxes[i] for i in chosen],
                                      [self.output.labels[0][i] for i in chosen], self.image_sizes)
        out = self.view_boxes.new_zeros((len(index), *self.original_size))
        for v, (i, p) in enumerate(zip(chosen, probs)):
            if len(i):
                boxes = resize_boxes(self.view_boxes[i], self.image_sizes[v], self.original_size)
                pasted = paste_masks_in_image(p, boxes, self.original_size)[:, 0]
                out[self.view[index] == v] = pasted.flip(-1) if v == 1 else pasted
        return out


@torch.no_grad()
def detect_boxes(model: AmodalDetector, image: torch.Tensor, mirrored: bool = False) -> PendingDetections:
    """Boxes, labels and scores of one image (3, H, W) in [0, 1], masks on demand. ``mirrored``: the
    image and its mirror image are detected together and the mirror image's detections, mapped back,
    are added with their scores; a crop head's objectness (the summed scores of a group, capped at 1,
    :func:`~amodal3d.models.crop_head.group_detections`) then counts an object that both views see
    twice."""
    height, width = int(image.shape[-2]), int(image.shape[-1])
    image_list, _ = model.transform([image, image.flip(-1)] if mirrored else [image])
    features = model.backbone(image_list.tensors)
    results = model.detect(image_list, features, masks=False)
    sizes = image_list.image_sizes
    boxes = [resize_boxes(r["boxes"], size, (height, width)) for r, size in zip(results, sizes)]
    if mirrored:
        boxes[1] = flip_boxes(boxes[1], width)
    scores = torch.cat([r["scores"] for r in results])
    order = torch.argsort(scores, descending=True, stable=True)  # high to low, as DetectorOutput's are
    view = torch.cat([torch.full((len(r["boxes"]),), v, dtype=torch.long) for v, r in enumerate(results)])
    output = DetectorOutput((torch.cat(boxes)[order],), (torch.cat([r["labels"] for r in results])[order],),
                            (scores[order],), None, None)
    return PendingDetections(output, view[order].to(scores.device),
                             torch.cat([r["boxes"] for r in results])[order], model, features, sizes,
                             (height, width))


@torch.no_grad()
def detect(model: AmodalDetector, image: torch.Tensor, mirrored: bool = False) -> DetectorOutput:
    """Detections of one image (3, H, W) in [0, 1] with every mask (:func:`detect_boxes`), a
    DetectorOutput of one entry."""
    pending = detect_boxes(model, image, mirrored)
    out = pending.output
    masks = {kind: (pending.masks(kind),) for kind in model.mask_kinds}
    return replace(out, visible_masks=masks.get("visible"), amodal_masks=masks.get("amodal"))


# ---------------------------------------------------------------------------------------------- predictor
def check_resizable(transform: GeneralizedRCNNTransform, height: int, width: int) -> None:
    """DataError unless ``transform`` can resize a ``height`` x ``width`` image: torchvision scales the long
    side to at most ``max_size`` pixels, so an image longer than ``max_size`` times its width (10000 x 10
    for the 256-pixel cpu-small detector) would come out 0 pixels wide."""
    short, long = sorted((int(height), int(width)))
    if short < 1:
        raise DataError(f"{width}x{height} image is empty")
    # torchvision's _resize_image_and_masks, in its float32 arithmetic
    scale = torch.minimum(float(transform.min_size[-1]) / torch.tensor(float(short)),
                          float(transform.max_size) / torch.tensor(float(long))).item()
    if math.floor(short * scale) < 1:
        raise DataError(f"{width}x{height} image is too elongated for step 1: its detector scales the long "
                        f"side to {transform.max_size} pixels, which leaves the short side under one pixel "
                        f"(aspect ratio at most {transform.max_size}:1); crop or pad it")


class DetectorPredictor:
    """The :class:`~amodal3d.structures.Predictor` of a detector.

    - heads=visible (``"visible"``; A3D step 1, and the visible-as-amodal baseline): amodal = visible.
      Given-visible: returns the given visible masks as both visible and amodal masks (no model call).
    - heads=amodal (``"maskrcnn-amodal"``): this model predicts no visible mask, so its amodal mask is
      also reported as its visible mask (the harness matches predictions to ground truth by visible-mask
      IoU, which then uses the amodal mask). Given-visible: the given visible boxes are the proposals,
      regressed by the box head (see :meth:`AmodalDetector.predict_given`); amodal masks of exactly those
      instances; visible masks = the given ones.
    - heads=both (``"orcnn"``): visible and amodal masks from the two heads (raw, no union). Given-visible
      as for heads=amodal, with the amodal head.

    With a ``crop_head`` (:mod:`amodal3d.models.crop_head`) the detections are grouped into
    objects, each re-labelled and given the head's visible mask (amodal masks stay the detector's); an
    object is kept when its objectness reaches ``score_threshold`` and scored objectness x p(label) x
    mask quality (its objectness is in ``extras["objectness"]``); with ``keep_by="score"`` it is kept
    when that score reaches ``score_threshold`` instead (what ``amodal3d predict`` does: the
    evaluation keeps every object step 1 proposes, a user the likely ones). ``crop_head_flip``: the
    head reads each crop as it is and mirrored and averages the two (``apply_crop_head(flip=True)``);
    ``crop_head_enlargements``: it also reads each crop at these crop sides / box side (default
    ``CROP_HEAD_ENLARGEMENTS``: 1.15, beside the head's own 1.3) and averages all readings;
    ``mirrored_detections`` (default ``MIRRORED_DETECTIONS``): the detections of the mirror image are
    added (:func:`detect_boxes`; a second detector pass, 8.1 -> 5.6 images/s end to end on 2 CPU
    threads). The detector's mask heads then run on the objects kept only (its visible head not at
    all), which returns the same masks as reading every detection's (``benchmarks/bench_step1.py``).
    Otherwise detections are kept by score. Masks are thresholded with ``mask_threshold``
    (probability > t); with an amodal head, the amodal-mask probabilities of the instances returned are
    also in ``extras["amodal_probs"]`` ((N, H, W) float16), for steps 2-5 to weigh against their own.
    """

    def __init__(self, model: AmodalDetector, name: str | None = None, score_threshold: float = 0.5,
                 mask_threshold: float = 0.5, device: str | torch.device | None = None, crop_head=None,
                 crop_head_flip: bool = True, crop_head_enlargements: tuple[float, ...] = CROP_HEAD_ENLARGEMENTS,
                 mirrored_detections: bool = MIRRORED_DETECTIONS, keep_by: str = "objectness"):
        if keep_by not in KEEP_BY:
            raise ValueError(f"keep_by must be one of {', '.join(KEEP_BY)}, not {keep_by!r}")
        self.keep_by = keep_by
        self.model = model.eval()
        if device is not None:
            self.model.to(device)
        self.device = next(model.parameters()).device
        self.crop_head = crop_head.to(self.device).eval() if crop_head is not None else None
        self.crop_head_flip = crop_head_flip
        self.crop_head_enlargements = tuple(crop_head_enlargements)
        self.mirrored_detections = mirrored_detections and crop_head is not None
        self.name = name or {"visible": "visible", "amodal": "maskrcnn-amodal", "both": "orcnn"}[model.heads]
        self.score_threshold = score_threshold
        self.mask_threshold = mask_threshold
        self.taxonomy = getattr(model, "taxonomy", DEFAULT)  # its labels' categories (load_detector sets it)

    def _image_tensor(self, image: np.ndarray) -> torch.Tensor:
        if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"{self.name}: expected a uint8 (H, W, 3) RGB image, got {image.dtype} "
                             f"{image.shape}")
        return image_tensor(image, self.device)

    @torch.no_grad()
    def name_unknown(self, image: np.ndarray, boxes: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """``labels`` (N,) with each :data:`UNKNOWN_CATEGORY` replaced by the category step 1's crop head
        reads in that box (N, 4) xyxy, read as step 1 reads its detections (mirrored, enlargements)."""
        labels = np.asarray(labels, np.int64).copy()
        unknown = np.flatnonzero(labels == UNKNOWN_CATEGORY)
        if len(unknown) == 0:
            return labels
        if self.crop_head is None:
            raise WeightsError("given visible masks of unknown category: naming them takes step 1's crop head, "
                               "and these weights have none (give the categories of this model instead)")
        box_tensor = torch.as_tensor(np.asarray(boxes, np.float32)[unknown], device=self.device)
        probs, _ = read_crops_averaged(self.crop_head, self._image_tensor(image), box_tensor,
                                       flip=self.crop_head_flip, enlargements=self.crop_head_enlargements)
        labels[unknown] = probs.argmax(1).cpu().numpy() + 1
        return labels

    def _kept(self, kept_by: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        """Indices of the entries whose ``kept_by`` reaches the threshold, by ``scores`` high to low."""
        keep = torch.where(kept_by >= self.score_threshold)[0]
        return keep[torch.argsort(scores[keep], descending=True, stable=True)]

    @torch.no_grad()
    def predict(self, image: np.ndarray, given: GivenVisible | None = None) -> Instances:
        height, width = image.shape[:2]
        heads = self.model.heads
        if given is not None:
            n = len(given.labels)
            visible = np.asarray(given.visible_masks, bool).reshape(n, height, width)
            boxes = np.asarray(given.boxes, np.float32).reshape(n, 4)
            labels = self.name_unknown(image, boxes, np.asarray(given.labels, np.int64).reshape(n))
            if heads == "visible" or n == 0:
                return Instances(boxes, labels, np.ones(n, np.float32), visible, visible.copy())
            check_resizable(self.model.transform, height, width)
            out = self.model.predict_given([self._image_tensor(image)],
                                           [torch.from_numpy(boxes).to(self.device)],
                                           [torch.from_numpy(labels).to(self.device)])
            amodal = (out.amodal_masks[0] > self.mask_threshold).cpu().numpy()
            return Instances(boxes, labels, out.scores[0].float().cpu().numpy(), visible, amodal,
                             extras={"amodal_boxes": out.boxes[0].cpu().numpy()})
        tensor = self._image_tensor(image)
        check_resizable(self.model.transform, height, width)
        pending = detect_boxes(self.model, tensor, self.mirrored_detections)  # (see class doc)
        out = pending.output
        if self.crop_head is None:
            boxes, labels, scores = out.boxes[0], out.labels[0], out.scores[0]
            keep = detections = self._kept(scores, scores)
            probs, extras = {}, {}
        else:  # the crop head: one entry per object, re-labelled and re-segmented
            look = apply_crop_head(self.crop_head, tensor, out.boxes[0], out.scores[0],
                               min_objectness=self.score_threshold, flip=self.crop_head_flip,
                               enlargements=self.crop_head_enlargements)
            boxes, labels, scores = look.boxes, look.labels, look.scores
            keep = self._kept(look.scores if self.keep_by == "score" else look.objectness, scores)
            detections = look.leaders[keep]
            probs = {"visible": look.visible[keep]}
            extras = {"objectness": look.objectness[keep].float().cpu().numpy()}
        for kind in self.model.mask_kinds:  # the mask heads read the objects kept only
            if kind not in probs:
                probs[kind] = pending.masks(kind, detections)
        if "amodal" in probs:
            extras["amodal_probs"] = probs["amodal"].half().cpu().numpy()
        masks = {k: (v > self.mask_threshold).cpu().numpy() for k, v in probs.items()}
        visible = masks.get("visible", masks.get("amodal"))
        amodal = masks.get("amodal", visible)
        return Instances(boxes[keep].float().cpu().numpy(), labels[keep].cpu().numpy().astype(np.int64),
                         scores[keep].float().cpu().numpy(), visible, amodal.copy() if amodal is visible else amodal,
                         extras=extras)


