"""The detector's building blocks: backbones (with their normalisation), the mask heads of every
``heads`` setting, the image transform, and its outputs (:class:`DetectorOutput`, the targets each head
learns and pasting masks back); :mod:`amodal3d.models.detector` assembles them."""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

import torch
from torch import nn
from torchvision.models import mobilenet_v3_large, mobilenet_v3_small, resnet50
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.models.detection.roi_heads import (
    RoIHeads,
    maskrcnn_inference,
    maskrcnn_loss,
    paste_masks_in_image,
)
from torchvision.models.detection.transform import GeneralizedRCNNTransform, resize_boxes
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool
from torchvision.ops.misc import FrozenBatchNorm2d

if TYPE_CHECKING:
    from amodal3d.models.detector import DetectorConfig


# ---------------------------------------------------------------------------------------------- modules
def group_norm(channels: int, groups: int) -> nn.GroupNorm:
    """GroupNorm with ``gcd(channels, groups)`` groups (so any channel count works)."""
    return nn.GroupNorm(math.gcd(channels, groups), channels)


def norm_factory(kind: str, groups: int):
    """A ``norm_layer(channels)`` callable: GroupNorm, BatchNorm (momentum 0.1, trained statistics) or,
    for ``frozen_batch``, FrozenBatchNorm2d (fixed statistics and affine, torchvision's detection backbones)."""
    if kind == "group":
        return partial(group_norm, groups=groups)
    if kind == "frozen_batch":
        return FrozenBatchNorm2d
    return partial(nn.BatchNorm2d, eps=1e-3, momentum=0.1)


def head_norm(kind: str, groups: int):
    """The ``norm_layer`` of the FPN and the heads: None (plain convolutions with biases, as torchvision's
    Mask R-CNN) for ``frozen_batch``, else :func:`norm_factory`'s."""
    return None if kind == "frozen_batch" else norm_factory(kind, groups)


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
        fpn_norm = head_norm(config.norm, 32)
        return BackboneWithFPN(features, return_layers, channels, config.fpn_channels,
                               extra_blocks=LastLevelMaxPool(), norm_layer=fpn_norm)
    body = resnet50(weights=None, norm_layer=norm_factory(config.norm, 32))
    return_layers = {f"layer{k + 1}": str(k) for k in range(4)}
    return BackboneWithFPN(body, return_layers, [256, 512, 1024, 2048], config.fpn_channels,
                           extra_blocks=LastLevelMaxPool(), norm_layer=head_norm(config.norm, 32))


def mask_branch(config: DetectorConfig) -> tuple[nn.Module, nn.Module]:
    head = MaskRCNNHeads(config.fpn_channels, [config.mask_head_channels] * config.mask_head_layers, 1,
                         norm_layer=head_norm(config.norm, 32))
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
def modules_mode(modules: list[nn.Module], training: bool):
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
