"""Step 1 of A3D and the Mask R-CNN baselines: a torchvision Mask R-CNN with selectable mask heads.

``heads``:

- ``"visible"``: the mask head learns visible masks (A3D step 1); boxes are visible boxes.
- ``"amodal"``: the mask head learns amodal masks ("Mask R-CNN amodal" baseline); boxes are amodal boxes.
- ``"both"``: ORCNN-style, a visible and an amodal mask head on the same ROI features; the invisible part
  is amodal - visible. Box targets are the amodal boxes by default (as ORCNN: the box must hold the whole
  object for the amodal mask to fit in it); ``box_targets: visible`` switches to visible boxes.

Presets (nothing is downloaded; every backbone starts from random weights, or from a checkpoint file the
user has, :mod:`amodal3d.models.pretrained`):

- ``"r50-fpn"``: ResNet-50-FPN, the paper's setting, for GPUs; GroupNorm everywhere (the known recipe for
  Mask R-CNN from scratch), 4conv1fc box head, images resized to 512 (the 256-pixel renders upsampled x2).
- ``"cpu-small"``: MobileNetV3-Large features (strides 8, 16, 32; the 960-channel last conv dropped) + a
  128-channel FPN + max-pool level, GroupNorm, images at 256, anchors 20-224 pixels, fewer proposals, a
  2fc box head of 256, 64 sampled ROIs per image (so at most 16 positives feed the mask head), a 4 x 64
  channel mask head and RoIAlign with one sample per bin: the mask branch and the RoIAlign backward
  dominated the CPU time. 5.34 M parameters (10.7 MB in fp16); heads=both 5.55 M (11.1 MB).
- ``"r50-fpn-torchvision"``: torchvision's own ``maskrcnn_resnet50_fpn`` architecture (FrozenBatchNorm2d
  in the ResNet-50, no normalisation in the FPN and heads, a 2fc box head of 1024, images resized to
  800-1333), so that its COCO checkpoint loads whole with ``--init-detector``
  (:mod:`amodal3d.models.pretrained`); from scratch its frozen statistics make it a poor choice.

Normalisation: GroupNorm (8 groups in MobileNet, 32 elsewhere). Measured on 2 CPU cores it is as fast as
(here faster than) BatchNorm, and it does not depend on the batch size (batch 1-4 per process, DDP without
SyncBatchNorm) nor on train/eval mode, so losses and detections agree in both modes.

Conventions: images are float (3, H, W) in [0, 1]; boxes xyxy in pixels of the input image; labels are
category ids (1-based, 0 = background); mask outputs are probabilities in [0, 1] at image resolution.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.detection import MaskRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.faster_rcnn import FastRCNNConvFCHead, FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.roi_heads import (
    maskrcnn_inference,
)
from torchvision.models.detection.rpn import RPNHead
from torchvision.models.detection.transform import resize_boxes
from torchvision.ops import MultiScaleRoIAlign
from torchvision.ops import boxes as box_ops

from amodal3d.categories import Taxonomy
from amodal3d.engine.config import ConfigError, FieldError, check_range, from_dict, to_dict
from amodal3d.engine.weights import load_state_strict, load_taxonomy, load_weights, save_weights
from amodal3d.errors import WeightsError
from amodal3d.models.detector_parts import (
    AmodalRoIHeads,
    AmodalTransform,
    DetectorOutput,
    build_backbone,
    head_norm,
    mask_branch,
    modules_mode,
    paste_results,
    select_targets,
)

Heads = Literal["visible", "amodal", "both"]
WEIGHTS_KIND = "detector"


# ----------------------------------------------------------------------------------------------- config
@dataclass(frozen=True)
class DetectorConfig:
    """Architecture of the detector. Fields left ``None`` take the preset's value (:func:`resolve_config`)."""

    preset: Literal["cpu-small", "r50-fpn", "r50-fpn-torchvision"] = "cpu-small"
    heads: Heads = "visible"
    backbone: Literal["mobilenet_v3_large", "mobilenet_v3_small", "resnet50"] | None = None
    num_classes: int = 14                 # background + 13 categories
    box_targets: Literal["amodal", "visible"] | None = None  # heads=both only; default amodal
    norm: Literal["group", "batch", "frozen_batch"] | None = None  # backbone, FPN and heads (frozen_batch:
                                                                   # backbone only, as torchvision's)
    fpn_channels: int | None = None
    min_size: int | None = None           # input resize (shorter side), see torchvision's transform
    max_size: int | None = None
    anchor_sizes: tuple[tuple[int, ...], ...] | None = None  # one tuple per FPN level (incl. 'pool')
    aspect_ratios: tuple[float, ...] | None = None           # height / width
    rpn_pre_nms_top_n_train: int | None = None
    rpn_post_nms_top_n_train: int | None = None
    rpn_pre_nms_top_n_test: int | None = None
    rpn_post_nms_top_n_test: int | None = None
    rpn_batch_size_per_image: int | None = None
    box_head: Literal["2fc", "4conv1fc"] | None = None
    box_representation_size: int | None = None
    box_batch_size_per_image: int | None = None
    mask_head_channels: int | None = None
    mask_head_layers: int | None = None
    roi_canonical_scale: int | None = None  # box size mapped to FPN level 4 (stride 16)
    roi_sampling_ratio: int | None = None   # RoIAlign samples per bin side
    box_score_thresh: float = 0.05
    box_nms_thresh: float = 0.5
    detections_per_image: int = 50

    def __post_init__(self) -> None:
        if self.num_classes < 2:
            raise ValueError(f"num_classes counts the background and must be >= 2, got {self.num_classes}")
        check_range(self, "num_classes", 2, 1000)
        for name in ("fpn_channels", "box_representation_size", "mask_head_channels"):
            check_range(self, name, 1, 4096)
        for name in ("min_size", "max_size", "roi_canonical_scale"):
            check_range(self, name, 16, 4096)
        for name in ("rpn_pre_nms_top_n_train", "rpn_post_nms_top_n_train", "rpn_pre_nms_top_n_test",
                     "rpn_post_nms_top_n_test", "rpn_batch_size_per_image", "box_batch_size_per_image"):
            check_range(self, name, 1, 10**5)
        check_range(self, "mask_head_layers", 1, 16)
        check_range(self, "roi_sampling_ratio", 0, 16)
        check_range(self, "aspect_ratios", 0, 100, low_open=True)
        for level, sizes in enumerate(self.anchor_sizes or ()):
            bad = [s for s in sizes if isinstance(s, bool) or not isinstance(s, int) or not 1 <= s <= 4096]
            if bad:
                raise FieldError(f"anchor_sizes[{level}]", f"anchor sizes must be whole numbers in [1, 4096], "
                                                           f"got {bad[0]!r}")
        check_range(self, "box_score_thresh", 0, 1)
        check_range(self, "box_nms_thresh", 0, 1)
        check_range(self, "detections_per_image", 1, 10**4)


PRESETS: dict[str, dict] = {
    "cpu-small": dict(
        backbone="mobilenet_v3_large", roi_sampling_ratio=1, norm="group", fpn_channels=128,
        min_size=256, max_size=256,
        anchor_sizes=((20, 28), (40, 56), (80, 112), (160, 224)), aspect_ratios=(0.5, 1.0, 2.0),
        rpn_pre_nms_top_n_train=600, rpn_post_nms_top_n_train=300,
        rpn_pre_nms_top_n_test=300, rpn_post_nms_top_n_test=150, rpn_batch_size_per_image=256,
        box_head="2fc", box_representation_size=256, box_batch_size_per_image=64,
        mask_head_channels=64, mask_head_layers=4, roi_canonical_scale=112),
    "r50-fpn": dict(
        backbone="resnet50", roi_sampling_ratio=2, norm="group", fpn_channels=256, min_size=512, max_size=512,
        anchor_sizes=((32,), (64,), (128,), (256,), (512,)), aspect_ratios=(0.5, 1.0, 2.0),
        rpn_pre_nms_top_n_train=2000, rpn_post_nms_top_n_train=2000,
        rpn_pre_nms_top_n_test=1000, rpn_post_nms_top_n_test=1000, rpn_batch_size_per_image=256,
        box_head="4conv1fc", box_representation_size=1024, box_batch_size_per_image=512,
        mask_head_channels=256, mask_head_layers=4, roi_canonical_scale=224),
}
# torchvision's maskrcnn_resnet50_fpn (v1) and its defaults: r50-fpn but for the norm, the resize and the box head
PRESETS["r50-fpn-torchvision"] = {**PRESETS["r50-fpn"], "norm": "frozen_batch", "min_size": 800, "max_size": 1333,
                                  "box_head": "2fc"}


def resolve_config(config: DetectorConfig) -> DetectorConfig:
    """``config`` with every ``None`` field replaced by its preset's value (idempotent)."""
    preset = PRESETS[config.preset]
    changes = {k: v for k, v in preset.items() if getattr(config, k) is None}
    if config.box_targets is None:
        changes["box_targets"] = "visible" if config.heads == "visible" else "amodal"
    config = replace(config, **changes)
    if config.heads == "visible" and config.box_targets != "visible":
        raise ConfigError("heads=visible needs box_targets=visible")
    if config.heads == "amodal" and config.box_targets != "amodal":
        raise ConfigError("heads=amodal needs box_targets=amodal")
    levels = 4 if config.backbone.startswith("mobilenet") else 5
    if len(config.anchor_sizes) != levels:
        raise ConfigError(f"preset {config.preset}: anchor_sizes needs one tuple per FPN level ({levels})")
    if len({len(s) for s in config.anchor_sizes}) != 1:
        raise ConfigError("anchor_sizes: every level needs the same number of sizes")
    return config


# ---------------------------------------------------------------------------------------------- detector
class AmodalDetector(nn.Module):
    """Mask R-CNN (torchvision parts) with visible / amodal / both mask heads.

    ``forward(images, targets=None, detect=None) -> (DetectorOutput, losses)``:

    - ``images``: list of float (3, H, W) tensors in [0, 1] (sizes may differ).
    - ``targets``: AmodalDataset targets (the heads pick visible or amodal boxes and masks). When given,
      ``losses`` holds ``loss_objectness``, ``loss_rpn_box_reg``, ``loss_classifier``, ``loss_box_reg``,
      ``loss_mask`` (+ ``loss_amodal_mask`` for heads=both); the RPN and ROI heads run in their training
      behaviour (proposal sampling) whatever ``self.training`` is. Backbone normalisation follows
      ``self.training`` (GroupNorm does not care).
    - ``detect``: whether to also run detection (default: only when ``targets`` is None); the detection
      pass always uses the inference behaviour of the heads. Without detection the output has empty tuples.
    """

    def __init__(self, config: DetectorConfig):
        super().__init__()
        config = resolve_config(config)
        self.config = config
        backbone = build_backbone(config)
        levels = [str(i) for i in range(len(config.anchor_sizes) - 1)]
        anchors = AnchorGenerator(config.anchor_sizes, (config.aspect_ratios,) * len(config.anchor_sizes))
        norm = head_norm(config.norm, 32)
        c = config.fpn_channels
        if config.box_head == "2fc":
            box_head: nn.Module = TwoMLPHead(c * 7 * 7, config.box_representation_size)
        else:
            box_head = FastRCNNConvFCHead((c, 7, 7), [c] * 4, [config.box_representation_size],
                                          norm_layer=norm)
        mask_head, mask_predictor = mask_branch(config)
        net = MaskRCNN(
            backbone, num_classes=None, min_size=config.min_size, max_size=config.max_size,
            rpn_anchor_generator=anchors, rpn_head=RPNHead(c, anchors.num_anchors_per_location()[0]),
            rpn_pre_nms_top_n_train=config.rpn_pre_nms_top_n_train,
            rpn_pre_nms_top_n_test=config.rpn_pre_nms_top_n_test,
            rpn_post_nms_top_n_train=config.rpn_post_nms_top_n_train,
            rpn_post_nms_top_n_test=config.rpn_post_nms_top_n_test,
            rpn_batch_size_per_image=config.rpn_batch_size_per_image,
            box_roi_pool=MultiScaleRoIAlign(levels, 7, config.roi_sampling_ratio,
                                            canonical_scale=config.roi_canonical_scale),
            box_head=box_head,
            box_predictor=FastRCNNPredictor(config.box_representation_size, config.num_classes),
            box_score_thresh=config.box_score_thresh, box_nms_thresh=config.box_nms_thresh,
            box_detections_per_img=config.detections_per_image,
            box_batch_size_per_image=config.box_batch_size_per_image,
            mask_roi_pool=MultiScaleRoIAlign(levels, 14, config.roi_sampling_ratio,
                                             canonical_scale=config.roi_canonical_scale),
            mask_head=mask_head, mask_predictor=mask_predictor)
        self.transform = AmodalTransform(config.min_size, config.max_size, net.transform.image_mean,
                                         net.transform.image_std)
        self.backbone = net.backbone
        self.rpn = net.rpn
        self.roi_heads = net.roi_heads
        if config.heads == "both":
            amodal_head, amodal_predictor = mask_branch(config)
            old = net.roi_heads
            self.roi_heads = AmodalRoIHeads(
                old.box_roi_pool, old.box_head, old.box_predictor,
                old.proposal_matcher.high_threshold, old.proposal_matcher.low_threshold,
                old.fg_bg_sampler.batch_size_per_image, old.fg_bg_sampler.positive_fraction,
                old.box_coder.weights, old.score_thresh, old.nms_thresh, old.detections_per_img,
                mask_roi_pool=old.mask_roi_pool, mask_head=old.mask_head, mask_predictor=old.mask_predictor,
                amodal_mask_head=amodal_head, amodal_mask_predictor=amodal_predictor)

    @property
    def heads(self) -> str:
        return self.config.heads

    def losses(self, image_list, features, targets: list[dict]) -> dict[str, torch.Tensor]:
        """RPN + ROI losses with the training behaviour of the heads (resized images and targets)."""
        with modules_mode([self.rpn, self.roi_heads], True):
            proposals, rpn_losses = self.rpn(image_list, features, targets)
            _, roi_losses = self.roi_heads(features, proposals, image_list.image_sizes, targets)
        return {**rpn_losses, **roi_losses}

    def detect(self, image_list, features, masks: bool = True) -> list[dict]:
        """ROI results (resized-image pixels) with the inference behaviour of the heads. ``masks=False``:
        boxes, labels and scores only, the mask heads do not run (:meth:`mask_probs` reads them later)."""
        with modules_mode([self.rpn, self.roi_heads], False):
            proposals, _ = self.rpn(image_list, features)
            if masks:
                results, _ = self.roi_heads(features, proposals, image_list.image_sizes)
                return results
            rh, sizes = self.roi_heads, image_list.image_sizes
            class_logits, regression = rh.box_predictor(rh.box_head(rh.box_roi_pool(features, proposals, sizes)))
            boxes, scores, labels = rh.postprocess_detections(class_logits, regression, proposals, sizes)
        return [{"boxes": b, "labels": lab, "scores": s} for b, lab, s in zip(boxes, labels, scores)]

    def mask_probs(self, kind: str, features, boxes: list[torch.Tensor], labels: list[torch.Tensor],
                   image_sizes: list[tuple[int, int]]) -> list[torch.Tensor]:
        """(N_i, 1, 28, 28) ``kind`` ("visible" or "amodal") mask probabilities of the given boxes
        (list of (N_i, 4) in resized-image pixels) for the given labels (list of (N_i,)), per image."""
        if kind not in self.mask_kinds:
            raise ValueError(f"a heads={self.heads} detector has no {kind} mask head")
        rh = self.roi_heads
        if sum(len(b) for b in boxes) == 0:
            return [b.new_zeros((0, 1, 28, 28)) for b in boxes]
        if kind == "amodal" and self.heads == "both":
            logits = rh.amodal_mask_logits(features, boxes, image_sizes)
        else:  # torchvision's mask head: visible masks, or amodal ones for heads=amodal
            logits = rh.mask_predictor(rh.mask_head(rh.mask_roi_pool(features, boxes, image_sizes)))
        return maskrcnn_inference(logits, labels)

    @property
    def mask_kinds(self) -> tuple[str, ...]:
        """The masks this detector predicts."""
        return {"visible": ("visible",), "amodal": ("amodal",), "both": ("visible", "amodal")}[self.heads]

    def forward(self, images: list[torch.Tensor], targets: list[dict] | None = None,
                detect: bool | None = None) -> tuple[DetectorOutput, dict[str, torch.Tensor]]:
        detect = targets is None if detect is None else detect
        original_sizes = [(int(im.shape[-2]), int(im.shape[-1])) for im in images]
        model_targets = None
        if targets is not None:
            model_targets = select_targets(targets, self.config.heads, self.config.box_targets)
        image_list, model_targets = self.transform(list(images), model_targets)
        features = self.backbone(image_list.tensors)
        losses = self.losses(image_list, features, model_targets) if model_targets is not None else {}
        if not detect:
            return DetectorOutput((), (), (), None, None), losses
        results = self.detect(image_list, features)
        return paste_results(results, image_list.image_sizes, original_sizes, self.config.heads), losses

    def predict_given(self, images: list[torch.Tensor], boxes: list[torch.Tensor], labels: list[torch.Tensor],
                      refine: bool | None = None) -> DetectorOutput:
        """Masks for given instances (the given-visible protocol), in the given order.

        ``boxes[i]`` (N_i, 4) float xyxy pixels of image i (e.g. ground-truth visible boxes), ``labels[i]``
        (N_i,) int64. With ``refine`` (default: when the boxes are trained as amodal boxes) the given boxes
        are fed as proposals to the box head, regressed with the given label's box deltas, and the union
        of the regressed and the given box is used, so an amodal mask may extend past the visible box;
        ``scores`` are then the box head's probability of the given label (else 1)."""
        refine = self.config.box_targets == "amodal" if refine is None else refine
        original_sizes = [(int(im.shape[-2]), int(im.shape[-1])) for im in images]
        image_list, _ = self.transform(list(images))
        sizes = image_list.image_sizes
        given = [resize_boxes(b.float(), o, s) for b, o, s in zip(boxes, original_sizes, sizes)]
        labels = [lab.long() for lab in labels]
        features = self.backbone(image_list.tensors)
        rh = self.roi_heads
        counts = [len(b) for b in given]
        if refine and sum(counts):
            x = rh.box_head(rh.box_roi_pool(features, given, sizes))
            class_logits, regression = rh.box_predictor(x)
            decoded = rh.box_coder.decode(regression, given)  # (sum N, num_classes, 4)
            flat_labels = torch.cat(labels)
            index = torch.arange(len(flat_labels), device=flat_labels.device)
            picked = decoded[index, flat_labels].split(counts)
            all_scores = F.softmax(class_logits, -1)[index, flat_labels].split(counts)
            refined = []
            for b, g, s in zip(picked, given, sizes):
                b = box_ops.clip_boxes_to_image(b, s)
                union = [torch.minimum(b[:, :2], g[:, :2]), torch.maximum(b[:, 2:], g[:, 2:])]
                refined.append(torch.cat(union, 1))
            given, scores = refined, list(all_scores)
        else:
            scores = [torch.ones(n, device=image_list.tensors.device) for n in counts]
        results = [{"boxes": b, "labels": lab, "scores": s} for b, lab, s in zip(given, labels, scores)]
        for kind in self.mask_kinds:  # paste_results' keys: "masks" for the torchvision head
            key = "amodal_masks" if kind == "amodal" and self.heads == "both" else "masks"
            for probs, r in zip(self.mask_probs(kind, features, given, labels, sizes), results):
                r[key] = probs
        return paste_results(results, sizes, original_sizes, self.config.heads)


def build_detector(config: DetectorConfig) -> AmodalDetector:
    """The detector of ``config`` with random weights (nothing is downloaded)."""
    return AmodalDetector(config)


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# ---------------------------------------------------------------------------------------------- weights
def save_detector(model: AmodalDetector, path: str | Path, dtype: torch.dtype | None = None,
                  extra: dict | None = None, taxonomy: Taxonomy | None = None) -> tuple[Path, Path]:
    """Export ``PATH.safetensors`` + ``PATH.json`` (the resolved DetectorConfig; ``extra`` and the
    ``taxonomy`` of its classes are stored beside it, outside the config)."""
    return save_weights(path, model.state_dict(), WEIGHTS_KIND, to_dict(model.config), dtype=dtype,
                        extra=extra, taxonomy=taxonomy)


def load_detector(path: str | Path, expected: DetectorConfig | None = None,
                  device: str | torch.device = "cpu") -> AmodalDetector:
    """Rebuild a detector from exported weights (``X.safetensors`` beside ``X.json``, or a run folder).

    Raises WeightsError for a non-safetensors file (never unpickles), a config that does not parse, a
    config different from ``expected`` (after resolving presets), or tensors that do not fit the model."""
    state, config_dict = load_weights(path, WEIGHTS_KIND)
    try:
        config = resolve_config(from_dict(DetectorConfig, config_dict, source=f"{path} (config)"))
    except ConfigError as error:
        raise WeightsError(str(error)) from None
    if expected is not None and resolve_config(expected) != config:
        theirs, ours = to_dict(config), to_dict(resolve_config(expected))
        diff = [k for k in ours if ours[k] != theirs.get(k)]
        raise WeightsError(f"{path}: weights were trained with another detector config "
                           f"(differs in {', '.join(diff)})")
    model = AmodalDetector(config)
    load_state_strict(model, state, path)
    model.taxonomy = load_taxonomy(path)  # its classes' categories (label k = the k-th)
    return model.to(device).eval()



__all__ = [
    "AmodalDetector", "DetectorConfig", "DetectorOutput", "PRESETS", "build_detector",
    "load_detector", "parameter_count", "resolve_config", "save_detector", "select_targets",
]
