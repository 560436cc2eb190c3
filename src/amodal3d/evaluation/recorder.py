"""Replaying a predictor's output: :class:`Recorder` runs a predictor once per image and keeps its
instances, for benchmarks that score several rules on one run."""

from __future__ import annotations

import hashlib

import numpy as np

from amodal3d.structures import GivenVisible, Instances, Predictor


def image_key(image: np.ndarray) -> str:
    """A key for an image's pixels (to recognise the same image in a later pass)."""
    return hashlib.sha1(np.ascontiguousarray(image).tobytes()).hexdigest()


class Recorder:
    """Runs ``predictor`` once per image and keeps its instances (``kept``, by :func:`image_key`); a
    later call on the same image replays them. For benchmarks that score several rules on one run."""

    def __init__(self, predictor: Predictor):
        self.predictor, self.name, self.kept = predictor, predictor.name, {}

    def predict(self, image: np.ndarray, given: GivenVisible | None = None) -> Instances:
        key = image_key(image)
        if key not in self.kept:
            self.kept[key] = self.predictor.predict(image, given)
        return self.kept[key]
