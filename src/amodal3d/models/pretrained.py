"""Standard checkpoints as starting points (``amodal3d train detector --init-backbone / --init-detector``).

A user who has torchvision's published checkpoint files (torchvision downloads them on a machine with
internet; amodal3d never downloads anything) starts a detector from them:

- ``--init-backbone``: an ImageNet classification checkpoint, ResNet-50 (``conv1.weight``, ``bn1.*``,
  ``layer1.0.conv1.weight``... ``fc.*``) or MobileNetV3-Large (``features.0.0.weight``... ``classifier.*``),
  into the detector's ``backbone.body``; the classifier has no place in a detector and is listed unused.
- ``--init-detector``: torchvision's COCO Mask R-CNN (``maskrcnn_resnet50_fpn``: ``backbone.body.*``,
  ``backbone.fpn.*``, ``rpn.*``, ``roi_heads.box_head/box_predictor/mask_head/mask_predictor.*``; the old
  key names of the published v1 file, ``rpn.head.conv.weight``, ``fpn.inner_blocks.0.weight`` and
  ``mask_head.mask_fcn1.weight``, are read as torchvision itself reads them). With the
  ``r50-fpn-torchvision`` preset every tensor fits but the class-dependent predictors; a ``heads: both``
  detector's amodal mask head starts from the same COCO mask head.

Files are read with ``torch.load(path, map_location="cpu", weights_only=True)`` (never unpickling arbitrary
objects) or as safetensors. Tensors whose shape differs from the model's keep their fresh initialisation
and are listed (re-initialised); checkpoint tensors that match no tensor of the model are listed (unused),
and so are the model's tensors that the checkpoint does not hold (missing). The class-dependent predictor
rows of categories that COCO has too (:data:`COCO_TO_OURS`, or the same name) are copied from COCO's rows,
the background row from COCO's background. BatchNorm's ``num_batches_tracked`` counters are ignored (the
FrozenBatchNorm2d of torchvision's detection backbones has none).
"""

from __future__ import annotations

import pickle
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from amodal3d.engine.weights import read_safetensors
from amodal3d.errors import Amodal3dError, WeightsError
from amodal3d.paths import check_regular_file

# torchvision's COCO category order (the 91 outputs of its detection weights, ``weights.meta["categories"]``)
COCO_CATEGORIES: tuple[str, ...] = (
    "__background__", "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "N/A", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse",
    "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "N/A", "backpack", "umbrella", "N/A", "N/A",
    "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite", "baseball bat",
    "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle", "N/A", "wine glass", "cup", "fork",
    "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza",
    "donut", "cake", "chair", "couch", "potted plant", "bed", "N/A", "dining table", "N/A", "N/A", "toilet",
    "N/A", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone", "microwave", "oven", "toaster", "sink",
    "refrigerator", "N/A", "book", "clock", "vase", "scissors", "teddy bear", "hair drier", "toothbrush",
)

COCO_TO_OURS: dict[str, str] = {
    "airplane": "airplane", "bench": "bench", "car": "car", "chair": "chair", "couch": "sofa",
    "tv": "display", "dining table": "table", "cell phone": "phone", "boat": "vessel",
}
"""COCO category name -> the name of the same kind of object among the 13 default categories. A category
of another taxonomy named like a COCO category (``person``, ``cup``...) takes that row too."""

# class-dependent tensors of the ROI heads -> rows per class (box regression: 4 per class)
CLASS_TENSORS: dict[str, int] = {
    "roi_heads.box_predictor.cls_score": 1, "roi_heads.box_predictor.bbox_pred": 4,
    "roi_heads.mask_predictor.mask_fcn_logits": 1, "roi_heads.amodal_mask_predictor.mask_fcn_logits": 1,
}
# old key names of torchvision's published detection files (module version < 2) -> today's
_OLD_KEYS = (
    (re.compile(r"^(backbone\.fpn\.(?:inner|layer)_blocks\.\d+)\.(weight|bias)$"), r"\1.0.\2"),
    (re.compile(r"^(rpn\.head\.conv)\.(weight|bias)$"), r"\1.0.0.\2"),
)
_OLD_MASK_FCN = re.compile(r"^(roi_heads\.mask_head)\.mask_fcn(\d+)\.(weight|bias)$")
_WRAPPERS = ("state_dict", "model", "model_state", "model_state_dict")
SHOWN = 8  # names printed per list (the run's config.yaml records them all)

Kind = Literal["backbone", "detector"]


@dataclass(frozen=True)
class InitReport:
    """What a checkpoint gave a model. ``loaded``: model tensors copied; ``reinitialised``: ``"key
    (checkpoint shape) -> (model shape)"`` of tensors left at their fresh initialisation; ``unused``:
    checkpoint keys that match no model tensor; ``missing``: model tensors (of the part the checkpoint
    initialises) it does not hold; ``copied_rows``: ``"ours <- coco"`` class rows copied into the
    re-initialised class-dependent tensors."""

    path: str
    kind: Kind
    loaded: tuple[str, ...]
    reinitialised: tuple[str, ...]
    unused: tuple[str, ...]
    missing: tuple[str, ...]
    copied_rows: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        """JSON/YAML-ready (what the run's ``config.yaml`` records; ``loaded`` as a count)."""
        return {"path": self.path, "loaded": len(self.loaded), "reinitialised": list(self.reinitialised),
                "unused": list(self.unused), "missing": list(self.missing), "copied_rows": list(self.copied_rows)}

    def lines(self) -> list[str]:
        """A short human summary (at most :data:`SHOWN` names per list)."""
        out = [f"--init-{self.kind} {self.path}: {len(self.loaded)} tensors loaded, {len(self.reinitialised)} "
               f"re-initialised, {len(self.unused)} unused, {len(self.missing)} missing"]
        for label, items in (("re-initialised (shape differs)", self.reinitialised),
                             ("unused (no tensor of the model)", self.unused),
                             ("missing (kept as initialised)", self.missing),
                             ("class rows copied", self.copied_rows)):
            if items:
                more = f", ... ({len(items) - SHOWN} more)" if len(items) > SHOWN else ""
                out.append(f"  {label}: {', '.join(items[:SHOWN])}{more}")
        return out


# ---------------------------------------------------------------------------------------------- reading
def read_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors (name -> tensor, on the CPU) of a ``torch.save`` file of a state dict (read with
    ``weights_only=True``; a dict wrapping it under ``state_dict`` or ``model`` is unwrapped) or of a
    safetensors file. WeightsError naming the file for anything else: a missing file, a pickle holding
    other objects, a file that is neither, a file without tensors."""
    path = Path(path)
    try:
        check_regular_file(path)
    except Amodal3dError as error:
        raise WeightsError(str(error)) from None
    with path.open("rb") as handle:
        head = handle.read(16)
    if head.startswith(b"PK\x03\x04") or head[:1] == b"\x80":  # torch.save zip, or a legacy/raw pickle
        state = _torch_load(path)
    elif len(head) >= 9 and head[8:9] == b"{":
        state, _ = read_safetensors(path)
    else:
        raise WeightsError(f"{path}: not a checkpoint (neither a torch.save file of tensors nor safetensors)")
    if isinstance(state, dict) and not any(isinstance(v, torch.Tensor) for v in state.values()):
        inner = [state[k] for k in _WRAPPERS if isinstance(state.get(k), dict)]
        state = inner[0] if inner else state
    if not isinstance(state, dict):
        raise WeightsError(f"{path}: holds a {type(state).__name__}, not a state dict of named tensors")
    tensors = {str(k): v for k, v in state.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise WeightsError(f"{path}: holds no tensors (not a model checkpoint)")
    return tensors


def _torch_load(path: Path):
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise WeightsError(f"{path}: holds Python objects other than tensors: refused (checkpoints are read "
                           "with torch.load(weights_only=True), which never unpickles arbitrary objects)") from None
    except Exception as error:  # noqa: BLE001 - torch.load raises RuntimeError, EOFError, zip errors...
        detail = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise WeightsError(f"{path}: unreadable torch.save file ({detail})") from None


# ---------------------------------------------------------------------------------------------- key names
def backbone_key(key: str) -> str:
    """The detector key of a classification checkpoint's key: ``layer1.0.conv1.weight`` ->
    ``backbone.body.layer1.0.conv1.weight``, ``features.3.block.0.0.weight`` -> ``backbone.body.3.block.0.0.weight``
    (a detector's ``backbone.body.*`` keys stay as they are)."""
    if key.startswith("backbone.body."):
        return key
    return "backbone.body." + key.removeprefix("features.")


def detector_key(key: str) -> str:
    """Today's torchvision name of a detection checkpoint's key (the published v1 files use older names)."""
    match = _OLD_MASK_FCN.match(key)
    if match:
        return f"{match[1]}.{int(match[2]) - 1}.0.{match[3]}"
    for pattern, replacement in _OLD_KEYS:
        if pattern.match(key):
            return pattern.sub(replacement, key)
    return key


def _targets(key: str, kind: Kind) -> list[str]:
    """The model keys that checkpoint key ``key`` initialises."""
    if kind == "backbone":
        return [backbone_key(key)]
    key = detector_key(key)
    out = [key]
    for head in ("mask_head", "mask_predictor"):  # heads=both: the amodal mask branch starts from it too
        if key.startswith(f"roi_heads.{head}."):
            out.append(key.replace(f"roi_heads.{head}.", f"roi_heads.amodal_{head}.", 1))
    return out


# ---------------------------------------------------------------------------------------------- class rows
def coco_rows(label_names: Sequence[str]) -> dict[int, int]:
    """Model label -> COCO row for the labels whose category COCO has (label k = ``label_names[k - 1]``;
    via :data:`COCO_TO_OURS` or the same name), and background 0 -> 0."""
    ours_to_coco = {ours: coco for coco, ours in COCO_TO_OURS.items()}
    index = {name: i for i, name in enumerate(COCO_CATEGORIES) if name not in ("N/A", "__background__")}
    rows = {0: 0}
    for label, name in enumerate(label_names, start=1):
        coco = ours_to_coco.get(name, name)
        if coco in index:
            rows[label] = index[coco]
    return rows


def _copy_rows(target: torch.Tensor, source: torch.Tensor, per_class: int, rows: dict[int, int]) -> bool:
    """Copy ``source``'s class rows into ``target`` (in place) when both are class tensors of the same
    layout; returns whether it did."""
    if target.dim() != source.dim() or target.shape[1:] != source.shape[1:]:
        return False
    if target.shape[0] % per_class or source.shape[0] % per_class:
        return False
    ours, theirs = target.shape[0] // per_class, source.shape[0] // per_class
    pairs = [(k, j) for k, j in rows.items() if k < ours and j < theirs]
    for k, j in pairs:
        target[k * per_class:(k + 1) * per_class] = source[j * per_class:(j + 1) * per_class].to(target.dtype)
    return bool(pairs)


# ---------------------------------------------------------------------------------------------- loading
def load_checkpoint_into(model: nn.Module, path: str | Path, kind: Kind,
                         label_names: Sequence[str] | None = None) -> InitReport:
    """Copy the tensors of checkpoint ``path`` that fit ``model`` (a detector) into it; see the module.

    ``kind``: ``"backbone"`` (a classification checkpoint, into ``backbone.body``) or ``"detector"`` (a
    detection checkpoint, into the whole model). ``label_names`` (label k = ``label_names[k - 1]``): the
    class rows of categories COCO has are copied from a COCO checkpoint's rows (detector only). Raises
    WeightsError naming the file when no tensor of the checkpoint fits the model."""
    state = read_checkpoint(path)
    own = model.state_dict()
    scope = "backbone.body." if kind == "backbone" else ""
    rows = coco_rows(label_names) if label_names is not None and kind == "detector" else {}
    assigned: dict[str, torch.Tensor] = {}
    reinitialised, unused, copied = [], [], set()
    for key, value in state.items():
        targets = [t for t in _targets(key, kind) if t in own]
        if not targets:
            if not key.endswith("num_batches_tracked"):
                unused.append(key)
            continue
        for target in targets:
            if tuple(value.shape) == tuple(own[target].shape):
                assigned[target] = value
                continue
            reinitialised.append(f"{target} {tuple(value.shape)} -> {tuple(own[target].shape)}")
            module = target.rpartition(".")[0]
            if module in CLASS_TENSORS and rows:
                with torch.no_grad():
                    if _copy_rows(own[target], value, CLASS_TENSORS[module], rows):
                        copied.add(target)
    if not assigned:
        _nothing_fits(path, kind, state, reinitialised)
    with torch.no_grad():
        for target, value in assigned.items():
            own[target].copy_(value.to(own[target].dtype))
    missing = [k for k in own if k.startswith(scope) and k not in assigned and not k.endswith("num_batches_tracked")
               and not any(r.startswith(k + " ") for r in reinitialised)]
    names = {k: n for k, n in enumerate(label_names or (), start=1)}
    copied_rows = []
    if copied:
        copied_rows = [f"{names.get(k, 'background')} <- {COCO_CATEGORIES[j]}" for k, j in sorted(rows.items())
                       if j < len(COCO_CATEGORIES)]
    return InitReport(str(path), kind, tuple(sorted(assigned)), tuple(reinitialised), tuple(unused),
                      tuple(missing), tuple(copied_rows))


def _nothing_fits(path: str | Path, kind: Kind, state: dict, reinitialised: list[str]) -> None:
    first = ", ".join(list(state)[:3])
    if reinitialised:
        raise WeightsError(f"{path}: no tensor of this checkpoint fits the detector: {len(reinitialised)} match by "
                           f"name but every shape differs (e.g. {reinitialised[0]}); another architecture?")
    hint = ""
    if kind == "detector" and not any(k.startswith(("backbone.", "rpn.", "roi_heads.")) for k in state):
        hint = "; a classification checkpoint goes to --init-backbone"
    elif kind == "backbone":
        hint = " (a ResNet-50 or MobileNetV3 classification checkpoint of the detector's backbone is expected)"
    raise WeightsError(f"{path}: no key of this checkpoint matches the detector's {kind} (its keys: {first}, "
                       f"...){hint}")


def start_from_checkpoints(model: nn.Module, backbone: str | Path | None = None, detector: str | Path | None = None,
                           label_names: Sequence[str] | None = None) -> list[InitReport]:
    """:func:`load_checkpoint_into` for ``--init-backbone`` then ``--init-detector`` (either may be None)."""
    reports = []
    if backbone is not None:
        reports.append(load_checkpoint_into(model, backbone, "backbone"))
    if detector is not None:
        reports.append(load_checkpoint_into(model, detector, "detector", label_names))
    return reports


__all__ = ["COCO_CATEGORIES", "COCO_TO_OURS", "InitReport", "backbone_key", "coco_rows", "detector_key",
           "load_checkpoint_into", "read_checkpoint", "start_from_checkpoints"]
