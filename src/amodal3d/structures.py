"""Result types every method shares, and the one interface every method implements to be evaluated
(baselines, A3D and its ablations). The bottom layer: it imports nothing of the package.

A predictor takes one image and returns instances. Under the *given-visible* protocol it also
receives the ground-truth visible instances and must return exactly those instances, in order,
with their amodal masks (this isolates amodal completion from detection)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

UNKNOWN_CATEGORY = 0  # a given visible mask whose category is none of this model's

# Labels are a model's: 1-based places in its taxonomy (amodal3d.categories.Taxonomy; for the 13 default
# categories, label = category id). Datasets' and outputs' category ids are mapped to and from them at
# the boundary (the dataset reader, the evaluation harness, predict's results).


@dataclass(frozen=True)
class GivenVisible:
    """Ground-truth visible instances of one image (given-visible protocol). A label of
    :data:`UNKNOWN_CATEGORY` asks the predictor to name the instance itself (step 1's crop head)."""

    visible_masks: np.ndarray   # (N, H, W) bool
    labels: np.ndarray          # (N,) int64 model labels, or UNKNOWN_CATEGORY
    boxes: np.ndarray           # (N, 4) float32 xyxy pixels, boxes of the visible masks


@dataclass(frozen=True)
class Instances:
    """Predicted instances of one image (H x W). Scores in [0, 1], sorted high to low."""

    boxes: np.ndarray           # (N, 4) float32 xyxy pixels
    labels: np.ndarray          # (N,) int64 model labels (1..N of the predictor's taxonomy)
    scores: np.ndarray          # (N,) float32
    visible_masks: np.ndarray   # (N, H, W) bool
    amodal_masks: np.ndarray    # (N, H, W) bool
    extras: dict = field(default_factory=dict)  # per-method outputs (meshes, viewpoints, ...)

    def __post_init__(self) -> None:
        n = len(self.labels)
        lengths = {len(self.boxes), len(self.scores), len(self.visible_masks), len(self.amodal_masks), n}
        if len(lengths) != 1:
            raise ValueError("Instances: boxes, labels, scores and masks must have the same length")

    @staticmethod
    def empty(height: int, width: int) -> Instances:
        return Instances(np.zeros((0, 4), np.float32), np.zeros(0, np.int64), np.zeros(0, np.float32),
                         np.zeros((0, height, width), bool), np.zeros((0, height, width), bool))


class Predictor(Protocol):
    """What the evaluation harness calls. ``image`` is uint8 (H, W, 3) RGB."""

    name: str

    def predict(self, image: np.ndarray, given: GivenVisible | None = None) -> Instances:
        ...
