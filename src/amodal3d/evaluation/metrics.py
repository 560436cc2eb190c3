"""Evaluation metrics as pure functions on numpy arrays (see ``docs/metrics.md`` for the definitions).

Masks are bool arrays ``(N, H, W)``; labels are int category ids ``(N,)``; ``occlude_rate`` is
``1 - visible area / amodal area`` in [0, 1]. Nothing here reads files or knows about predictors.

- :func:`mask_iou_matrix` — all pairwise IoUs of two mask stacks (one matrix product).
- :func:`match_greedy` — every ground-truth instance to at most one prediction, best IoU first.
- :func:`paired_iou`, :func:`instance_scores` — per-instance amodal and occluded-part IoU.
- :func:`summarize` — per-category means, mIoU, occluded mIoU, occlusion bins.
- :func:`coco_mask_ap` — COCO mask AP / AP50 / AP75 with pycocotools, from in-memory annotations.
- :func:`bootstrap_difference` — a paired bootstrap over images of the difference of two methods' mIoU.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Mapping, Sequence

import numpy as np

from amodal3d.masks import EMPTY_IOU

IOU_THRESHOLD = 0.5
OCCLUDED_MIN_RATE = 0.05
# Bins of occlude_rate: [lo, hi), the last one closed [0.5, 1].
OCCLUSION_BINS: tuple[tuple[float, float], ...] = ((0.0, 0.05), (0.05, 0.25), (0.25, 0.5), (0.5, 1.0))
OCCLUSION_BIN_LABELS: tuple[str, ...] = ("[0, 0.05)", "[0.05, 0.25)", "[0.25, 0.5)", "[0.5, 1]")

# Pixels per chunk of the IoU matrix product (bounds the float copies of the masks to ~64 MB).
_CHUNK_ELEMENTS = 1 << 24


def _flat(masks: np.ndarray) -> np.ndarray:
    masks = np.asarray(masks)
    if masks.ndim != 3:
        raise ValueError(f"expected a mask stack (N, H, W), got shape {masks.shape}")
    return masks.reshape(masks.shape[0], masks.shape[1] * masks.shape[2]).astype(bool, copy=False)


def mask_areas(masks: np.ndarray) -> np.ndarray:
    """Pixel counts of a mask stack (N, H, W) bool -> (N,) int64."""
    return _flat(masks).sum(axis=1, dtype=np.int64)


def mask_iou_matrix(a: np.ndarray, b: np.ndarray, empty: float = 0.0) -> np.ndarray:
    """Pairwise IoU of two mask stacks ``a`` (N, H, W) and ``b`` (M, H, W) bool -> (N, M) float64.

    Intersections come from one matrix product of the flattened masks (exact: float64 for counts);
    the IoU of two empty masks (union 0) is ``empty``."""
    fa, fb = _flat(a), _flat(b)
    if fa.shape[1] != fb.shape[1]:
        raise ValueError(f"mask sizes differ: {np.shape(a)[1:]} vs {np.shape(b)[1:]}")
    n, m = len(fa), len(fb)
    inter = np.zeros((n, m), np.float64)
    if n and m:
        dtype = np.float32 if fa.shape[1] < (1 << 24) else np.float64  # float32 counts are exact below 2^24
        fa_f = fa.astype(dtype)
        step = max(1, _CHUNK_ELEMENTS // max(fa.shape[1], 1))
        for start in range(0, m, step):
            inter[:, start:start + step] = fa_f @ fb[start:start + step].astype(dtype).T
    union = fa.sum(1, dtype=np.int64)[:, None] + fb.sum(1, dtype=np.int64)[None, :] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, inter / np.maximum(union, 1), empty)
    return iou


def paired_iou(a: np.ndarray, b: np.ndarray, empty: float = EMPTY_IOU) -> np.ndarray:
    """Row-wise IoU of two equally long mask stacks (N, H, W) -> (N,) float64; both empty -> ``empty``.

    ``empty`` defaults to the scoring rule, :data:`amodal3d.masks.EMPTY_IOU` (1: two empty masks agree),
    unlike :func:`mask_iou_matrix` used for matching (0: an empty mask never matches)."""
    fa, fb = _flat(a), _flat(b)
    if fa.shape != fb.shape:
        raise ValueError(f"paired_iou: shapes differ: {np.shape(a)} vs {np.shape(b)}")
    inter = np.logical_and(fa, fb).sum(1, dtype=np.int64)
    union = np.logical_or(fa, fb).sum(1, dtype=np.int64)
    return np.where(union > 0, inter / np.maximum(union, 1), empty).astype(np.float64)


def match_greedy(iou: np.ndarray, threshold: float = IOU_THRESHOLD, gt_labels: np.ndarray | None = None,
                 pred_labels: np.ndarray | None = None) -> np.ndarray:
    """Match ground truths (rows) to predictions (columns) of an IoU matrix (G, P).

    All pairs with ``iou >= threshold`` (and equal labels when both label arrays are given) are
    visited from the highest IoU down (ties: lower gt index, then lower prediction index first);
    a pair is taken when neither side is taken yet. Returns (G,) int64: the matched prediction
    index, or -1. Each prediction is used at most once."""
    iou = np.asarray(iou, np.float64)
    g, p = iou.shape
    match = np.full(g, -1, np.int64)
    if g == 0 or p == 0:
        return match
    valid = iou >= threshold
    if gt_labels is not None and pred_labels is not None:
        valid &= np.asarray(gt_labels)[:, None] == np.asarray(pred_labels)[None, :]
    rows, cols = np.nonzero(valid)  # row-major: ties keep (gt, pred) order under a stable sort
    order = np.argsort(-iou[rows, cols], kind="stable")
    pred_taken = np.zeros(p, bool)
    for r, c in zip(rows[order].tolist(), cols[order].tolist()):
        if match[r] < 0 and not pred_taken[c]:
            match[r] = c
            pred_taken[c] = True
    return match


def instance_scores(match: np.ndarray, gt_amodal: np.ndarray, gt_visible: np.ndarray,
                    pred_amodal: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per ground-truth instance: (amodal IoU, occluded-part IoU), each (G,) float64, 0 if unmatched.

    ``match`` (G,) from :func:`match_greedy`; ``gt_amodal``/``gt_visible`` (G, H, W),
    ``pred_amodal`` (P, H, W) bool. The occluded part IoU is that of ``pred amodal & ~gt visible``
    with ``gt amodal & ~gt visible`` (computed for all instances; selection by occlusion is
    :func:`summarize`'s job)."""
    match = np.asarray(match, np.int64)
    g = len(match)
    amodal = np.zeros(g, np.float64)
    occluded = np.zeros(g, np.float64)
    hit = np.flatnonzero(match >= 0)
    if len(hit):
        pa = np.asarray(pred_amodal, bool)[match[hit]]
        ga = np.asarray(gt_amodal, bool)[hit]
        gv = np.asarray(gt_visible, bool)[hit]
        amodal[hit] = paired_iou(pa, ga)
        occluded[hit] = paired_iou(pa & ~gv, ga & ~gv)
    return amodal, occluded


def occlusion_bin(occlude_rate: np.ndarray) -> np.ndarray:
    """Bin index (0..3) of each ``occlude_rate`` (N,) in :data:`OCCLUSION_BINS` -> (N,) int64."""
    edges = np.array([hi for _, hi in OCCLUSION_BINS[:-1]])
    return np.digitize(np.asarray(occlude_rate, np.float64), edges, right=False).astype(np.int64)


def category_means(values: np.ndarray, labels: np.ndarray) -> dict[int, tuple[float, int]]:
    """Mean of ``values`` (N,) per label (N,) -> {label: (mean, count)} for the labels present."""
    values, labels = np.asarray(values, np.float64), np.asarray(labels, np.int64)
    out: dict[int, tuple[float, int]] = {}
    if len(labels) == 0:
        return out
    uniq, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse, weights=values, minlength=len(uniq))
    for label, s, c in zip(uniq.tolist(), sums.tolist(), counts.tolist()):
        out[int(label)] = (s / c, int(c))
    return out


def category_averaged(values: np.ndarray, labels: np.ndarray) -> float | None:
    """Per-category mean, then the mean over categories present; None without instances."""
    means = category_means(values, labels)
    return float(np.mean([m for m, _ in means.values()])) if means else None


def bootstrap_difference(a: np.ndarray, b: np.ndarray, labels: np.ndarray, images: np.ndarray,
                         select: np.ndarray | None = None, resamples: int = 2000, level: float = 0.95,
                         seed: int = 0) -> dict:
    """Paired bootstrap of ``category_averaged(a) - category_averaged(b)`` over images.

    ``a``, ``b`` (N,): two methods' scores of the same ground-truth instances; ``labels`` (N,) their
    categories; ``images`` (N,) the image each belongs to (the unit that is resampled, since the
    instances of one image are not independent); ``select`` (N,) bool: the instances averaged (e.g.
    the occluded ones), while every image is drawn. Each resample draws as many images as there
    are, with replacement, and averages over the categories present in it.

    Returns ``difference`` (on the data as given), ``low``/``high`` (the central ``level`` interval of
    the resampled differences), ``share_not_above_zero`` (the share of resamples with difference
    <= 0), ``resamples``, ``level``, ``seed`` and ``resamples_without_instances`` (resamples that drew
    no selected instance, left out); values None without selected instances."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    labels, images = np.asarray(labels, np.int64), np.asarray(images)
    select = np.ones(len(a), bool) if select is None else np.asarray(select, bool)
    if not (len(a) == len(b) == len(labels) == len(images) == len(select)):
        raise ValueError("bootstrap_difference: a, b, labels, images and select must have the same length")
    if resamples < 1 or not 0.0 < level < 1.0:
        raise ValueError(f"bootstrap_difference: resamples must be >= 1 and level in (0, 1), got "
                         f"{resamples}, {level}")
    out = {"difference": None, "low": None, "high": None, "share_not_above_zero": None,
           "resamples": resamples, "level": level, "seed": seed, "resamples_without_instances": resamples}
    if not select.any():
        return out
    _, image_index = np.unique(images, return_inverse=True)
    num_images = int(image_index.max()) + 1
    _, category_index = np.unique(labels[select], return_inverse=True)
    num_categories = int(category_index.max()) + 1
    cell = image_index[select] * num_categories + category_index  # (image, category) of each instance
    diff_sums = np.bincount(cell, weights=(a - b)[select], minlength=num_images * num_categories)
    counts = np.bincount(cell, minlength=num_images * num_categories).astype(np.float64)
    diff_sums = diff_sums.reshape(num_images, num_categories)
    counts = counts.reshape(num_images, num_categories)

    def averaged(times_drawn: np.ndarray) -> np.ndarray:
        """(R, images) times each image is drawn -> (R,) category-averaged differences."""
        n = times_drawn @ counts
        present = n > 0
        per_category = np.where(present, times_drawn @ diff_sums / np.maximum(n, 1.0), 0.0)
        with np.errstate(invalid="ignore"):  # NaN for a resample without selected instances
            return per_category.sum(1) / present.sum(1)

    draws = np.random.default_rng(seed).integers(0, num_images, size=(resamples, num_images))
    rows = np.repeat(np.arange(resamples), num_images)
    times_drawn = np.bincount(rows * num_images + draws.ravel(),
                              minlength=resamples * num_images).reshape(resamples, num_images).astype(np.float64)
    diffs = averaged(times_drawn)
    diffs = diffs[np.isfinite(diffs)]
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(diffs, [tail, 1.0 - tail])
    out.update(difference=float(averaged(np.ones((1, num_images)))[0]), low=float(low), high=float(high),
               share_not_above_zero=float(np.mean(diffs <= 0.0)), resamples_without_instances=resamples - len(diffs))
    return out


def summarize(labels: np.ndarray, occlude_rate: np.ndarray, amodal_iou: np.ndarray, occluded_iou: np.ndarray,
              category_names: Mapping[int, str] | None = None, matched: np.ndarray | None = None) -> dict:
    """Aggregate per-instance scores (all (N,)) into the paper's figures.

    Returns a JSON-ready dict: ``miou`` and ``occluded_miou`` (category-averaged; the latter over
    instances with ``occlude_rate >= 0.05``), ``instance_miou`` (plain mean over instances),
    ``per_category`` (name -> {miou, occluded_miou, count, occluded_count}, every name of
    ``category_names`` listed, None where a category has no instance) and ``by_occlusion``
    (bin label -> {miou, count}, category-averaged within each bin). With ``matched`` (N,) bool (which
    instances found a prediction), also ``matched_occluded_miou``: the occluded mIoU over the occluded
    instances that were matched, i.e. how well a method completes what step 1 found. Values in [0, 1]
    or None."""
    labels = np.asarray(labels, np.int64)
    rate = np.asarray(occlude_rate, np.float64)
    amodal_iou = np.asarray(amodal_iou, np.float64)
    occluded_iou = np.asarray(occluded_iou, np.float64)
    if not (len(labels) == len(rate) == len(amodal_iou) == len(occluded_iou)):
        raise ValueError("summarize: labels, occlude_rate and scores must have the same length")
    occluded = rate >= OCCLUDED_MIN_RATE
    per_all = category_means(amodal_iou, labels)
    per_occ = category_means(occluded_iou[occluded], labels[occluded])
    names = dict(category_names) if category_names is not None else {}
    for label in sorted(set(per_all) - set(names)):
        names[label] = str(label)
    per_category = {}
    for label, name in names.items():
        miou, count = per_all.get(label, (None, 0))
        occ_miou, occ_count = per_occ.get(label, (None, 0))
        per_category[name] = {"miou": miou, "occluded_miou": occ_miou, "count": count,
                              "occluded_count": occ_count}
    bins = occlusion_bin(rate)
    by_occlusion = {}
    for i, label in enumerate(OCCLUSION_BIN_LABELS):
        sel = bins == i
        by_occlusion[label] = {"miou": category_averaged(amodal_iou[sel], labels[sel]),
                               "count": int(sel.sum())}
    extra = {}
    if matched is not None:
        found = occluded & np.asarray(matched, bool)
        extra = {"matched_occluded_miou": category_averaged(occluded_iou[found], labels[found]),
                 "matched_occluded_count": int(found.sum())}
    return {
        "miou": category_averaged(amodal_iou, labels),
        "occluded_miou": category_averaged(occluded_iou[occluded], labels[occluded]),
        **extra,
        "instance_miou": float(amodal_iou.mean()) if len(amodal_iou) else None,
        "per_category": per_category,
        "by_occlusion": by_occlusion,
    }


def coco_mask_ap(images: Sequence[Mapping], gt_annotations: Sequence[Mapping], detections: Sequence[Mapping],
                 category_ids: Sequence[int]) -> dict[str, float | None]:
    """COCO mask AP (pycocotools ``COCOeval``, ``iouType="segm"``, default parameters) -> {AP, AP50, AP75}.

    ``images``: ``{id, height, width}``; ``gt_annotations``: ``{image_id, category_id, segmentation
    (RLE), iscrowd?}``; ``detections``: ``{image_id, category_id, segmentation (RLE), score}``.
    Areas, boxes and annotation ids are filled in here. Values in [0, 1]; None when no ground truth
    instance exists (COCO's -1); 0 when there is ground truth but no detection."""
    from pycocotools import mask as mask_utils
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    def rle(segm: Mapping) -> dict:
        counts = segm["counts"]
        if isinstance(counts, list):
            return mask_utils.frPyObjects(dict(segm), *segm["size"])
        if isinstance(counts, str):
            counts = counts.encode("ascii")
        return {"size": list(segm["size"]), "counts": counts}

    keys = ("AP", "AP50", "AP75")
    if not gt_annotations:
        return dict.fromkeys(keys)
    if not detections:
        return dict.fromkeys(keys, 0.0)
    anns = []
    for i, ann in enumerate(gt_annotations):
        segm = rle(ann["segmentation"])
        anns.append({"id": i + 1, "image_id": int(ann["image_id"]), "category_id": int(ann["category_id"]),
                     "segmentation": segm, "area": float(mask_utils.area(segm)),
                     "bbox": [float(v) for v in mask_utils.toBbox(segm)],
                     "iscrowd": int(ann.get("iscrowd", 0))})
    gt = COCO()
    gt.dataset = {"images": [{"id": int(im["id"]), "height": int(im["height"]), "width": int(im["width"])}
                             for im in images],
                  "annotations": anns,
                  "categories": [{"id": int(c), "name": str(c)} for c in category_ids]}
    dets = [{"image_id": int(d["image_id"]), "category_id": int(d["category_id"]),
             "segmentation": rle(d["segmentation"]), "score": float(d["score"])} for d in detections]
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
        dt = gt.loadRes(dets)
        coco_eval = COCOeval(gt, dt, iouType="segm")
        coco_eval.evaluate()
        coco_eval.accumulate()
        coco_eval.summarize()
    return {k: (float(v) if v >= 0 else None) for k, v in zip(keys, coco_eval.stats[:3])}
