"""The crop head: each detection read again from its own pixels (part of step 1).

The detector's box head and mask head see 14x14 pooled FPN features; trained from scratch on a
2-core machine they localise well long before they classify or segment well. This head looks again at
each detected box through a square RGB crop (``roi_size``: 64 by default, 96 in the shipped head; the
box drawn as an extra channel, so the network knows which object is meant when boxes overlap) and
predicts the category and the visible mask. It trains on single crops, about 40x cheaper per instance
than a detector step, so it sees many more epochs in the same time.

``apply_crop_head`` groups the detector's class-specific detections into objects (class-agnostic grouping
by box IoU; objectness = the group's summed class scores, i.e. about 1 - p(background) of the
proposal), then re-labels and re-segments each object with the head, and scores it by objectness, the
label's probability and the quality of its mask (:func:`mask_quality`). Training: :func:`train_crop_head`
on ground-truth boxes jittered like detections (``box_jitter``), with the detector's augmentation.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import box_iou

from amodal3d.categories import Relabel
from amodal3d.engine.augment import AugmentConfig, sample_seed
from amodal3d.engine.config import check_range, to_dict
from amodal3d.engine.trainer import TrainConfig
from amodal3d.engine.weights import init_from, load_model, record_taxonomy, training_relabel
from amodal3d.roi import crop, inside_image, paste, square_rois

WEIGHTS_KIND = "crop-head"
STEM = "crop_head"  # its file stem in a pipeline or weights folder
CROP_CHANNELS = 5  # RGB, inside the box, inside the image


@dataclass(frozen=True)
class CropHeadConfig:
    num_categories: int = 13
    width: int = 32                # channels of the first scale (x2 per scale, four scales)
    roi_size: int = 64
    enlarge: float = 1.3           # square crop side / the box's longer side
    box_jitter: float = 0.07       # training: std of each box edge's shift, in box sizes
    label_smoothing: float = 0.05
    group_iou: float = 0.7         # detections of one object: box IoU above this
    mask_dice: float = 0.0         # training: weight of a soft Dice term beside the mask's BCE

    def __post_init__(self) -> None:
        check_range(self, "num_categories", 1, 1000)
        check_range(self, "width", 2, 512)
        check_range(self, "roi_size", 16, 1024)
        check_range(self, "enlarge", 1, 10)
        check_range(self, "box_jitter", 0, 1)
        check_range(self, "label_smoothing", 0, 1, high_open=True)
        check_range(self, "group_iou", 0, 1)
        check_range(self, "mask_dice", 0, 1000)


@dataclass(frozen=True)
class CropHeadOutput:
    class_logits: torch.Tensor  # (N, num_categories); category id = index + 1
    mask_logits: torch.Tensor   # (N, S, S) visible mask of the boxed object in its crop


def crop_inputs(images: torch.Tensor, boxes: torch.Tensor, batch_index: torch.Tensor, config: CropHeadConfig
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """``images`` (B, 3, H, W) in [0, 1], ``boxes`` (N, 4) xyxy of image ``batch_index`` (N,) ->
    (inputs (N, 5, S, S), rois (N, 4)): RGB crop, inside-the-box and inside-the-image masks."""
    size = config.roi_size
    rois = square_rois(boxes, config.enlarge)
    rgb = crop(images, rois, batch_index, size)
    t = (torch.arange(size, device=rois.device, dtype=rois.dtype) + 0.5) / size
    xs = rois[:, 0:1] + t[None] * (rois[:, 2:3] - rois[:, 0:1])  # (N, S) pixel centres
    ys = rois[:, 1:2] + t[None] * (rois[:, 3:4] - rois[:, 1:2])
    in_x = (xs >= boxes[:, 0:1]) & (xs < boxes[:, 2:3])
    in_y = (ys >= boxes[:, 1:2]) & (ys < boxes[:, 3:4])
    in_box = (in_y[:, :, None] & in_x[:, None, :]).to(rgb.dtype)[:, None]
    height, width = images.shape[-2:]
    return torch.cat([rgb, in_box, inside_image(rois, height, width, size)], dim=1), rois


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class CropHead(nn.Module):
    """Encoder at 1/2 .. 1/16 of the crop, a class from its pooled deepest map, and a light decoder back
    to 1/2 for the mask (upsampled to the crop). ``forward(inputs, targets=None) -> (CropHeadOutput,
    losses)`` with ``inputs = {"x": (N, 5, S, S)}`` and ``targets = {"labels": (N,) category ids,
    "visible": (N, S, S)}``."""

    def __init__(self, config: CropHeadConfig = CropHeadConfig()):
        super().__init__()
        self.config = config
        w = config.width
        self.enc1 = nn.Sequential(_conv(CROP_CHANNELS, w), _conv(w, w, 2))
        self.enc2 = nn.Sequential(_conv(w, 2 * w, 2), _conv(2 * w, 2 * w))
        self.enc3 = nn.Sequential(_conv(2 * w, 4 * w, 2), _conv(4 * w, 4 * w))
        self.enc4 = nn.Sequential(_conv(4 * w, 8 * w, 2), _conv(8 * w, 8 * w))
        self.classify = nn.Sequential(nn.Dropout(0.2), nn.Linear(8 * w, config.num_categories))
        self.dec3, self.dec2, self.dec1 = _conv(12 * w, 2 * w), _conv(4 * w, w), _conv(2 * w, w // 2)
        self.out = nn.Conv2d(w // 2, 1, 1)

    def forward(self, inputs: dict, targets: dict | None = None) -> tuple[CropHeadOutput, dict]:
        x = inputs["x"]
        e1 = self.enc1(x)
        e2 = self.enc2(e1)
        e3 = self.enc3(e2)
        e4 = self.enc4(e3)
        class_logits = self.classify(e4.mean((2, 3)))

        def up(a: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
            return torch.cat([F.interpolate(a, size=skip.shape[-2:], mode="bilinear", align_corners=False), skip], 1)

        d1 = self.dec1(up(self.dec2(up(self.dec3(up(e4, e3)), e2)), e1))
        mask_logits = F.interpolate(self.out(d1), size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
        losses = {}
        if targets is not None:
            losses["loss_crop_class"] = F.cross_entropy(class_logits, targets["labels"] - 1,
                                                        label_smoothing=self.config.label_smoothing)
            losses["loss_crop_mask"] = F.binary_cross_entropy_with_logits(mask_logits, targets["visible"])
            if self.config.mask_dice > 0:
                losses["loss_crop_dice"] = self.config.mask_dice * soft_dice_loss(mask_logits, targets["visible"])
        return CropHeadOutput(class_logits, mask_logits), losses


def soft_dice_loss(logits: torch.Tensor, targets: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """Mean over N of ``1 - 2|P T| / (|P| + |T|)`` with P = sigmoid(``logits``) (N, S, S) and the 0/1
    ``targets`` (N, S, S): an overlap loss that, unlike per-pixel BCE, weighs small masks like large
    ones. ``eps`` keeps empty targets finite (an empty prediction of an empty target scores 0)."""
    p, t = torch.sigmoid(logits).flatten(1), targets.flatten(1)
    return (1 - (2 * (p * t).sum(1) + eps) / (p.sum(1) + t.sum(1) + eps)).mean()


# ---------------------------------------------------------------------------------------------- inference
def group_detections(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """Class-agnostic grouping of detections (N, 4) xyxy / (N,) scores: greedily, the best-scoring
    ungrouped detection leads a group of every ungrouped one whose box IoU with it exceeds
    ``iou_threshold``. Returns (leader indices (G,) by falling objectness, objectness (G,) = the
    group's summed scores, at most 1)."""
    order = torch.argsort(scores, descending=True, stable=True)
    overlap = box_iou(boxes, boxes) > iou_threshold
    free = torch.ones(len(scores), dtype=torch.bool, device=scores.device)
    leaders, objectness = [], []
    for j in order.tolist():
        if not free[j]:
            continue
        group = free & overlap[j]
        group[j] = True
        free &= ~group
        leaders.append(j)
        objectness.append(scores[group].sum().clamp(max=1.0))
    if not leaders:
        return torch.zeros(0, dtype=torch.long, device=scores.device), scores.new_zeros(0)
    return torch.tensor(leaders, device=scores.device), torch.stack(objectness)


def maskness(probs: torch.Tensor) -> torch.Tensor:
    """(G, H, W) mask probabilities -> (G,) the mean probability over each mask's pixels (p > 0.5); 0 for
    an empty mask. A confident mask is near 1, a hesitant one near 0.5."""
    inside = probs > 0.5
    return (probs * inside).flatten(1).sum(1) / inside.flatten(1).sum(1).clamp_min(1)


def unclaimed_fraction(masks: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
    """(G, H, W) bool masks ranked by ``scores`` (G,) -> (G,) the fraction of each mask not already
    covered by the masks ranked above it (1 for an empty mask). Visible masks of different objects do
    not overlap, so a mask mostly claimed by better-scored ones is most likely a duplicate or a part."""
    order = torch.argsort(scores, descending=True, stable=True)
    ranked = masks.flatten(1)[order].float()                                    # (G, H*W) best first
    claimed = torch.cat([torch.zeros_like(ranked[:1]), ranked.cummax(0).values[:-1]])  # union of those above
    area = ranked.sum(1)
    fraction = torch.ones(len(scores), device=scores.device)
    fraction[order] = torch.where(area > 0, 1 - (ranked * claimed).sum(1) / area.clamp_min(1), 1.0)
    return fraction


def mask_quality(probs: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
    """(G, H, W) visible-mask probabilities of objects with ``scores`` (G,) -> (G,) factor in [0, 1]:
    :func:`maskness` x :func:`unclaimed_fraction` (ranked by score x maskness), which ranks duplicates,
    parts and hesitant masks below whole objects (COCO AP counts every duplicate as a false positive)."""
    confidence = maskness(probs)
    return confidence * unclaimed_fraction(probs > 0.5, scores * confidence)


@dataclass(frozen=True)
class SecondLook:
    leaders: torch.Tensor   # (G,) index of each object's leading detection
    boxes: torch.Tensor     # (G, 4)
    labels: torch.Tensor    # (G,) category ids
    objectness: torch.Tensor  # (G,) summed detector scores of the group (at most 1)
    quality: torch.Tensor   # (G,) mask_quality of the visible masks (ones without ``rescore``)
    scores: torch.Tensor    # (G,) objectness x the head's probability of the label x quality
    probs: torch.Tensor     # (G, num_categories) the head's category probabilities (id = column + 1)
    visible: torch.Tensor   # (G, H, W) visible-mask probabilities at image resolution


@torch.no_grad()
def apply_crop_head(head: CropHead, image: torch.Tensor, boxes: torch.Tensor, scores: torch.Tensor,
                min_objectness: float = 0.0, flip: bool = False, rescore: bool = True,
                enlargements: tuple[float, ...] = ()) -> SecondLook:
    """Re-label and re-segment the detections (``boxes`` (N, 4), ``scores`` (N,)) of ``image``
    (3, H, W) in [0, 1]: one entry per object (see :func:`group_detections`) whose objectness reaches
    ``min_objectness`` (the head runs on those only). ``flip``: also read each crop mirrored and
    average the two readings (category probabilities, mask logits mirrored back). ``enlargements``:
    also read each crop at these crop sides / box side and average the probabilities and masks with
    those of the head's own (``config.enlarge``). ``rescore``: weigh each score by the
    :func:`mask_quality` of the objects kept (otherwise objectness x p(label))."""
    height, width = image.shape[-2:]
    leaders, objectness = group_detections(boxes, scores, head.config.group_iou)
    keep = objectness >= min_objectness
    leaders, objectness = leaders[keep], objectness[keep]
    if len(leaders) == 0:
        probs = scores.new_zeros((0, head.config.num_categories))
        return SecondLook(leaders, boxes[:0], leaders, scores[:0], scores[:0], scores[:0], probs,
                          image.new_zeros((0, height, width)))
    probs, visible = read_crops_averaged(head, image, boxes[leaders], flip, enlargements)
    best, index = probs.max(1)
    quality = mask_quality(visible, objectness * best) if rescore else torch.ones_like(best)
    return SecondLook(leaders, boxes[leaders], index + 1, objectness, quality, objectness * best * quality,
                      probs, visible)


@torch.no_grad()
def read_crops(head: CropHead, image: torch.Tensor, boxes: torch.Tensor, flip: bool = False,
               enlarge: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The head's reading of the crop of each box (N, 4) in ``image`` (3, H, W), N >= 1: category
    probabilities (N, num_categories) and visible-mask probabilities (N, H, W) at image resolution.
    ``flip``: the average with the reading of each crop mirrored (its mask mirrored back). ``enlarge``:
    another crop side / box side than the one the head was trained with (``config.enlarge``)."""
    config = head.config if enlarge is None else replace(head.config, enlarge=enlarge)
    x, rois = crop_inputs(image[None], boxes, torch.zeros(len(boxes), dtype=torch.long, device=boxes.device),
                          config)
    n = len(x)
    x = torch.cat([x, x.flip(-1)]) if flip else x
    # channels-last: the same convolutions, about 20 % faster on CPU (benchmarks/bench_speed.py)
    out, _ = head.eval()({"x": x.contiguous(memory_format=torch.channels_last)})
    probs, mask_logits = out.class_logits.softmax(1), out.mask_logits
    if flip:
        probs = (probs[:n] + probs[n:]) / 2
        mask_logits = (mask_logits[:n] + mask_logits[n:].flip(-1)) / 2
    return probs, paste(torch.sigmoid(mask_logits), rois, *image.shape[-2:])


def read_crops_averaged(head: CropHead, image: torch.Tensor, boxes: torch.Tensor, flip: bool = False,
                        enlargements: tuple[float, ...] = ()) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`read_crops` at the head's own enlargement and at each of ``enlargements``, averaged:
    (N, num_categories) category probabilities and (N, H, W) visible-mask probabilities."""
    readings = [read_crops(head, image, boxes, flip, enlarge) for enlarge in (None, *enlargements)]
    return sum(r[0] for r in readings) / len(readings), sum(r[1] for r in readings) / len(readings)


# ---------------------------------------------------------------------------------------------- training
@dataclass(frozen=True)
class CropHeadExperiment:
    model: CropHeadConfig = field(default_factory=CropHeadConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=10, batch_size=32, lr=2e-3,
                                                                   warmup_iters=100, clip_grad_norm=5.0,
                                                                   checkpoint_every=200))
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    box_targets: Literal["amodal", "visible"] = "amodal"  # the boxes the detector was trained to output


class CropSamples(torch.utils.data.Dataset):
    """Every instance of an (augmented) detection dataset as a crop around its jittered box.
    ``dataset[i] -> ({"x": (K, 5, S, S)}, {"labels": (K,), "visible": (K, S, S)})`` for image i."""

    def __init__(self, dataset, config: CropHeadConfig, box_targets: str = "amodal", seed: int = 0):
        if box_targets not in ("amodal", "visible"):
            raise ValueError(f"box_targets must be 'amodal' or 'visible', not {box_targets!r}")
        self.dataset, self.config, self.box_key, self.seed = dataset, config, f"{box_targets}_boxes", seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[dict, dict]:
        image, target = self.dataset[index]
        generator = torch.Generator().manual_seed(sample_seed(self.seed + 1, self.epoch, index))
        boxes = jitter_boxes(target[self.box_key].float(), self.config.box_jitter, generator)
        index_ = torch.zeros(len(boxes), dtype=torch.long)
        x, rois = crop_inputs(image[None], boxes, index_, self.config)
        visible = crop(target["visible_masks"][:, None].float(), rois, torch.arange(len(boxes)),
                       self.config.roi_size)[:, 0]
        return {"x": x}, {"labels": target["labels"], "visible": (visible > 0.5).float()}


def jitter_boxes(boxes: torch.Tensor, fraction: float, generator: torch.Generator) -> torch.Tensor:
    """Boxes (N, 4) xyxy moved like detections: each coordinate by a normal error of ``fraction`` x the
    box's side, keeping at least 2 px of width and height."""
    size = (boxes[:, 2:] - boxes[:, :2]).repeat(1, 2)
    boxes = boxes + torch.randn(boxes.shape, generator=generator) * fraction * size
    return torch.cat([torch.minimum(boxes[:, :2], boxes[:, 2:] - 2.0), boxes[:, 2:]], dim=1)


def collate_crops(batch: list) -> tuple[dict, dict]:
    inputs, targets = zip(*batch)
    return ({"x": torch.cat([i["x"] for i in inputs])},
            {k: torch.cat([t[k] for t in targets]) for k in ("labels", "visible")})


def train_crop_head(data: str | Path, out: str | Path, experiment: CropHeadExperiment, split: str = "train",
                    device: str = "auto", progress: bool = True, init: str | Path | None = None,
                    relabel: Relabel | None = None) -> Path:
    """Train (or resume) the crop head on ``data``; writes ``OUT/model.safetensors`` + ``model.json``.
    ``init``: start from a trained crop head (fine-tuning); a checkpoint in ``out`` takes precedence.
    ``relabel``: the categories to learn (default: the dataset's own; ``model.num_categories`` is set
    from them and the JSON records them)."""
    from amodal3d.engine.augment import AugmentedDataset
    from amodal3d.engine.checkpoint import seed_everything
    from amodal3d.engine.distributed import cleanup_distributed, init_distributed
    from amodal3d.engine.trainer import Trainer, check_training_split

    source = check_training_split(data, split)  # no images or no objects: an error before anything starts
    source = source.relabelled(training_relabel(source, init, relabel))
    experiment = replace(experiment, model=replace(experiment.model, num_categories=len(source.taxonomy)))
    info = init_distributed(device)
    try:
        seed = experiment.train.seed
        augmented = AugmentedDataset(source, experiment.augment, seed=seed)
        dataset = CropSamples(augmented, experiment.model, experiment.box_targets, seed)
        seed_everything(seed)
        model = CropHead(experiment.model)
        if init is not None:
            init_from(model, init, WEIGHTS_KIND)
        run_config = {"model": to_dict(experiment.model), "train": to_dict(experiment.train),
                      "augment": to_dict(experiment.augment), "box_targets": experiment.box_targets,
                      "data": str(data), "init": None if init is None else str(init)}
        trainer = Trainer(model, dataset, experiment.train, out, dist_info=info, collate_fn=collate_crops,
                          run_config=run_config, progress=progress, desc="crop head")
        path = trainer.fit_and_export(WEIGHTS_KIND, to_dict(experiment.model))
        if info.is_main:
            record_taxonomy(path, source.taxonomy)
        return path
    finally:
        cleanup_distributed()


def load_crop_head(path: str | Path, device: str | torch.device = "cpu") -> CropHead:
    """Rebuild a trained crop head from safetensors + JSON (never unpickles)."""
    return load_model(path, WEIGHTS_KIND, CropHead, CropHeadConfig, device)


def crop_head_beside(folder: str | Path, device: str | torch.device = "cpu") -> CropHead | None:
    """The crop head of a pipeline or weights folder (``crop_head.safetensors``), None when it has none."""
    path = Path(folder) / f"{STEM}.safetensors"
    return load_crop_head(path, device) if path.is_file() else None
