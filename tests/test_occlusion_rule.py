"""amodal3d.occlusion.occlusion_pairs: the amodal rule, the fallback on amodal probabilities (``soft``)
for pairs whose amodal masks do not meet, and the box restriction against a whole-image reference."""

from __future__ import annotations

import numpy as np
import pytest

from amodal3d.occlusion import MIN_OVERLAP_PIXELS, OcclusionPair, depth_layers, occlusion_pairs


def short_completion(size: int = 40) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Instance 0 (a 20 x 20 square at (0, 0)) in front of instance 1 (20 x 20 at (10, 10)), whose
    amodal mask is its visible mask only (the completion fell short of 0.5 under instance 0); its
    probabilities are 0.3 on the hidden 10 x 10 corner and 0.1 on a 2-pixel band of instance 0's
    visible mask beyond it. Returns visible, amodal (N, H, W) bool and the probabilities (N, H, W)."""
    amodal_true = np.zeros((2, size, size), bool)
    amodal_true[0, :20, :20] = True
    amodal_true[1, 10:30, 10:30] = True
    visible = amodal_true.copy()
    visible[1] &= ~amodal_true[0]
    amodal = visible.copy()
    soft = amodal.astype(np.float32)
    soft[1, 10:20, 10:20] = 0.3
    return visible, amodal, soft


def test_without_probabilities_a_short_completion_leaves_the_pair_unordered():
    visible, amodal, _ = short_completion()
    assert occlusion_pairs(visible, amodal) == []


def test_probabilities_order_the_pair_whose_masks_do_not_meet():
    visible, amodal, soft = short_completion()
    (pair,) = occlusion_pairs(visible, amodal, soft=soft)
    assert (pair.front, pair.back, pair.evidence) == (0, 1, "soft")
    assert pair.overlap == 0 and pair.hidden_fraction == 0.0  # the amodal masks do not meet
    assert pair.confidence == 0.5  # one-sided (30 against 0), halved for soft evidence
    assert pair.to_dict()["evidence"] == "soft"


def test_probability_mass_under_min_overlap_gives_no_pair():
    visible, amodal, soft = short_completion()
    soft[1, 10:20, 10:20] = 0.0
    soft[1, 19, 10:13] = 1.0  # 3 pixels of mass under instance 0: below the 4-pixel minimum
    assert MIN_OVERLAP_PIXELS == 4
    assert occlusion_pairs(visible, amodal, soft=soft) == []
    soft[1, 19, 13] = 1.0
    assert [(p.front, p.back) for p in occlusion_pairs(visible, amodal, soft=soft)] == [(0, 1)]


def test_amodal_overlap_outranks_the_probabilities():
    visible, amodal, soft = short_completion()
    amodal[1] |= visible[0] & (np.arange(40)[:, None] >= 14) & (np.arange(40)[None] >= 14)  # 6 x 6 hidden
    soft[0][visible[1]] = 0.9  # probabilities claiming the opposite order are not consulted
    (pair,) = occlusion_pairs(visible, amodal, soft=soft)
    assert (pair.front, pair.back, pair.evidence, pair.overlap) == (0, 1, "amodal", 36)
    assert pair.hidden_fraction == pytest.approx(36 / (400 - 100 + 36))
    assert pair.confidence == 1.0


def test_soft_must_match_the_masks():
    visible, amodal, soft = short_completion()
    with pytest.raises(ValueError, match=r"soft must be \(N, H, W\) like the masks"):
        occlusion_pairs(visible, amodal, soft=soft[:, :-1])


def test_a_cycle_is_broken_at_the_soft_pair():
    soft = occlusion_pairs(*short_completion()[:2], soft=short_completion()[2])[0]  # confidence 1.0, halved
    pairs = [OcclusionPair(0, 1, 0.2, 50, 0.6), OcclusionPair(1, 2, 0.2, 50, 0.55),
             OcclusionPair(2, 0, 0.0, 0, soft.confidence, "soft")]
    assert depth_layers(3, pairs) == [0, 1, 2]
    assert depth_layers(3, pairs[:2] + [OcclusionPair(2, 0, 0.0, 9, 1.0)]) == [1, 2, 0]  # the same, amodal


def reference_pairs(visible: np.ndarray, amodal: np.ndarray, soft: np.ndarray | None) -> set[tuple]:
    """occlusion_pairs written on whole images, without boxes: (front, back, evidence, overlap)."""
    n, out = len(visible), set()
    seen = np.array([(v & a).sum() / max(a.sum(), 1) for v, a in zip(visible, amodal, strict=True)])
    for i in range(n):
        for j in range(i + 1, n):
            overlap = amodal[i] & amodal[j]
            if overlap.sum() >= MIN_OVERLAP_PIXELS:
                evidence, a, b = "amodal", (overlap & visible[i]).sum(), (overlap & visible[j]).sum()
            elif soft is not None:
                evidence = "soft"
                a = (soft[j] * (visible[i] & ~visible[j])).sum()
                b = (soft[i] * (visible[j] & ~visible[i])).sum()
                if max(a, b) < MIN_OVERLAP_PIXELS:
                    continue
            else:
                continue
            front = i if (a > b or (a == b and seen[i] >= seen[j])) else j
            out.add((front, i + j - front, evidence, int(overlap.sum())))
    return out


@pytest.mark.parametrize("seed", range(4))
def test_boxes_give_the_whole_image_result(seed):
    rng = np.random.default_rng(seed)
    size, n = 48, 5
    amodal = np.zeros((n, size, size), bool)
    soft = np.zeros((n, size, size), np.float32)
    for k in range(n):  # rectangles front to back; the probabilities spread 3 pixels past each
        y, x = rng.integers(0, size - 12, 2)
        h, w = rng.integers(8, 20, 2)
        amodal[k, y:y + h, x:x + w] = True
        soft[k, max(y - 3, 0):y + h + 3, max(x - 3, 0):x + w + 3] = rng.uniform(0.05, 0.45)
    visible, covered = amodal.copy(), np.zeros((size, size), bool)
    for k in range(n):
        visible[k] &= ~covered
        covered |= amodal[k]
    amodal_short = amodal & (visible | (rng.random(amodal.shape) < 0.5))  # completions partly missing
    soft = np.maximum(soft, amodal_short)
    for given in (None, soft):
        found = {(p.front, p.back, p.evidence, p.overlap) for p in occlusion_pairs(visible, amodal_short, soft=given)}
        assert found == reference_pairs(visible, amodal_short, given)
