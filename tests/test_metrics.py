"""Metrics: IoU matrix against slow references, greedy matching, aggregation, COCO AP, convex hull."""

from __future__ import annotations

import numpy as np
import pytest
from pycocotools import mask as mask_utils
from scipy.spatial import Delaunay, QhullError

from amodal3d.evaluation import metrics
from amodal3d.evaluation.baselines import convex_hull_mask
from amodal3d.masks import encode_rle, mask_iou, masks_to_boxes


def rect(h: int, w: int, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
    m = np.zeros((h, w), bool)
    m[r0:r1, c0:c1] = True
    return m


# ---------------------------------------------------------------- IoU

def test_iou_matrix_matches_slow_reference_and_pycocotools():
    rng = np.random.default_rng(0)
    a = rng.random((5, 13, 17)) < 0.4
    b = rng.random((7, 13, 17)) < 0.3
    b[2] = a[1]
    fast = metrics.mask_iou_matrix(a, b)
    slow = np.array([[mask_iou(x, y) for y in b] for x in a])
    np.testing.assert_allclose(fast, slow, atol=1e-12)
    assert fast[1, 2] == 1.0
    coco = mask_utils.iou([mask_utils.encode(np.asfortranarray(x.astype(np.uint8))) for x in a],
                          [mask_utils.encode(np.asfortranarray(y.astype(np.uint8))) for y in b], [0] * len(b))
    np.testing.assert_allclose(fast, coco, atol=1e-12)


def test_iou_symmetry_bounds_and_hand_cases():
    rng = np.random.default_rng(1)
    a = rng.random((4, 9, 9)) < 0.5
    b = rng.random((3, 9, 9)) < 0.5
    m = metrics.mask_iou_matrix(a, b)
    np.testing.assert_allclose(m, metrics.mask_iou_matrix(b, a).T)
    assert (m >= 0).all() and (m <= 1).all()
    # 2x2 square vs 2x4 rectangle containing it: 4 / 8; disjoint: 0; identical: 1.
    sq, wide, far = rect(6, 6, 0, 2, 0, 2), rect(6, 6, 0, 2, 0, 4), rect(6, 6, 4, 6, 4, 6)
    m = metrics.mask_iou_matrix(np.stack([sq]), np.stack([wide, far, sq]))
    np.testing.assert_allclose(m, [[0.5, 0.0, 1.0]])
    # Shapes (0, M) and (N, 0) work; empty vs empty is `empty` (0 for matching), 1 in paired_iou.
    assert metrics.mask_iou_matrix(np.zeros((0, 6, 6), bool), np.stack([sq])).shape == (0, 1)
    z = np.zeros((1, 6, 6), bool)
    assert metrics.mask_iou_matrix(z, z)[0, 0] == 0.0
    assert metrics.paired_iou(z, z)[0] == 1.0
    np.testing.assert_allclose(metrics.paired_iou(np.stack([sq, sq]), np.stack([wide, z[0]])), [0.5, 0.0])


def test_iou_matrix_chunks_agree(monkeypatch):
    rng = np.random.default_rng(2)
    a, b = rng.random((3, 8, 8)) < 0.5, rng.random((9, 8, 8)) < 0.5
    whole = metrics.mask_iou_matrix(a, b)
    monkeypatch.setattr(metrics, "_CHUNK_ELEMENTS", 64 * 2)  # two predictions per chunk
    np.testing.assert_array_equal(metrics.mask_iou_matrix(a, b), whole)


# ---------------------------------------------------------------- matching

def test_matching_best_first_never_reuses_a_prediction():
    iou = np.array([[0.6, 0.9, 0.0],
                    [0.0, 0.95, 0.55],
                    [0.0, 0.7, 0.4]])
    # (1,1)=0.95 first; gt 0 then takes pred 0 (0.6), not the taken pred 1; gt 2 only had pred 1 -> -1.
    np.testing.assert_array_equal(metrics.match_greedy(iou), [0, 1, -1])
    # Below the threshold never matches; exactly 0.5 does.
    np.testing.assert_array_equal(metrics.match_greedy(np.array([[0.49, 0.5]])), [1])
    assert metrics.match_greedy(np.zeros((2, 0))).tolist() == [-1, -1]
    assert metrics.match_greedy(np.zeros((0, 2))).tolist() == []


def test_matching_is_greedy_not_optimal_and_respects_categories():
    # Greedy takes 0.9 first although 0.8 + 0.8 would match both (documented behaviour).
    iou = np.array([[0.9, 0.8], [0.8, 0.0]])
    np.testing.assert_array_equal(metrics.match_greedy(iou), [0, -1])
    # With categories: gt 0 (label 1) may only take pred 1 (label 1).
    np.testing.assert_array_equal(
        metrics.match_greedy(iou, gt_labels=np.array([1, 2]), pred_labels=np.array([2, 1])), [1, 0])
    # Ties: lower gt index wins.
    np.testing.assert_array_equal(metrics.match_greedy(np.array([[0.7], [0.7]])), [0, -1])


def test_instance_scores_unmatched_is_zero_and_occluded_part():
    h = w = 10
    gt_amodal = np.stack([rect(h, w, 0, 4, 0, 8), rect(h, w, 5, 9, 0, 4)])
    gt_visible = np.stack([rect(h, w, 0, 4, 0, 4), rect(h, w, 5, 9, 0, 4)])   # gt 0 half hidden
    pred_amodal = np.stack([rect(h, w, 0, 4, 0, 6)])                          # covers half of the hidden part
    amodal, occluded = metrics.instance_scores(np.array([0, -1]), gt_amodal, gt_visible, pred_amodal)
    np.testing.assert_allclose(amodal, [24 / 32, 0.0])
    # hidden gt = cols 4..8 (16 px), hidden pred = cols 4..6 (8 px) -> 0.5
    np.testing.assert_allclose(occluded, [0.5, 0.0])


# ---------------------------------------------------------------- aggregation

def test_category_averaging_differs_from_instance_averaging():
    labels = np.array([1, 1, 1, 2])
    iou = np.array([1.0, 1.0, 1.0, 0.0])
    rates = np.array([0.0, 0.1, 0.3, 0.6])
    out = metrics.summarize(labels, rates, iou, iou, {1: "a", 2: "b", 3: "c"})
    assert out["miou"] == pytest.approx(0.5)
    assert out["instance_miou"] == pytest.approx(0.75)
    assert out["per_category"]["a"] == {"miou": 1.0, "occluded_miou": 1.0, "count": 3, "occluded_count": 2}
    assert out["per_category"]["c"]["miou"] is None and out["per_category"]["c"]["count"] == 0
    # occluded: instances with rate >= 0.05 -> a: (1, 1), b: (0) -> mean of categories 0.5
    assert out["occluded_miou"] == pytest.approx(0.5)


def test_matched_occluded_miou_leaves_out_what_step_1_missed():
    labels = np.array([1, 1, 2, 2, 3])
    rates = np.array([0.3, 0.6, 0.2, 0.0, 0.7])
    occluded_iou = np.array([0.8, 0.0, 0.4, 1.0, 0.0])  # unmatched instances score 0
    matched = np.array([True, False, True, True, False])
    out = metrics.summarize(labels, rates, occluded_iou, occluded_iou, matched=matched)
    assert out["occluded_miou"] == pytest.approx((0.4 + 0.4 + 0.0) / 3)  # a: (0.8, 0), b: 0.4, c: 0
    # matched and occluded: a: 0.8, b: 0.4 (the unoccluded b instance and category c drop out)
    assert out["matched_occluded_miou"] == pytest.approx(0.6) and out["matched_occluded_count"] == 2
    assert "matched_occluded_miou" not in metrics.summarize(labels, rates, occluded_iou, occluded_iou)


def test_occlusion_bins_partition_the_instances():
    rates = np.array([0.0, 0.0499, 0.05, 0.2499, 0.25, 0.4999, 0.5, 0.99, 1.0])
    np.testing.assert_array_equal(metrics.occlusion_bin(rates), [0, 0, 1, 1, 2, 2, 3, 3, 3])
    rng = np.random.default_rng(3)
    rates = rng.random(200)
    out = metrics.summarize(rng.integers(1, 4, 200), rates, rng.random(200), rng.random(200))
    assert sum(b["count"] for b in out["by_occlusion"].values()) == 200
    assert list(out["by_occlusion"]) == list(metrics.OCCLUSION_BIN_LABELS)


def test_summarize_empty():
    out = metrics.summarize(np.zeros(0), np.zeros(0), np.zeros(0), np.zeros(0), {1: "a"})
    assert out["miou"] is None and out["occluded_miou"] is None and out["per_category"]["a"]["count"] == 0


# ---------------------------------------------------------------- COCO AP

def _coco_case(shift: int = 0):
    h = w = 32
    masks = [rect(h, w, 2, 12, 2, 14), rect(h, w, 15, 30, 5, 20), rect(h, w, 4, 20, 18, 30)]
    images = [{"id": 7, "height": h, "width": w}, {"id": 9, "height": h, "width": w}]
    gts = [{"image_id": 7, "category_id": 1, "segmentation": encode_rle(masks[0])},
           {"image_id": 7, "category_id": 2, "segmentation": encode_rle(masks[1])},
           {"image_id": 9, "category_id": 1, "segmentation": encode_rle(masks[2])}]
    dets = [{**g, "segmentation": encode_rle(np.roll(m, shift, axis=1)), "score": 0.9}
            for g, m in zip(gts, masks)]
    return images, gts, dets


def test_coco_ap_is_one_for_ground_truth_and_drops_when_shifted():
    images, gts, dets = _coco_case()
    ap = metrics.coco_mask_ap(images, gts, dets, [1, 2, 3])
    assert ap == {"AP": pytest.approx(1.0), "AP50": pytest.approx(1.0), "AP75": pytest.approx(1.0)}
    images, gts, dets = _coco_case(shift=3)
    shifted = metrics.coco_mask_ap(images, gts, dets, [1, 2, 3])
    assert shifted["AP"] < 0.9 and shifted["AP75"] < 1.0
    assert shifted["AP50"] >= shifted["AP75"]


def test_coco_ap_without_detections_or_ground_truth():
    images, gts, _ = _coco_case()
    assert metrics.coco_mask_ap(images, gts, [], [1, 2]) == {"AP": 0.0, "AP50": 0.0, "AP75": 0.0}
    assert metrics.coco_mask_ap(images, [], [], [1, 2]) == {"AP": None, "AP50": None, "AP75": None}


# ---------------------------------------------------------------- convex hull baseline

def _hull_reference(mask: np.ndarray) -> np.ndarray:
    """Slow reference: pixel centres inside the Delaunay triangulation of all mask pixels."""
    pts = np.argwhere(mask).astype(float)
    grid = np.argwhere(np.ones_like(mask)).astype(float)
    inside = Delaunay(pts).find_simplex(grid, tol=1e-9) >= 0
    return inside.reshape(mask.shape)


def test_convex_hull_matches_reference_and_contains_mask():
    rng = np.random.default_rng(4)
    checked = 0
    for i in range(30):
        h, w = (20, 24) if i < 20 else (70, 90)
        mask = np.zeros((h, w), bool)
        for _ in range(rng.integers(1, 4)):
            r, c = rng.integers(0, h - 2), rng.integers(0, w - 2)
            mask[r:r + rng.integers(1, h // 3), c:c + rng.integers(1, w // 3)] = True
        if i % 3 == 0:
            mask &= rng.random((h, w)) < 0.2   # scattered pixels: many hull facets
        hull = convex_hull_mask(mask)
        assert (hull >= mask).all()
        try:
            reference = _hull_reference(mask)
        except QhullError:  # collinear pixels: the hand cases below cover them
            continue
        np.testing.assert_array_equal(hull, reference)
        checked += 1
    assert checked >= 25


def test_convex_hull_hand_cases():
    # An L of width 1: the hull is the lower-left triangle.
    mask = np.zeros((4, 4), bool)
    mask[:, 0] = True
    mask[3, :] = True
    np.testing.assert_array_equal(convex_hull_mask(mask), np.tril(np.ones((4, 4), bool)))
    # Two dots on a diagonal: the segment between them.
    mask = np.zeros((5, 5), bool)
    mask[0, 0] = mask[4, 4] = True
    np.testing.assert_array_equal(convex_hull_mask(mask), np.eye(5, dtype=bool))
    # One pixel, empty.
    one = np.zeros((3, 3), bool)
    one[1, 2] = True
    np.testing.assert_array_equal(convex_hull_mask(one), one)
    assert not convex_hull_mask(np.zeros((3, 3), bool)).any()


def test_masks_to_boxes():
    masks = np.stack([rect(8, 10, 2, 5, 3, 9), np.zeros((8, 10), bool)])
    np.testing.assert_array_equal(masks_to_boxes(masks), [[3, 2, 9, 5], [0, 0, 0, 0]])


# ---------------------------------------------------------------- paired bootstrap

def _scores(rng, num_images: int = 30):
    """Random per-instance scores of two methods, 1-7 instances per image, 4 categories of unequal
    frequency; a gains more on the rarer categories."""
    images = np.repeat(np.arange(100, 100 + num_images), rng.integers(1, 8, num_images))
    labels = rng.choice([1, 2, 3, 4], len(images), p=[0.55, 0.25, 0.15, 0.05])
    b = rng.random(len(images))
    a = np.clip(b + rng.normal(0.01 * labels, 0.1), 0, 1)
    return a, b, labels, images


def _bootstrap_reference(a, b, labels, images, select, resamples, seed):
    """The same resamples, drawn image by image and averaged with category_averaged."""
    ids = np.unique(images)
    draws = np.random.default_rng(seed).integers(0, len(ids), size=(resamples, len(ids)))
    out = []
    for row in draws:
        idx = np.concatenate([np.flatnonzero((images == ids[i]) & select) for i in row])
        if len(idx) == 0:  # left out
            continue
        out.append(metrics.category_averaged(a[idx], labels[idx]) - metrics.category_averaged(b[idx], labels[idx]))
    return np.array(out)


def test_bootstrap_difference_matches_an_image_by_image_reference():
    rng = np.random.default_rng(3)
    a, b, labels, images = _scores(rng)
    select = rng.random(len(a)) < 0.6
    got = metrics.bootstrap_difference(a, b, labels, images, select=select, resamples=300, seed=7)
    ref = _bootstrap_reference(a, b, labels, images, select, 300, 7)
    low, high = np.quantile(ref, [0.025, 0.975])
    assert got["low"] == pytest.approx(low, abs=1e-12) and got["high"] == pytest.approx(high, abs=1e-12)
    assert got["share_not_above_zero"] == pytest.approx(np.mean(ref <= 0))
    expected = (metrics.category_averaged(a[select], labels[select])
                - metrics.category_averaged(b[select], labels[select]))
    assert got["difference"] == pytest.approx(expected, abs=1e-12)
    assert got["low"] < got["difference"] < got["high"]
    assert got["resamples_without_instances"] == 0
    # the mean over categories, not over instances (which would weigh the frequent categories up)
    assert abs(got["difference"] - (a[select] - b[select]).mean()) > 1e-3

    select[images >= 102] = False  # only two images of 30 keep selected instances: some resamples draw none
    got = metrics.bootstrap_difference(a, b, labels, images, select=select, resamples=300, seed=7)
    ref = _bootstrap_reference(a, b, labels, images, select, 300, 7)
    assert got["resamples_without_instances"] == 300 - len(ref) > 0
    assert (got["low"], got["high"]) == pytest.approx(tuple(np.quantile(ref, [0.025, 0.975])), abs=1e-12)


def test_bootstrap_difference_of_shifted_scores_is_the_shift_in_every_resample():
    rng = np.random.default_rng(4)
    a, b, labels, images = _scores(rng)
    same = metrics.bootstrap_difference(b, b, labels, images, resamples=100)
    assert same["difference"] == same["low"] == same["high"] == 0.0 and same["share_not_above_zero"] == 1.0
    shifted = metrics.bootstrap_difference(b + 0.1, b, labels, images, resamples=100)
    for key in ("difference", "low", "high"):
        assert shifted[key] == pytest.approx(0.1, abs=1e-12)
    assert shifted["share_not_above_zero"] == 0.0


def test_bootstrap_interval_narrows_with_more_images_and_is_seeded():
    rng = np.random.default_rng(5)
    few = metrics.bootstrap_difference(*_scores(rng, 20), resamples=500)
    many = metrics.bootstrap_difference(*_scores(rng, 2000), resamples=500)
    assert many["high"] - many["low"] < (few["high"] - few["low"]) / 4
    assert many["low"] > 0.0  # a true gain of 0.01-0.04 is found on 2000 images
    args = _scores(np.random.default_rng(6))
    assert metrics.bootstrap_difference(*args, seed=1) == metrics.bootstrap_difference(*args, seed=1)
    assert metrics.bootstrap_difference(*args, seed=1)["low"] != metrics.bootstrap_difference(*args, seed=2)["low"]


def test_bootstrap_difference_without_instances_and_bad_arguments():
    a, b, labels, images = _scores(np.random.default_rng(8))
    empty = metrics.bootstrap_difference(a, b, labels, images, select=np.zeros(len(a), bool))
    assert empty["difference"] is None and empty["low"] is None
    with pytest.raises(ValueError, match="same length"):
        metrics.bootstrap_difference(a, b[:-1], labels, images)
    with pytest.raises(ValueError, match="level"):
        metrics.bootstrap_difference(a, b, labels, images, level=1.5)
