"""Baselines that need no amodal model: the amodal mask is the visible mask, or its convex hull.

Under the *given-visible* protocol they complete the ground-truth visible masks they receive.
Under *end-to-end* they post-process any predictor that outputs visible masks (a visible
detector, e.g. ``amodal3d.models.detector_predict.DetectorPredictor``): :class:`VisibleAsAmodal` and
:class:`ConvexHullOf` take it as ``detector``."""

from __future__ import annotations

import numpy as np
from scipy.spatial import ConvexHull, QhullError

from amodal3d.errors import Amodal3dError
from amodal3d.masks import masks_to_boxes
from amodal3d.structures import GivenVisible, Instances, Predictor


def convex_hull_mask(mask: np.ndarray) -> np.ndarray:
    """Digital convex hull of a bool mask (H, W): every pixel whose centre lies in the convex hull of
    the centres of the mask's pixels (all components together) -> bool (H, W), a superset of ``mask``.
    Collinear pixel sets give the pixels on their segment; an empty mask stays empty."""
    mask = np.asarray(mask, bool)
    rows = np.flatnonzero(mask.any(axis=1))
    if len(rows) == 0:
        return mask.copy()
    r0, r1 = rows[0], rows[-1] + 1
    present_cols = np.flatnonzero(mask.any(axis=0))
    c0, c1 = present_cols[0], present_cols[-1] + 1
    crop = mask[r0:r1, c0:c1]
    # The hull of all pixel centres is the hull of each row's leftmost and rightmost pixel.
    has = crop.any(axis=1)
    rr = np.flatnonzero(has)
    left = crop[has].argmax(axis=1)
    right = crop.shape[1] - 1 - crop[has][:, ::-1].argmax(axis=1)
    points = np.unique(np.concatenate([np.stack([rr, left], 1), np.stack([rr, right], 1)]), axis=0)
    height, width = crop.shape
    cols = np.arange(width)
    try:
        if len(points) < 3:
            raise QhullError("fewer than 3 points")
        eq = ConvexHull(points.astype(np.float64)).equations  # (F, 3): n_r * r + n_c * c + offset <= 0
        # Scanlines: per row, each facet bounds c from one side. Vertices are integers and facet normals
        # are unit vectors with |n_c| >= 1/diagonal or ~0, so a tolerance of 1e-7 is exact here.
        rhs = -(eq[:, 2] + eq[:, 0] * np.arange(height)[:, None]) + 1e-7   # (R, F): n_c * c <= rhs
        n_c = eq[:, 1]
        pos, neg = n_c > 1e-6, n_c < -1e-6
        hi = np.where(pos, rhs / np.where(pos, n_c, 1.0), np.inf).min(axis=1)
        lo = np.where(neg, rhs / np.where(neg, n_c, 1.0), -np.inf).max(axis=1)
        row_ok = np.where(pos | neg, True, rhs >= 0).all(axis=1)
        inside = row_ok[:, None] & (cols >= np.ceil(lo)[:, None]) & (cols <= np.floor(hi)[:, None])
    except QhullError:
        # Collinear (or single) points: the pixels on the segment between the extreme points.
        p0, p1 = points[0].astype(np.float64), points[-1].astype(np.float64)
        d = p1 - p0
        r = np.arange(height)[:, None]
        inside = np.abs((r - p0[0]) * d[1] - (cols[None, :] - p0[1]) * d[0]) < 1e-9
    out = np.zeros_like(mask)
    out[r0:r1, c0:c1] = inside | crop
    return out


def _from_given(given: GivenVisible, amodal: np.ndarray) -> Instances:
    n = len(given.labels)
    return Instances(boxes=masks_to_boxes(amodal), labels=np.asarray(given.labels, np.int64),
                     scores=np.ones(n, np.float32), visible_masks=np.asarray(given.visible_masks, bool),
                     amodal_masks=amodal)


class _VisibleCompletion:
    """Shared logic: complete visible masks (given, or from ``detector``) with :meth:`complete`."""

    name = "?"

    def __init__(self, detector: Predictor | None = None):
        self.detector = detector

    @property
    def requires_given(self) -> bool:
        """True without a detector: then only the given-visible protocol works."""
        return self.detector is None

    def complete(self, visible: np.ndarray) -> np.ndarray:
        """Visible masks (N, H, W) bool -> amodal masks (N, H, W) bool."""
        raise NotImplementedError

    def predict(self, image: np.ndarray, given: GivenVisible | None = None) -> Instances:
        if given is not None:
            return _from_given(given, self.complete(np.asarray(given.visible_masks, bool)))
        if self.detector is None:
            raise Amodal3dError(f"method {self.name!r} under the end-to-end protocol needs a visible "
                                f"detector: pass --weights of a trained detector, "
                                "or use --protocol given-visible")
        det = self.detector.predict(image)
        visible = np.asarray(det.visible_masks, bool)
        amodal = self.complete(visible)
        return Instances(boxes=masks_to_boxes(amodal), labels=det.labels, scores=det.scores,
                         visible_masks=visible, amodal_masks=amodal, extras=dict(det.extras))


class VisibleAsAmodal(_VisibleCompletion):
    """Amodal mask = visible mask (the lower bound every method must beat)."""

    name = "visible"

    def complete(self, visible: np.ndarray) -> np.ndarray:
        return np.asarray(visible, bool).copy()


class ConvexHullOf(_VisibleCompletion):
    """Amodal mask = digital convex hull of the visible mask (:func:`convex_hull_mask`)."""

    name = "convex-hull"

    def complete(self, visible: np.ndarray) -> np.ndarray:
        visible = np.asarray(visible, bool)
        if len(visible) == 0:
            return visible.copy()
        return np.stack([convex_hull_mask(m) for m in visible])
