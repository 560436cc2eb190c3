"""Step 1 of A3D and the Mask R-CNN baselines: a torchvision Mask R-CNN with selectable mask heads.

``heads``:

- ``"visible"``: the mask head learns visible masks (A3D step 1); boxes are visible boxes.
- ``"amodal"``: the mask head learns amodal masks ("Mask R-CNN amodal" baseline); boxes are amodal boxes.
- ``"both"``: ORCNN-style, a visible and an amodal mask head on the same ROI features; the invisible part
  is amodal - visible. Box targets are the amodal boxes by default (as ORCNN: the box must hold the whole
  object for the amodal mask to fit in it); ``box_targets: visible`` switches to visible boxes.

Presets (nothing is downloaded; every backbone starts from random weights):

- ``"r50-fpn"``: ResNet-50-FPN, the paper's setting, for GPUs; GroupNorm everywhere (the known recipe for
  Mask R-CNN from scratch), 4conv1fc box head, images resized to 512 (the 256-pixel renders upsampled x2).
- ``"cpu-small"``: MobileNetV3-Large features (strides 8, 16, 32; the 960-channel last conv dropped) + a
  128-channel FPN + max-pool level, GroupNorm, images at 256, anchors 20-224 pixels, fewer proposals, a
  2fc box head of 256, 64 sampled ROIs per image (so at most 16 positives feed the mask head), a 4 x 64
  channel mask head and RoIAlign with one sample per bin: the mask branch and the RoIAlign backward
  dominated the CPU time. 5.34 M parameters (10.7 MB in fp16); heads=both 5.55 M (11.1 MB).

Normalisation: GroupNorm (8 groups in MobileNet, 32 elsewhere). Measured on 2 CPU cores it is as fast as
(here faster than) BatchNorm, and it does not depend on the batch size (batch 1-4 per process, DDP without
SyncBatchNorm) nor on train/eval mode, so losses and detections agree in both modes.

Conventions: images are float (3, H, W) in [0, 1]; boxes xyxy in pixels of the input image; labels are
category ids (1-based, 0 = background); mask outputs are probabilities in [0, 1] at image resolution.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import mobilenet_v3_large, mobilenet_v3_small, resnet50
from torchvision.models.detection import MaskRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.models.detection.faster_rcnn import FastRCNNConvFCHead, FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.models.detection.roi_heads import (
    RoIHeads,
    maskrcnn_inference,
    maskrcnn_loss,
    paste_masks_in_image,
)
from torchvision.models.detection.rpn import RPNHead
from torchvision.models.detection.transform import GeneralizedRCNNTransform, resize_boxes
from torchvision.ops import MultiScaleRoIAlign
from torchvision.ops import boxes as box_ops
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

from amodal3d.engine.augment import AugmentConfig, flip_boxes
from amodal3d.engine.config import ConfigError, FieldError, from_dict, load_config, to_dict
from amodal3d.engine.trainer import TrainConfig
from amodal3d.engine.weights import init_from, load_state_strict, load_weights, save_weights
from amodal3d.errors import Amodal3dError, DataError, WeightsError
from amodal3d.evaluation.predictor import UNKNOWN_CATEGORY, GivenVisible, Instances
from amodal3d.models.crop_head import read_crops_averaged, second_look
from amodal3d.paths import check_split_name

# step 1b reads each crop also at this crop side / box side (its own: 1.3) and averages the readings
# (chosen on the validation split, README "Step 1")
CROP_HEAD_ENLARGEMENTS: tuple[float, ...] = (1.15,)
# with a crop head, step 1 also detects in the mirror image and adds those detections (chosen on the
# validation split, README "Step 1")
MIRRORED_DETECTIONS = True
# what a crop head's objects are kept by: their objectness (every object proposed) or their score
KEEP_BY = ("objectness", "score")

Heads = Literal["visible", "amodal", "both"]
WEIGHTS_KIND = "detector"


# ----------------------------------------------------------------------------------------------- config
@dataclass(frozen=True)
class DetectorConfig:
    """Architecture of the detector. Fields left ``None`` take the preset's value (:func:`resolve_config`)."""

    preset: Literal["cpu-small", "r50-fpn"] = "cpu-small"
    heads: Heads = "visible"
    backbone: Literal["mobilenet_v3_large", "mobilenet_v3_small", "resnet50"] | None = None
    num_classes: int = 14                 # background + 13 categories
    box_targets: Literal["amodal", "visible"] | None = None  # heads=both only; default amodal
    norm: Literal["group", "batch"] | None = None            # backbone, FPN and heads
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


# ---------------------------------------------------------------------------------------------- modules
def group_norm(channels: int, groups: int) -> nn.GroupNorm:
    """GroupNorm with ``gcd(channels, groups)`` groups (so any channel count works)."""
    return nn.GroupNorm(math.gcd(channels, groups), channels)


def norm_factory(kind: str, groups: int):
    """A ``norm_layer(channels)`` callable: GroupNorm or BatchNorm (momentum 0.1, trained statistics)."""
    if kind == "group":
        return partial(group_norm, groups=groups)
    return partial(nn.BatchNorm2d, eps=1e-3, momentum=0.1)


def build_backbone(config: DetectorConfig) -> BackboneWithFPN:
    """Backbone + FPN with random weights. Output maps ``'0'..'k'`` and ``'pool'``, ``fpn_channels`` each."""
    if config.backbone.startswith("mobilenet"):
        make = mobilenet_v3_large if config.backbone == "mobilenet_v3_large" else mobilenet_v3_small
        features = make(weights=None, norm_layer=norm_factory(config.norm, 8)).features
        # the last block of each stride (the block before a strided one, and the last block)
        ends = [i for i in range(len(features) - 1) if getattr(features[i + 1], "_is_cn", False)]
        chosen = ends[-2:] + [len(features) - 2]  # strides 8, 16, 32 (the 960-channel 1x1 conv is dropped)
        channels = []
        with torch.no_grad():
            x = torch.zeros(1, 3, 64, 64)
            for i, block in enumerate(features.eval()):
                x = block(x)
                if i in chosen:
                    channels.append(x.shape[1])
                if i == chosen[-1]:
                    break
        features.train()
        return_layers = {str(i): str(k) for k, i in enumerate(chosen)}
        fpn_norm = norm_factory(config.norm, 32)
        return BackboneWithFPN(features, return_layers, channels, config.fpn_channels,
                               extra_blocks=LastLevelMaxPool(), norm_layer=fpn_norm)
    body = resnet50(weights=None, norm_layer=norm_factory(config.norm, 32))
    return_layers = {f"layer{k + 1}": str(k) for k in range(4)}
    return BackboneWithFPN(body, return_layers, [256, 512, 1024, 2048], config.fpn_channels,
                           extra_blocks=LastLevelMaxPool(), norm_layer=norm_factory(config.norm, 32))


def _mask_branch(config: DetectorConfig) -> tuple[nn.Module, nn.Module]:
    head = MaskRCNNHeads(config.fpn_channels, [config.mask_head_channels] * config.mask_head_layers, 1,
                         norm_layer=norm_factory(config.norm, 32))
    predictor = MaskRCNNPredictor(config.mask_head_channels, config.mask_head_channels, config.num_classes)
    return head, predictor


class AmodalRoIHeads(RoIHeads):
    """torchvision's RoIHeads plus a second (amodal) mask head on the same pooled ROI features.

    Training: the amodal head sees the same positive proposals, matched to the same ground truth, as the
    visible head, and ``loss_amodal_mask`` is the Mask R-CNN mask loss against ``targets[i]["amodal_masks"]``.
    Inference: each result also gets ``"amodal_masks"`` (N, 1, 28, 28) probabilities of its label.
    """

    def __init__(self, *args, amodal_mask_head: nn.Module, amodal_mask_predictor: nn.Module, **kwargs):
        super().__init__(*args, **kwargs)
        self.amodal_mask_head = amodal_mask_head
        self.amodal_mask_predictor = amodal_mask_predictor
        self._sampled: tuple | None = None

    def select_training_samples(self, proposals, targets):
        out = super().select_training_samples(proposals, targets)
        self._sampled = out  # (proposals, matched_idxs, labels, regression_targets) for the amodal loss
        return out

    def amodal_mask_logits(self, features, boxes, image_shapes) -> torch.Tensor:
        """(sum N, num_classes, 28, 28) logits of the amodal head for ``boxes`` (list of (N_i, 4))."""
        pooled = self.mask_roi_pool(features, boxes, image_shapes)
        return self.amodal_mask_predictor(self.amodal_mask_head(pooled))

    def forward(self, features, proposals, image_shapes, targets=None):
        self._sampled = None
        result, losses = super().forward(features, proposals, image_shapes, targets)
        if self.training:
            sampled, self._sampled = self._sampled, None
            assert sampled is not None and targets is not None
            props, matched, labels, _ = sampled
            positives = [torch.where(lab > 0)[0] for lab in labels]
            mask_props = [p[pos] for p, pos in zip(props, positives)]
            pos_matched = [m[pos] for m, pos in zip(matched, positives)]
            logits = self.amodal_mask_logits(features, mask_props, image_shapes)
            gt_masks = [t["amodal_masks"] for t in targets]
            gt_labels = [t["labels"] for t in targets]
            losses["loss_amodal_mask"] = maskrcnn_loss(logits, mask_props, gt_masks, gt_labels, pos_matched)
        else:
            logits = self.amodal_mask_logits(features, [r["boxes"] for r in result], image_shapes)
            for probs, r in zip(maskrcnn_inference(logits, [r["labels"] for r in result]), result):
                r["amodal_masks"] = probs
        return result, losses


class AmodalTransform(GeneralizedRCNNTransform):
    """torchvision's transform that also resizes ``target["amodal_masks"]`` exactly like ``"masks"``, and
    draws no random number for a single ``min_size`` (so train and eval mode consume the same RNG)."""

    def torch_choice(self, k: list[int]) -> int:
        return k[0] if len(k) == 1 else super().torch_choice(k)

    def resize(self, image, target=None):
        if target is None or "amodal_masks" not in target:
            return super().resize(image, target)
        n = len(target["masks"])
        target = dict(target)
        target["masks"] = torch.cat([target["masks"], target.pop("amodal_masks")])
        image, target = super().resize(image, target)
        target["amodal_masks"] = target["masks"][n:]
        target["masks"] = target["masks"][:n]
        return image, target


# ---------------------------------------------------------------------------------------------- outputs
@dataclass(frozen=True)
class DetectorOutput:
    """Detections of a batch, one entry per image (empty tuples when detection was not asked for).

    ``boxes[i]`` (N_i, 4) float32 xyxy pixels of input image i; ``labels[i]`` (N_i,) int64 category ids;
    ``scores[i]`` (N_i,) float32 in [0, 1], high to low; ``visible_masks[i]`` / ``amodal_masks[i]``
    (N_i, H_i, W_i) float32 mask probabilities at the input resolution, ``None`` when the model has no such
    head (heads=amodal has no visible head, heads=visible no amodal head)."""

    boxes: tuple[torch.Tensor, ...]
    labels: tuple[torch.Tensor, ...]
    scores: tuple[torch.Tensor, ...]
    visible_masks: tuple[torch.Tensor, ...] | None
    amodal_masks: tuple[torch.Tensor, ...] | None

    def __len__(self) -> int:
        return len(self.boxes)


def select_targets(targets: list[dict], heads: str, box_targets: str,
                   min_box_size: float = 1.0) -> list[dict]:
    """AmodalDataset targets -> torchvision targets for ``heads``: ``boxes`` (visible or amodal per
    ``box_targets``), ``labels``, ``masks`` (visible masks, amodal for heads=amodal) and, for heads=both,
    ``amodal_masks``. Crowd instances and instances whose box is thinner than ``min_box_size`` pixels are
    dropped (torchvision refuses degenerate boxes)."""
    out = []
    for t in targets:
        boxes = t[f"{box_targets}_boxes"].float()
        keep = ((boxes[:, 2] - boxes[:, 0]) >= min_box_size) & ((boxes[:, 3] - boxes[:, 1]) >= min_box_size)
        if "iscrowd" in t:
            keep &= t["iscrowd"].to(keep.device) == 0
        masks = t["amodal_masks"] if heads == "amodal" else t["visible_masks"]
        item = {"boxes": boxes[keep], "labels": t["labels"][keep].long(),
                "masks": masks[keep].to(torch.uint8)}
        if heads == "both":
            item["amodal_masks"] = t["amodal_masks"][keep].to(torch.uint8)
        out.append(item)
    return out


def paste_results(results: list[dict], image_sizes: list[tuple[int, int]],
                  original_sizes: list[tuple[int, int]], heads: str) -> DetectorOutput:
    """Per-image ROI results (boxes in resized-image pixels, 28x28 mask probabilities) -> DetectorOutput
    at the original image sizes."""
    boxes, labels, scores, visible, amodal = [], [], [], [], []
    for r, size, original in zip(results, image_sizes, original_sizes):
        b = resize_boxes(r["boxes"], size, original)
        boxes.append(b)
        labels.append(r["labels"])
        scores.append(r["scores"])
        pasted = {k: paste_masks_in_image(r[k], b, original)[:, 0]
                  for k in ("masks", "amodal_masks") if k in r}
        if heads == "amodal":
            amodal.append(pasted["masks"])
        else:
            visible.append(pasted["masks"])
            if heads == "both":
                amodal.append(pasted["amodal_masks"])
    return DetectorOutput(tuple(boxes), tuple(labels), tuple(scores),
                          tuple(visible) if heads != "amodal" else None,
                          tuple(amodal) if heads != "visible" else None)


@contextlib.contextmanager
def _modules_mode(modules: list[nn.Module], training: bool):
    """Temporarily set the train/eval mode of ``modules`` (restored afterwards)."""
    before = [[m.training for m in module.modules()] for module in modules]
    for module in modules:
        module.train(training)
    try:
        yield
    finally:
        for module, flags in zip(modules, before):
            for m, flag in zip(module.modules(), flags):
                m.training = flag


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
        norm = norm_factory(config.norm, 32)
        c = config.fpn_channels
        if config.box_head == "2fc":
            box_head: nn.Module = TwoMLPHead(c * 7 * 7, config.box_representation_size)
        else:
            box_head = FastRCNNConvFCHead((c, 7, 7), [c] * 4, [config.box_representation_size],
                                          norm_layer=norm)
        mask_head, mask_predictor = _mask_branch(config)
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
            amodal_head, amodal_predictor = _mask_branch(config)
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
        with _modules_mode([self.rpn, self.roi_heads], True):
            proposals, rpn_losses = self.rpn(image_list, features, targets)
            _, roi_losses = self.roi_heads(features, proposals, image_list.image_sizes, targets)
        return {**rpn_losses, **roi_losses}

    def detect(self, image_list, features, masks: bool = True) -> list[dict]:
        """ROI results (resized-image pixels) with the inference behaviour of the heads. ``masks=False``:
        boxes, labels and scores only, the mask heads do not run (:meth:`mask_probs` reads them later)."""
        with _modules_mode([self.rpn, self.roi_heads], False):
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


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# ---------------------------------------------------------------------------------------------- weights
def save_detector(model: AmodalDetector, path: str | Path, dtype: torch.dtype | None = None,
                  extra: dict | None = None) -> tuple[Path, Path]:
    """Export ``PATH.safetensors`` + ``PATH.json`` (the resolved DetectorConfig; ``extra`` such as the
    category names is stored beside it, outside the config)."""
    return save_weights(path, model.state_dict(), WEIGHTS_KIND, to_dict(model.config), dtype=dtype,
                        extra=extra)


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
    return model.to(device).eval()


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
    """The :class:`~amodal3d.evaluation.predictor.Predictor` of a detector.

    - heads=visible (``"visible"``; A3D step 1, and the visible-as-amodal baseline): amodal = visible.
      Given-visible: returns the given visible masks as both visible and amodal masks (no model call).
    - heads=amodal (``"maskrcnn-amodal"``): this model predicts no visible mask, so its amodal mask is
      also reported as its visible mask (the harness matches predictions to ground truth by visible-mask
      IoU, which then uses the amodal mask). Given-visible: the given visible boxes are the proposals,
      regressed by the box head (see :meth:`AmodalDetector.predict_given`); amodal masks of exactly those
      instances; visible masks = the given ones.
    - heads=both (``"orcnn"``): visible and amodal masks from the two heads (raw, no union). Given-visible
      as for heads=amodal, with the amodal head.

    With a ``crop_head`` (:mod:`amodal3d.models.crop_head`, step 1b) the detections are grouped into
    objects, each re-labelled and given the head's visible mask (amodal masks stay the detector's); an
    object is kept when its objectness reaches ``score_threshold`` and scored objectness x p(label) x
    mask quality (its objectness is in ``extras["objectness"]``); with ``keep_by="score"`` it is kept
    when that score reaches ``score_threshold`` instead (what ``amodal3d predict`` does: the
    evaluation keeps every object step 1 proposes, a user the likely ones). ``crop_head_flip``: the
    head reads each crop as it is and mirrored and averages the two (``second_look(flip=True)``);
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

    def _image_tensor(self, image: np.ndarray) -> torch.Tensor:
        if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"{self.name}: expected a uint8 (H, W, 3) RGB image, got {image.dtype} "
                             f"{image.shape}")
        tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)
        return tensor.float().div(255.0).to(self.device)

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
        else:  # step 1b: one entry per object, re-labelled and re-segmented
            look = second_look(self.crop_head, tensor, out.boxes[0], out.scores[0],
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


# ---------------------------------------------------------------------------------------------- training
@dataclass(frozen=True)
class DetectorExperiment:
    """Everything one detector training run needs (the YAML file's structure)."""

    model: DetectorConfig = field(default_factory=DetectorConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    split: str = "train"           # dataset split to train on
    export_dtype: str = "float32"  # dtype of the exported floating weights: float32 or float16

    def __post_init__(self) -> None:
        if self.export_dtype not in ("float32", "float16"):
            raise FieldError("export_dtype", f"must be float32 or float16, got {self.export_dtype!r}")
        try:
            check_split_name(self.split, "split")
        except Amodal3dError as error:
            raise FieldError("split", str(error).removeprefix("split: ")) from None


def load_experiment(path: str | Path) -> DetectorExperiment:
    """Read a detector experiment YAML (strict: unknown keys are errors naming the file and key)."""
    return load_config(path, DetectorExperiment)


def train_detector(experiment: DetectorExperiment, data: str | Path, out: str | Path, device: str = "auto",
                   progress: bool = True, stop_after: int | None = None,
                   init: str | Path | None = None) -> Path | None:
    """Train (or resume) a detector on ``data`` into ``out``; returns ``out/model.safetensors`` when the run
    is complete (on every rank), None when stopped early by ``stop_after`` (tests: simulated kill).
    ``init``: start from trained detector weights of the same architecture (fine-tuning with a fresh
    schedule); a checkpoint in ``out`` still takes precedence (resume).

    Under torchrun the process group is joined here (gloo on CPU, NCCL on CUDA) and left by the caller
    (:func:`amodal3d.engine.distributed.cleanup_distributed`)."""
    from amodal3d.data.dataset import AmodalDataset, collate
    from amodal3d.engine.augment import AugmentedDataset
    from amodal3d.engine.checkpoint import seed_everything
    from amodal3d.engine.distributed import barrier, init_distributed
    from amodal3d.engine.trainer import Trainer, check_training_split

    dataset = check_training_split(data, experiment.split, dataset=AmodalDataset(data, experiment.split))
    info = init_distributed(device)
    max_id = max((int(c["id"]) for c in dataset.categories), default=0)
    if max_id >= experiment.model.num_classes:
        raise DataError(f"{dataset.annotation_file}: category id {max_id} needs model.num_classes >= "
                        f"{max_id + 1} (config has {experiment.model.num_classes})")
    seed_everything(experiment.train.seed)
    model = build_detector(experiment.model)
    if init is not None:
        init_from(model, init, WEIGHTS_KIND)
    train_set = AugmentedDataset(dataset, experiment.augment, seed=experiment.train.seed)
    run_config = {**to_dict(dataclasses.replace(experiment, model=model.config)),
                  "init": None if init is None else str(init)}
    trainer = Trainer(model, train_set, experiment.train, out, dist_info=info, collate_fn=collate,
                      run_config=run_config, progress=progress, desc=f"detector {model.config.heads}")
    result = trainer.fit(stop_after=stop_after)
    if not result.finished:
        return None
    path = Path(out) / "model.safetensors"
    if info.is_main:
        dtype = torch.float16 if experiment.export_dtype == "float16" else None
        categories = [{"id": int(c["id"]), "name": c.get("name", str(c["id"]))} for c in dataset.categories]
        save_detector(result.model, path, dtype=dtype, extra={"categories": categories,
                                                              "iterations": result.iteration})
    barrier(info)
    return path


__all__ = [
    "AmodalDetector", "AmodalRoIHeads", "DetectorConfig", "DetectorExperiment", "DetectorOutput",
    "DetectorPredictor", "PRESETS", "build_detector", "load_detector", "load_experiment", "parameter_count",
    "resolve_config", "save_detector", "select_targets", "train_detector",
]
