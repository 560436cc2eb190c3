"""Occlusion order between instances, from their visible and amodal masks.

Two instances are ordered when their amodal masks overlap: in the overlap, the one whose visible mask
covers more of it is in front, and the other's *hidden fraction by this pair* is the share of its amodal
mask that the front one's visible mask hides. Instances whose amodal masks do not overlap have no
order (neither hides the other). (Ordering by the larger hidden *share* instead scored the same on 150
generated scenes, 87.7 % against 88.1 % of overlapping pairs: benchmarks/bench_occlusion.py.)

Why masks and not the rendered depth of the meshes: the pipeline renders each instance's prior with
its own ROI camera (:func:`amodal3d.render.project_viewpoint`: a canonical distance and focal length,
a 2D offset and zoom inside its ROI), so two instances' rendered depths are in different frames and
cannot be compared. The masks are in one frame, and the amodal masks already hold what the 3D prior
says is behind.

    pairs = occlusion_pairs(instances.visible_masks, instances.amodal_masks)
    for p in pairs: print(f"{p.front} in front of {p.back}, hides {p.hidden_fraction:.0%} of it")
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

MIN_OVERLAP_PIXELS = 4  # amodal overlaps smaller than this are noise, not an occlusion


@dataclass(frozen=True)
class OcclusionPair:
    """``front`` hides ``hidden_fraction`` of ``back``'s amodal mask (indices into the instances);
    ``overlap``: pixels where their amodal masks meet; ``confidence``: how one-sided the evidence is,
    in [0, 1] (0: both visible masks cover as much of the overlap)."""

    front: int
    back: int
    hidden_fraction: float
    overlap: int
    confidence: float

    def to_dict(self) -> dict:
        return asdict(self)


def occlusion_rates(visible: np.ndarray, amodal: np.ndarray) -> np.ndarray:
    """(N,) hidden fraction of each amodal mask: ``1 - |visible ∩ amodal| / |amodal|`` (0 when empty)."""
    visible, amodal = _check(visible, amodal)
    n, pixels = len(amodal), int(np.prod(amodal.shape[1:]))
    area = amodal.reshape(n, pixels).sum(1)
    seen = (visible & amodal).reshape(n, pixels).sum(1)
    return np.where(area > 0, 1.0 - seen / np.maximum(area, 1), 0.0)


def occlusion_pairs(visible: np.ndarray, amodal: np.ndarray,
                    min_overlap: int = MIN_OVERLAP_PIXELS) -> list[OcclusionPair]:
    """Pairwise occlusion order of N instances (``visible``, ``amodal``: (N, H, W) bool), one
    :class:`OcclusionPair` per pair whose amodal masks overlap by at least ``min_overlap`` pixels, in
    order of (front, back). In the overlap O, the instance whose visible mask covers more of O is in
    front (ties: the one more visible overall); the back one's hidden fraction is
    ``|O ∩ visible_front \\ visible_back| / |amodal_back|``."""
    visible, amodal = _check(visible, amodal)
    n, pixels = len(amodal), int(np.prod(amodal.shape[1:]))
    flat_v = visible.reshape(n, pixels)
    flat_a = amodal.reshape(n, pixels)
    area = flat_a.sum(1)
    seen_fraction = 1.0 - occlusion_rates(visible, amodal)
    pairs = []
    for i in range(n):
        for j in range(i + 1, n):
            overlap = flat_a[i] & flat_a[j]
            size = int(overlap.sum())
            if size < min_overlap:
                continue
            # the share of each one's amodal mask that the other's visible mask hides, inside the overlap
            hides_j = int((overlap & flat_v[i] & ~flat_v[j]).sum()) / max(int(area[j]), 1)
            hides_i = int((overlap & flat_v[j] & ~flat_v[i]).sum()) / max(int(area[i]), 1)
            cover_i = int((overlap & flat_v[i]).sum())
            cover_j = int((overlap & flat_v[j]).sum())
            if cover_i != cover_j:
                front, back = (i, j) if cover_i > cover_j else (j, i)
            else:
                front, back = (i, j) if seen_fraction[i] >= seen_fraction[j] else (j, i)
            hidden = hides_j if front == i else hides_i
            confidence = abs(cover_i - cover_j) / max(cover_i + cover_j, 1)
            pairs.append(OcclusionPair(front, back, hidden, size, round(confidence, 4)))
    return sorted(pairs, key=lambda p: (p.front, p.back))


def depth_layers(n: int, pairs: list[OcclusionPair]) -> list[int]:
    """A layer per instance, 0 = nothing in front of it: the length of the longest chain of pairs in
    front of it (cycles, which masks can produce, are broken at their least confident pair)."""
    edges = sorted(pairs, key=lambda p: -p.confidence)
    kept: list[OcclusionPair] = []
    for pair in edges:  # greedy: keep a pair unless it closes a cycle with the more confident ones
        if not _reaches(pair.back, pair.front, kept):
            kept.append(pair)
    layer = [0] * n
    for _ in range(n):  # longest path in a DAG of at most n nodes: n relaxations
        changed = False
        for pair in kept:
            if layer[pair.back] < layer[pair.front] + 1:
                layer[pair.back] = layer[pair.front] + 1
                changed = True
        if not changed:
            break
    return layer


def _reaches(start: int, goal: int, pairs: list[OcclusionPair]) -> bool:
    """Whether ``goal`` lies behind ``start`` through a chain of ``pairs`` (front -> back)."""
    stack, seen = [start], {start}
    while stack:
        node = stack.pop()
        if node == goal:
            return True
        for pair in pairs:
            if pair.front == node and pair.back not in seen:
                seen.add(pair.back)
                stack.append(pair.back)
    return False


def _check(visible: np.ndarray, amodal: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    visible, amodal = np.asarray(visible, bool), np.asarray(amodal, bool)
    if visible.shape != amodal.shape or visible.ndim != 3:
        raise ValueError(f"visible and amodal must both be (N, H, W), got {visible.shape} and {amodal.shape}")
    return visible, amodal
