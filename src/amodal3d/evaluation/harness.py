"""The evaluation harness: run a predictor over a dataset split and compute every figure of
``docs/metrics.md`` (mIoU, occluded mIoU, occlusion bins, COCO mask AP), plus the tables.
Building a method's predictor by name is :func:`amodal3d.methods.build_predictor`.

- :func:`evaluate` — predictor + dataset split + protocol -> JSON-ready results dict: it reads each
  image's truth (:func:`read_truth`), scores the image (:func:`score_image`) and sums up (:func:`aggregate`).
- :func:`format_table`, :func:`format_summary`, :func:`markdown_table` — render results.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from amodal3d.categories import DEFAULT, Taxonomy, relabel
from amodal3d.errors import Amodal3dError, DataError
from amodal3d.evaluation import metrics
from amodal3d.masks import masks_to_boxes
from amodal3d.structures import UNKNOWN_CATEGORY, GivenVisible, Instances, Predictor

PROTOCOLS = ("end-to-end", "given-visible")
# Detections kept for evaluation (every method that detects uses the same): the detector's own floor
# (``box_score_thresh``), so every object it proposes: AP needs the whole ranking, and mIoU matches each
# ground truth to its best detection, so extra ones cost nothing there. Chosen on validation against
# 0.1 and 0.2 (benchmarks/eval_threshold.py, docs/metrics.md: 673 objects matched against 611 at 0.2).
EVAL_SCORE_THRESHOLD = 0.05


def _check_output(out: object, height: int, width: int, given: GivenVisible | None, where: str) -> Instances:
    if not isinstance(out, Instances):
        raise Amodal3dError(f"{where}: the predictor returned {type(out).__name__}, not Instances")
    for key in ("visible_masks", "amodal_masks"):
        shape = np.shape(getattr(out, key))
        if len(shape) != 3 or tuple(shape[1:]) != (height, width):
            raise Amodal3dError(f"{where}: predicted {key} have shape {shape}, "
                                f"expected (N, {height}, {width})")
    if given is not None and len(out.labels) != len(given.labels):
        raise Amodal3dError(f"{where}: given-visible protocol: the predictor returned {len(out.labels)} "
                            f"instances for {len(given.labels)} given ones")
    return out


def _category_names(categories: list[dict]) -> dict[int, str]:
    """Category id -> unique display name, in id order."""
    names: dict[int, str] = {}
    for cat in sorted(categories, key=lambda c: int(c["id"])):
        name = str(cat.get("name", cat["id"]))
        names[int(cat["id"])] = name if name not in names.values() else f"{name}#{cat['id']}"
    return names


@dataclass
class ImageTruth:
    """The ground truth of one image: (N, H, W) bool masks, (N,) labels, crowd flags and occlusion rates
    (computed from the masks where the annotation has none)."""

    amodal: np.ndarray
    visible: np.ndarray
    labels: np.ndarray
    crowd: np.ndarray
    rates: np.ndarray


def read_truth(anns: list[dict], height: int, width: int, where: str, image_name: str) -> ImageTruth:
    """The ground truth of one image from its annotations (``where``: the annotation file, for errors)."""
    from amodal3d.masks import decode_rle

    def stack(key: str) -> np.ndarray:
        if not anns:
            return np.zeros((0, height, width), bool)
        masks = np.stack([decode_rle(a[key]) for a in anns])
        if masks.shape[1:] != (height, width):
            raise DataError(f"{where}: {key} of image {image_name} has size {masks.shape[1:]}, "
                            f"the image {(height, width)}")
        return masks

    amodal, visible = stack("amodal_segm"), stack("visible_segm")
    labels = np.array([a["category_id"] for a in anns], np.int64)
    crowd = np.array([bool(a.get("iscrowd", 0)) for a in anns], bool)
    rates = np.array([a["occlude_rate"] if "occlude_rate" in a else np.nan for a in anns], np.float64)
    missing = np.isnan(rates)
    if missing.any():
        amodal_area = metrics.mask_areas(amodal[missing])
        rates[missing] = 1.0 - metrics.mask_areas(visible[missing]) / np.maximum(amodal_area, 1)
    return ImageTruth(amodal, visible, labels, crowd, rates)


@dataclass
class ImageScores:
    """One image scored: per ground-truth instance (crowd left out) its label, occlusion rate, amodal and
    occluded IoU and whether a prediction matched it; the image's COCO entries for AP; predictor time."""

    image_id: int
    labels: np.ndarray
    rates: np.ndarray
    amodal_iou: np.ndarray
    occluded_iou: np.ndarray
    matched: np.ndarray
    coco_image: dict
    gt_amodal: list[dict]
    gt_visible: list[dict]
    dt_amodal: list[dict]
    dt_visible: list[dict]
    num_predictions: int
    seconds: float


def score_image(predictor: Predictor, image: np.ndarray, truth: ImageTruth, image_id: int, where: str, *,
                protocol: str, ours: bool, agnostic_ap: bool, match_on: str, iou_threshold: float,
                match_categories: bool) -> ImageScores:
    """Run ``predictor`` on one image and score it against ``truth`` (the rules of :func:`evaluate`)."""
    from amodal3d.masks import encode_rle

    h, w = image.shape[:2]
    gt_labels, crowd = truth.labels, truth.crowd
    given = None
    if protocol == "given-visible":
        keep = ~crowd
        labels = gt_labels[keep] if ours else np.full(int(keep.sum()), UNKNOWN_CATEGORY, np.int64)
        given = GivenVisible(visible_masks=truth.visible[keep], labels=labels,
                             boxes=masks_to_boxes(truth.visible[keep]))
    start = time.perf_counter()
    out = predictor.predict(image, given)
    seconds = time.perf_counter() - start
    out = _check_output(out, h, w, given, where)
    pred_amodal = np.asarray(out.amodal_masks, bool)
    pred_visible = np.asarray(out.visible_masks, bool)
    pred_labels = np.asarray(out.labels, np.int64)
    scores = np.asarray(out.scores, np.float64)
    num_predictions = len(pred_labels)

    eval_idx = np.flatnonzero(~crowd)
    if given is not None:
        match = np.arange(len(eval_idx), dtype=np.int64)
        pred_labels = gt_labels[eval_idx]  # scored under the ground truth's own categories
        scores = np.ones(len(match))
    else:
        gt_for_match = (truth.visible if match_on == "visible" else truth.amodal)[eval_idx]
        pr_for_match = pred_visible if match_on == "visible" else pred_amodal
        iou = metrics.mask_iou_matrix(gt_for_match, pr_for_match)
        match = metrics.match_greedy(iou, iou_threshold,
                                     gt_labels[eval_idx] if match_categories else None,
                                     pred_labels if match_categories else None)
    amodal_iou, occluded_iou = metrics.instance_scores(match, truth.amodal[eval_idx], truth.visible[eval_idx],
                                                       pred_amodal)

    gt_ap_labels = np.ones_like(gt_labels) if agnostic_ap else gt_labels
    pred_ap_labels = np.ones_like(pred_labels) if agnostic_ap else pred_labels
    gt_amodal, gt_visible, dt_amodal, dt_visible = [], [], [], []
    for i in range(len(gt_labels)):
        common = {"image_id": image_id, "category_id": int(gt_ap_labels[i]), "iscrowd": int(crowd[i])}
        gt_amodal.append({**common, "segmentation": encode_rle(truth.amodal[i])})
        gt_visible.append({**common, "segmentation": encode_rle(truth.visible[i])})
    for j in range(len(pred_labels)):
        common = {"image_id": image_id, "category_id": int(pred_ap_labels[j]), "score": float(scores[j])}
        dt_amodal.append({**common, "segmentation": encode_rle(pred_amodal[j])})
        dt_visible.append({**common, "segmentation": encode_rle(pred_visible[j])})
    return ImageScores(image_id, gt_labels[eval_idx], truth.rates[eval_idx], amodal_iou, occluded_iou, match >= 0,
                       {"id": image_id, "height": h, "width": w}, gt_amodal, gt_visible, dt_amodal, dt_visible,
                       num_predictions, seconds)


def aggregate(scored: list[ImageScores], names: dict[int, str], agnostic_ap: bool) -> dict:
    """The figures over every scored image: the mIoU summary (:func:`metrics.summarize`), amodal and visible
    COCO mask AP, counts and the per-instance lists (for :mod:`amodal3d.evaluation.compare`)."""

    def cat(key: str, dtype) -> np.ndarray:
        parts = [getattr(s, key) for s in scored]
        return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype)

    matched = cat("matched", bool)
    labels, rates = cat("labels", np.int64), cat("rates", np.float64)
    amodal, occluded = cat("amodal_iou", np.float64), cat("occluded_iou", np.float64)
    image_ids = [np.full(len(s.labels), s.image_id, np.int64) for s in scored]
    summary = metrics.summarize(labels, rates, amodal, occluded, names, matched=matched)
    category_ids = [1] if agnostic_ap else list(names)
    coco_images = [s.coco_image for s in scored]

    def entries(key: str) -> list[dict]:
        return [entry for s in scored for entry in getattr(s, key)]

    amodal_ap = metrics.coco_mask_ap(coco_images, entries("gt_amodal"), entries("dt_amodal"), category_ids)
    visible_ap = metrics.coco_mask_ap(coco_images, entries("gt_visible"), entries("dt_visible"), category_ids)
    return {
        "num_instances": int(sum(len(s.labels) for s in scored)),
        "num_predictions": sum(s.num_predictions for s in scored),
        "num_matched": int(matched.sum()),
        "summary": summary,
        "amodal_ap": amodal_ap,
        "visible_ap": visible_ap,
        "instances": {  # per ground-truth instance (crowd left out), for paired comparisons (compare.py)
            "image_id": (np.concatenate(image_ids) if image_ids else np.zeros(0, np.int64)).tolist(),
            "category_id": labels.tolist(),
            "occlude_rate": np.round(rates, 4).tolist(), "amodal_iou": np.round(amodal, 6).tolist(),
            "occluded_iou": np.round(occluded, 6).tolist(), "matched": matched.tolist()},
    }


def model_labels(categories: list[dict], taxonomy: Taxonomy, category_map: dict | None = None,
                 map_source: str | Path = "--category-map",
                 source: str | Path = "the dataset") -> dict[int, int] | None:
    """Dataset category id -> the predictor's label (0: left out), when the dataset's ``categories`` are
    the predictor's ``taxonomy`` (named as it names them; a subset is enough) or a ``category_map`` maps
    them onto it; None when they are another taxonomy (the predictor then never reads them as its own)."""
    if category_map is not None:
        dataset = Taxonomy.from_coco(categories, source)
        return relabel(dataset, model=taxonomy, category_map=category_map, map_source=map_source,
                       dataset_source=source, model_source="the predictor's weights").label_table()
    if not taxonomy.names_ids_as(categories):
        return None
    return {int(c["id"]): taxonomy.label_of(c["id"]) for c in categories}


def evaluate(predictor: Predictor, data_root: str | Path, split: str, protocol: str = "end-to-end",
             limit: int | None = None, progress: bool = True, match_on: str = "visible",
             match_categories: bool = False, iou_threshold: float = metrics.IOU_THRESHOLD,
             category_map: dict | None = None, map_source: str | Path = "--category-map") -> dict:
    """Run ``predictor`` on ``data_root``'s ``split`` and score it (definitions: ``docs/metrics.md``).

    ``protocol``: ``end-to-end`` (the predictor sees the image only; ground truth is matched to
    predictions by ``match_on`` mask IoU >= ``iou_threshold``, greedy best first, labels must agree
    only with ``match_categories``) or ``given-visible`` (it also gets the ground-truth visible
    instances and returns them in order: the matching is the identity, AP uses score 1 and the
    given labels). ``limit``: first N images only. Crowd annotations (``iscrowd``) are left out of
    mIoU and are COCO crowd regions for AP.

    Returns a JSON-ready dict: ``method, protocol, split, data, num_images, num_instances,
    num_predictions, num_matched, categories, miou, occluded_miou, instance_miou, per_category,
    by_occlusion, amodal_ap, visible_ap, images_per_s`` (predictor time only), ``wall_images_per_s``,
    ``seconds``, the matching settings and ``instances`` (per ground-truth instance: image_id,
    category_id, occlude_rate, amodal_iou, occluded_iou, matched; for
    :func:`amodal3d.evaluation.compare.compare_results`). mIoU values lie in [0, 1] (None when undefined).

    The predictor's categories are its ``taxonomy`` attribute (default: the 13 of
    :data:`amodal3d.categories.DEFAULT`); the dataset's are read as its labels when they are the same
    (or ``category_map``, name -> name, maps them onto them; categories mapped to None are left out),
    and every output names the dataset's category ids."""
    from amodal3d.data.dataset import load_annotation_file, read_image, resolve_image_path, split_paths

    if protocol not in PROTOCOLS:
        raise Amodal3dError(f"unknown protocol {protocol!r}; valid: {', '.join(PROTOCOLS)}")
    if match_on not in ("visible", "amodal"):
        raise Amodal3dError(f"match_on must be 'visible' or 'amodal', not {match_on!r}")
    method = str(getattr(predictor, "name", type(predictor).__name__))
    if protocol == "end-to-end" and getattr(predictor, "requires_given", False):
        raise Amodal3dError(f"method {method!r} under the end-to-end protocol needs a visible detector: "
                            f"pass --weights of a trained detector, or use --protocol given-visible")
    ann_file, image_dir = split_paths(data_root, split)
    data = load_annotation_file(ann_file)
    images = data["images"][:limit] if limit is not None else data["images"]
    taxonomy = getattr(predictor, "taxonomy", None) or DEFAULT
    # given-visible: the ground truth's categories are handed to the predictor only when they are the
    # model's own; otherwise (COCOA, KINS, class-agnostic) the predictor names each instance itself
    table = model_labels(data["categories"], taxonomy, category_map, map_source, ann_file)
    ours = table is not None
    names = _category_names(data["categories"])
    to_id = {}  # the predictor's label -> the dataset's category id (outputs name the dataset's ids)
    if ours:  # the truth read as the predictor's labels
        kept = {int(c["id"]) for c in data["categories"] if table.get(int(c["id"]))}
        names = {label: taxonomy.name_of(label) for label in sorted({table[i] for i in kept})}
        to_id = {label: min(i for i in kept if table[i] == label) for label in names}
    # end to end, predicted ids are the model's and the truth's another taxonomy's: AP is class-agnostic
    agnostic_ap = protocol == "end-to-end" and not ours
    if match_categories and not ours:
        raise Amodal3dError(f"--match-categories: {ann_file} names its categories in another taxonomy than "
                            f"this model's ({taxonomy.describe()}), so predicted and true ids cannot be compared")
    by_image: dict[int, list[dict]] = {}
    for ann in data["annotations"]:
        if ours:
            label = table.get(ann["category_id"], 0)
            if not label:
                continue
            ann = {**ann, "category_id": label}
        by_image.setdefault(ann["image_id"], []).append(ann)

    scored: list[ImageScores] = []
    wall_start = time.perf_counter()
    iterator = images
    if progress:
        from tqdm import tqdm

        iterator = tqdm(images, desc=f"evaluate {method}", unit="img", file=sys.stderr)
    for info in iterator:
        path = resolve_image_path(image_dir, info["file_name"], f"{ann_file}: image {info['id']}")
        image = read_image(path)
        truth = read_truth(by_image.get(info["id"], []), *image.shape[:2], str(ann_file), path.name)
        scored.append(score_image(predictor, image, truth, int(info["id"]), str(path), protocol=protocol, ours=ours,
                                  agnostic_ap=agnostic_ap, match_on=match_on, iou_threshold=iou_threshold,
                                  match_categories=match_categories))
    figures = aggregate(scored, names, agnostic_ap)
    if ours:
        figures["instances"]["category_id"] = [to_id.get(c, c) for c in figures["instances"]["category_id"]]
    predict_seconds = sum(s.seconds for s in scored)
    wall = time.perf_counter() - wall_start
    n = len(images)
    return {
        "method": method,
        "protocol": protocol,
        "split": split,
        "data": str(data_root),
        "num_images": n,
        "num_instances": figures["num_instances"],
        "num_predictions": figures["num_predictions"],
        "num_matched": figures["num_matched"],
        "categories": list(names.values()),
        **figures["summary"],
        "amodal_ap": figures["amodal_ap"],
        "visible_ap": figures["visible_ap"],
        "ap_class_agnostic": agnostic_ap,
        "images_per_s": n / predict_seconds if predict_seconds > 0 else None,
        "wall_images_per_s": n / wall if wall > 0 else None,
        "seconds": {"predictor": predict_seconds, "wall": wall},
        "instances": figures["instances"],
        "matching": {"on": "identity" if protocol == "given-visible" else match_on,
                     "iou_threshold": iou_threshold,
                     "categories_must_agree": bool(match_categories) and protocol == "end-to-end"},
    }


# ---------------------------------------------------------------- tables

def _pct(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{100.0 * value:.{digits}f}"


def _columns(results: Sequence[dict]) -> list[str]:
    """Category columns: the union of the results' categories, in first-seen order."""
    seen: dict[str, None] = {}
    for result in results:
        for name in result.get("categories") or list(result.get("per_category", {})):
            seen.setdefault(name, None)
    return list(seen)


def _label(result: dict, mixed_protocols: bool) -> str:
    method = str(result.get("method", "?"))
    return f"{method} ({result.get('protocol', '?')})" if mixed_protocols else method


def format_table(results: Sequence[dict]) -> str:
    """Plain-text table in the paper's layout: one row per result, a column per category + mIoU (x100)."""
    cats = _columns(results)
    mixed = len({r.get("protocol") for r in results}) > 1
    labels = [_label(r, mixed) for r in results]
    first = max([len("method"), *map(len, labels)])
    widths = [max(len(c), 5) for c in cats] + [5]
    header = "  ".join(["method".ljust(first), *(c.rjust(wd) for c, wd in zip([*cats, "mIoU"], widths))])
    lines = [header, "-" * len(header)]
    for label, result in zip(labels, results):
        per = result.get("per_category", {})
        cells = [_pct(per.get(c, {}).get("miou")) for c in cats] + [_pct(result.get("miou"))]
        lines.append("  ".join([label.ljust(first), *(v.rjust(wd) for v, wd in zip(cells, widths))]))
    return "\n".join(lines)


def format_summary(result: dict) -> str:
    """The figures beside the table: occluded mIoU, occlusion bins, AP, counts and speed."""
    ap, vap = result.get("amodal_ap", {}), result.get("visible_ap", {})
    bins = "  ".join(f"{k}: {_pct(v.get('miou'))} (n={v.get('count', 0)})"
                     for k, v in result.get("by_occlusion", {}).items())
    ips, wall = result.get("images_per_s"), result.get("wall_images_per_s")
    return "\n".join([
        f"{result.get('method')} / {result.get('protocol')} / {result.get('split')}: "
        f"{result.get('num_images')} images, {result.get('num_instances')} instances, "
        f"{result.get('num_matched')} matched",
        f"mIoU {_pct(result.get('miou'))}   occluded mIoU {_pct(result.get('occluded_miou'))}   "
        f"instance-averaged mIoU {_pct(result.get('instance_miou'))}",
        f"by occlusion  {bins}",
        f"amodal AP {_pct(ap.get('AP'))}  AP50 {_pct(ap.get('AP50'))}  AP75 {_pct(ap.get('AP75'))}   "
        f"visible AP {_pct(vap.get('AP'))}  AP50 {_pct(vap.get('AP50'))}  AP75 {_pct(vap.get('AP75'))}",
        f"speed {ips or 0:.2f} images/s (predictor), {wall or 0:.2f} images/s (wall)",
    ])


def markdown_table(results: Sequence[dict]) -> str:
    """GitHub Markdown table, one row per result: categories, mIoU, occluded mIoU, amodal AP (all x100)."""
    cats = _columns(results)
    mixed = len({r.get("protocol") for r in results}) > 1
    head = ["Method", *cats, "mIoU", "occluded mIoU", "amodal AP"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join([":---"] + ["---:"] * (len(head) - 1)) + "|"]
    for result in results:
        per = result.get("per_category", {})
        cells = [_label(result, mixed), *(_pct(per.get(c, {}).get("miou")) for c in cats),
                 _pct(result.get("miou")), _pct(result.get("occluded_miou")),
                 _pct((result.get("amodal_ap") or {}).get("AP"))]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
