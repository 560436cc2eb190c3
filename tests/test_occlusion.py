"""amodal3d.occlusion: pairwise occlusion order from visible and amodal masks."""

from __future__ import annotations

import numpy as np
import pytest

from amodal3d.occlusion import depth_layers, occlusion_pairs, occlusion_rates


def square(y0: int, x0: int, side: int, size: int = 40) -> np.ndarray:
    mask = np.zeros((size, size), bool)
    mask[y0:y0 + side, x0:x0 + side] = True
    return mask


def scene(*amodal: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Amodal masks front to back; each visible mask is its amodal mask minus everything in front."""
    visible, covered = [], np.zeros_like(amodal[0])
    for mask in amodal:
        visible.append(mask & ~covered)
        covered |= mask
    return np.stack(visible), np.stack(amodal)


def test_front_hides_part_of_back():
    visible, amodal = scene(square(0, 0, 20), square(10, 10, 20))
    (pair,) = occlusion_pairs(visible, amodal)
    assert (pair.front, pair.back) == (0, 1)
    assert pair.hidden_fraction == pytest.approx(100 / 400)  # a 10 x 10 corner of the 20 x 20 square
    assert pair.overlap == 100 and pair.confidence == 1.0
    assert occlusion_rates(visible, amodal) == pytest.approx([0.0, 0.25])


def test_order_follows_masks_not_index():
    visible, amodal = scene(square(10, 10, 20), square(0, 0, 20))  # instance 0 in front
    reordered = occlusion_pairs(visible[::-1].copy(), amodal[::-1].copy())
    assert [(p.front, p.back) for p in reordered] == [(1, 0)]


def test_disjoint_instances_have_no_order():
    visible, amodal = scene(square(0, 0, 10), square(25, 25, 10))
    assert occlusion_pairs(visible, amodal) == []
    assert depth_layers(2, []) == [0, 0]


def test_layers_of_a_chain_and_a_cycle():
    visible, amodal = scene(square(0, 0, 16), square(8, 8, 16), square(16, 16, 16))
    pairs = occlusion_pairs(visible, amodal)
    assert {(p.front, p.back) for p in pairs} == {(0, 1), (1, 2)}  # 0 and 2 meet at a corner only
    assert depth_layers(3, pairs) == [0, 1, 2]
    from amodal3d.occlusion import OcclusionPair

    cycle = [OcclusionPair(0, 1, 0.1, 10, 0.9), OcclusionPair(1, 2, 0.1, 10, 0.8), OcclusionPair(2, 0, 0.1, 10, 0.1)]
    assert depth_layers(3, cycle) == [0, 1, 2]  # the least confident pair is dropped


def test_empty_and_bad_shapes():
    empty = np.zeros((0, 5, 5), bool)
    assert occlusion_pairs(empty, empty) == []
    assert occlusion_rates(empty, empty).shape == (0,)
    with pytest.raises(ValueError, match="N, H, W"):
        occlusion_pairs(np.zeros((1, 5, 5), bool), np.zeros((1, 5, 6), bool))
